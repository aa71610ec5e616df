// Tests src/llm/bedrock_stream.cpp: ConverseStream messages to typed events (the generated
// happy path and exception/error frames), truncation, malformed payloads, and pre-stream HTTP
// errors.
#include "llm/bedrock_stream.hpp"

#include "test_data.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace eventcast::llm::bedrock {
namespace {

using test::read_data;

// One line per event, to compare runs and to read failures.
std::string describe(const stream_event& event) {
    struct visitor {
        std::string operator()(const message_start& e) const { return "start " + e.role; }
        std::string operator()(const text_delta& e) const {
            return "text " + std::to_string(e.content_block_index) + " " + e.text;
        }
        std::string operator()(const content_block_stop& e) const {
            return "block stop " + std::to_string(e.content_block_index);
        }
        std::string operator()(const message_stop& e) const { return "stop " + e.stop_reason; }
        std::string operator()(const metadata& e) const {
            const auto n = [](const std::optional<std::uint64_t>& v) {
                return v ? std::to_string(*v) : std::string("-");
            };
            return "metadata " + n(e.input_tokens) + "/" + n(e.output_tokens) + "/" +
                   n(e.total_tokens) + " " + n(e.latency_ms) + "ms";
        }
        std::string operator()(const bedrock_error& e) const {
            return "error " + std::to_string(static_cast<int>(e.from)) + " " + e.type + ": " +
                   e.message;
        }
    };
    return std::visit(visitor{}, event);
}

std::vector<std::string> describe(const std::vector<stream_event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events)
        out.push_back(describe(e));
    return out;
}

const std::vector<std::string> happy_path_events = {"start assistant", "text 0 Hello",
                                                    "text 0 , world",  "block stop 0",
                                                    "stop end_turn",   "metadata 12/4/16 321ms"};

event_stream_message decode_one(const std::string& frame) {
    event_stream_decoder decoder;
    auto messages = decoder.feed(frame);
    EXPECT_EQ(messages.size(), 1u) << (decoder.error() ? decoder.error()->message : "");
    return messages.empty() ? event_stream_message{} : std::move(messages[0]);
}

// The event a single frame maps to; fails the test on a mapping error or a skip.
stream_event map_one(const std::string& frame) {
    auto event = map_converse_stream_message(decode_one(frame));
    EXPECT_TRUE(event.has_value()) << event.error().message;
    if (!event || !*event)
        return message_start{"<nothing>"};
    return **event;
}

std::string mapping_error(const std::string& frame) {
    auto event = map_converse_stream_message(decode_one(frame));
    EXPECT_FALSE(event.has_value());
    return event ? std::string() : event.error().message;
}

TEST(ConverseStreamParserTest, HappyPathYieldsHelloWorldEndTurnAndUsage) {
    converse_stream_parser parser;
    const auto events = parser.feed(read_data("generated/converse-stream-happy-path.bin"));
    ASSERT_FALSE(parser.error()) << parser.error()->message;
    EXPECT_EQ(describe(events), happy_path_events);
    std::string text;
    for (const auto& e : events) {
        if (const auto* d = std::get_if<text_delta>(&e))
            text += d->text;
    }
    EXPECT_EQ(text, "Hello, world");
    EXPECT_TRUE(parser.finish());
    EXPECT_TRUE(parser.saw_message_stop());
    EXPECT_TRUE(parser.saw_metadata());
}

TEST(ConverseStreamParserTest, SameEventsWhereverTheChunkBoundaryFalls) {
    const std::string body = read_data("generated/converse-stream-happy-path.bin");
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
        converse_stream_parser parser;
        auto events = parser.feed(std::string_view(body).substr(0, cut));
        auto rest = parser.feed(std::string_view(body).substr(cut));
        events.insert(events.end(), rest.begin(), rest.end());
        ASSERT_EQ(describe(events), happy_path_events) << "cut at byte " << cut;
        ASSERT_TRUE(parser.finish()) << "cut at byte " << cut;
    }
}

TEST(ConverseStreamParserTest, ReportsTruncationBeforeMessageStop) {
    const auto frames = test::bedrock_frames();
    converse_stream_parser parser;
    parser.feed(frames[0].bytes + frames[1].bytes);
    auto finished = parser.finish();
    ASSERT_FALSE(finished);
    EXPECT_EQ(finished.error().message, "bedrock stream ended before messageStop (truncated)");
}

TEST(ConverseStreamParserTest, ReportsAStreamCutInsideAMessage) {
    const std::string body = read_data("generated/converse-stream-happy-path.bin");
    converse_stream_parser parser;
    EXPECT_EQ(parser.feed(std::string_view(body).substr(0, body.size() - 1)).size(), 5u);
    auto finished = parser.finish();
    ASSERT_FALSE(finished);
    EXPECT_EQ(finished.error().message,
              "bedrock stream ended inside a message (183 bytes of it received)");
}

TEST(ConverseStreamParserTest, AnExceptionEndsTheStreamWithoutTruncationError) {
    const auto frames = test::bedrock_frames();
    converse_stream_parser parser;
    const auto events = parser.feed(frames[0].bytes + frames[1].bytes + frames[6].bytes);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_TRUE(parser.saw_error());
    EXPECT_TRUE(parser.finish());
}

TEST(ConverseStreamParserTest, KeepsEventsBeforeADecodeErrorAndStops) {
    const auto frames = test::bedrock_frames();
    std::string bad = frames[2].bytes;
    bad[bad.size() - 1] ^= 1;
    converse_stream_parser parser;
    const auto events = parser.feed(frames[0].bytes + frames[1].bytes + bad + frames[3].bytes);
    EXPECT_EQ(describe(events), (std::vector<std::string>{"start assistant", "text 0 Hello"}));
    ASSERT_TRUE(parser.error());
    EXPECT_EQ(parser.error()->message.rfind("Message checksum mismatch", 0), 0u);
    EXPECT_FALSE(parser.finish());
    EXPECT_TRUE(parser.feed(frames[4].bytes).empty());
}

TEST(ConverseStreamMappingTest, MapsThrottlingExceptionFrame) {
    const auto e = std::get<bedrock_error>(map_one(test::bedrock_frames()[6].bytes));
    EXPECT_EQ(e.from, bedrock_error::origin::exception);
    EXPECT_EQ(e.type, "throttlingException");
    EXPECT_EQ(e.message, "Too many requests, please wait before trying again.");
    EXPECT_TRUE(e.retryable());
}

TEST(ConverseStreamMappingTest, MapsErrorFrameFromItsHeaders) {
    const auto e = std::get<bedrock_error>(map_one(test::bedrock_frames()[7].bytes));
    EXPECT_EQ(e.from, bedrock_error::origin::error);
    EXPECT_EQ(e.type, "InternalFailure");
    EXPECT_EQ(e.message, "An internal error occurred");
    EXPECT_TRUE(e.retryable());
}

TEST(ConverseStreamMappingTest, IgnoresThePaddingField) {
    const auto d = std::get<text_delta>(map_one(test::bedrock_frames()[2].bytes));
    EXPECT_EQ(d.text, ", world");
}

TEST(ConverseStreamMappingTest, SkipsUnknownEventTypesNonTextDeltasAndBlockStarts) {
    for (const std::string& frame :
         {test::event_frame("somethingNew", "{}"),
          test::event_frame(
              "contentBlockStart",
              R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t","name":"n"}}})"),
          test::event_frame("contentBlockDelta",
                            R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\""}}})"),
          test::event_frame(
              "contentBlockDelta",
              R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hm"}}})"),
          test::bedrock_frames()[8].bytes}) {
        auto event = map_converse_stream_message(decode_one(frame));
        ASSERT_TRUE(event.has_value()) << event.error().message;
        EXPECT_FALSE(event->has_value());
    }
}

TEST(ConverseStreamMappingTest, KeysDeltasByContentBlockIndex) {
    const auto d = std::get<text_delta>(map_one(
        test::event_frame("contentBlockDelta", R"({"contentBlockIndex":2,"delta":{"text":"x"}})")));
    EXPECT_EQ(d.content_block_index, 2u);
}

TEST(ConverseStreamMappingTest, RejectsMalformedPayloads) {
    EXPECT_EQ(mapping_error(test::event_frame("contentBlockDelta", "{not json"))
                  .rfind("bedrock contentBlockDelta payload: not JSON", 0),
              0u);
    EXPECT_EQ(mapping_error(test::event_frame("contentBlockDelta",
                                              R"({"contentBlockIndex":0,"delta":{"text":5}})")),
              "bedrock contentBlockDelta payload: delta.text is a number; expected a string");
    EXPECT_EQ(mapping_error(test::event_frame("contentBlockDelta", R"({"contentBlockIndex":0})")),
              "bedrock contentBlockDelta payload: delta is missing; expected an object");
    EXPECT_EQ(mapping_error(test::event_frame("contentBlockStop", R"({"contentBlockIndex":-1})")),
              "bedrock contentBlockStop payload: contentBlockIndex is a number; expected an "
              "integer 0..4294967295");
    EXPECT_EQ(mapping_error(test::event_frame("messageStop", "[]")),
              "bedrock messageStop payload: is an array; expected an object");
    EXPECT_EQ(mapping_error(test::event_frame("messageStop", "{}")),
              "bedrock messageStop payload: stopReason is missing");
    EXPECT_EQ(mapping_error(test::event_frame("messageStart", R"({"role":null})")),
              "bedrock messageStart payload: role is null; expected a string");
}

TEST(ConverseStreamMappingTest, RejectsMissingOrUnknownMessageType) {
    EXPECT_EQ(
        mapping_error(test::encode_frame(test::string_header(":event-type", "metadata"), "{}")),
        "bedrock event-stream message has no string :message-type header");
    EXPECT_EQ(mapping_error(test::encode_frame(test::string_header(":message-type", "weird"), "")),
              "bedrock event-stream message has :message-type 'weird'; expected event, exception "
              "or error");
    EXPECT_EQ(
        mapping_error(test::encode_frame(test::string_header(":message-type", "event"), "{}")),
        "bedrock event message has no string :event-type header");
}

TEST(ConverseStreamMappingTest, ToleratesOddMetadataNumbers) {
    const auto m = std::get<metadata>(map_one(test::event_frame(
        "metadata",
        R"({"usage":{"inputTokens":"12","outputTokens":-1,"totalTokens":7},"p":"x"})")));
    EXPECT_FALSE(m.input_tokens);
    EXPECT_FALSE(m.output_tokens);
    EXPECT_EQ(m.total_tokens, 7u);
    EXPECT_FALSE(m.latency_ms);
}

std::string exception_frame(std::string_view type, std::string_view payload) {
    return test::encode_frame(test::string_header(":exception-type", type) +
                                  test::string_header(":content-type", "application/json") +
                                  test::string_header(":message-type", "exception"),
                              payload);
}

TEST(ConverseStreamMappingTest, MapsModelStreamErrorWithTheModelsStatus) {
    const auto e = std::get<bedrock_error>(map_one(exception_frame(
        "modelStreamErrorException",
        R"({"message":"Model failed","originalStatusCode":529,"originalMessage":"Overloaded"})")));
    EXPECT_EQ(e.type, "modelStreamErrorException");
    EXPECT_EQ(e.message, "Model failed");
    EXPECT_EQ(e.original_status_code, 529);
    EXPECT_EQ(e.original_message, "Overloaded");
    EXPECT_TRUE(e.retryable());
    const auto bad_input = std::get<bedrock_error>(map_one(
        exception_frame("ValidationException", R"({"Message":"Malformed input request"})")));
    EXPECT_EQ(bad_input.message, "Malformed input request");
    EXPECT_FALSE(bad_input.retryable());
    const auto not_json =
        std::get<bedrock_error>(map_one(exception_frame("internalServerException", "oops")));
    EXPECT_EQ(not_json.message, "oops");
    EXPECT_TRUE(not_json.retryable());
}

TEST(InvokeStreamMappingTest, DecodesChunkBytes) {
    auto event = map_invoke_stream_message(decode_one(test::bedrock_frames()[8].bytes));
    ASSERT_TRUE(event.has_value()) << event.error().message;
    ASSERT_TRUE(event->has_value());
    EXPECT_EQ(
        std::get<invoke_chunk>(**event).json,
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})");
}

TEST(InvokeStreamMappingTest, MapsExceptionsAndRejectsBadChunks) {
    auto exception = map_invoke_stream_message(decode_one(test::bedrock_frames()[6].bytes));
    ASSERT_TRUE(exception.has_value());
    EXPECT_EQ(std::get<bedrock_error>(**exception).type, "throttlingException");
    auto bad =
        map_invoke_stream_message(decode_one(test::event_frame("chunk", R"({"bytes":"***"})")));
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().message, "bedrock chunk payload: bytes is not base64");
    auto other = map_invoke_stream_message(decode_one(test::event_frame("messageStart", "{}")));
    ASSERT_TRUE(other.has_value());
    EXPECT_FALSE(other->has_value());
}

TEST(BedrockHttpErrorTest, TakesTheTypeFromTheHeaderUpToTheColon) {
    const bedrock_error e = parse_http_error(
        400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        R"({"message":"The provided model identifier is invalid."})");
    EXPECT_EQ(e.from, bedrock_error::origin::http);
    EXPECT_EQ(e.http_status, 400u);
    EXPECT_EQ(e.type, "ValidationException");
    EXPECT_EQ(e.message, "The provided model identifier is invalid.");
    EXPECT_FALSE(e.retryable());
}

TEST(BedrockHttpErrorTest, FallsBackToCodeThenTypeAfterHash) {
    EXPECT_EQ(
        parse_http_error(429, "", R"({"code":"ThrottlingException","Message":"slow down"})").type,
        "ThrottlingException");
    const bedrock_error e = parse_http_error(
        403, "",
        R"({"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"bad token"})");
    EXPECT_EQ(e.type, "UnrecognizedClientException");
    EXPECT_EQ(e.message, "bad token");
    EXPECT_FALSE(e.retryable());
    EXPECT_TRUE(parse_http_error(429, "ThrottlingException", "{}").retryable());
}

TEST(BedrockHttpErrorTest, UsesANonJsonBodyAsTheMessageAndTheStatusForRetries) {
    const bedrock_error e = parse_http_error(503, "", "Service Unavailable");
    EXPECT_EQ(e.type, "");
    EXPECT_EQ(e.message, "Service Unavailable");
    EXPECT_TRUE(e.retryable());
    EXPECT_EQ(parse_http_error(500, "", std::string(2000, 'x')).message.size(), 512u);
    EXPECT_FALSE(parse_http_error(400, "", "").retryable());
}

}  // namespace
}  // namespace eventcast::llm::bedrock

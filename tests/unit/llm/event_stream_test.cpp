// Tests src/llm/event_stream.cpp: the aws-sdk-go positive and negative vectors, the generated
// Bedrock frames, the same results however the input is split, and the limits.
#include "llm/event_stream.hpp"

#include "core/base64.hpp"
#include "test_data.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace eventcast::llm {
namespace {

namespace json = boost::json;
using test::read_data;

const std::vector<std::string> positive = {"all_headers", "empty_message", "int32_header",
                                           "payload_no_headers", "payload_one_str_header"};
const std::vector<std::string> negative = {"corrupted_header_len", "corrupted_headers",
                                           "corrupted_length", "corrupted_payload"};

// Some decoded JSON files write CRCs as signed 32-bit numbers.
std::uint32_t crc_field(const json::value& v) {
    return static_cast<std::uint32_t>(v.to_number<std::int64_t>());
}

std::string base64(const json::value& v) {
    const auto decoded = core::base64_decode_any(v.as_string());
    EXPECT_TRUE(decoded.has_value()) << v;
    return decoded.value_or("");
}

// A one-line rendering of what a decoder produced, to compare runs over different splits.
std::string describe(const std::vector<event_stream_message>& messages,
                     const event_stream_decoder& decoder) {
    std::string out;
    for (const auto& m : messages) {
        out += "[" + std::to_string(m.total_length) + "/" + std::to_string(m.headers_length) + " " +
               std::to_string(m.prelude_crc) + " " + std::to_string(m.message_crc);
        for (const auto& h : m.headers)
            out += " " + h.name + ":" + std::to_string(static_cast<int>(h.type)) + ":" +
                   std::to_string(h.integer) + ":" + h.bytes;
        out += " payload=" + m.payload + "]";
    }
    if (decoder.error())
        out += " error=" + decoder.error()->message;
    return out;
}

struct decoded {
    std::vector<event_stream_message> messages;
    std::string description;
};

decoded decode_whole(std::string_view bytes) {
    event_stream_decoder decoder;
    decoded d{decoder.feed(bytes), {}};
    d.description = describe(d.messages, decoder);
    return d;
}

std::vector<std::pair<std::string, std::string>> every_input() {
    std::vector<std::pair<std::string, std::string>> inputs;
    for (const auto& name : positive)
        inputs.emplace_back(name, read_data("aws-eventstream/encoded/positive/" + name));
    for (const auto& name : negative)
        inputs.emplace_back(name, read_data("aws-eventstream/encoded/negative/" + name));
    inputs.emplace_back("happy path", read_data("generated/converse-stream-happy-path.bin"));
    std::string all_frames;
    for (const auto& f : test::bedrock_frames())
        all_frames += f.bytes;
    inputs.emplace_back("all bedrock frames", all_frames);
    // Two messages then a corrupted one: the error comes after two good messages.
    inputs.emplace_back("good then bad",
                        read_data("aws-eventstream/encoded/positive/int32_header") +
                            read_data("aws-eventstream/encoded/positive/empty_message") +
                            read_data("aws-eventstream/encoded/negative/corrupted_payload"));
    return inputs;
}

TEST(EventStreamDecoderTest, DecodesEveryPositiveVectorExactly) {
    for (const auto& name : positive) {
        SCOPED_TRACE(name);
        const json::object expected =
            json::parse(read_data("aws-eventstream/decoded/positive/" + name)).as_object();
        const std::string bytes = read_data("aws-eventstream/encoded/positive/" + name);
        event_stream_decoder decoder;
        const auto messages = decoder.feed(bytes);
        ASSERT_FALSE(decoder.failed()) << decoder.error()->message;
        ASSERT_EQ(messages.size(), 1u);
        const event_stream_message& m = messages[0];
        EXPECT_EQ(m.total_length, expected.at("total_length").to_number<std::uint32_t>());
        EXPECT_EQ(m.total_length, bytes.size());
        EXPECT_EQ(m.headers_length, expected.at("headers_length").to_number<std::uint32_t>());
        EXPECT_EQ(m.prelude_crc, crc_field(expected.at("prelude_crc")));
        EXPECT_EQ(m.message_crc, crc_field(expected.at("message_crc")));
        EXPECT_EQ(m.payload, base64(expected.at("payload")));
        const json::array& headers = expected.at("headers").as_array();
        ASSERT_EQ(m.headers.size(), headers.size());
        for (std::size_t i = 0; i < headers.size(); ++i) {
            const json::object& h = headers[i].as_object();
            const event_stream_header& got = m.headers[i];
            SCOPED_TRACE(got.name);
            EXPECT_EQ(got.name, h.at("name").as_string());
            const auto type = h.at("type").to_number<int>();
            EXPECT_EQ(static_cast<int>(got.type), type);
            const json::value& value = h.at("value");
            switch (got.type) {
                case header_type::bool_true:
                case header_type::bool_false: EXPECT_EQ(got.boolean(), value.as_bool()); break;
                case header_type::byte:
                case header_type::int16:
                case header_type::int32:
                case header_type::int64:
                case header_type::timestamp:
                    EXPECT_EQ(got.integer, value.to_number<std::int64_t>());
                    break;
                case header_type::byte_array:
                case header_type::string:
                case header_type::uuid: EXPECT_EQ(got.bytes, base64(value)); break;
            }
        }
    }
}

TEST(EventStreamDecoderTest, RejectsEveryNegativeVectorWithTheExpectedReason) {
    for (const auto& name : negative) {
        SCOPED_TRACE(name);
        const std::string reason = read_data("aws-eventstream/decoded/negative/" + name);
        event_stream_decoder decoder;
        EXPECT_TRUE(decoder.feed(read_data("aws-eventstream/encoded/negative/" + name)).empty());
        ASSERT_TRUE(decoder.failed());
        EXPECT_EQ(decoder.error()->message.rfind(reason, 0), 0u) << decoder.error()->message;
    }
}

TEST(EventStreamDecoderTest, RejectsPreludeChecksumMismatch) {
    std::string frame = test::event_frame("messageStart", R"({"role":"assistant"})");
    frame[3] ^= 0x01;  // total_length
    event_stream_decoder decoder;
    EXPECT_TRUE(decoder.feed(frame).empty());
    ASSERT_TRUE(decoder.failed());
    EXPECT_EQ(decoder.error()->message.rfind("Prelude checksum mismatch: frame says 0x", 0), 0u)
        << decoder.error()->message;
    EXPECT_NE(decoder.error()->message.find("stream offset 0"), std::string::npos);
}

TEST(EventStreamDecoderTest, RejectsMessageChecksumMismatchAndSaysWhere) {
    const std::string good = test::event_frame("messageStart", R"({"role":"assistant"})");
    std::string bad = good;
    bad[bad.size() - 6] ^= 0x20;  // in the payload
    event_stream_decoder decoder;
    const auto messages = decoder.feed(good + bad);
    EXPECT_EQ(messages.size(), 1u);
    ASSERT_TRUE(decoder.failed());
    EXPECT_EQ(decoder.error()->message.rfind("Message checksum mismatch", 0), 0u);
    EXPECT_NE(decoder.error()->message.find("stream offset " + std::to_string(good.size())),
              std::string::npos)
        << decoder.error()->message;
}

TEST(EventStreamDecoderTest, DecodesTheConverseStreamHappyPath) {
    const std::string body = read_data("generated/converse-stream-happy-path.bin");
    event_stream_decoder decoder;
    const auto messages = decoder.feed(body);
    ASSERT_FALSE(decoder.failed()) << decoder.error()->message;
    ASSERT_EQ(messages.size(), 6u);
    EXPECT_TRUE(decoder.at_message_boundary());
    const std::vector<std::string> types = {"messageStart",      "contentBlockDelta",
                                            "contentBlockDelta", "contentBlockStop",
                                            "messageStop",       "metadata"};
    for (std::size_t i = 0; i < types.size(); ++i) {
        EXPECT_EQ(messages[i].string_header(":event-type"), types[i]);
        EXPECT_EQ(messages[i].string_header(":message-type"), "event");
        EXPECT_EQ(messages[i].string_header(":content-type"), "application/json");
    }
    EXPECT_EQ(messages[1].payload, R"({"contentBlockIndex":0,"delta":{"text":"Hello"}})");
    EXPECT_EQ(messages[1].total_length, 151u);
    EXPECT_EQ(messages[1].headers_length, 87u);
    EXPECT_EQ(messages[1].prelude_crc, 0xf30be03eu);
    EXPECT_EQ(messages[1].message_crc, 0x67623831u);
}

TEST(EventStreamDecoderTest, DecodesEveryGeneratedBedrockFrame) {
    const auto frames = test::bedrock_frames();
    ASSERT_EQ(frames.size(), 9u);
    for (const auto& f : frames) {
        SCOPED_TRACE(f.name);
        EXPECT_EQ(f.bytes.size(), f.declared_size);
        event_stream_decoder decoder;
        const auto messages = decoder.feed(f.bytes);
        ASSERT_FALSE(decoder.failed()) << decoder.error()->message;
        ASSERT_EQ(messages.size(), 1u);
        EXPECT_EQ(messages[0].total_length, f.declared_size);
    }
    event_stream_decoder decoder;
    const auto exception = decoder.feed(frames[6].bytes);
    ASSERT_EQ(exception.size(), 1u);
    EXPECT_EQ(exception[0].string_header(":message-type"), "exception");
    EXPECT_EQ(exception[0].string_header(":exception-type"), "throttlingException");
    const auto error = decoder.feed(frames[7].bytes);
    ASSERT_EQ(error.size(), 1u);
    EXPECT_EQ(error[0].string_header(":error-code"), "InternalFailure");
    EXPECT_EQ(error[0].string_header(":error-message"), "An internal error occurred");
    EXPECT_EQ(error[0].payload, "");
}

TEST(EventStreamDecoderTest, SameMessagesWhereverTheInputIsCut) {
    for (const auto& [name, bytes] : every_input()) {
        SCOPED_TRACE(name);
        const decoded whole = decode_whole(bytes);
        ASSERT_FALSE(whole.description.empty());
        for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
            event_stream_decoder decoder;
            auto messages = decoder.feed(std::string_view(bytes).substr(0, cut));
            auto rest = decoder.feed(std::string_view(bytes).substr(cut));
            messages.insert(messages.end(), rest.begin(), rest.end());
            ASSERT_EQ(describe(messages, decoder), whole.description) << "cut at byte " << cut;
        }
    }
}

TEST(EventStreamDecoderTest, SameMessagesFedOneByteAtATime) {
    for (const auto& [name, bytes] : every_input()) {
        SCOPED_TRACE(name);
        const decoded whole = decode_whole(bytes);
        event_stream_decoder decoder;
        std::vector<event_stream_message> messages;
        for (const char c : bytes) {
            auto got = decoder.feed(std::string_view(&c, 1));
            messages.insert(messages.end(), got.begin(), got.end());
            EXPECT_LE(decoder.buffered_bytes(), bytes.size());
        }
        EXPECT_EQ(describe(messages, decoder), whole.description);
        if (!decoder.failed()) {
            EXPECT_EQ(decoder.stream_offset(), bytes.size());
        }
    }
}

TEST(EventStreamDecoderTest, ErrorIsStickyAndLaterInputIsIgnored) {
    event_stream_decoder decoder;
    EXPECT_TRUE(
        decoder.feed(read_data("aws-eventstream/encoded/negative/corrupted_length")).empty());
    ASSERT_TRUE(decoder.failed());
    const std::string first = decoder.error()->message;
    EXPECT_TRUE(decoder.feed(read_data("aws-eventstream/encoded/positive/empty_message")).empty());
    EXPECT_EQ(decoder.error()->message, first);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

// A prelude with a valid CRC around arbitrary lengths.
std::string prelude(std::uint32_t total, std::uint32_t headers) {
    std::string out;
    test::put_u32(out, total);
    test::put_u32(out, headers);
    test::put_u32(out, test::crc_of(out));
    return out;
}

TEST(EventStreamDecoderTest, RejectsTotalLengthAboveTheLimitBeforeBuffering) {
    event_stream_decoder decoder;
    EXPECT_TRUE(decoder.feed(prelude(16 * 1024 * 1024 + 1, 0)).empty());
    ASSERT_TRUE(decoder.failed());
    EXPECT_EQ(decoder.error()->message.rfind(
                  "event-stream total_length 16777217 exceeds the limit 16777216", 0),
              0u)
        << decoder.error()->message;
}

TEST(EventStreamDecoderTest, RejectsTotalLengthBelowSixteen) {
    event_stream_decoder decoder;
    EXPECT_TRUE(decoder.feed(prelude(15, 0) + "xxxx").empty());
    ASSERT_TRUE(decoder.failed());
    EXPECT_EQ(
        decoder.error()->message.rfind("event-stream total_length 15 is below the minimum 16", 0),
        0u);
}

TEST(EventStreamDecoderTest, RejectsHeadersLengthAboveTheLimitOrPastTheMessage) {
    event_stream_decoder over_limit;
    over_limit.feed(prelude(200 * 1024, 128 * 1024 + 1));
    ASSERT_TRUE(over_limit.failed());
    EXPECT_NE(over_limit.error()->message.find("headers_length 131073 exceeds the limit 131072"),
              std::string::npos);
    event_stream_decoder past_end;
    past_end.feed(prelude(20, 5));
    ASSERT_TRUE(past_end.failed());
    EXPECT_NE(past_end.error()->message.find("headers_length 5 does not fit in total_length 20"),
              std::string::npos);
}

TEST(EventStreamDecoderTest, HonoursSmallerConfiguredLimits) {
    event_stream_decoder decoder(event_stream_limits{64, 16});
    EXPECT_TRUE(decoder.feed(read_data("aws-eventstream/encoded/positive/int32_header")).size() ==
                1);
    EXPECT_TRUE(decoder.feed(read_data("aws-eventstream/encoded/positive/all_headers")).empty());
    ASSERT_TRUE(decoder.failed());
    EXPECT_NE(decoder.error()->message.find("exceeds the limit 64"), std::string::npos);
}

TEST(EventStreamDecoderTest, RejectsUnknownHeaderType) {
    std::string headers = test::string_header(":message-type", "event");
    headers += std::string(
        "\x03"
        "abc"
        "\x0a",
        5);
    event_stream_decoder decoder;
    EXPECT_TRUE(decoder.feed(test::encode_frame(headers, "{}")).empty());
    ASSERT_TRUE(decoder.failed());
    EXPECT_EQ(decoder.error()->message.rfind(
                  "event-stream header 'abc' has unknown value type 10; allowed 0..9", 0),
              0u)
        << decoder.error()->message;
}

TEST(EventStreamDecoderTest, RejectsHeaderValuesRunningPastTheHeadersSection) {
    const std::vector<std::string> bad_sections = {
        std::string("\x00", 1),  // empty name
        std::string("\x05"
                    "ab",
                    3),  // name past the end
        std::string("\x01"
                    "a",
                    2),  // no type byte
        std::string("\x01"
                    "a"
                    "\x04"
                    "\x00\x00",
                    5),  // int32 with 2 bytes
        std::string("\x01"
                    "a"
                    "\x07"
                    "\x00\x09"
                    "abc",
                    8),  // string of 9 with 3 bytes
        std::string("\x01"
                    "a"
                    "\x09"
                    "0123456789",
                    13),  // uuid with 10 bytes
        std::string("\x01"
                    "a"
                    "\x06"
                    "\x00",
                    4),  // byte array without its length
    };
    for (const std::string& section : bad_sections) {
        event_stream_decoder decoder;
        EXPECT_TRUE(decoder.feed(test::encode_frame(section, "payload")).empty());
        ASSERT_TRUE(decoder.failed());
        EXPECT_EQ(decoder.error()->message.rfind("event-stream header", 0), 0u)
            << decoder.error()->message;
    }
}

TEST(EventStreamDecoderTest, DecodesSignedIntegersAndFindsHeadersByName) {
    std::string headers;
    headers += std::string(
        "\x01"
        "b"
        "\x02"
        "\xff",
        4);
    headers += std::string(
        "\x01"
        "s"
        "\x03"
        "\x80\x00",
        5);
    headers += std::string(
        "\x01"
        "t"
        "\x08"
        "\xff\xff\xff\xff\xff\xff\xff\xfe",
        11);
    headers += std::string(
        "\x01"
        "x"
        "\x01",
        3);
    headers += test::string_header("name", "value");
    event_stream_decoder decoder;
    const auto messages = decoder.feed(test::encode_frame(headers, ""));
    ASSERT_EQ(messages.size(), 1u) << (decoder.error() ? decoder.error()->message : "");
    const event_stream_message& m = messages[0];
    EXPECT_EQ(m.find_header("b")->integer, -1);
    EXPECT_EQ(m.find_header("s")->integer, -32768);
    EXPECT_EQ(m.find_header("t")->integer, -2);
    EXPECT_FALSE(m.find_header("x")->boolean());
    EXPECT_EQ(m.string_header("name"), "value");
    EXPECT_FALSE(m.string_header("b").has_value());  // not a string header
    EXPECT_EQ(m.find_header("missing"), nullptr);
}

TEST(EventStreamDecoderTest, BuffersOnlyThePartialMessage) {
    const std::string body = read_data("generated/converse-stream-happy-path.bin");
    event_stream_decoder decoder;
    // Everything but the last 10 bytes: five whole messages and most of the sixth.
    const auto messages = decoder.feed(std::string_view(body).substr(0, body.size() - 10));
    EXPECT_EQ(messages.size(), 5u);
    EXPECT_FALSE(decoder.at_message_boundary());
    EXPECT_EQ(decoder.buffered_bytes(), 184u - 10u);  // the metadata frame is 184 bytes
    EXPECT_EQ(decoder.feed(std::string_view(body).substr(body.size() - 10)).size(), 1u);
    EXPECT_TRUE(decoder.at_message_boundary());
}

TEST(EventStreamDecoderTest, AcceptsEmptyFeeds) {
    event_stream_decoder decoder;
    EXPECT_TRUE(decoder.feed("").empty());
    EXPECT_EQ(decoder.feed(read_data("aws-eventstream/encoded/positive/empty_message")).size(), 1u);
    EXPECT_TRUE(decoder.feed("").empty());
    EXPECT_FALSE(decoder.failed());
}

}  // namespace
}  // namespace eventcast::llm

// Tests src/llm/openai_stream.cpp: chunk JSON from OpenAI, Ollama, vLLM and llama.cpp, errors
// in every shape they use, end-of-stream rules, and the same items wherever the body is cut.
#include "llm/openai_stream.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace eventcast::llm::openai {
namespace {

std::string describe(const stream_item& item) {
    if (std::holds_alternative<done>(item))
        return "done";
    if (const auto* e = std::get_if<api_error>(&item))
        return "error " + std::to_string(e->http_status) + " type=" + e->type + " code=" + e->code +
               " message=" + e->message;
    const chunk& c = std::get<chunk>(item);
    std::string out = "chunk";
    if (c.role)
        out += " role=" + *c.role;
    if (!c.content.empty())
        out += " content=" + c.content;
    if (!c.reasoning.empty())
        out += " reasoning=" + c.reasoning;
    if (c.finish_reason)
        out += " finish=" + *c.finish_reason;
    if (c.usage)
        out += " usage=" + std::to_string(c.usage->prompt_tokens) + "/" +
               std::to_string(c.usage->completion_tokens) + "/" +
               std::to_string(c.usage->total_tokens);
    return out;
}

struct run {
    std::vector<std::string> items;
    std::string error;  // the parser's error after finish(), if any
};

run parse_body(std::string_view body) {
    chat_stream_parser parser;
    run r;
    for (const auto& item : parser.feed(body))
        r.items.push_back(describe(item));
    for (const auto& item : parser.finish())
        r.items.push_back(describe(item));
    if (parser.error())
        r.error = parser.error()->message;
    return r;
}

stream_item parse_one(std::string_view data) {
    auto item = parse_stream_data(data);
    EXPECT_TRUE(item.has_value()) << item.error().message;
    return item ? *item : stream_item{done{}};
}

// What OpenAI sends with stream_options.include_usage (ids shortened).
const std::string openai_body =
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abc"})"
    "\n\n"
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":", world"},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})"
    "\n\n"
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0}}})"
    "\n\n"
    "data: [DONE]\n\n";

const std::vector<std::string> openai_items = {"chunk role=assistant",  "chunk content=Hello",
                                               "chunk content=, world", "chunk finish=stop",
                                               "chunk usage=9/3/12",    "done"};

TEST(ChatStreamParserTest, ParsesAnOpenAiStreamWithUsage) {
    const run r = parse_body(openai_body);
    EXPECT_EQ(r.items, openai_items);
    EXPECT_EQ(r.error, "");
}

TEST(ChatStreamParserTest, SameItemsWhereverTheChunkBoundaryFalls) {
    const std::string body = openai_body;
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
        chat_stream_parser parser;
        std::vector<std::string> items;
        for (const auto& item : parser.feed(std::string_view(body).substr(0, cut)))
            items.push_back(describe(item));
        for (const auto& item : parser.feed(std::string_view(body).substr(cut)))
            items.push_back(describe(item));
        for (const auto& item : parser.finish())
            items.push_back(describe(item));
        ASSERT_EQ(items, openai_items) << "cut at byte " << cut;
        ASSERT_FALSE(parser.error()) << "cut at byte " << cut;
    }
}

TEST(ChatStreamParserTest, ParsesAnOllamaStreamWithCrlfAndUsage) {
    const std::string body =
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"llama3.2\","
        "\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\r\n\r\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":"
        "0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}"
        "\r\n\r\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\r\n\r\n"
        "data: [DONE]\r\n\r\n";
    EXPECT_EQ(parse_body(body).items, (std::vector<std::string>{"chunk role=assistant content=Hi",
                                                                "chunk role=assistant finish=stop",
                                                                "chunk usage=5/1/6", "done"}));
}

TEST(ChatStreamParserTest, ReadsLlamaCppNullContentAndReasoning) {
    const std::string body =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],"
        "\"object\":\"chat.completion.chunk\"}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"ollama thinks\"}}]}\n\n"
        "data: {\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}],"
        "\"timings\":{\"predicted_ms\":10}}\n\n"
        "data: [DONE]";  // no blank line at the end
    const run r = parse_body(body);
    EXPECT_EQ(r.items, (std::vector<std::string>{"chunk role=assistant", "chunk reasoning=think",
                                                 "chunk reasoning=ollama thinks",
                                                 "chunk finish=length", "done"}));
    EXPECT_EQ(r.error, "");
}

TEST(ChatStreamParserTest, SurfacesVllmInStreamErrors) {
    const run r = parse_body(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"error\":{\"object\":\"error\",\"message\":\"engine died\",\"type\":"
        "\"InternalServerError\",\"param\":null,\"code\":500}}\n\n"
        "data: [DONE]\n\n");
    EXPECT_EQ(r.items, (std::vector<std::string>{"chunk content=a",
                                                 "error 0 type=InternalServerError code=500 "
                                                 "message=engine died",
                                                 "done"}));
    EXPECT_EQ(r.error, "");
}

TEST(ChatStreamParserTest, SurfacesOldLlamaCppErrorField) {
    const run r = parse_body(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "error: {\"code\":500,\"message\":\"context exceeded\",\"type\":\"server_error\"}\n\n");
    EXPECT_EQ(r.items, (std::vector<std::string>{
                           "chunk content=a",
                           "error 0 type=server_error code=500 message=context exceeded"}));
    EXPECT_EQ(r.error, "");  // the error item is how the stream ended
}

TEST(ChatStreamParserTest, TreatsAnEventNamedErrorAsAnError) {
    const run r = parse_body("event: error\ndata: {\"message\":\"overloaded\"}\n\n");
    EXPECT_EQ(r.items, (std::vector<std::string>{"error 0 type= code= message=overloaded"}));
}

TEST(ChatStreamParserTest, ReportsAStreamThatEndsWithoutDoneOrFinishReason) {
    // A failed Ollama stream: some content, then the connection closes.
    const run r =
        parse_body("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
    EXPECT_EQ(r.items, (std::vector<std::string>{"chunk content=a"}));
    EXPECT_EQ(r.error,
              "openai stream ended without [DONE] or a finish_reason (truncated; a failed Ollama "
              "stream ends this way)");
}

TEST(ChatStreamParserTest, AcceptsAFinishReasonWithoutDone) {
    EXPECT_EQ(parse_body("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                         "\"stop\"}]}\n\n")
                  .error,
              "");
}

TEST(ChatStreamParserTest, IgnoresEverythingAfterDoneAndEmptyDataEvents) {
    const run r = parse_body("data:\n\ndata: [DONE]\n\ndata: {not json\n\n");
    EXPECT_EQ(r.items, (std::vector<std::string>{"done"}));
    EXPECT_EQ(r.error, "");
}

TEST(ChatStreamParserTest, StopsAtMalformedChunkJson) {
    chat_stream_parser parser;
    const auto items = parser.feed(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {oops\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n");
    ASSERT_EQ(items.size(), 1u);
    ASSERT_TRUE(parser.error());
    EXPECT_EQ(parser.error()->message.rfind("openai stream chunk: not JSON", 0), 0u)
        << parser.error()->message;
    EXPECT_TRUE(parser.feed("data: [DONE]\n\n").empty());
    EXPECT_TRUE(parser.finish().empty());
}

TEST(ChatStreamParserTest, PassesOnSseLimitErrors) {
    chat_stream_parser parser(sse_limits{32, 64});
    EXPECT_TRUE(parser.feed("data: " + std::string(100, 'x')).empty());
    ASSERT_TRUE(parser.error());
    EXPECT_EQ(parser.error()->message, "SSE line exceeds 32 bytes without a line end");
}

TEST(ParseStreamDataTest, RecognisesDone) {
    EXPECT_TRUE(std::holds_alternative<done>(parse_one("[DONE]")));
    EXPECT_TRUE(std::holds_alternative<done>(parse_one(" [DONE] ")));
}

TEST(ParseStreamDataTest, ReadsOnlyTheChoiceWithIndexZero) {
    EXPECT_EQ(
        describe(parse_one(
            R"({"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]})")),
        "chunk content=a");
    EXPECT_EQ(describe(parse_one(R"({"choices":[{"index":1,"delta":{"content":"b"}}]})")), "chunk");
    EXPECT_EQ(describe(parse_one(R"({"choices":[{"delta":{"content":"no index"}}]})")),
              "chunk content=no index");
}

TEST(ParseStreamDataTest, ComputesTotalTokensWhenMissing) {
    EXPECT_EQ(
        describe(parse_one(R"({"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}})")),
        "chunk usage=2/3/5");
    EXPECT_EQ(describe(parse_one(R"({"choices":null,"usage":null})")), "chunk");
}

TEST(ParseStreamDataTest, ReadsErrorsInEveryShape) {
    EXPECT_EQ(
        describe(parse_one(
            R"({"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}})")),
        "error 0 type=requests code=rate_limit_exceeded message=Rate limit");
    EXPECT_EQ(describe(parse_one(R"({"error":{"message":"x","type":"api_error","code":null}})")),
              "error 0 type=api_error code= message=x");
    EXPECT_EQ(describe(parse_one(R"({"error":"model 'x' not found"})")),
              "error 0 type= code= message=model 'x' not found");
    EXPECT_EQ(
        describe(parse_one(
            R"({"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400})")),
        "error 0 type=BadRequestError code=400 message=bad");
}

TEST(ParseStreamDataTest, RejectsChunksItCannotRead) {
    const auto error_of = [](std::string_view data) {
        auto item = parse_stream_data(data);
        EXPECT_FALSE(item.has_value()) << data;
        return item ? std::string() : item.error().message;
    };
    EXPECT_EQ(error_of("[1,2]"), "openai stream chunk: is an array; expected an object");
    EXPECT_EQ(error_of(R"({"choices":{}})"),
              "openai stream chunk: choices is an object; expected an array");
    EXPECT_EQ(error_of(R"({"choices":[3]})"),
              "openai stream chunk: choices[0] is a number; expected an object");
    EXPECT_EQ(error_of(R"({"choices":[{"index":0,"delta":"x"}]})"),
              "openai stream chunk: choices[0].delta is a string; expected an object");
    EXPECT_EQ(
        error_of(R"({"choices":[{"index":0,"delta":{"content":7}}]})"),
        "openai stream chunk: choices[0].delta.content is a number; expected a string or null");
    EXPECT_EQ(error_of("").rfind("openai stream chunk: not JSON", 0), 0u);
}

TEST(ParseErrorBodyTest, ReadsEveryServersErrorBody) {
    const api_error openai = parse_error_body(
        401,
        R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})");
    EXPECT_EQ(openai.http_status, 401u);
    EXPECT_EQ(openai.type, "invalid_request_error");
    EXPECT_EQ(openai.code, "invalid_api_key");
    EXPECT_EQ(openai.message, "Incorrect API key provided");
    EXPECT_EQ(
        parse_error_body(
            400,
            R"({"error":{"code":400,"message":"too long","type":"exceed_context_size_error"}})")
            .code,
        "400");
    EXPECT_EQ(
        parse_error_body(404, R"({"error":"model \"x\" not found, try pulling it first"})").message,
        "model \"x\" not found, try pulling it first");
    EXPECT_EQ(parse_error_body(400, R"({"object":"error","message":"flat","code":400})").message,
              "flat");
    EXPECT_EQ(parse_error_body(502, "<html>Bad Gateway</html>\n").message,
              "<html>Bad Gateway</html>");
    EXPECT_EQ(parse_error_body(500, std::string(1000, 'x')).message.size(), 512u);
}

}  // namespace
}  // namespace eventcast::llm::openai

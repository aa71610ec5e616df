// POST /chat end to end with the offline demo model: events on /BedrockChat/<user>, gapless seq,
// text equal to the model's answer, cancel, status, limits, bad input, and 200 streams at once.
#include "harness.hpp"
#include "llm/demo_provider.hpp"

#include <gtest/gtest.h>

#include <map>

namespace eventcast::testing {
namespace {

std::string str(const json::value& v) {
    return std::string(v.as_string());
}

http_result post_chat(const server_process& srv, const std::string& body) {
    return http_request(srv.port(), http::verb::post, "/chat", body,
                        {{"x-api-key", srv.api_key()}, {"content-type", "application/json"}});
}

std::string expected_answer(const std::string& prompt, std::int64_t max_tokens = 48) {
    llm::completion_request r;
    r.messages.push_back({"user", prompt});
    r.max_tokens = max_tokens;
    return llm::demo_provider::answer_for(r);
}

// Collects one stream's events from a subscriber until end or error.
struct stream_log {
    std::vector<json::object> events;
    std::string text() const {
        std::string t;
        for (const auto& e : events)
            if (e.at("type").as_string() == "delta")
                t += e.at("data").as_string();
        return t;
    }
};

bool collect(ws_client& c, std::map<std::string, stream_log>& by_stream, std::size_t streams,
             std::chrono::milliseconds timeout = 20s) {
    std::size_t ended = 0;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (ended < streams && std::chrono::steady_clock::now() < end) {
        auto d = c.expect_type("data", 5s);
        if (!d)
            return false;
        auto ev = json::parse(d->at("event").as_string()).as_object();
        auto& log = by_stream[str(ev.at("streamId"))];
        log.events.push_back(ev);
        const auto type = str(ev.at("type"));
        if (type == "end" || type == "error")
            ++ended;
    }
    return ended == streams;
}

void expect_gapless(const stream_log& log) {
    for (std::size_t i = 0; i < log.events.size(); ++i)
        EXPECT_EQ(log.events[i].at("seq").as_int64(), static_cast<std::int64_t>(i));
}

TEST(ChatTest, StreamsTheDemoAnswerAsStartDeltasAndEnd) {
    server_process srv({"--demo-pace-ms", "2"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("all-chats", "BedrockChat/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    auto r = post_chat(srv, R"({"userId":"alice","prompt":"What is the capital of France?"})");
    ASSERT_EQ(r.status, 200u) << r.body;
    auto body = json::parse(r.body).as_object();
    EXPECT_EQ(str(body.at("channel")), "/BedrockChat/alice");
    const auto id = str(body.at("streamId"));
    std::map<std::string, stream_log> streams;
    ASSERT_TRUE(collect(c, streams, 1));
    const auto& log = streams[id];
    ASSERT_GE(log.events.size(), 3u);
    EXPECT_EQ(str(log.events.front().at("type")), "start");
    EXPECT_EQ(str(log.events.front().at("provider")), "demo");
    EXPECT_TRUE(log.events.front().contains("note"));
    EXPECT_EQ(str(log.events.back().at("type")), "end");
    EXPECT_EQ(str(log.events.back().at("stopReason")), "end_turn");
    EXPECT_TRUE(log.events.back().at("usage").as_object().contains("outputTokens"));
    expect_gapless(log);
    EXPECT_EQ(log.text(), expected_answer("What is the capital of France?"));

    auto status = http_request(srv.port(), http::verb::get, "/chat/" + id, "",
                               {{"x-api-key", srv.api_key()}});
    ASSERT_EQ(status.status, 200u);
    auto st = json::parse(status.body).as_object();
    EXPECT_EQ(str(st.at("status")), "completed");
    EXPECT_EQ(str(st.at("text")), log.text());
}

TEST(ChatTest, CoalescesDeltasWithoutLosingOrReorderingText) {
    server_process srv({"--demo-pace-ms", "1", "--chat-coalesce-ms", "30"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "BedrockChat/carol");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    auto r = post_chat(srv, R"({"userId":"carol","prompt":"coalesce me","maxTokens":200})");
    ASSERT_EQ(r.status, 200u) << r.body;
    std::map<std::string, stream_log> streams;
    ASSERT_TRUE(collect(c, streams, 1));
    const auto& log = streams.begin()->second;
    expect_gapless(log);
    EXPECT_EQ(log.text(), expected_answer("coalesce me", 200));
    // 200 chunks 1 ms apart in 30 ms windows: far fewer than 200 delta events.
    EXPECT_LT(log.events.size(), 120u);
}

TEST(ChatTest, WaitReturnsTheFullCompletion) {
    server_process srv({"--demo-pace-ms", "1"});
    auto r = post_chat(srv, R"({"userId":"dave","prompt":"hi","wait":true,"maxTokens":10})");
    ASSERT_EQ(r.status, 200u) << r.body;
    auto body = json::parse(r.body).as_object();
    EXPECT_EQ(str(body.at("text")), expected_answer("hi", 10));
    EXPECT_EQ(str(body.at("status")), "completed");
}

TEST(ChatTest, CancelEndsTheStreamWithCancelled) {
    server_process srv({"--demo-pace-ms", "20"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "BedrockChat/erin");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    auto r = post_chat(srv, R"({"userId":"erin","prompt":"a long answer","maxTokens":5000})");
    ASSERT_EQ(r.status, 200u);
    const auto id = str(json::parse(r.body).at("streamId"));
    ASSERT_TRUE(c.expect_type("data"));  // start
    ASSERT_TRUE(c.expect_type("data"));  // a delta
    auto cancel = http_request(srv.port(), http::verb::post, "/chat/" + id + "/cancel", "",
                               {{"x-api-key", srv.api_key()}});
    EXPECT_EQ(cancel.status, 202u) << cancel.body;
    std::map<std::string, stream_log> streams;
    ASSERT_TRUE(collect(c, streams, 1, 10s));
    const auto& last = streams[id].events.back();
    EXPECT_EQ(str(last.at("type")), "end");
    EXPECT_EQ(str(last.at("stopReason")), "cancelled");
    auto st = http_request(srv.port(), http::verb::get, "/chat/" + id, "",
                           {{"x-api-key", srv.api_key()}});
    EXPECT_EQ(str(json::parse(st.body).at("status")), "cancelled");
}

TEST(ChatTest, RefusesBadInputWithClearErrors) {
    server_process srv;
    const std::vector<std::pair<std::string, unsigned>> cases = {
        {"{nope", 400},
        {R"({"prompt":"x"})", 400},
        {R"({"userId":"a_b","prompt":"x"})", 400},
        {R"({"userId":"ok"})", 400},
        {R"({"userId":"ok","prompt":""})", 400},
        {R"({"userId":"ok","prompt":5})", 400},
        {R"({"userId":"ok","prompt":"x","provider":"nope"})", 400},
        {R"({"userId":"ok","prompt":"x","maxTokens":0})", 400},
        {R"({"userId":"ok","prompt":"x","temperature":9})", 400},
        {R"({"userId":"ok","messages":[{"role":"robot","content":"x"}]})", 400},
        {R"({"userId":"ok","prompt":")" + std::string(70 * 1024, 'x') + R"("})", 413},
    };
    for (const auto& [body, status] : cases) {
        SCOPED_TRACE(body.substr(0, 80));
        auto r = post_chat(srv, body);
        EXPECT_EQ(r.status, status) << r.body;
        EXPECT_FALSE(json::parse(r.body).at("message").as_string().empty());
    }
    auto unauth =
        http_request(srv.port(), http::verb::post, "/chat", R"({"userId":"ok","prompt":"x"})",
                     {{"x-api-key", "wrong"}, {"content-type", "application/json"}});
    EXPECT_EQ(unauth.status, 401u);
    auto missing = http_request(srv.port(), http::verb::get, "/chat/s-nothing", "",
                                {{"x-api-key", srv.api_key()}});
    EXPECT_EQ(missing.status, 404u);
}

TEST(ChatTest, LimitsStreamsPerUser) {
    server_process srv({"--demo-pace-ms", "50", "--chat-max-streams-per-user", "2"});
    for (int i = 0; i < 2; ++i)
        ASSERT_EQ(post_chat(srv, R"({"userId":"fay","prompt":"x","maxTokens":100})").status, 200u);
    auto third = post_chat(srv, R"({"userId":"fay","prompt":"x"})");
    EXPECT_EQ(third.status, 429u) << third.body;
    EXPECT_EQ(post_chat(srv, R"({"userId":"gus","prompt":"x"})").status, 200u);
}

TEST(ChatTest, TwoHundredConcurrentStreamsAllArriveComplete) {
    server_process srv({"--demo-pace-ms", "5", "--chat-max-streams-per-user", "1000"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("all", "BedrockChat/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    constexpr int n = 200;
    std::map<std::string, std::string> prompt_of;
    for (int i = 0; i < n; ++i) {
        const std::string user = "user" + std::to_string(i);
        const std::string prompt = "question number " + std::to_string(i);
        auto r = post_chat(
            srv, R"({"userId":")" + user + R"(","prompt":")" + prompt + R"(","maxTokens":20})");
        ASSERT_EQ(r.status, 200u) << r.body;
        prompt_of[str(json::parse(r.body).at("streamId"))] = prompt;
    }
    std::map<std::string, stream_log> streams;
    ASSERT_TRUE(collect(c, streams, n, 60s));
    ASSERT_EQ(streams.size(), static_cast<std::size_t>(n));
    for (const auto& [id, log] : streams) {
        SCOPED_TRACE(id);
        expect_gapless(log);
        EXPECT_EQ(str(log.events.back().at("type")), "end");
        EXPECT_EQ(log.text(), expected_answer(prompt_of[id], 20));
    }
}

}  // namespace
}  // namespace eventcast::testing

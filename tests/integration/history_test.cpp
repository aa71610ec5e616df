// History and resume on the real binary: positions on data frames, resume from a position with
// no gap and no duplicate while a publisher keeps publishing, wildcard resume, the refusals (too
// old, ahead, malformed), and a chat client that reconnects mid-answer.
#include "harness.hpp"
#include "history_helpers.hpp"
#include "llm/demo_provider.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

namespace eventcast::testing {
namespace {

TEST(HistoryTest, DataFramesCarryAPositionThatGrowsByOnePerEventInANamespace) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    c.subscribe("s", "default/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.publish("p1", "default/a", {"1", "2"});
    c.publish("p2", "default/b", {"3"});
    std::vector<std::string> positions;
    for (int i = 0; i < 3; ++i) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->event, std::to_string(i + 1));
        positions.push_back(d->position);
    }
    EXPECT_EQ(epoch_of(positions[0]).size(), 8u);
    EXPECT_EQ(epoch_of(positions[0]), epoch_of(positions[2]));
    EXPECT_EQ(seq_of(positions[0]), 1u);
    EXPECT_EQ(seq_of(positions[1]), 2u);
    EXPECT_EQ(seq_of(positions[2]), 3u) << "one sequence for every channel of the namespace";
    auto metrics = http_request(srv.port(), http::verb::get, "/metrics", "", {});
    EXPECT_NE(metrics.body.find("\neventcast_history_events 3\n"), std::string::npos)
        << metrics.body;
}

TEST(HistoryTest, ResumeGivesTheMissedEventsThenLiveOnesWithNoGapWhilePublishing) {
    server_process srv;
    ws_client first(srv.port(), srv.api_key());
    first.init();
    ASSERT_TRUE(first.expect_type("connection_ack"));
    first.subscribe("s", "default/room");
    ASSERT_TRUE(first.expect_type("subscribe_success"));
    constexpr int n = 30, k = 10, more = 300;
    publish_range(srv, "default/room", 0, n);
    std::vector<std::string> positions;
    for (int i = 0; i < n; ++i) {
        auto d = next_data(first);
        ASSERT_TRUE(d);
        positions.push_back(d->position);
    }

    // Another client keeps publishing while the resume happens.
    std::atomic<bool> publishing{true};
    std::thread publisher([&] {
        ws_client pub(srv.port(), srv.api_key());
        pub.init();
        pub.expect_type("connection_ack");
        for (int i = n; i < n + more; ++i) {
            pub.publish("p" + std::to_string(i), "default/room",
                        {R"({"n":)" + std::to_string(i) + "}"});
            pub.expect_type("publish_success");
        }
        publishing = false;
    });
    // Resume once the publisher is under way.
    ASSERT_TRUE(next_data(first));
    ws_client resumer(srv.port(), srv.api_key());
    resumer.init();
    ASSERT_TRUE(resumer.expect_type("connection_ack"));
    subscribe_resume(resumer, "r", "default/room", positions[k - 1]);
    ASSERT_TRUE(resumer.expect_type("subscribe_success"));
    std::uint64_t expected = k + 1;
    while (expected <= static_cast<std::uint64_t>(n + more)) {
        auto d = next_data(resumer);
        ASSERT_TRUE(d) << "stalled before seq " << expected;
        EXPECT_EQ(d->id, "r");
        ASSERT_EQ(seq_of(d->position), expected) << "gap or duplicate";
        EXPECT_EQ(d->event, R"({"n":)" + std::to_string(expected - 1) + "}");
        ++expected;
    }
    publisher.join();
    EXPECT_FALSE(publishing);
    EXPECT_FALSE(resumer.read(300ms)) << "nothing after the last event";
}

TEST(HistoryTest, WildcardResumeGivesOnlyTheMatchingChannels) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    c.subscribe("all", "default/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    const char* channels[] = {"default/a/x", "default/b", "default/a/y/z", "default/a"};
    for (int i = 0; i < 8; ++i)
        publish_range(srv, channels[i % 4], i, i + 1);
    std::vector<std::string> positions;
    for (int i = 0; i < 8; ++i) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        positions.push_back(d->position);
    }
    ws_client r(srv.port(), srv.api_key());
    subscribe_resume(r, "w", "default/a/*", positions[0]);
    ASSERT_TRUE(r.expect_type("subscribe_success"));
    // After event 0: the a/* events are 2 (a/y/z), 4 (a/x), 6 (a/y/z).
    for (int n : {2, 4, 6}) {
        auto d = next_data(r);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->event, R"({"n":)" + std::to_string(n) + "}");
        EXPECT_EQ(d->position, positions[static_cast<std::size_t>(n)]);
    }
    publish_range(srv, "default/a/q", 100, 101);
    auto live = next_data(r);
    ASSERT_TRUE(live);
    EXPECT_EQ(live->event, R"({"n":100})");
    EXPECT_EQ(seq_of(live->position), 9u);
}

TEST(HistoryTest, TooOldAheadAndMalformedPositionsGetClearErrorsAndTheConnectionStays) {
    server_process srv({"--history-count", "5"});
    ws_client c(srv.port(), srv.api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    c.subscribe("s", "default/room");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    publish_range(srv, "default/room", 0, 10);
    std::string last;
    for (int i = 0; i < 10; ++i) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        last = d->position;
    }
    const auto epoch = epoch_of(last);

    subscribe_resume(c, "old", "default/room", epoch + "-2");
    auto old = c.expect_type("subscribe_error");
    ASSERT_TRUE(old);
    EXPECT_EQ(str(old->at("id")), "old");
    EXPECT_EQ(error_type(*old), "ResumeWindowExceeded");
    const auto msg = str(old->at("errors").as_array()[0].at("message"));
    EXPECT_NE(msg.find("no longer retained"), std::string::npos) << msg;
    EXPECT_NE(msg.find("keeps 5 events per channel"), std::string::npos) << msg;

    subscribe_resume(c, "other-run", "default/room",
                     (epoch == "00000001" ? "00000002" : "00000001") + std::string("-3"));
    auto other = c.expect_type("subscribe_error");
    ASSERT_TRUE(other);
    EXPECT_EQ(error_type(*other), "ResumeWindowExceeded");

    subscribe_resume(c, "ahead", "default/room", epoch + "-11");
    auto ahead = c.expect_type("subscribe_error");
    ASSERT_TRUE(ahead);
    EXPECT_EQ(error_type(*ahead), "InvalidInputError");
    EXPECT_NE(str(ahead->at("errors").as_array()[0].at("message")).find("is ahead of the newest"),
              std::string::npos);

    subscribe_resume(c, "bad", "default/room", "last-one");
    auto bad = c.expect_type("subscribe_error");
    ASSERT_TRUE(bad);
    EXPECT_EQ(str(bad->at("id")), "bad");
    EXPECT_EQ(error_type(*bad), "InvalidInputError");
    EXPECT_NE(str(bad->at("errors").as_array()[0].at("message")).find("'resume.after'"),
              std::string::npos);

    // None of them subscribed anything; the connection and its subscription still work, and
    // the oldest retained position resumes fine.
    subscribe_resume(c, "ok", "default/room", epoch + "-5");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    for (int seq = 6; seq <= 10; ++seq) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->id, "ok");
        EXPECT_EQ(seq_of(d->position), static_cast<std::uint64_t>(seq));
    }
    publish_range(srv, "default/room", 10, 11);
    std::set<std::string> ids;
    for (int i = 0; i < 2; ++i) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        ids.insert(d->id);
    }
    EXPECT_EQ(ids, (std::set<std::string>{"s", "ok"}));
}

TEST(HistoryTest, ResumeFromTheNewestPositionWorksEvenWithHistoryOff) {
    server_process srv({"--history-count", "0"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "default/room");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    publish_range(srv, "default/room", 0, 3);
    std::string last;
    for (int i = 0; i < 3; ++i)
        last = next_data(c)->position;
    ws_client r(srv.port(), srv.api_key());
    subscribe_resume(r, "r", "default/room", last);
    ASSERT_TRUE(r.expect_type("subscribe_success")) << "nothing was missed: nothing to refuse";
    subscribe_resume(r, "r2", "default/room", epoch_of(last) + "-2");
    auto e = r.expect_type("subscribe_error");
    ASSERT_TRUE(e);
    EXPECT_EQ(error_type(*e), "ResumeWindowExceeded");
}

// ---- chat ---------------------------------------------------------------------------------------

http_result post_chat(const server_process& srv, const std::string& body) {
    return http_request(srv.port(), http::verb::post, "/chat", body,
                        {{"x-api-key", srv.api_key()}, {"content-type", "application/json"}});
}

TEST(HistoryTest, AChatClientThatReconnectsMidAnswerRecoversEveryDelta) {
    server_process srv({"--demo-pace-ms", "15", "--chat-coalesce-ms", "0"});
    std::optional<ws_client> c;
    c.emplace(srv.port(), srv.api_key());
    c->subscribe("chat", "BedrockChat/hana");
    ASSERT_TRUE(c->expect_type("subscribe_success"));
    const std::string body =
        R"({"userId":"hana","prompt":"tell me about resuming","maxTokens":60})";
    auto r = post_chat(srv, body);
    ASSERT_EQ(r.status, 200u) << r.body;
    const auto answer = json::parse(r.body).as_object();
    const auto stream_id = str(answer.at("streamId"));
    ASSERT_TRUE(answer.contains("resumeAfter")) << r.body;

    // Read the start and a few deltas, then lose the connection mid-answer.
    std::vector<json::object> events;
    std::string last_position;
    for (int i = 0; i < 5; ++i) {
        auto d = next_data(*c);
        ASSERT_TRUE(d);
        events.push_back(json::parse(d->event).as_object());
        last_position = d->position;
    }
    ASSERT_NE(str(events.back().at("type")), "end") << "the answer must still be running";
    c.reset();  // the connection is gone; the answer goes on

    ws_client again(srv.port(), srv.api_key());
    subscribe_resume(again, "chat2", "BedrockChat/hana", last_position);
    ASSERT_TRUE(again.expect_type("subscribe_success"));
    ASSERT_NO_FATAL_FAILURE(read_until_end(again, events));
    const std::string text = joined_deltas(events, stream_id);
    EXPECT_EQ(str(events.back().at("type")), "end");
    llm::completion_request req;
    req.messages.push_back({"user", "tell me about resuming"});
    req.max_tokens = 60;
    EXPECT_EQ(text, llm::demo_provider::answer_for(req));

    // GET /chat/<id> says where the stream starts: resuming after it replays the whole stream.
    auto st = http_request(srv.port(), http::verb::get, "/chat/" + stream_id, "",
                           {{"x-api-key", srv.api_key()}});
    ASSERT_EQ(st.status, 200u);
    const auto status = json::parse(st.body).as_object();
    EXPECT_EQ(str(status.at("resumeAfter")), str(answer.at("resumeAfter")));
    EXPECT_EQ(seq_of(str(status.at("startPosition"))), seq_of(str(status.at("resumeAfter"))) + 1);
    ws_client replay(srv.port(), srv.api_key());
    subscribe_resume(replay, "all", "BedrockChat/hana", str(status.at("resumeAfter")));
    ASSERT_TRUE(replay.expect_type("subscribe_success"));
    std::string replayed;
    for (std::size_t i = 0; i < events.size(); ++i) {
        auto d = next_data(replay);
        ASSERT_TRUE(d);
        auto ev = json::parse(d->event).as_object();
        EXPECT_EQ(ev.at("seq").as_int64(), static_cast<std::int64_t>(i));
        if (str(ev.at("type")) == "delta")
            replayed += str(ev.at("data"));
    }
    EXPECT_EQ(replayed, text);
}

}  // namespace
}  // namespace eventcast::testing

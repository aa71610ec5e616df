// History across nodes (cluster mode, JetStream): a real nats-server with JetStream in a
// temporary directory and two real eventcast nodes. Positions are the stream's sequence, the
// same on every node; a client that saw events on node A resumes on node B and gets exactly the
// missed ones, then live ones from either node, with no gap and no duplicate, while a publisher
// keeps publishing; a position older than the stream's first retained one is refused.
#include "harness.hpp"
#include "history_helpers.hpp"
#include "llm/demo_provider.hpp"
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <thread>

namespace eventcast::testing {
namespace {

std::string event_text(int n) {
    return R"({"n":)" + std::to_string(n) + "}";
}

class ClusterHistoryTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (nats_server_binary().empty())
            GTEST_SKIP() << "nats-server is not installed (apt-get install nats-server, or "
                            "scripts/bootstrap); cluster tests need a real one";
        nats_ = std::make_unique<nats_server_process>();
    }

    std::unique_ptr<server_process> node(std::vector<std::string> extra = {}) {
        return std::make_unique<server_process>(cluster_node_args(nats_->url(), std::move(extra)));
    }

    static std::unique_ptr<ws_client> subscriber(const server_process& n, const std::string& id,
                                                 const std::string& channel) {
        auto c = std::make_unique<ws_client>(n.port(), n.api_key());
        c->init();
        EXPECT_TRUE(c->expect_type("connection_ack"));
        c->subscribe(id, channel);
        EXPECT_TRUE(c->expect_type("subscribe_success"));
        return c;
    }

    std::unique_ptr<nats_server_process> nats_;
};

TEST_F(ClusterHistoryTest, PositionsAreTheSameOnEveryNodeAndAResumeOnAnotherNodeHasNoGap) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto on_a = subscriber(*a, "s", "default/room");
    auto on_b = subscriber(*b, "s", "default/room");

    constexpr int n = 20, k = 5, more = 200;
    publish_range(*a, "default/room", 0, n);
    std::vector<std::string> positions;
    for (int i = 0; i < n; ++i) {
        auto da = next_data(*on_a);
        auto db = next_data(*on_b);
        ASSERT_TRUE(da && db) << i;
        EXPECT_EQ(da->event, event_text(i));
        EXPECT_EQ(db->event, event_text(i));
        EXPECT_EQ(da->position, db->position) << "the same event has one position everywhere";
        positions.push_back(da->position);
    }
    EXPECT_EQ(epoch_of(positions[0]).size(), 8u);
    for (int i = 1; i < n; ++i)
        EXPECT_EQ(seq_of(positions[static_cast<std::size_t>(i)]),
                  seq_of(positions[static_cast<std::size_t>(i - 1)]) + 1);

    // Publishers on both nodes keep going while a client that saw k events on node A resumes
    // on node B.
    // A jthread: joined on every way out of the test, also when an ASSERT returns early.
    std::jthread publisher([&] {
        ws_client pa(a->port(), a->api_key()), pb(b->port(), b->api_key());
        pa.init();
        pb.init();
        pa.expect_type("connection_ack");
        pb.expect_type("connection_ack");
        for (int i = n; i < n + more; ++i) {
            auto& p = i % 2 ? pb : pa;
            p.publish("p" + std::to_string(i), "default/room", {event_text(i)});
            p.expect_type("publish_success");
        }
    });
    ASSERT_TRUE(next_data(*on_a));  // the publisher is under way
    ws_client resumer(b->port(), b->api_key());
    resumer.init();
    ASSERT_TRUE(resumer.expect_type("connection_ack"));
    subscribe_resume(resumer, "r", "default/room", positions[k - 1]);
    ASSERT_TRUE(resumer.expect_type("subscribe_success"));
    const auto first_seq = seq_of(positions[0]);
    std::uint64_t expected = seq_of(positions[k - 1]) + 1;
    std::map<std::string, int> seen;
    const auto last = first_seq + n + more - 1;
    while (expected <= last) {
        auto d = next_data(resumer);
        ASSERT_TRUE(d) << "stalled before seq " << expected;
        EXPECT_EQ(d->id, "r");
        ASSERT_EQ(seq_of(d->position), expected) << "gap or duplicate";
        EXPECT_EQ(epoch_of(d->position), epoch_of(positions[0]));
        ++seen[d->event];
        ++expected;
    }
    publisher.join();
    EXPECT_FALSE(resumer.read(300ms)) << "nothing after the last event";
    // Exactly the events k..n+more-1, each once (the two publishers interleave, so the order by
    // event number is not fixed; the order by position is, checked above).
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(n + more - k));
    for (int i = k; i < n + more; ++i)
        EXPECT_EQ(seen[event_text(i)], 1) << i;
}

TEST_F(ClusterHistoryTest, TooOldAheadAndForeignPositionsAreRefusedOnAnyNode) {
    auto a = node({"--history-count", "5"});
    auto b = node({"--history-count", "5"});
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto on_a = subscriber(*a, "s", "default/room");
    publish_range(*a, "default/room", 0, 10);
    std::vector<std::string> positions;
    for (int i = 0; i < 10; ++i) {
        auto d = next_data(*on_a);
        ASSERT_TRUE(d);
        positions.push_back(d->position);
    }
    const auto epoch = epoch_of(positions[0]);
    const auto last = seq_of(positions[9]);

    ws_client c(b->port(), b->api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    subscribe_resume(c, "old", "default/room", positions[1]);
    auto old = c.expect_type("subscribe_error");
    ASSERT_TRUE(old);
    EXPECT_EQ(error_type(*old), "ResumeWindowExceeded");
    EXPECT_NE(str(old->at("errors").as_array()[0].at("message")).find("no longer retained"),
              std::string::npos);

    subscribe_resume(c, "other", "default/room",
                     (epoch == "00000001" ? "00000002" : "00000001") + std::string("-3"));
    auto other = c.expect_type("subscribe_error");
    ASSERT_TRUE(other);
    EXPECT_EQ(error_type(*other), "ResumeWindowExceeded");

    subscribe_resume(c, "ahead", "default/room", epoch + "-" + std::to_string(last + 1));
    auto ahead = c.expect_type("subscribe_error");
    ASSERT_TRUE(ahead);
    EXPECT_EQ(error_type(*ahead), "InvalidInputError");

    // The oldest retained position minus one still resumes: the 5 retained events, then live.
    subscribe_resume(c, "ok", "default/room", positions[4]);
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    for (int i = 5; i < 10; ++i) {
        auto d = next_data(c);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->id, "ok");
        EXPECT_EQ(d->position, positions[static_cast<std::size_t>(i)]);
        EXPECT_EQ(d->event, event_text(i));
    }
    publish_range(*b, "default/room", 10, 11);
    auto live = next_data(c);
    ASSERT_TRUE(live);
    EXPECT_EQ(seq_of(live->position), last + 1);
    auto live_a = next_data(*on_a);
    ASSERT_TRUE(live_a);
    EXPECT_EQ(live_a->position, live->position);
    EXPECT_FALSE(c.read(300ms));
}

TEST_F(ClusterHistoryTest, WildcardResumeOnAnotherNodeGivesOnlyTheMatchingChannels) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto on_a = subscriber(*a, "all", "default/*");
    const std::vector<std::string> channels{"default/a/x", "default/b",    "default/a/y/z",
                                            "default/a",   "default/ab/c", "default/a/x"};
    for (std::size_t i = 0; i < channels.size(); ++i)
        publish_range(*a, channels[i], static_cast<int>(i), static_cast<int>(i) + 1);
    std::vector<std::string> positions;
    for (std::size_t i = 0; i < channels.size(); ++i) {
        auto d = next_data(*on_a);
        ASSERT_TRUE(d);
        positions.push_back(d->position);
    }
    // After the first event: of the rest, default/a/* matches a/y/z (2) and a/x (5) only.
    ws_client r(b->port(), b->api_key());
    r.init();
    ASSERT_TRUE(r.expect_type("connection_ack"));
    subscribe_resume(r, "w", "default/a/*", positions[0]);
    ASSERT_TRUE(r.expect_type("subscribe_success"));
    for (int i : {2, 5}) {
        auto d = next_data(r);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->event, event_text(i));
        EXPECT_EQ(d->position, positions[static_cast<std::size_t>(i)]);
    }
    EXPECT_FALSE(r.read(300ms));
    // Both through node B: one node keeps its publish order in the stream, two nodes need not.
    publish_range(*b, "default/b", 10, 11);
    publish_range(*b, "default/a/q", 11, 12);
    auto live = next_data(r);
    ASSERT_TRUE(live);
    EXPECT_EQ(live->event, event_text(11));
    EXPECT_EQ(seq_of(live->position), seq_of(positions.back()) + 2);
    EXPECT_FALSE(r.read(300ms));
}

TEST_F(ClusterHistoryTest, HistoryOutlivesANatsRestartAndResumesAcrossIt) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto on_a = subscriber(*a, "s", "default/room");
    publish_range(*a, "default/room", 0, 5);
    std::vector<std::string> positions;
    for (int i = 0; i < 5; ++i) {
        auto d = next_data(*on_a);
        ASSERT_TRUE(d);
        positions.push_back(d->position);
    }

    // The stream is on disk: after a crash and restart of nats-server it is the same stream
    // (same epoch), and the nodes go on numbering after it.
    nats_->kill_now();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) != 200 && readyz(b->port()) != 200; }, 10s));
    nats_->restart();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 15s));
    // The first publishes after the reconnect may still find the stream being checked and go
    // to local subscribers only (documented); retry until one goes through the stream.
    int n = 5;
    std::optional<data_frame> after_restart;
    ASSERT_TRUE(eventually(
        [&] {
            publish_range(*b, "default/room", n, n + 1);
            ++n;
            auto d = next_data(*on_a, 2s);
            if (d && seq_of(d->position) > seq_of(positions.back()))
                after_restart = d;
            return after_restart.has_value();
        },
        15s));
    EXPECT_EQ(epoch_of(after_restart->position), epoch_of(positions[0]));
    EXPECT_EQ(seq_of(after_restart->position), seq_of(positions.back()) + 1);

    ws_client r(b->port(), b->api_key());
    r.init();
    ASSERT_TRUE(r.expect_type("connection_ack"));
    subscribe_resume(r, "r", "default/room", positions[1]);
    ASSERT_TRUE(r.expect_type("subscribe_success"));
    for (int i = 2; i < 5; ++i) {
        auto d = next_data(r);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->position, positions[static_cast<std::size_t>(i)]);
    }
    auto d = next_data(r);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->position, after_restart->position);
    EXPECT_EQ(d->event, after_restart->event);
    EXPECT_FALSE(r.read(300ms));
}

TEST_F(ClusterHistoryTest, AChatClientThatMovesToAnotherNodeMidAnswerRecoversEveryDelta) {
    // The answer streams from node A; the client starts on A, loses its connection mid-answer
    // and comes back through node B (as a load balancer may send it), resuming from the last
    // position it saw. The joined deltas must equal the whole answer, seq gapless.
    auto a = node({"--demo-pace-ms", "15", "--chat-coalesce-ms", "0"});
    auto b = node({"--demo-pace-ms", "15", "--chat-coalesce-ms", "0"});
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto on_a = subscriber(*a, "chat", "BedrockChat/ivan");
    const std::string prompt = "tell me about moving between nodes";
    auto r = http_request(a->port(), http::verb::post, "/chat",
                          R"({"userId":"ivan","prompt":")" + prompt + R"(","maxTokens":60})",
                          {{"x-api-key", a->api_key()}, {"content-type", "application/json"}});
    ASSERT_EQ(r.status, 200u) << r.body;
    const auto stream_id = str(json::parse(r.body).at("streamId"));

    std::vector<json::object> events;
    std::string last_position;
    for (int i = 0; i < 5; ++i) {
        auto d = next_data(*on_a);
        ASSERT_TRUE(d);
        events.push_back(json::parse(d->event).as_object());
        last_position = d->position;
    }
    ASSERT_NE(str(events.back().at("type")), "end") << "the answer must still be running";
    on_a.reset();

    ws_client on_b(b->port(), b->api_key());
    on_b.init();
    ASSERT_TRUE(on_b.expect_type("connection_ack"));
    subscribe_resume(on_b, "chat2", "BedrockChat/ivan", last_position);
    ASSERT_TRUE(on_b.expect_type("subscribe_success"));
    ASSERT_NO_FATAL_FAILURE(read_until_end(on_b, events));
    const std::string text = joined_deltas(events, stream_id);
    EXPECT_EQ(str(events.back().at("type")), "end");
    llm::completion_request req;
    req.messages.push_back({"user", prompt});
    req.max_tokens = 60;
    EXPECT_EQ(text, llm::demo_provider::answer_for(req));
    // And node B answers for the stream it does not run (chat_directory).
    auto st = http_request(b->port(), http::verb::get, "/chat/" + stream_id, "",
                           {{"x-api-key", b->api_key()}});
    ASSERT_EQ(st.status, 200u) << st.body;
    EXPECT_EQ(str(json::parse(st.body).at("text")), text);
}

TEST_F(ClusterHistoryTest, PostChatAnswersResumeAfterAndAResumeFromItOnAnotherNodeGetsAll) {
    // Before, a node in cluster mode learned the start event's position only when the stream
    // republished it, so POST /chat answered without resumeAfter. Both answer forms: at once
    // (the default) and waiting for the whole answer ("wait":true). No subscriber on node A:
    // the position comes from JetStream's acknowledgement, not from the echo.
    auto a = node({"--demo-pace-ms", "5", "--chat-coalesce-ms", "0"});
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    for (const bool wait : {false, true}) {
        SCOPED_TRACE(wait ? "wait" : "at once");
        const std::string prompt = wait ? "and wait for it" : "resume me from anywhere";
        auto r = http_request(a->port(), http::verb::post, "/chat",
                              R"({"userId":"mila","prompt":")" + prompt +
                                  R"(","maxTokens":30,"wait":)" + (wait ? "true" : "false") + "}",
                              {{"x-api-key", a->api_key()}, {"content-type", "application/json"}});
        ASSERT_EQ(r.status, 200u) << r.body;
        const auto answer = json::parse(r.body).as_object();
        ASSERT_TRUE(answer.contains("resumeAfter")) << r.body;
        const auto stream_id = str(answer.at("streamId"));
        const auto after = str(answer.at("resumeAfter"));

        ws_client on_b(b->port(), b->api_key());
        on_b.init();
        ASSERT_TRUE(on_b.expect_type("connection_ack"));
        subscribe_resume(on_b, "r", "BedrockChat/mila", after);
        ASSERT_TRUE(on_b.expect_type("subscribe_success"));
        std::vector<json::object> events;
        ASSERT_NO_FATAL_FAILURE(read_until_end(on_b, events));
        EXPECT_EQ(str(events.front().at("type")), "start") << "resumeAfter is just before it";
        llm::completion_request req;
        req.messages.push_back({"user", prompt});
        req.max_tokens = 30;
        EXPECT_EQ(joined_deltas(events, stream_id), llm::demo_provider::answer_for(req));
        auto st = http_request(a->port(), http::verb::get, "/chat/" + stream_id, "",
                               {{"x-api-key", a->api_key()}});
        ASSERT_EQ(st.status, 200u) << st.body;
        const auto status = json::parse(st.body).as_object();
        EXPECT_EQ(str(status.at("resumeAfter")), after);
        EXPECT_EQ(seq_of(str(status.at("startPosition"))), seq_of(after) + 1);
    }
}

}  // namespace
}  // namespace eventcast::testing

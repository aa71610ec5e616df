// Cluster mode end to end: a real nats-server (JetStream on, temporary store) and two or three
// real eventcast nodes on 127.0.0.1. Cross-node delivery over WebSocket and HTTP publish,
// wildcards across nodes, exact counts (no duplicates), per-publisher order, and a nats-server
// killed mid-stream and restarted on the same port. Skips only when nats-server is missing.
#include "harness.hpp"
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace eventcast::testing {
namespace {

class ClusterTest : public ::testing::Test {
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

    static std::string metrics(const server_process& n) {
        return http_request(n.port(), http::verb::get, "/metrics", "", {}).body;
    }

    // The value of an unlabelled metric line, or -1.
    static long metric(const server_process& n, const std::string& name) {
        return metric_value(n.port(), name);
    }

    static std::unique_ptr<ws_client> subscriber(
        const server_process& n, const std::vector<std::pair<std::string, std::string>>& subs) {
        auto c = std::make_unique<ws_client>(n.port(), n.api_key());
        c->init();
        EXPECT_TRUE(c->expect_type("connection_ack"));
        for (const auto& [id, channel] : subs) {
            c->subscribe(id, channel);
            EXPECT_TRUE(c->expect_type("subscribe_success")) << channel;
        }
        return c;
    }

    static http_result http_publish(const server_process& n, const std::string& channel,
                                    const std::vector<std::string>& events) {
        json::object o;
        o["channel"] = channel;
        json::array arr;
        for (const auto& e : events)
            arr.emplace_back(e);
        o["events"] = std::move(arr);
        return http_request(n.port(), http::verb::post, "/event", json::serialize(o),
                            {{"x-api-key", n.api_key()}, {"content-type", "application/json"}});
    }

    // Every data frame until `until` (an event text) arrives or the timeout passes, as
    // (subscription id, event) in arrival order. Other frame types are ignored.
    static std::vector<std::pair<std::string, std::string>> collect(
        ws_client& c, const std::string& until, std::chrono::milliseconds timeout = 10s) {
        std::vector<std::pair<std::string, std::string>> out;
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            auto f = c.read_json(200ms);
            if (!f)
                continue;
            if (f->at("type").as_string() != "data")
                continue;
            out.emplace_back(std::string(f->at("id").as_string()),
                             std::string(f->at("event").as_string()));
            if (out.back().second == until)
                break;
        }
        return out;
    }

    // Data frames that arrive within `quiet` (nothing at all expected).
    static std::size_t stray_frames(ws_client& c, std::chrono::milliseconds quiet = 300ms) {
        std::size_t n = 0;
        const auto end = std::chrono::steady_clock::now() + quiet;
        while (std::chrono::steady_clock::now() < end)
            if (auto f = c.read_json(50ms); f && f->at("type").as_string() == "data")
                ++n;
        return n;
    }

    std::unique_ptr<nats_server_process> nats_;
};

TEST_F(ClusterTest, SubscriberOnOneNodeGetsWebSocketAndHttpPublishesFromAnother) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto sub = subscriber(*b, {{"s1", "/default/room"}});

    ws_client pub(a->port(), a->api_key());
    pub.init();
    ASSERT_TRUE(pub.expect_type("connection_ack"));
    pub.publish("p1", "/default/room", {R"({"via":"ws"})"});
    ASSERT_TRUE(pub.expect_type("publish_success"));
    ASSERT_EQ(http_publish(*a, "/default/room", {R"({"via":"http"})"}).status, 200u);

    const auto got = collect(*sub, R"({"via":"http"})");
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"s1", R"({"via":"ws"})"}));
    EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"s1", R"({"via":"http"})"}));
    EXPECT_GE(metric(*a, "eventcast_cluster_messages_out_total"), 2);
    EXPECT_GE(metric(*b, "eventcast_cluster_messages_in_total"), 2);
    EXPECT_EQ(metric(*b, "eventcast_cluster_connected"), 1);
}

TEST_F(ClusterTest, WildcardOnOneNodeMatchesTheSameChannelsAsOnASingleNode) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto sub = subscriber(*b, {{"w", "/default/a/*"}});
    // Published on A: below the prefix at two depths (match), the prefix itself, a sibling and
    // another namespace's look-alike (no match), then an end marker that matches.
    for (const auto* ch : {"/default/a/b", "/default/a", "/default/b/x", "/default/a/b/c/d",
                           "/default/ab/x", "/default/a/end"})
        ASSERT_EQ(http_publish(*a, ch, {"\"" + std::string(ch) + "\""}).status, 200u) << ch;
    const auto got = collect(*sub, "\"/default/a/end\"");
    std::vector<std::string> events;
    for (const auto& [id, e] : got)
        events.push_back(e);
    EXPECT_EQ(events, (std::vector<std::string>{"\"/default/a/b\"", "\"/default/a/b/c/d\"",
                                                "\"/default/a/end\""}));
    EXPECT_EQ(stray_frames(*sub), 0u);
}

TEST_F(ClusterTest, EveryEventArrivesExactlyOncePerSubscriptionOnEveryNode) {
    auto a = node();
    auto b = node();
    auto c = node();
    ASSERT_TRUE(eventually(
        [&] {
            return readyz(a->port()) == 200 && readyz(b->port()) == 200 && readyz(c->port()) == 200;
        },
        10s));
    // Overlapping subscriptions on one connection (each gets its own frame, spec §7.3), and
    // the same channel on two connections of one node: the node's single NATS interest in the
    // namespace must not turn into double delivery.
    auto on_a = subscriber(*a, {{"x", "/default/x"}});
    auto on_b = subscriber(*b, {{"wild", "/default/*"}, {"exact", "/default/x"}});
    auto on_b2 = subscriber(*b, {{"x2", "/default/x"}});
    auto on_c = subscriber(*c, {{"deep", "/default/x/*"}, {"x", "/default/x"}});

    constexpr int n = 40;
    ws_client pub_a(a->port(), a->api_key());
    pub_a.init();
    ASSERT_TRUE(pub_a.expect_type("connection_ack"));
    for (int i = 0; i < n; ++i)
        pub_a.publish("p" + std::to_string(i), "/default/x", {std::to_string(i)});
    for (int i = 0; i < n; ++i)
        ASSERT_TRUE(pub_a.expect_type("publish_success"));
    // The end marker from the same node: its NATS connection keeps the order of what it sends.
    // From another node it could overtake A's events still in A's write buffer (publish_success
    // means accepted, not yet on NATS; docs/CLUSTER.md, ordering across publishers).
    ASSERT_EQ(http_publish(*a, "/default/x", {"\"end\""}).status, 200u);

    auto count = [&](ws_client& cl, std::size_t subs_matching) -> std::size_t {
        const auto got = collect(cl, "\"end\"");
        std::map<std::string, std::vector<std::string>> by_sub;
        for (const auto& [id, e] : got)
            by_sub[id].push_back(e);
        // the end marker may arrive on any of the subscriptions first; read the rest
        std::size_t expected_total = (n + 1) * subs_matching;
        const auto end = std::chrono::steady_clock::now() + 5s;
        std::size_t total = got.size();
        while (total < expected_total && std::chrono::steady_clock::now() < end) {
            auto more = collect(cl, "\"end\"", 1s);
            for (const auto& [id, e] : more)
                by_sub[id].push_back(e);
            total += more.size();
        }
        EXPECT_EQ(total, expected_total);
        EXPECT_EQ(stray_frames(cl), 0u) << "duplicates after the end marker";
        for (const auto& [id, events] : by_sub) {
            EXPECT_EQ(events.size(), std::size_t(n + 1)) << "subscription " << id;
            for (int i = 0; i < n && i < int(events.size()); ++i)
                EXPECT_EQ(events[i], std::to_string(i)) << "subscription " << id;
        }
        return by_sub.size();
    };
    EXPECT_EQ(count(*on_a, 1), 1u);
    EXPECT_EQ(count(*on_b, 2), 2u);
    EXPECT_EQ(count(*on_b2, 1), 1u);
    EXPECT_EQ(count(*on_c, 1), 1u);  // /default/x/* does not match /default/x
}

TEST_F(ClusterTest, EachNodesPublishesKeepTheirOrderOnEveryNode) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto sub_a = subscriber(*a, {{"s", "/default/order"}});
    auto sub_b = subscriber(*b, {{"s", "/default/order"}});
    constexpr int n = 100;
    std::thread t1([&] {
        ws_client p(a->port(), a->api_key());
        p.init();
        for (int i = 0; i < n; ++i)
            p.publish("a" + std::to_string(i), "/default/order",
                      {"\"a" + std::to_string(i) + "\""});
        for (int i = 0; i < n; ++i)
            p.expect_type("publish_success");
    });
    std::thread t2([&] {
        for (int i = 0; i < n; ++i)
            http_publish(*b, "/default/order", {"\"b" + std::to_string(i) + "\""});
    });
    t1.join();
    t2.join();
    for (auto* s : {sub_a.get(), sub_b.get()}) {
        std::vector<std::string> events;
        const auto end = std::chrono::steady_clock::now() + 10s;
        while (events.size() < 2 * n && std::chrono::steady_clock::now() < end)
            for (const auto& [id, e] : collect(*s, "", 500ms))
                events.push_back(e);
        ASSERT_EQ(events.size(), std::size_t(2 * n));
        int next_a = 0, next_b = 0;
        for (const auto& e : events) {
            if (e[1] == 'a')
                EXPECT_EQ(e, "\"a" + std::to_string(next_a++) + "\"");
            else
                EXPECT_EQ(e, "\"b" + std::to_string(next_b++) + "\"");
        }
        EXPECT_EQ(next_a, n);
        EXPECT_EQ(next_b, n);
    }
}

// Publishes `tag` on `from` until `sub` gets it (resubscription after a reconnect lands
// asynchronously), then returns true; false if it never arrives.
bool delivered_eventually(const server_process& from, ws_client& sub, const std::string& tag) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        const auto ev = "\"" + tag + "-" + std::to_string(attempt) + "\"";
        json::object o{{"channel", "/default/live"}, {"events", json::array{ev}}};
        http_request(from.port(), http::verb::post, "/event", json::serialize(o),
                     {{"x-api-key", from.api_key()}, {"content-type", "application/json"}});
        const auto end = std::chrono::steady_clock::now() + 200ms;
        while (std::chrono::steady_clock::now() < end)
            if (auto f = sub.read_json(50ms);
                f && f->at("type").as_string() == "data" &&
                f->at("event").as_string().find(tag) != std::string::npos)
                return true;
    }
    return false;
}

TEST_F(ClusterTest, NodesReportANatsOutageServeLocallyAndRecoverAfterRestart) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    auto sub_a = subscriber(*a, {{"s", "/default/live"}});
    auto sub_b = subscriber(*b, {{"s", "/default/live"}});

    // Mid-stream: a publisher on A keeps going while nats-server dies.
    for (int i = 0; i < 20; ++i)
        ASSERT_EQ(
            http_publish(*a, "/default/live", {"\"before-" + std::to_string(i) + "\""}).status,
            200u);
    ASSERT_FALSE(collect(*sub_b, "\"before-19\"").empty());
    nats_->kill_now();

    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 503 && readyz(b->port()) == 503; }, 10s));
    const auto down = http_request(a->port(), http::verb::get, "/readyz", "", {});
    EXPECT_NE(down.body.find("cluster-disconnected"), std::string::npos) << down.body;
    EXPECT_EQ(metric(*a, "eventcast_cluster_connected"), 0);
    EXPECT_EQ(http_request(a->port(), http::verb::get, "/healthz", "", {}).status, 200u);

    // Local clients are still served: a publish on A reaches A's subscriber, not B's.
    ASSERT_EQ(http_publish(*a, "/default/live", {"\"during\""}).status, 200u);
    const auto local = collect(*sub_a, "\"during\"");
    ASSERT_FALSE(local.empty());
    EXPECT_EQ(local.back().second, "\"during\"");
    EXPECT_GE(metric(*a, "eventcast_cluster_local_only_total"), 1);

    nats_->restart();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 15s));
    EXPECT_GE(metric(*a, "eventcast_cluster_reconnects_total"), 1);
    EXPECT_GE(metric(*b, "eventcast_cluster_disconnects_total"), 1);
    EXPECT_EQ(metric(*b, "eventcast_cluster_connected"), 1);
    // B got nothing of the outage, then delivery across nodes resumes both ways.
    ASSERT_TRUE(delivered_eventually(*a, *sub_b, "after-a"));
    ASSERT_TRUE(delivered_eventually(*b, *sub_a, "after-b"));
    // And once resumed, a burst arrives complete and in order.
    for (int i = 0; i < 20; ++i)
        ASSERT_EQ(http_publish(*a, "/default/live", {"\"burst-" + std::to_string(i) + "\""}).status,
                  200u);
    std::vector<std::string> burst;
    for (const auto& [id, e] : collect(*sub_b, "\"burst-19\""))
        if (e.find("burst-") != std::string::npos)
            burst.push_back(e);
    ASSERT_EQ(burst.size(), 20u);
    for (int i = 0; i < 20; ++i)
        EXPECT_EQ(burst[i], "\"burst-" + std::to_string(i) + "\"");
}

TEST_F(ClusterTest, NodeStartedWithoutNatsServesLocallyAndJoinsWhenNatsComesUp) {
    nats_->kill_now();
    auto a = node();
    auto b = node();
    EXPECT_EQ(readyz(a->port()), 503u);
    const auto body = http_request(a->port(), http::verb::get, "/readyz", "", {}).body;
    EXPECT_NE(body.find(R"("cluster":"connecting")"), std::string::npos) << body;
    // Subscriptions made before the first connection are sent when it comes.
    auto sub_b = subscriber(*b, {{"s", "/default/live"}});
    nats_->restart();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 15s));
    ASSERT_TRUE(delivered_eventually(*a, *sub_b, "joined"));
}

TEST_F(ClusterTest, ChatStatusAndCancelWorkOnANodeThatDidNotStartTheStream) {
    // A slow demo answer, so the stream is still running when B is asked about it.
    auto a = node({"--demo-pace-ms", "50"});
    auto b = node({"--demo-pace-ms", "50"});
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    const auto started =
        http_request(a->port(), http::verb::post, "/chat",
                     R"({"userId":"carol","prompt":"tell me a long story"})",
                     {{"x-api-key", a->api_key()}, {"content-type", "application/json"}});
    ASSERT_EQ(started.status, 200u) << started.body;
    const auto id = std::string(json::parse(started.body).at("streamId").as_string());

    auto on_b =
        http_request(b->port(), http::verb::get, "/chat/" + id, "", {{"x-api-key", b->api_key()}});
    ASSERT_EQ(on_b.status, 200u) << on_b.body;
    const auto status = json::parse(on_b.body).as_object();
    EXPECT_EQ(status.at("streamId").as_string(), id);
    EXPECT_EQ(status.at("channel").as_string(), "/BedrockChat/carol");

    auto cancelled = http_request(b->port(), http::verb::post, "/chat/" + id + "/cancel", "",
                                  {{"x-api-key", b->api_key()}});
    EXPECT_EQ(cancelled.status, 202u) << cancelled.body;
    ASSERT_TRUE(eventually(
        [&] {
            const auto s = http_request(a->port(), http::verb::get, "/chat/" + id, "",
                                        {{"x-api-key", a->api_key()}});
            return s.body.find("cancel") != std::string::npos;
        },
        5s));

    // A stream no node has: 404, after the other nodes stayed silent.
    auto unknown = http_request(b->port(), http::verb::get, "/chat/s-0000000000000000", "",
                                {{"x-api-key", b->api_key()}});
    EXPECT_EQ(unknown.status, 404u) << unknown.body;
    auto bad = http_request(b->port(), http::verb::get, "/chat/not.a.token", "",
                            {{"x-api-key", b->api_key()}});
    EXPECT_EQ(bad.status, 404u) << bad.body;
}

TEST_F(ClusterTest, RefusesABadClusterUrlAtStartUp) {
    EXPECT_THROW(server_process({"--cluster", "http://127.0.0.1:4222"}), std::runtime_error);
}

}  // namespace
}  // namespace eventcast::testing

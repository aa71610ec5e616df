// Cluster mode and nats-server's max_payload (issue #18, item 4): a publish larger than one NATS
// message goes out as several, in order, and arrives on the other node complete, in order and
// once; an event that alone does not fit is refused to its publisher, never acknowledged and
// lost. Both paths: a namespace without history (plain NATS subjects) and one with history
// (JetStream, one message per event, positions and resume).
#include "harness.hpp"
#include "history_helpers.hpp"
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace eventcast::testing {
namespace {

// An event of exactly `bytes` bytes of JSON text: {"i":<i>,"pad":"xxx..."}.
std::string padded_event(int i, std::size_t bytes) {
    std::string head = R"({"i":)" + std::to_string(i) + R"(,"pad":")";
    const std::string tail = R"("})";
    return head + std::string(bytes - head.size() - tail.size(), 'x') + tail;
}

std::vector<std::string> padded_events(int n, std::size_t bytes) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i)
        out.push_back(padded_event(i, bytes));
    return out;
}

class ClusterPayloadTest : public ::testing::Test {
protected:
    void start_nats(std::string config = {}) {
        if (nats_server_binary().empty())
            GTEST_SKIP() << "nats-server is not installed (apt-get install nats-server, or "
                            "scripts/bootstrap); cluster tests need a real one";
        nats_ = std::make_unique<nats_server_process>(std::move(config));
    }

    // "default" keeps history (JetStream); "plain" has none (plain NATS subjects).
    std::unique_ptr<server_process> node() {
        return std::make_unique<server_process>(
            cluster_node_args(nats_->url(), {"--namespace", "default", "--namespace", "plain",
                                             "--namespace-history", "plain:0:1m"}));
    }

    static long metric(const server_process& n, const std::string& name) {
        return metric_value(n.port(), name);
    }

    static std::unique_ptr<ws_client> subscriber(const server_process& n,
                                                 const std::string& channel) {
        auto c = std::make_unique<ws_client>(n.port(), n.api_key());
        c->init();
        EXPECT_TRUE(c->expect_type("connection_ack"));
        c->subscribe("s", channel);
        EXPECT_TRUE(c->expect_type("subscribe_success")) << channel;
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

    // Expects exactly `events`, in order, then nothing more for a moment.
    static void expect_exactly(ws_client& c, const std::vector<std::string>& events,
                               const std::string& where, std::vector<std::string>* positions) {
        for (std::size_t i = 0; i < events.size(); ++i) {
            auto d = next_data(c, 10s);
            ASSERT_TRUE(d) << where << ": event " << i << " of " << events.size() << " missing";
            ASSERT_EQ(d->event.size(), events[i].size()) << where << ": event " << i;
            ASSERT_EQ(d->event, events[i]) << where << ": event " << i << " out of order";
            if (positions)
                positions->push_back(d->position);
        }
        EXPECT_FALSE(c.expect_type("data", 300ms)) << where << ": a duplicate or stray event";
    }

    std::unique_ptr<nats_server_process> nats_;
};

// Five events of 240 KB (the AWS and eventcast limit per event): 1.2 MB, over nats-server's
// default max_payload of 1 MB.
TEST_F(ClusterPayloadTest, FiveEventsOf240KbCrossNodesCompleteAndInOrderOnBothPaths) {
    start_nats();
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    const auto batch = padded_events(5, 240 * 1024);
    for (const std::string ns : {"plain", "default"}) {
        SCOPED_TRACE(ns);
        const auto channel = ns + "/big";
        auto on_b = subscriber(*b, channel);
        auto on_a = subscriber(*a, channel);  // the publishing node's own, through the echo
        ws_client pub(a->port(), a->api_key());
        pub.init();
        ASSERT_TRUE(pub.expect_type("connection_ack"));
        pub.publish("p", channel, batch);
        auto ack = pub.expect_type("publish_success", 10s);
        ASSERT_TRUE(ack) << "over WebSocket";
        EXPECT_EQ(ack->at("successful").as_array().size(), 5u);
        std::vector<std::string> positions;
        expect_exactly(*on_b, batch, "WebSocket publish, node B", &positions);
        expect_exactly(*on_a, batch, "WebSocket publish, node A", nullptr);

        const auto r = http_publish(*a, channel, batch);
        ASSERT_EQ(r.status, 200u) << r.body.substr(0, 300);
        expect_exactly(*on_b, batch, "HTTP publish, node B", &positions);
        expect_exactly(*on_a, batch, "HTTP publish, node A", nullptr);

        if (ns == "default") {
            // JetStream history: one stream message (so one position) per event, and a resume
            // on the other node from before the first gets all ten back.
            ASSERT_EQ(positions.size(), 10u);
            for (std::size_t i = 1; i < positions.size(); ++i)
                EXPECT_EQ(seq_of(positions[i]), seq_of(positions[i - 1]) + 1);
            ws_client resumer(b->port(), b->api_key());
            resumer.init();
            ASSERT_TRUE(resumer.expect_type("connection_ack"));
            subscribe_resume(
                resumer, "r", channel,
                epoch_of(positions[0]) + "-" + std::to_string(seq_of(positions[0]) - 1));
            ASSERT_TRUE(resumer.expect_type("subscribe_success", 10s));
            std::vector<std::string> twice = batch;
            twice.insert(twice.end(), batch.begin(), batch.end());
            expect_exactly(resumer, twice, "resume on node B", nullptr);
        }
    }
    EXPECT_EQ(metric(*a, "eventcast_cluster_split_publishes_total"), 2)
        << "the plain namespace's two publishes went out as several messages each";
    EXPECT_EQ(metric(*a, "eventcast_cluster_publish_failures_total"), 0);
    EXPECT_EQ(metric(*a, "eventcast_cluster_local_only_total"), 0);
    EXPECT_EQ(metric(*a, "eventcast_cluster_refused_total"), 0);
}

// With max_payload at 64 KB an event of 100 KB (within eventcast's 240 KB) fits in no NATS
// message: refused to the publisher, over both transports and on both paths, and delivered
// nowhere. Smaller events still go, three of 30 KB split over two messages.
TEST_F(ClusterPayloadTest, AnEventOverMaxPayloadIsRefusedToItsPublisherAndDeliveredNowhere) {
    start_nats("max_payload: 65536");
    auto a = node();
    auto b = node();
    ASSERT_TRUE(
        eventually([&] { return readyz(a->port()) == 200 && readyz(b->port()) == 200; }, 10s));
    const auto small = padded_events(3, 30 * 1024);
    const std::vector<std::string> big{padded_event(0, 1000), padded_event(1, 100 * 1024)};
    for (const std::string ns : {"plain", "default"}) {
        SCOPED_TRACE(ns);
        const auto channel = ns + "/limit";
        auto on_b = subscriber(*b, channel);
        auto on_a = subscriber(*a, channel);
        ws_client pub(a->port(), a->api_key());
        pub.init();
        ASSERT_TRUE(pub.expect_type("connection_ack"));

        pub.publish("big", channel, big);
        auto err = pub.expect_type("publish_error", 10s);
        ASSERT_TRUE(err) << "a refusal, not publish_success";
        EXPECT_EQ(str(err->at("id")), "big");
        const auto& e = err->at("errors").as_array().at(0).as_object();
        EXPECT_EQ(str(e.at("errorType")), "InvalidInputError");
        const auto message = str(e.at("message"));
        EXPECT_NE(message.find("event 1 is "), std::string::npos) << message;
        EXPECT_NE(message.find("max_payload 65536"), std::string::npos) << message;

        const auto r = http_publish(*a, channel, big);
        EXPECT_EQ(r.status, 400u) << r.body;
        EXPECT_NE(r.body.find("max_payload 65536"), std::string::npos) << r.body;

        // Nothing of either refused publish arrives anywhere; then the small batch does.
        pub.publish("small", channel, small);
        ASSERT_TRUE(pub.expect_type("publish_success", 10s));
        expect_exactly(*on_b, small, "node B", nullptr);
        expect_exactly(*on_a, small, "node A", nullptr);

        // The largest event the bridge lets through (max_payload less 512 bytes and twice the
        // subject for headers, less the batch layout's 9 bytes; the padded event's escaped
        // body is 8 bytes longer than its text) still fits once JetStream's RePublish has
        // added its headers to the stored copy; one byte more is refused.
        const auto subject = "eventcast." + ns + ".limit";
        const auto largest = 65536 - 512 - 2 * subject.size() - 9 - 8;
        pub.publish("over", channel, {padded_event(7, largest + 1)});
        ASSERT_TRUE(pub.expect_type("publish_error", 10s)) << "one byte over";
        pub.publish("edge", channel, {padded_event(7, largest)});
        ASSERT_TRUE(pub.expect_type("publish_success", 10s));
        expect_exactly(*on_b, {padded_event(7, largest)}, "the largest, node B", nullptr);
        expect_exactly(*on_a, {padded_event(7, largest)}, "the largest, node A", nullptr);
    }
    EXPECT_EQ(metric(*a, "eventcast_cluster_refused_total"), 6);
    EXPECT_EQ(metric(*a, "eventcast_cluster_split_publishes_total"), 1);
    EXPECT_EQ(metric(*a, "eventcast_cluster_publish_failures_total"), 0);
    EXPECT_EQ(metric(*a, "eventcast_cluster_local_only_total"), 0);
}

}  // namespace
}  // namespace eventcast::testing

// Namespace handlers in cluster mode (issue 16, item 7): onPublish runs once, on the node that
// accepted the publish, before NATS; the other nodes deliver what it returned. onSubscribe runs
// on the subscriber's node. A real nats-server and two eventcast nodes on 127.0.0.1; skips only
// when nats-server is missing.
#include "harness.hpp"
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace eventcast::testing {
namespace {

using namespace std::chrono_literals;

std::string data(const std::string& name) {
    return std::string(EVENTCAST_TEST_DATA) + "/handlers/" + name;
}

class ClusterHandlersTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (nats_server_binary().empty())
            GTEST_SKIP() << "nats-server is not installed (apt-get install nats-server, or "
                            "scripts/bootstrap); cluster tests need a real one";
        nats_ = std::make_unique<nats_server_process>();
    }
    std::unique_ptr<server_process> node() {
        return std::make_unique<server_process>(
            std::vector<std::string>{"--cluster", nats_->url(), "--namespace", "hops",
                                     "--namespace-code", "hops:" + data("count_hops.js")});
    }
    static long invocations(const server_process& n) {
        return metric_value(n.port(), "eventcast_handler_invocations_total");
    }
    std::unique_ptr<nats_server_process> nats_;
};

TEST_F(ClusterHandlersTest, OnPublishRunsOnceOnTheAcceptingNodeAndOnSubscribeOnTheSubscribers) {
    auto a = node();
    auto b = node();
    ASSERT_TRUE(eventually(
        [&] {
            return http_request(a->port(), http::verb::get, "/readyz", "", {}).status == 200 &&
                   http_request(b->port(), http::verb::get, "/readyz", "", {}).status == 200;
        },
        10s));
    ws_client on_b(b->port(), b->api_key());
    on_b.subscribe("s", "/hops/*");
    ASSERT_TRUE(on_b.expect_type("subscribe_success"));
    ws_client on_a(a->port(), a->api_key());
    on_a.subscribe("s", "/hops/*");
    ASSERT_TRUE(on_a.expect_type("subscribe_success"));
    const long a_before = invocations(*a), b_before = invocations(*b);

    // Cluster interest propagates asynchronously: publish until the remote subscriber sees one.
    ws_client pub(a->port(), a->api_key());
    std::optional<json::object> remote;
    for (int i = 0; i < 20 && !remote; ++i) {
        pub.publish("p" + std::to_string(i), "/hops/room", {R"({"n":)" + std::to_string(i) + "}"});
        ASSERT_TRUE(pub.expect_type("publish_success"));
        remote = on_b.expect_type("data", 500ms);
    }
    ASSERT_TRUE(remote) << "node B never received a publish from node A";
    auto event = json::parse(std::string(remote->at("event").as_string()));
    EXPECT_EQ(event.at("hops"), 1) << "onPublish ran on more than one node";
    auto local = on_a.expect_type("data", 2s);
    ASSERT_TRUE(local);
    EXPECT_EQ(json::parse(std::string(local->at("event").as_string())).at("hops"), 1);
    // B ran no publish handler; A ran one per publish.
    EXPECT_EQ(invocations(*b), b_before);
    EXPECT_GE(invocations(*a), a_before + 1);

    // onSubscribe runs where the subscriber is: B refuses with the handler's message.
    ws_client refused(b->port(), b->api_key());
    const long b_subs = invocations(*b);
    refused.subscribe("c", "/hops/closed");
    auto error = refused.expect_type("subscribe_error");
    ASSERT_TRUE(error);
    EXPECT_EQ(std::string(error->at("errors").at(0).at("message").as_string()),
              "closed on this node");
    EXPECT_EQ(invocations(*b), b_subs + 1);
}

}  // namespace
}  // namespace eventcast::testing

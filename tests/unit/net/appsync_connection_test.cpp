// Tests src/net/appsync_connection.cpp: the AppSync protocol of one connection without a socket.
// A recording host stands in for net/ws_session; the event_api, authorizer and broker are real,
// so every answer is the one a client would get. Everything runs on one io_context thread, as
// on a connection's strand.
#include "net/appsync_connection.hpp"

#include "aws/transport.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace eventcast::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

class recording_host : public connection_host,
                       public pubsub::subscriber,
                       public std::enable_shared_from_this<recording_host> {
public:
    explicit recording_host(asio::io_context& ioc) : ioc_(ioc) {}

    void send_text(std::string text) override { texts.push_back(std::move(text)); }
    bool send_data(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch,
                   std::uint32_t index) override {
        if (closing_)
            return false;
        data.push_back(*prefix + batch->bodies[index]);
        return data.size() < refuse_data_after;
    }
    void close_after_sending(std::uint16_t code, const char* reason) override {
        closing_ = true;
        close_code = code;
        close_reason = reason;
    }
    void resume_reading() override { ++resumes; }
    bool closing() const override { return closing_; }
    std::weak_ptr<pubsub::subscriber> subscriber() override { return weak_from_this(); }
    std::shared_ptr<void> keep_alive() override { return shared_from_this(); }

    // pubsub::subscriber: onto the connection's thread, as ws_session does.
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) override {
        asio::post(ioc_, [this, prefix, batch] { conn->deliver(prefix, batch); });
    }

    asio::io_context& ioc_;
    appsync_connection* conn = nullptr;
    std::vector<std::string> texts;
    std::vector<std::string> data;
    std::size_t refuse_data_after = static_cast<std::size_t>(-1);
    bool closing_ = false;
    std::uint16_t close_code = 0;
    std::string close_reason;
    int resumes = 0;
};

core::config make_config() {
    core::config cfg;
    cfg.api_keys = {{"good-key", std::nullopt}};
    cfg.namespaces = {"default"};
    cfg.lim.max_subscriptions = 2;
    cfg.lim.connection_timeout = std::chrono::milliseconds(300'000);
    return cfg;
}

json::object parse(const std::string& text) {
    return json::parse(text).as_object();
}

std::string type_of(const std::string& text) {
    return std::string(parse(text).at("type").as_string());
}

class AppsyncConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        authz_ = *auth::authorizer::create(cfg_, outbound_.get());
        api_ = std::make_unique<api::event_api>(cfg_, broker_, stats_, *authz_);
        make_connection();
    }

    void make_connection() {
        host_ = std::make_shared<recording_host>(ioc_);
        conn_ = std::make_unique<appsync_connection>(*api_, cfg_, *host_, ioc_.get_executor());
        host_->conn = conn_.get();
    }

    // Runs queued work (answers, deliveries) to completion, as the strand would.
    void settle() {
        ioc_.restart();
        ioc_.run();
    }

    // Calls `fn` on the io_context's thread, as ws_session calls on its strand (so an answer
    // decided at once runs inline), then runs what it queued.
    template <class Fn>
    auto on_strand(Fn fn) {
        decltype(fn()) out{};
        asio::post(ioc_, [&] { out = fn(); });
        settle();
        return out;
    }

    bool text(const std::string& msg) {
        return on_strand([&] { return conn_->on_text(msg); });
    }

    bool start(const char* key) {
        events::upgrade_auth auth;
        auth.offered_subprotocols = auth.offered_appsync = true;
        if (key)
            auth.creds.add("x-api-key", key);
        return on_strand([&] { return conn_->start(std::move(auth)); });
    }

    static std::string subscribe(const std::string& id, const std::string& channel,
                                 const char* key = "good-key") {
        return R"({"type":"subscribe","id":")" + id + R"(","channel":")" + channel +
               R"(","authorization":{"x-api-key":")" + key + R"("}})";
    }

    static std::string publish(const std::string& id, const std::string& channel,
                               const std::string& events_json) {
        return R"({"type":"publish","id":")" + id + R"(","channel":")" + channel +
               R"(","events":)" + events_json + R"(,"authorization":{"x-api-key":"good-key"}})";
    }

    const std::string& last_text() const { return host_->texts.back(); }

    void TearDown() override {
        if (outbound_)
            outbound_->stop();  // a webhook answer still running completes now, into ioc_
        conn_->end();
        settle();
    }

    core::config cfg_ = make_config();
    std::unique_ptr<aws::transport> outbound_;  // only where a test needs outbound I/O
    pubsub::broker broker_;
    core::stats stats_;
    std::unique_ptr<auth::authorizer> authz_;
    std::unique_ptr<api::event_api> api_;
    asio::io_context ioc_;
    std::shared_ptr<recording_host> host_;
    std::unique_ptr<appsync_connection> conn_;
};

TEST_F(AppsyncConnectionTest, ConnectWithAGoodKeyIsAuthorizedAtOnce) {
    EXPECT_TRUE(start("good-key"));
    EXPECT_TRUE(conn_->connected());
    EXPECT_FALSE(conn_->waiting());
    EXPECT_TRUE(host_->texts.empty());  // nothing is said until connection_init
    EXPECT_FALSE(host_->closing());
}

TEST_F(AppsyncConnectionTest, ConnectWithABadKeySendsConnectionErrorAndCloses) {
    EXPECT_TRUE(start("bad-key"));  // decided at once: reading goes on for the close reply
    EXPECT_FALSE(conn_->connected());
    ASSERT_EQ(host_->texts.size(), 1u);
    auto msg = parse(last_text());
    EXPECT_EQ(msg.at("type").as_string(), "connection_error");
    EXPECT_EQ(msg.at("errors").as_array()[0].at("errorType").as_string(), "UnauthorizedException");
    EXPECT_TRUE(host_->closing());
    EXPECT_EQ(host_->close_code, boost::beast::websocket::close_code::normal);
    EXPECT_EQ(host_->close_reason, "unauthorized");
}

TEST_F(AppsyncConnectionTest, MalformedUpgradeCredentialsAreRefusedBeforeAuthorization) {
    events::upgrade_auth auth;
    auth.error = events::protocol_error{events::error_kind::bad_request, "header- is not base64"};
    EXPECT_TRUE(on_strand([&] { return conn_->start(std::move(auth)); }));
    ASSERT_EQ(host_->texts.size(), 1u);
    EXPECT_EQ(type_of(last_text()), "connection_error");
    EXPECT_NE(last_text().find("header- is not base64"), std::string::npos);
    EXPECT_EQ(host_->close_reason, "connection refused");
    EXPECT_EQ(stats_.auth_failures.load(), 1u);
}

TEST_F(AppsyncConnectionTest, ConnectionInitIsAckedWithTheTimeoutThenKa) {
    start("good-key");
    EXPECT_TRUE(text(R"({"type":"connection_init"})"));
    ASSERT_EQ(host_->texts.size(), 2u);
    auto ack = parse(host_->texts[0]);
    EXPECT_EQ(ack.at("type").as_string(), "connection_ack");
    EXPECT_EQ(ack.at("connectionTimeoutMs").to_number<std::int64_t>(), 300'000);
    EXPECT_EQ(type_of(host_->texts[1]), "ka");
}

TEST_F(AppsyncConnectionTest, SubscribePublishDeliverUnsubscribe) {
    start("good-key");
    EXPECT_TRUE(text(subscribe("s1", "/default/room")));
    ASSERT_EQ(host_->texts.size(), 1u);
    EXPECT_EQ(type_of(last_text()), "subscribe_success");
    EXPECT_EQ(parse(last_text()).at("id").as_string(), "s1");
    EXPECT_EQ(conn_->subscription_count(), 1u);
    EXPECT_EQ(api_->subscription_count(), 1u);

    EXPECT_TRUE(text(publish("p1", "/default/room", R"(["{\"a\":1}","\"two\""])")));
    auto ok = parse(host_->texts.at(1));
    EXPECT_EQ(ok.at("type").as_string(), "publish_success");
    EXPECT_EQ(ok.at("id").as_string(), "p1");
    EXPECT_EQ(ok.at("successful").as_array().size(), 2u);
    EXPECT_TRUE(ok.at("failed").as_array().empty());

    // Both events arrive, in order, as data frames of subscription s1.
    ASSERT_EQ(host_->data.size(), 2u);
    auto first = parse(host_->data[0]);
    EXPECT_EQ(first.at("type").as_string(), "data");
    EXPECT_EQ(first.at("id").as_string(), "s1");
    EXPECT_EQ(first.at("event").as_string(), R"({"a":1})");
    EXPECT_EQ(parse(host_->data[1]).at("event").as_string(), R"("two")");

    EXPECT_TRUE(text(R"({"type":"unsubscribe","id":"s1"})"));
    EXPECT_EQ(type_of(last_text()), "unsubscribe_success");
    EXPECT_EQ(conn_->subscription_count(), 0u);
    EXPECT_EQ(api_->subscription_count(), 0u);
    text(publish("p2", "/default/room", R"(["3"])"));
    EXPECT_EQ(host_->data.size(), 2u);  // nothing after the unsubscribe
}

TEST_F(AppsyncConnectionTest, ADeliveryQueuedBeforeUnsubscribeIsDropped) {
    start("good-key");
    text(subscribe("s1", "/default/room"));
    // The broker hands the batch over (posted, not yet run); the unsubscribe runs first.
    api_->publish(*events::channel_path::parse("/default/room"), {"1"});
    EXPECT_TRUE(conn_->on_text(R"({"type":"unsubscribe","id":"s1"})"));  // before the delivery runs
    settle();
    EXPECT_TRUE(host_->data.empty());  // spec §5.5: nothing for a subscription already gone
}

TEST_F(AppsyncConnectionTest, DuplicateSubscriptionIdIsRefusedAndTheFirstStaysLive) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    text(subscribe("s1", "/default/b"));
    auto err = parse(last_text());
    EXPECT_EQ(err.at("type").as_string(), "subscribe_error");
    EXPECT_EQ(err.at("id").as_string(), "s1");
    EXPECT_NE(last_text().find("subscription id 's1' is already live on this connection"),
              std::string::npos);
    EXPECT_EQ(conn_->subscription_count(), 1u);
    api_->publish(*events::channel_path::parse("/default/a"), {"1"});
    settle();
    EXPECT_EQ(host_->data.size(), 1u);
}

TEST_F(AppsyncConnectionTest, SubscriptionsPastTheLimitAreRefused) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    text(subscribe("s2", "/default/b"));
    text(subscribe("s3", "/default/c"));
    EXPECT_EQ(type_of(last_text()), "subscribe_error");
    EXPECT_NE(last_text().find("this connection has 2 subscriptions; the limit is 2"),
              std::string::npos);
    EXPECT_EQ(conn_->subscription_count(), 2u);
}

TEST_F(AppsyncConnectionTest, RefusedSubscribeSaysWhyAndSubscribesNothing) {
    start("good-key");
    text(subscribe("s1", "/default/a", "bad-key"));
    EXPECT_EQ(type_of(last_text()), "subscribe_error");
    EXPECT_NE(last_text().find("UnauthorizedException"), std::string::npos);
    text(subscribe("s2", "/nowhere/a"));
    EXPECT_EQ(type_of(last_text()), "subscribe_error");
    EXPECT_NE(last_text().find("namespace 'nowhere' is not defined on this server"),
              std::string::npos);
    EXPECT_EQ(conn_->subscription_count(), 0u);
    EXPECT_EQ(api_->subscription_count(), 0u);
}

TEST_F(AppsyncConnectionTest, UnsubscribeOfAnUnknownIdIsAnError) {
    start("good-key");
    text(R"({"type":"unsubscribe","id":"nope"})");
    auto err = parse(last_text());
    EXPECT_EQ(err.at("type").as_string(), "unsubscribe_error");
    EXPECT_EQ(err.at("id").as_string(), "nope");
}

TEST_F(AppsyncConnectionTest, AGenericErrorNeverCarriesALiveSubscriptionsId) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    // Not a message Amplify could match to a subscription: an error on s1's id would fail it.
    text(R"({"type":"no-such-type","id":"s1"})");
    auto err = parse(last_text());
    EXPECT_EQ(err.at("type").as_string(), "error");
    EXPECT_FALSE(err.contains("id") && err.at("id").as_string() == "s1") << last_text();
    EXPECT_EQ(conn_->subscription_count(), 1u);
    EXPECT_EQ(stats_.protocol_errors.load(), 1u);
}

TEST_F(AppsyncConnectionTest, BadJsonAndBinaryGetErrorsAndTheConnectionGoesOn) {
    start("good-key");
    EXPECT_TRUE(text("{not json"));
    EXPECT_EQ(type_of(last_text()), "error");
    conn_->on_binary();
    EXPECT_NE(last_text().find("binary frames are not supported"), std::string::npos);
    EXPECT_FALSE(host_->closing());
    text(R"({"type":"connection_init"})");
    EXPECT_EQ(type_of(host_->texts.at(host_->texts.size() - 2)), "connection_ack");
}

TEST_F(AppsyncConnectionTest, EndTakesEverySubscriptionOutOfTheBroker) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    text(subscribe("s2", "/default/b"));
    EXPECT_EQ(api_->subscription_count(), 2u);
    conn_->end();
    EXPECT_EQ(api_->subscription_count(), 0u);
    EXPECT_EQ(conn_->subscription_count(), 0u);
    conn_->end();  // idempotent
}

TEST_F(AppsyncConnectionTest, NothingIsSentOnceTheHostIsClosingAndSendingStopsWhenRefused) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    host_->refuse_data_after = 1;  // the host closes as a slow consumer after one frame
    api_->publish(*events::channel_path::parse("/default/a"), {"1", "2", "3"});
    settle();
    EXPECT_EQ(host_->data.size(), 1u);
    host_->closing_ = true;
    api_->publish(*events::channel_path::parse("/default/a"), {"4"});
    settle();
    EXPECT_EQ(host_->data.size(), 1u);
}

TEST_F(AppsyncConnectionTest, OperationsPastTheRateLimitAreRefused) {
    cfg_.auth.max_ops_per_second = 1;  // a burst of one
    make_connection();
    start("good-key");
    text(subscribe("s1", "/default/a"));
    EXPECT_EQ(type_of(last_text()), "subscribe_success");
    text(subscribe("s2", "/default/b"));
    EXPECT_EQ(type_of(last_text()), "subscribe_error");
    EXPECT_NE(last_text().find("LimitExceededError"), std::string::npos) << last_text();
    conn_->end();
}

// A decision that needs I/O answers from another thread: subscribe allows AWS_LAMBDA, whose
// webhook is a closed loopback port, so the transport thread answers "refused" a moment later.
// Meanwhile reading is paused; the answer is handled on the executor, then reading resumes.
class AppsyncConnectionAsyncTest : public AppsyncConnectionTest {
protected:
    static core::config lambda_config() {
        auto cfg = make_config();
        cfg.auth.subscribe_modes = {"API_KEY", "AWS_LAMBDA"};
        cfg.auth.lambda_url = "http://127.0.0.1:1/authorize";  // nothing listens on port 1
        cfg.auth.lambda_timeout = std::chrono::milliseconds(5000);
        return cfg;
    }
    void SetUp() override {
        cfg_ = lambda_config();
        outbound_ = std::make_unique<aws::transport>();
        AppsyncConnectionTest::SetUp();
    }

    // Runs the executor until `done` holds or 10 s pass.
    template <class Pred>
    bool run_until(Pred done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            ioc_.restart();
            ioc_.run_for(std::chrono::milliseconds(10));
        }
        return done();
    }

    static std::string lambda_subscribe(const std::string& id) {
        return R"({"type":"subscribe","id":")" + id +
               R"(","channel":"/default/room","authorization":{"Authorization":"opaque-token"}})";
    }
};

TEST_F(AppsyncConnectionAsyncTest, AnAnswerStillToComePausesReadingUntilItIsHandled) {
    start("good-key");
    EXPECT_FALSE(on_strand([&] { return conn_->on_text(lambda_subscribe("s1")); }));
    EXPECT_TRUE(conn_->waiting());
    ASSERT_TRUE(run_until([&] { return host_->resumes > 0; }));
    EXPECT_EQ(host_->resumes, 1);
    EXPECT_FALSE(conn_->waiting());
    EXPECT_EQ(type_of(last_text()), "subscribe_error");
    EXPECT_NE(last_text().find("UnauthorizedException"), std::string::npos) << last_text();
    EXPECT_EQ(conn_->subscription_count(), 0u);
    // Reading goes on: the next operation is decided at once again.
    EXPECT_TRUE(text(subscribe("s2", "/default/room")));
    EXPECT_EQ(type_of(last_text()), "subscribe_success");
}

TEST_F(AppsyncConnectionAsyncTest, ClosingWhileAnAnswerIsPendingEndsTheConnection) {
    start("good-key");
    text(subscribe("s1", "/default/a"));
    EXPECT_EQ(api_->subscription_count(), 1u);
    EXPECT_FALSE(on_strand([&] { return conn_->on_text(lambda_subscribe("s2")); }));
    host_->closing_ = true;  // closed meanwhile: no read will come to end() the connection
    const auto sent = host_->texts.size();
    ASSERT_TRUE(run_until([&] { return !conn_->waiting(); }));
    EXPECT_EQ(host_->resumes, 0);
    EXPECT_EQ(host_->texts.size(), sent);  // the answer is dropped
    EXPECT_EQ(conn_->subscription_count(), 0u);
    EXPECT_EQ(api_->subscription_count(), 0u);
}

}  // namespace
}  // namespace eventcast::net

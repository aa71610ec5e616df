// End-to-end behaviour of the real binary over real sockets: handshake, subscribe, publish,
// fan-out, limits, keep-alive, slow consumers, lifetime and graceful shutdown.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace eventcast::testing {
namespace {

std::string str(const json::value& v) {
    return std::string(v.as_string());
}

TEST(ServerTest, SelectsTheAppSyncSubprotocolAndAcksConnectionInit) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    EXPECT_EQ(c.selected_protocol(), "aws-appsync-event-ws");
    c.init();
    auto ack = c.read_json();
    ASSERT_TRUE(ack);
    EXPECT_EQ(str(ack->at("type")), "connection_ack");
    EXPECT_EQ(ack->at("connectionTimeoutMs").as_int64(), 300000);
}

TEST(ServerTest, DeliversPublishedEventsAsJsonStringsOverPlainAndTls) {
    server_process srv;
    for (bool tls : {false, true}) {
        SCOPED_TRACE(tls ? "wss" : "ws");
        ws_client c(srv.port(), srv.api_key(), {.tls = tls});
        c.init();
        ASSERT_TRUE(c.expect_type("connection_ack"));
        c.subscribe("sub-1", "default/room");
        ASSERT_TRUE(c.expect_type("subscribe_success"));
        const std::vector<std::string> events = {R"({"a":1,"s":"<b>&é/\"q\"\n"})", R"("two")", "42",
                                                 "null", "[1,2]"};
        c.publish("pub-1", "/default/room", events);
        for (const auto& e : events) {
            auto frame = c.expect_type("data");
            ASSERT_TRUE(frame);
            EXPECT_EQ(str(frame->at("id")), "sub-1");
            ASSERT_TRUE(frame->at("event").is_string());
            EXPECT_EQ(str(frame->at("event")), e);
        }
        auto ok = c.expect_type("publish_success");
        ASSERT_TRUE(ok);
        EXPECT_EQ(str(ok->at("id")), "pub-1");
        ASSERT_EQ(ok->at("successful").as_array().size(), 5u);
        EXPECT_EQ(ok->at("successful").as_array()[4].at("index").as_int64(), 4);
        EXPECT_EQ(str(ok->at("successful").as_array()[0].at("identifier")).size(), 36u);
        EXPECT_TRUE(ok->at("failed").as_array().empty());
    }
}

TEST(ServerTest, WorksWithoutConnectionInitAndWithAuthInUpgradeHeaders) {
    server_process srv;
    ws_client c(
        srv.port(), srv.api_key(),
        {.subprotocols = {"aws-appsync-event-ws"}, .headers = {{"X-Api-Key", srv.api_key()}}});
    c.subscribe("s", "default/x");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
}

TEST(ServerTest, WildcardMatchesEveryDepthBelowButNotThePrefix) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("w", "/default/a/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.publish("p1", "default/a", {R"("prefix")"});
    ASSERT_TRUE(c.expect_type("publish_success"));
    c.publish("p2", "default/a/b", {R"("one")"});
    c.publish("p3", "default/a/b/c/d", {R"("three")"});
    auto d1 = c.expect_type("data");
    auto d2 = c.expect_type("data");
    ASSERT_TRUE(d1 && d2);
    EXPECT_EQ(str(d1->at("event")), R"("one")");
    EXPECT_EQ(str(d2->at("event")), R"("three")");
}

TEST(ServerTest, OverlappingSubscriptionsEachGetAFrame) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("exact", "default/a");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.subscribe("wild", "default/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.publish("p", "default/a", {"1"});
    std::set<std::string> ids;
    for (int i = 0; i < 2; ++i) {
        auto d = c.expect_type("data");
        ASSERT_TRUE(d);
        ids.insert(str(d->at("id")));
    }
    EXPECT_EQ(ids, (std::set<std::string>{"exact", "wild"}));
}

TEST(ServerTest, UnsubscribeStopsDelivery) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("gone", "default/a");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.subscribe("marker", "default/m");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.send(R"({"type":"unsubscribe","id":"gone"})");
    auto u = c.expect_type("unsubscribe_success");
    ASSERT_TRUE(u);
    EXPECT_EQ(str(u->at("id")), "gone");
    c.publish("p1", "default/a", {R"("must not arrive")"});
    c.publish("p2", "default/m", {R"("marker")"});
    auto d = c.expect_type("data");
    ASSERT_TRUE(d);
    EXPECT_EQ(str(d->at("id")), "marker");
    // The id can be reused after unsubscribe.
    c.subscribe("gone", "default/a");
    EXPECT_TRUE(c.expect_type("subscribe_success"));
}

TEST(ServerTest, HttpPublishReachesWebSocketSubscribers) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "default/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    for (bool tls : {false, true}) {
        auto r = http_request(
            srv.port(), http::verb::post, "/event",
            R"({"channel":"/default/http","events":["{\"via\":\"http\"}","2"]})",
            {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json; charset=UTF-8"}},
            tls);
        ASSERT_EQ(r.status, 200u) << r.body;
        auto body = json::parse(r.body).as_object();
        EXPECT_EQ(body.at("successful").as_array().size(), 2u);
        EXPECT_TRUE(body.at("failed").as_array().empty());
        auto d1 = c.expect_type("data");
        auto d2 = c.expect_type("data");
        ASSERT_TRUE(d1 && d2);
        EXPECT_EQ(str(d1->at("event")), R"({"via":"http"})");
        EXPECT_EQ(str(d2->at("event")), "2");
    }
}

TEST(ServerTest, AnswersCorsPreflightAndHealth) {
    server_process srv;
    auto pre = http_request(srv.port(), http::verb::options, "/event", "",
                            {{"Origin", "http://example.test"},
                             {"Access-Control-Request-Method", "POST"},
                             {"Access-Control-Request-Headers", "content-type,x-api-key"}});
    EXPECT_EQ(pre.status, 204u);
    EXPECT_EQ(pre.headers["Access-Control-Allow-Origin"], "*");
    EXPECT_NE(std::string(pre.headers["Access-Control-Allow-Headers"]).find("x-api-key"),
              std::string::npos);
    auto h = http_request(srv.port(), http::verb::get, "/healthz", "", {});
    EXPECT_EQ(h.status, 200u);
    EXPECT_EQ(str(json::parse(h.body).at("status")), "ok");
}

TEST(ServerTest, SendsKeepAlivesAtTheConfiguredInterval) {
    server_process srv({"--keepalive-ms", "200"});
    ws_client c(srv.port(), srv.api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    int ka = 0;
    const auto end = std::chrono::steady_clock::now() + 3s;
    while (ka < 3 && std::chrono::steady_clock::now() < end) {
        auto t = c.read(1s);
        if (t && json::parse(*t).at("type").as_string() == "ka")
            ++ka;
    }
    EXPECT_GE(ka, 3);
}

TEST(ServerTest, EnforcesTheSubscriptionLimitAndKeepsTheConnection) {
    server_process srv({"--max-subscriptions", "3"});
    ws_client c(srv.port(), srv.api_key());
    for (int i = 0; i < 3; ++i) {
        c.subscribe("s" + std::to_string(i), "default/a");
        ASSERT_TRUE(c.expect_type("subscribe_success"));
    }
    c.subscribe("s3", "default/a");
    auto e = c.expect_type("subscribe_error");
    ASSERT_TRUE(e);
    EXPECT_EQ(str(e->at("id")), "s3");
    EXPECT_EQ(error_type(*e), "MaxSubscriptionsReachedError");
    c.send(R"({"type":"unsubscribe","id":"s0"})");
    ASSERT_TRUE(c.expect_type("unsubscribe_success"));
    c.subscribe("s3", "default/a");
    EXPECT_TRUE(c.expect_type("subscribe_success"));
}

TEST(ServerTest, RejectsBadAndExpiredKeysAtConnect) {
    server_process srv({"--api-key", "old-key@1"});
    for (const std::string key : {"wrong-key", "old-key"}) {
        SCOPED_TRACE(key);
        ws_client c(srv.port(), key);
        EXPECT_EQ(c.selected_protocol(), "aws-appsync-event-ws");
        auto e = c.read_json();
        ASSERT_TRUE(e);
        EXPECT_EQ(str(e->at("type")), "connection_error");
        EXPECT_EQ(error_type(*e), "UnauthorizedException");
        EXPECT_TRUE(c.wait_closed());
        EXPECT_EQ(c.close_code(), 1000);
    }
}

TEST(ServerTest, ClosesSlowConsumersWithoutSlowingOthers) {
    server_process srv({"--max-outbox-bytes", "65536"});
    // A raw TCP client that upgrades and then never reads.
    asio::io_context ioc;
    websocket::stream<beast::tcp_stream> stuck(ioc);
    beast::get_lowest_layer(stuck).connect({asio::ip::make_address("127.0.0.1"), srv.port()});
    stuck.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
        r.set(http::field::sec_websocket_protocol,
              "aws-appsync-event-ws," + header_subprotocol(srv.api_key()));
    }));
    // Tiny receive buffer so the kernel stops taking bytes early.
    beast::get_lowest_layer(stuck).socket().set_option(
        asio::socket_base::receive_buffer_size(4096));
    stuck.handshake("127.0.0.1", "/event/realtime");
    ws_client auth_only(srv.port(), srv.api_key());
    const std::string sub =
        R"({"type":"subscribe","id":"slow","channel":"default/firehose","authorization":)" +
        auth_only.auth_json() + "}";
    stuck.write(asio::buffer(sub));

    ws_client fast(srv.port(), srv.api_key());
    fast.subscribe("fast", "default/firehose");
    ASSERT_TRUE(fast.expect_type("subscribe_success"));
    ws_client pub(srv.port(), srv.api_key());
    const std::string big = "\"" + std::string(16000, 'x') + "\"";
    int published = 0;
    int received = 0;
    bool closed = false;
    for (int round = 0; round < 3000 && !closed; ++round) {
        pub.publish("p" + std::to_string(round), "default/firehose", {big});
        ASSERT_TRUE(pub.expect_type("publish_success"));
        ++published;
        ASSERT_TRUE(fast.expect_type("data"));
        ++received;
        if (round % 50 == 49) {
            auto h = http_request(srv.port(), http::verb::get, "/healthz", "", {});
            closed = json::parse(h.body).at("slowConsumerCloses").as_int64() >= 1;
        }
    }
    EXPECT_TRUE(closed) << "the stuck subscriber was never closed";
    EXPECT_EQ(received, published) << "the fast subscriber lost events";
}

// A connection that ends with a close handshake (either side first) leaves nothing in the
// broker: its subscriptions go with it, as they do when the peer just drops the TCP connection.
TEST(ServerTest, ClosedConnectionsLeaveNoSubscriptionsBehind) {
    server_process srv({"--connection-lifetime-ms", "1500"});
    auto subscriptions = [&] {
        auto h = http_request(srv.port(), http::verb::get, "/healthz", "", {});
        return json::parse(h.body).at("subscriptions").as_int64();
    };
    {
        // The client closes first.
        asio::io_context ioc;
        websocket::stream<beast::tcp_stream> ws(ioc);
        beast::get_lowest_layer(ws).connect({asio::ip::make_address("127.0.0.1"), srv.port()});
        ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
            r.set(http::field::sec_websocket_protocol,
                  "aws-appsync-event-ws," + header_subprotocol(srv.api_key()));
        }));
        ws.handshake("127.0.0.1", "/event/realtime");
        ws_client auth_only(srv.port(), srv.api_key());
        ws.write(asio::buffer(
            R"({"type":"subscribe","id":"a","channel":"default/leak","authorization":)" +
            auth_only.auth_json() + "}"));
        beast::flat_buffer b;
        ws.read(b);
        ASSERT_NE(beast::buffers_to_string(b.data()).find("subscribe_success"), std::string::npos);
        EXPECT_EQ(subscriptions(), 1);
        ws.close(websocket::close_code::normal);  // waits for the server's close reply
    }
    EXPECT_TRUE(eventually([&] { return subscriptions() == 0; }))
        << subscriptions() << " subscriptions left after the client closed";
    {
        // The server closes first (connection lifetime); the client answers.
        ws_client c(srv.port(), srv.api_key());
        c.subscribe("b", "default/leak");
        ASSERT_TRUE(c.expect_type("subscribe_success"));
        EXPECT_TRUE(c.wait_closed(5s));
    }
    EXPECT_TRUE(eventually([&] { return subscriptions() == 0; }))
        << subscriptions() << " subscriptions left after the server closed";
}

// A publish that needs the Lambda authorizer pauses reading until its answer is in. What the
// client sent meanwhile, in the same TCP segment and after it, is handled once, in order, when
// reading resumes (plain TCP waits for readability on an edge-triggered reactor: a resumed
// read must still see bytes that arrived while paused).
TEST(ServerTest, MessagesSentWhileAnAuthorizationIsPendingAreHandledInOrder) {
    // The Lambda authorizer: a webhook that answers after 400 ms.
    asio::io_context hook_ioc;
    asio::ip::tcp::acceptor hook(hook_ioc, {asio::ip::make_address("127.0.0.1"), 0});
    std::atomic<int> calls{0};
    std::atomic<bool> stop{false};
    std::thread hook_thread([&] {
        std::vector<std::thread> conns;
        for (;;) {
            beast::error_code ec;
            asio::ip::tcp::socket s(hook_ioc);
            hook.accept(s, ec);
            if (ec || stop)
                break;
            conns.emplace_back([&calls, s = std::move(s)]() mutable {
                beast::flat_buffer b;
                for (;;) {
                    http::request<http::string_body> req;
                    beast::error_code e;
                    http::read(s, b, req, e);
                    if (e)
                        return;
                    ++calls;
                    std::this_thread::sleep_for(400ms);
                    http::response<http::string_body> res{http::status::ok, 11};
                    res.set(http::field::content_type, "application/json");
                    res.body() = R"({"isAuthorized":true,"ttlOverride":60})";
                    res.prepare_payload();
                    http::write(s, res, e);
                    if (e)
                        return;
                }
            });
        }
        for (auto& t : conns)
            t.join();
    });
    const std::string url =
        "http://127.0.0.1:" + std::to_string(hook.local_endpoint().port()) + "/authorize";
    {
        server_process srv({"--auth-publish", "AWS_LAMBDA", "--lambda-authorizer-url", url});
        ws_client sub(srv.port(), srv.api_key());
        sub.subscribe("s", "default/paused");
        ASSERT_TRUE(sub.expect_type("subscribe_success"));
        ws_client pub(srv.port(), srv.api_key());
        auto publish = [](int i) {
            // A new token each time: no cached answer, every publish waits for the webhook.
            return R"({"type":"publish","id":"p)" + std::to_string(i) +
                   R"(","channel":"default/paused","events":[")" + std::to_string(i) +
                   R"("],"authorization":{"authorization":"allow-)" + std::to_string(i) + R"("}})";
        };
        pub.send(publish(1));
        pub.send(publish(2));  // most likely read together with 1, buffered while 1 waits
        std::this_thread::sleep_for(150ms);
        pub.send(publish(3));  // arrives while reading is paused
        for (int i = 1; i <= 3; ++i) {
            auto ok = pub.expect_type("publish_success", 5s);
            ASSERT_TRUE(ok) << "no publish_success for p" << i;
            EXPECT_EQ(str(ok->at("id")), "p" + std::to_string(i));
            auto d = sub.expect_type("data", 5s);
            ASSERT_TRUE(d) << "no data for p" << i;
            EXPECT_EQ(str(d->at("event")), std::to_string(i));
        }
        EXPECT_FALSE(pub.expect_type("publish_success", 300ms)) << "a publish was handled twice";
        EXPECT_EQ(calls.load(), 3);
    }
    stop = true;
    asio::ip::tcp::socket wake(hook_ioc);  // unblocks the accept
    wake.connect(hook.local_endpoint());
    hook_thread.join();
}

TEST(ServerTest, ClosesConnectionsAtTheirLifetime) {
    server_process srv({"--connection-lifetime-ms", "300"});
    ws_client c(srv.port(), srv.api_key());
    c.init();
    ASSERT_TRUE(c.expect_type("connection_ack"));
    EXPECT_TRUE(c.wait_closed(5s));
    EXPECT_EQ(c.close_code(), 1000);
}

TEST(ServerTest, ShutsDownGracefullyOnSigterm) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "default/a");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    std::thread reader([&] { c.wait_closed(10s); });
    EXPECT_EQ(srv.terminate(), 0);
    reader.join();
    EXPECT_TRUE(c.closed());
    EXPECT_EQ(c.close_code(), 1001);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// SIGHUP reads the configuration again: the log level applies at once, options that need a
// restart are named, a broken file keeps the running configuration, and the server (and its
// subscribers) go on. SIGHUP is never fatal (systemd's ExecReload sends it).
TEST(ServerTest, SighupReloadsTheConfigurationAndKeepsServing) {
    char tmpl[] = "/tmp/eventcast-reload-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    const std::string dir = tmpl, conf = dir + "/eventcast.toml", log = dir + "/stderr.log";
    std::ofstream(conf) << "log-level = \"warn\"\nmax-subscriptions = 200\n";
    server_process srv({"--config", conf}, "test-key", 0, log);
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "default/a");
    ASSERT_TRUE(c.expect_type("subscribe_success"));

    std::ofstream(conf) << "log-level = \"info\"\nmax-subscriptions = 5\n";
    srv.signal(SIGHUP);
    EXPECT_TRUE(eventually(
        [&] {
            return read_file(log).find("reload: done") != std::string::npos ||
                   read_file(log).find("restart") != std::string::npos;
        },
        10s));
    EXPECT_NE(read_file(log).find("reload: log level is now info"), std::string::npos)
        << read_file(log);
    EXPECT_NE(read_file(log).find("applied only by a restart: --max-subscriptions"),
              std::string::npos)
        << read_file(log);

    std::ofstream(conf) << "max-subscriptions = \"many\"\n";
    srv.signal(SIGHUP);
    EXPECT_TRUE(eventually(
        [&] { return read_file(log).find("the running one is kept") != std::string::npos; }, 10s))
        << read_file(log);
    EXPECT_NE(read_file(log).find("max-subscriptions: 'many' is not a whole number"),
              std::string::npos);

    ASSERT_TRUE(srv.running());
    auto r = http_request(srv.port(), http::verb::post, "/event",
                          R"({"channel":"/default/a","events":["\"after reload\""]})",
                          {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 200u) << r.body;
    EXPECT_TRUE(c.expect_type("data"));  // the subscriber from before the reloads
    EXPECT_EQ(srv.terminate(), 0);
    std::filesystem::remove_all(dir);
}

TEST(ServerTest, PrintsAGeneratedKeyWhenNoneIsConfigured) {
    // Without --api-key the server generates one; a connect with some other key is refused.
    server_process srv({}, "");
    ws_client c(srv.port(), "not-the-generated-key");
    auto e = c.read_json();
    ASSERT_TRUE(e);
    EXPECT_EQ(str(e->at("type")), "connection_error");
}

}  // namespace
}  // namespace eventcast::testing

namespace eventcast::testing {
namespace {

TEST(ServerTest, RaisesTheOpenFilesSoftLimitToHoldMoreConnections) {
    // Started with a soft limit of 256 open files (Debian's default is 1,024), the server
    // must still hold 400 connections: it raises the soft limit to the hard one at start.
    rlimit own{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &own), 0);
    if (own.rlim_max < 1024)
        GTEST_SKIP() << "hard open files limit " << own.rlim_max << " is below the test's needs";
    if (own.rlim_cur < 1024) {
        own.rlim_cur = std::min<rlim_t>(own.rlim_max, 4096);
        ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &own), 0);  // room for our own 400 clients
    }
    server_process server({"--max-connections-per-ip", "0"}, "test-key", 256);
    std::vector<std::unique_ptr<ws_client>> clients;
    for (int i = 0; i < 400; ++i) {
        clients.push_back(std::make_unique<ws_client>(server.port(), server.api_key()));
        if (i % 100 == 99) {
            clients.back()->init();
            ASSERT_TRUE(clients.back()->expect_type("connection_ack")) << "connection " << i;
        }
    }
    EXPECT_TRUE(server.running());
}

TEST(MetricsTest, ExposesPrometheusCountersThatMove) {
    server_process srv;
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "default/m");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    c.publish("p", "default/m", {"1", "2"});
    ASSERT_TRUE(c.expect_type("publish_success"));
    c.send(R"({"type":"bogus"})");
    ASSERT_TRUE(c.expect_type("error"));
    auto m = http_request(srv.port(), http::verb::get, "/metrics", "", {});
    ASSERT_EQ(m.status, 200u);
    EXPECT_NE(std::string(m.headers["Content-Type"]).find("text/plain"), std::string::npos);
    for (const char* line : {"eventcast_connections 1\n", "eventcast_subscriptions 1\n",
                             "eventcast_events_in_total 2\n", "eventcast_frames_out_total 2\n",
                             "eventcast_errors_total{errorType=\"UnsupportedOperation\"} 1\n",
                             "# TYPE eventcast_provider_first_chunk_seconds histogram\n",
                             "eventcast_chat_streams_active 0\n"})
        EXPECT_NE(m.body.find(line), std::string::npos) << line << "\n" << m.body;
}

}  // namespace
}  // namespace eventcast::testing

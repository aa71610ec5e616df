// Running as a service (issue 17): the admin listener and the metrics it serves, SIGHUP with
// changed API keys, a rotated certificate and a broken file, the drain on SIGTERM, and the
// chat token budget. The real binary over real sockets.
#include "harness.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <thread>

namespace eventcast::testing {
namespace {

using namespace std::chrono_literals;

std::string str(const json::value& v) {
    return std::string(v.as_string());
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// A port nothing listens on now (bound and released): for --admin-listen, whose port the test
// must know before the server starts.
std::uint16_t free_port() {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

std::string scratch_dir() {
    char tmpl[] = "/tmp/eventcast-svc-XXXXXX";
    if (!mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

// The value of one sample ("name{labels}" exactly as rendered), or -1 when absent.
double sample(const std::string& metrics, const std::string& series) {
    std::istringstream in(metrics);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0)
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

http_result get(std::uint16_t port, const std::string& target,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    return http_request(port, http::verb::get, target, "", headers);
}

http_result post_event(std::uint16_t port, const std::string& key, const std::string& channel,
                       const std::string& event_json) {
    return http_request(port, http::verb::post, "/event",
                        R"({"channel":")" + channel + R"(","events":[)" +
                            json::serialize(json::string(event_json)) + "]}",
                        {{"X-Api-Key", key}, {"Content-Type", "application/json"}});
}

TEST(ServiceTest, AdminListenerServesMetricsAndHealthAndTheClientPortDoesNot) {
    const auto admin = free_port();
    server_process srv({"--admin-listen", "127.0.0.1:" + std::to_string(admin)});
    auto m = get(admin, "/metrics");
    EXPECT_EQ(m.status, 200u);
    EXPECT_NE(m.body.find("eventcast_connections "), std::string::npos);
    EXPECT_EQ(get(admin, "/healthz").status, 200u);
    EXPECT_EQ(get(admin, "/readyz").status, 200u);
    // Nothing public on the admin port: no events, no web app, no WebSocket.
    auto e = http_request(admin, http::verb::post, "/event",
                          R"({"channel":"/default/a","events":["1"]})",
                          {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json"}});
    EXPECT_EQ(e.status, 404u) << e.body;
    EXPECT_NE(e.body.find("/metrics"), std::string::npos) << e.body;  // the list of its routes
    EXPECT_EQ(get(admin, "/").status, 404u);
    EXPECT_EQ(get(admin, "/event/realtime",
                  {{"Connection", "Upgrade"},
                   {"Upgrade", "websocket"},
                   {"Sec-WebSocket-Version", "13"},
                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}})
                  .status,
              404u);
    // The client port: everything but /metrics.
    auto pm = get(srv.port(), "/metrics");
    EXPECT_EQ(pm.status, 404u) << pm.body;
    EXPECT_EQ(get(srv.port(), "/healthz").status, 200u);
    EXPECT_EQ(post_event(srv.port(), srv.api_key(), "/default/a", "\"x\"").status, 200u);
}

TEST(ServiceTest, WithoutAnAdminListenerTheClientPortServesMetrics) {
    server_process srv;
    EXPECT_EQ(get(srv.port(), "/metrics").status, 200u);
}

TEST(ServiceTest, EveryNewMetricIsPresentAndMoves) {
    const auto admin = free_port();
    server_process srv({"--admin-listen", "127.0.0.1:" + std::to_string(admin), "--namespace",
                        "news", "--namespace", "default"});
    const auto before = get(admin, "/metrics").body;
    for (const char* series :
         {"process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
          "process_max_fds", "process_start_time_seconds"})
        EXPECT_GT(sample(before, series), 0) << series << "\n" << before;
    EXPECT_TRUE(std::regex_search(
        before,
        std::regex(
            R"re(eventcast_build_info\{version="[0-9.]+",commit="([0-9a-f]+|unknown)"\} 1)re")))
        << before;
    EXPECT_EQ(sample(before, R"(eventcast_namespace_subscriptions{namespace="news"})"), 0);

    // Two connections subscribe in "news" (one of them twice), one in "default".
    ws_client a(srv.port(), srv.api_key()), b(srv.port(), srv.api_key()),
        c(srv.port(), srv.api_key());
    a.subscribe("1", "/news/x");
    ASSERT_TRUE(a.expect_type("subscribe_success"));
    a.subscribe("2", "/news/*");
    ASSERT_TRUE(a.expect_type("subscribe_success"));
    b.subscribe("1", "/news/x");
    ASSERT_TRUE(b.expect_type("subscribe_success"));
    c.subscribe("1", "/default/y");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    // Two publishes in "news" (one of two events), over HTTP and WebSocket.
    ASSERT_EQ(http_request(srv.port(), http::verb::post, "/event",
                           R"({"channel":"/news/x","events":["1","2"]})",
                           {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json"}})
                  .status,
              200u);
    c.publish("p", "/news/x", {"3"});
    ASSERT_TRUE(c.expect_type("publish_success"));
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(a.expect_type("data"));  // 2 subscriptions x ... counted below
    const auto after = get(admin, "/metrics").body;
    EXPECT_EQ(sample(after, R"(eventcast_namespace_connections{namespace="news"})"), 2) << after;
    EXPECT_EQ(sample(after, R"(eventcast_namespace_subscriptions{namespace="news"})"), 3);
    EXPECT_EQ(sample(after, R"(eventcast_namespace_connections{namespace="default"})"), 1);
    EXPECT_EQ(sample(after, R"(eventcast_namespace_publishes_total{namespace="news"})"), 2);
    EXPECT_EQ(sample(after, R"(eventcast_namespace_events_in_total{namespace="news"})"), 3);
    // 3 events, each to 3 subscriptions.
    EXPECT_EQ(sample(after, R"(eventcast_namespace_deliveries_total{namespace="news"})"), 9);
    EXPECT_EQ(sample(after, R"(eventcast_namespace_events_in_total{namespace="default"})"), 0);
    EXPECT_GE(
        sample(after,
               R"(eventcast_http_responses_total{listener="client",route="/event",status="200"})"),
        1)
        << after;
    EXPECT_GE(
        sample(after,
               R"(eventcast_http_responses_total{listener="admin",route="/metrics",status="200"})"),
        1);
    get(srv.port(), "/no/such/route");
    const auto later = get(admin, "/metrics").body;
    EXPECT_EQ(
        sample(
            later,
            R"x(eventcast_http_responses_total{listener="client",route="(no route)",status="404"})x"),
        1)
        << later;
    EXPECT_GT(sample(later, "process_cpu_seconds_total"), 0);
    EXPECT_GE(sample(later, "process_open_fds"), sample(before, "process_open_fds") + 3)
        << "three WebSockets are three more descriptors";
}

TEST(ServiceTest, SighupTakesTheNewKeyListAndOpenSubscriptionsKeepReceiving) {
    const auto dir = scratch_dir();
    const auto conf = dir + "/eventcast.toml", log = dir + "/stderr.log";
    std::ofstream(conf) << "api-key = [\"old-key\"]\n";
    server_process srv({"--config", conf}, "", 0, log);
    ws_client sub(srv.port(), "old-key");
    sub.subscribe("s", "/default/keys");
    ASSERT_TRUE(sub.expect_type("subscribe_success"));
    ASSERT_EQ(post_event(srv.port(), "new-key", "/default/keys", "\"before\"").status, 401u);

    std::ofstream(conf) << "api-key = [\"new-key\", \"other-key\"]\n";
    srv.signal(SIGHUP);
    ASSERT_TRUE(
        eventually([&] { return read_file(log).find("2 API keys now") != std::string::npos; }, 10s))
        << read_file(log);
    auto added = post_event(srv.port(), "new-key", "/default/keys", "\"after\"");
    EXPECT_EQ(added.status, 200u) << added.body;
    auto removed = post_event(srv.port(), "old-key", "/default/keys", "\"refused\"");
    EXPECT_EQ(removed.status, 401u) << removed.body;
    // The subscriber authorized with the removed key keeps its subscription.
    auto d = sub.expect_type("data");
    ASSERT_TRUE(d);
    EXPECT_NE(str(d->at("event")).find("after"), std::string::npos);
    // A new connection with the removed key is refused.
    ws_client late(srv.port(), "old-key");
    auto e = late.read_json();
    ASSERT_TRUE(e);
    EXPECT_EQ(str(e->at("type")), "connection_error");
    EXPECT_EQ(srv.terminate(), 0);
    std::filesystem::remove_all(dir);
}

TEST(ServiceTest, SighupWithABrokenFileKeepsTheRunningKeys) {
    const auto dir = scratch_dir();
    const auto conf = dir + "/eventcast.toml", log = dir + "/stderr.log";
    std::ofstream(conf) << "api-key = [\"kept-key\"]\n";
    server_process srv({"--config", conf}, "", 0, log);
    std::ofstream(conf) << "api-key = [\"new-key\"]\nmax-event-bytes = \"huge\"\n";
    srv.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] { return read_file(log).find("the running one is kept") != std::string::npos; }, 10s))
        << read_file(log);
    EXPECT_NE(read_file(log).find("max-event-bytes: 'huge' is not a whole number"),
              std::string::npos)
        << read_file(log);
    EXPECT_EQ(post_event(srv.port(), "kept-key", "/default/a", "\"1\"").status, 200u);
    EXPECT_EQ(post_event(srv.port(), "new-key", "/default/a", "\"1\"").status, 401u);
    // A file with no key at all is refused too: the server would lock everyone out.
    std::ofstream(conf) << "log-level = \"info\"\n";
    srv.signal(SIGHUP);
    ASSERT_TRUE(
        eventually([&] { return read_file(log).find("has no API key") != std::string::npos; }, 10s))
        << read_file(log);
    EXPECT_EQ(post_event(srv.port(), "kept-key", "/default/a", "\"1\"").status, 200u);
    EXPECT_EQ(srv.terminate(), 0);
    std::filesystem::remove_all(dir);
}

// A self-signed certificate and key for localhost, made with the openssl command line.
std::string make_cert(const std::string& dir, const std::string& name) {
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-days 2 -subj /CN=" +
        name + " -keyout " + dir + "/" + name + ".key -out " + dir + "/" + name +
        ".pem 2>/dev/null";
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("openssl req failed");
    return dir + "/" + name;
}

std::string subject_cn_of_pem(const std::string& pem_file) {
    FILE* f = std::fopen(pem_file.c_str(), "r");
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof buf);
    X509_free(x);
    return buf;
}

// The common name of the certificate a new TLS handshake with 127.0.0.1:port presents.
std::string handshake_cn(std::uint16_t port) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket sock(ioc);
    sock.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, sock.native_handle());
    std::string cn;
    if (SSL_connect(ssl) == 1) {
        if (X509* peer = SSL_get1_peer_certificate(ssl)) {
            char buf[256] = {};
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
            cn = buf;
            X509_free(peer);
        }
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return cn;
}

TEST(ServiceTest, SighupRotatesTheCertificateForNewHandshakes) {
    const auto dir = scratch_dir();
    const auto conf = dir + "/eventcast.toml", log = dir + "/stderr.log";
    const auto first = make_cert(dir, "first"), second = make_cert(dir, "second");
    std::filesystem::copy_file(first + ".pem", dir + "/live.pem");
    std::filesystem::copy_file(first + ".key", dir + "/live.key");
    std::ofstream(conf) << "tls-cert = \"" << dir << "/live.pem\"\ntls-key = \"" << dir
                        << "/live.key\"\n";
    server_process srv({"--config", conf}, "test-key", 0, log);
    ASSERT_EQ(handshake_cn(srv.port()), "first");
    // An open TLS connection from before the rotation keeps working.
    auto before = http_request(srv.port(), http::verb::get, "/healthz", "", {}, true);
    EXPECT_EQ(before.status, 200u);

    // The files change in place (as certbot or cert-manager renew them), then SIGHUP.
    std::filesystem::copy_file(second + ".pem", dir + "/live.pem",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(second + ".key", dir + "/live.key",
                               std::filesystem::copy_options::overwrite_existing);
    srv.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] { return read_file(log).find("new TLS handshakes present") != std::string::npos; },
        10s))
        << read_file(log);
    EXPECT_EQ(handshake_cn(srv.port()), "second");
    EXPECT_EQ(subject_cn_of_pem(dir + "/live.pem"), "second");
    EXPECT_EQ(http_request(srv.port(), http::verb::get, "/healthz", "", {}, true).status, 200u);

    // A key that is not the certificate's: the second pair stays.
    std::filesystem::copy_file(first + ".key", dir + "/live.key",
                               std::filesystem::copy_options::overwrite_existing);
    srv.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] { return read_file(log).find("the certificate is kept") != std::string::npos; }, 10s))
        << read_file(log);
    EXPECT_EQ(handshake_cn(srv.port()), "second");
    EXPECT_EQ(srv.terminate(), 0);
    std::filesystem::remove_all(dir);
}

TEST(ServiceTest, DrainAnswers503FirstKeepsSocketsForTheDelayThenCloses1001AndExits0) {
    const auto dir = scratch_dir();
    const auto log = dir + "/stderr.log";
    server_process srv({"--drain-delay-ms", "1500", "--drain-spread-ms", "600",
                        "--shutdown-timeout-ms", "8000", "--log-level", "info"},
                       "test-key", 0, log);
    std::vector<std::unique_ptr<ws_client>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(std::make_unique<ws_client>(srv.port(), srv.api_key()));
        clients.back()->subscribe("s", "/default/drain");
        ASSERT_TRUE(clients.back()->expect_type("subscribe_success"));
    }
    const auto t0 = std::chrono::steady_clock::now();
    srv.signal(SIGTERM);
    // 503 at once.
    ASSERT_TRUE(eventually([&] { return get(srv.port(), "/readyz").status == 503; }, 500ms));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 700ms);
    EXPECT_EQ(get(srv.port(), "/healthz").status, 200u);  // alive, only not ready
    // Still served during the delay: a publish reaches every open socket.
    EXPECT_EQ(post_event(srv.port(), srv.api_key(), "/default/drain", "\"during\"").status, 200u);
    for (auto& c : clients)
        EXPECT_TRUE(c->expect_type("data"));
    // Then each is closed with 1001, not before the delay, spread over the spread.
    std::vector<std::chrono::steady_clock::duration> closed_at;
    for (auto& c : clients) {
        ASSERT_TRUE(c->wait_closed(6s));
        closed_at.push_back(std::chrono::steady_clock::now() - t0);
        EXPECT_EQ(c->close_code(), 1001);
    }
    for (auto at : closed_at)
        EXPECT_GE(at, 1400ms);
    const int rc = srv.wait_exit(8s);  // a second SIGTERM would exit at once: no signal
    EXPECT_EQ(rc, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
    const auto text = read_file(log);
    EXPECT_NE(text.find("draining: /readyz answers 503"), std::string::npos) << text;
    EXPECT_NE(text.find("drained: every connection is closed"), std::string::npos) << text;
    std::filesystem::remove_all(dir);
}

TEST(ServiceTest, ASecondSigtermExitsAtOnce) {
    server_process srv({"--drain-delay-ms", "20000", "--shutdown-timeout-ms", "30000"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "/default/x");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    srv.signal(SIGTERM);
    ASSERT_TRUE(eventually([&] { return get(srv.port(), "/readyz").status == 503; }, 2s));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(srv.terminate(5s), 0);  // the second SIGTERM
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(ServiceTest, TheShutdownTimeoutEndsADrainThatWouldLastLonger) {
    server_process srv({"--drain-delay-ms", "20000", "--shutdown-timeout-ms", "1000"});
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("s", "/default/x");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    const auto t0 = std::chrono::steady_clock::now();
    srv.signal(SIGTERM);
    // Wait for the exit without a second signal.
    ASSERT_TRUE(eventually([&] { return !srv.running(); }, 5s));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(ServiceTest, ABudgetReachedMidConversationIsAnswered429WithItsReset) {
    const auto admin = free_port();
    server_process srv({"--admin-listen", "127.0.0.1:" + std::to_string(admin),
                        "--chat-max-tokens-per-user", "40", "--chat-budget-window", "1h",
                        "--demo-pace-ms", "0"});
    auto chat = [&](const std::string& user, const std::string& prompt) {
        return http_request(
            srv.port(), http::verb::post, "/chat",
            R"({"userId":")" + user + R"(","prompt":")" + prompt + R"(","wait":true})",
            {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json"}});
    };
    // Turns of one conversation until the budget is spent; the demo model reports usage.
    int accepted = 0;
    http_result last;
    for (int turn = 0; turn < 20; ++turn) {
        last = chat("alice", "tell me about turn " + std::to_string(turn));
        if (last.status != 200)
            break;
        ++accepted;
    }
    ASSERT_GE(accepted, 1) << last.body;
    ASSERT_EQ(last.status, 429u) << last.body;
    EXPECT_NE(last.body.find("LimitExceededException"), std::string::npos) << last.body;
    EXPECT_NE(last.body.find("of 40 tokens"), std::string::npos) << last.body;
    const auto retry = last.headers.find("retry-after");
    ASSERT_NE(retry, last.headers.end());
    EXPECT_GT(std::stoi(std::string(retry->value())), 0);
    EXPECT_LE(std::stoi(std::string(retry->value())), 3601);

    auto usage = get(srv.port(), "/chat/usage?userId=alice", {{"X-Api-Key", srv.api_key()}});
    ASSERT_EQ(usage.status, 200u) << usage.body;
    auto u = json::parse(usage.body).as_object();
    EXPECT_EQ(u.at("streams").as_int64(), accepted);
    EXPECT_GE(u.at("window").at("usedTokens").as_int64(), 40);
    EXPECT_EQ(u.at("window").at("remainingTokens").as_int64(), 0);
    EXPECT_EQ(u.at("window").at("limitTokens").as_int64(), 40);
    EXPECT_EQ(u.at("totalTokens").as_int64(),
              u.at("inputTokens").as_int64() + u.at("outputTokens").as_int64());
    // Another user has the whole budget.
    EXPECT_EQ(chat("bob", "hello").status, 200u);
    auto bob =
        json::parse(get(srv.port(), "/chat/usage?userId=bob", {{"X-Api-Key", srv.api_key()}}).body)
            .as_object();
    EXPECT_EQ(bob.at("streams").as_int64(), 1);
    const auto m = get(admin, "/metrics").body;
    const double in = sample(
        m,
        R"(eventcast_chat_tokens_total{provider="demo",model="eventcast-demo-1",direction="input"})");
    const double out = sample(
        m,
        R"(eventcast_chat_tokens_total{provider="demo",model="eventcast-demo-1",direction="output"})");
    EXPECT_GT(in, 0) << m;
    EXPECT_GT(out, 0) << m;
    EXPECT_EQ(in + out, u.at("totalTokens").as_int64() + bob.at("totalTokens").as_int64());
}

}  // namespace
}  // namespace eventcast::testing

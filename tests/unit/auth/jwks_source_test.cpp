// Tests src/auth/jwks_source.cpp: key sets from a file and from a loopback http:// URL served by a
// small Beast server in this test (refresh on an unknown kid, the rate limit, periodic refresh,
// failures that keep the last good set, unreachable and silent servers), fetched over the
// outbound transport (aws/transport.hpp), and a file source without any transport.
#include "auth/jwks_source.hpp"

#include "auth/jwt_test_keys.hpp"
#include "aws/transport.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace eventcast::auth {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

// libcurl wants one global init before threads use it (main does this in the server).
const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;

// Serves one body at any path on 127.0.0.1, counting requests. `silent` accepts and never answers.
class jwks_server {
public:
    jwks_server() {
        accept();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~jwks_server() {
        ioc_.stop();
        thread_.join();
    }
    jwks_server(const jwks_server&) = delete;
    jwks_server& operator=(const jwks_server&) = delete;

    void set_body(std::string body, http::status status = http::status::ok) {
        std::lock_guard lock(mutex_);
        body_ = std::move(body);
        status_ = status;
    }
    void set_silent() { silent_ = true; }
    int requests() const { return requests_; }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) +
               "/.well-known/jwks.json";
    }

private:
    struct exchange {
        explicit exchange(tcp::socket s) : socket(std::move(s)) {}
        tcp::socket socket;
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> request;
        http::response<http::string_body> response;
    };

    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
            if (ec)
                return;
            auto ex = std::make_shared<exchange>(std::move(socket));
            if (silent_) {
                held_.push_back(ex);  // keep the connection open, say nothing
            } else {
                http::async_read(ex->socket, ex->buffer, ex->request,
                                 [this, ex](boost::system::error_code read_ec, std::size_t) {
                                     if (!read_ec)
                                         answer(ex);
                                 });
            }
            accept();
        });
    }

    void answer(const std::shared_ptr<exchange>& ex) {
        ++requests_;
        {
            std::lock_guard lock(mutex_);
            ex->response.result(status_);
            ex->response.body() = body_;
        }
        ex->response.set(http::field::content_type, "application/json");
        ex->response.keep_alive(false);
        ex->response.prepare_payload();
        http::async_write(ex->socket, ex->response, [ex](boost::system::error_code, std::size_t) {
            boost::system::error_code ignored;
            ex->socket.shutdown(tcp::socket::shutdown_both, ignored);
        });
    }

    asio::io_context ioc_;
    tcp::acceptor acceptor_{ioc_, {asio::ip::make_address("127.0.0.1"), 0}};
    std::vector<std::shared_ptr<exchange>> held_;
    std::mutex mutex_;
    std::string body_;
    http::status status_ = http::status::ok;
    std::atomic<bool> silent_{false};
    std::atomic<int> requests_{0};
    std::thread thread_;
};

// Threads of this process (/proc/self/task), to show that something started none.
std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

class JwksSourceTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        key1_ = testing::make_ec_key().release();
        key2_ = testing::make_ec_key().release();
    }
    static void TearDownTestSuite() {
        EVP_PKEY_free(key1_);
        EVP_PKEY_free(key2_);
    }
    void SetUp() override {
        ASSERT_TRUE(curl_ready);
        dir_ = std::filesystem::temp_directory_path() /
               ("eventcast-jwks-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    static std::string set_of(EVP_PKEY* key, std::string_view kid) {
        return testing::jwks_json({testing::jwk_of(key, kid)});
    }

    void write_file(const std::string& text) {
        std::ofstream(dir_ / "jwks.json", std::ios::trunc) << text;
    }
    std::string file() const { return (dir_ / "jwks.json").string(); }

    /// refresh() and wait (bounded) for its callback; returns the thread it ran on.
    static std::optional<std::thread::id> refresh_and_wait(jwks_source& source) {
        auto done = std::make_shared<std::promise<std::thread::id>>();
        auto ran = done->get_future();
        source.refresh([done] { done->set_value(std::this_thread::get_id()); });
        if (ran.wait_for(30s) != std::future_status::ready)
            return std::nullopt;
        return ran.get();
    }

    static jwt_failure verify_failure(const jwks_source& source, EVP_PKEY* key,
                                      std::string_view kid) {
        const auto now = std::chrono::system_clock::now();
        const auto exp =
            std::chrono::duration_cast<std::chrono::seconds>((now + 1h).time_since_epoch()).count();
        const auto token = testing::sign_token(
            key, kid, boost::json::object{{"iss", "https://idp"}, {"sub", "u"}, {"exp", exp}});
        jwt_policy policy;
        policy.issuer = "https://idp";
        auto keys = source.current();
        if (!keys)
            return jwt_failure::unknown_key;
        auto r = verify_jwt(token, *keys, policy, now);
        EXPECT_FALSE(r) << "token verified";
        return r ? jwt_failure::malformed : r.error().kind;
    }
    static bool verifies(const jwks_source& source, EVP_PKEY* key, std::string_view kid) {
        const auto now = std::chrono::system_clock::now();
        const auto exp =
            std::chrono::duration_cast<std::chrono::seconds>((now + 1h).time_since_epoch()).count();
        const auto token = testing::sign_token(
            key, kid, boost::json::object{{"iss", "https://idp"}, {"sub", "u"}, {"exp", exp}});
        jwt_policy policy;
        policy.issuer = "https://idp";
        auto keys = source.current();
        return keys && verify_jwt(token, *keys, policy, now).has_value();
    }

    boost::system::result<std::unique_ptr<jwks_source>, std::string> start_at(
        std::string location, std::chrono::seconds min_refresh = 30s,
        std::chrono::seconds refresh = 3600s, std::chrono::seconds timeout = 10s) {
        jwks_source::options opts;
        opts.location = std::move(location);
        opts.min_refresh_interval = min_refresh;
        opts.refresh_interval = refresh;
        opts.fetch_timeout = timeout;
        return jwks_source::start(std::move(opts), &transport_);
    }

    // Declared first: outlives every source a test makes.
    aws::transport transport_;
    static inline EVP_PKEY* key1_ = nullptr;
    static inline EVP_PKEY* key2_ = nullptr;
    std::filesystem::path dir_;
};

// ---- files ---------------------------------------------------------------------------------

TEST_F(JwksSourceTest, LoadsAFileAtStartAndRereadsItOnRefresh) {
    write_file(set_of(key1_, "k1"));
    auto source = start_at(file(), 0s);
    ASSERT_TRUE(source) << source.error();
    auto& s = **source;
    ASSERT_TRUE(s.current());
    EXPECT_TRUE(s.current()->contains("k1"));
    EXPECT_TRUE(verifies(s, key1_, "k1"));

    write_file(set_of(key2_, "k2"));
    EXPECT_EQ(verify_failure(s, key2_, "k2"), jwt_failure::unknown_key);
    const auto ran_on = refresh_and_wait(s);
    ASSERT_TRUE(ran_on);
    EXPECT_NE(*ran_on, std::this_thread::get_id()) << "done must run on the transport thread";
    EXPECT_TRUE(verifies(s, key2_, "k2"));
    EXPECT_FALSE(s.current()->contains("k1"));
    EXPECT_EQ(s.statistics().fetches, 2u);
}

TEST_F(JwksSourceTest, RefusesAMissingOrInvalidFileAtStart) {
    auto missing = start_at(file());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), "jwks file '" + file() + "' cannot be opened");
    write_file("{}");
    auto empty = start_at(file());
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error(), "jwks file '" + file() + "': key set has no \"keys\" array");
    auto none = start_at("");
    ASSERT_FALSE(none);
}

TEST_F(JwksSourceTest, KeepsTheLastGoodSetWhenTheFileGoesBad) {
    write_file(set_of(key1_, "k1"));
    auto source = start_at(file(), 0s);
    ASSERT_TRUE(source) << source.error();
    write_file("not json");
    ASSERT_TRUE(refresh_and_wait(**source));
    EXPECT_TRUE(verifies(**source, key1_, "k1"));
    const auto stats = (*source)->statistics();
    EXPECT_EQ(stats.failures, 1u);
    EXPECT_NE(stats.last_error.find("key set is not valid JSON"), std::string::npos)
        << stats.last_error;
}

// ---- URLs ----------------------------------------------------------------------------------

TEST_F(JwksSourceTest, RefusesNonLoopbackHttpAndOtherSchemes) {
    auto plain = start_at("http://idp.example.com/jwks.json");
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error(),
              "jwks URL 'http://idp.example.com/jwks.json': http:// is allowed only for loopback "
              "hosts (127.0.0.0/8, [::1], localhost); use https://");
    auto ftp = start_at("ftp://127.0.0.1/jwks.json");
    ASSERT_FALSE(ftp);
    EXPECT_EQ(ftp.error(), "jwks URL 'ftp://127.0.0.1/jwks.json': scheme must be https");
    EXPECT_FALSE(start_at("https://"));
    EXPECT_FALSE(start_at("not a url://x"));
    for (const char* tricky :
         {"http://127.0.0.1.example.com/jwks.json", "http://localhost.example.com/jwks.json",
          "http://127.0.0.1@idp.example.com/jwks.json", "http://[::2]/jwks"})
        EXPECT_FALSE(start_at(tricky)) << tricky;
    // Accepted (nothing listens there; the fetch fails later, on the transport).
    for (const char* ok : {"https://127.0.0.1:9/jwks.json", "http://localhost:9/jwks.json",
                           "http://[::1]:9/jwks.json", "http://127.3.2.1:9/jwks.json"}) {
        auto s = start_at(ok, 30s, 3600s, 1s);
        EXPECT_TRUE(s) << ok << ": " << (s ? "" : s.error());
    }
}

TEST_F(JwksSourceTest, FetchesFromALoopbackUrlOnTheTransport) {
    jwks_server server;
    server.set_body(set_of(key1_, "k1"));
    auto source = start_at(server.url());
    ASSERT_TRUE(source) << source.error();
    const auto ran_on = refresh_and_wait(**source);
    ASSERT_TRUE(ran_on);
    EXPECT_NE(*ran_on, std::this_thread::get_id());
    EXPECT_TRUE(verifies(**source, key1_, "k1"));
    EXPECT_EQ(server.requests(), 1);
}

TEST_F(JwksSourceTest, RefetchesWhenATokenNamesAnUnknownKid) {
    jwks_server server;
    server.set_body(set_of(key1_, "k1"));
    auto source = start_at(server.url(), 0s);
    ASSERT_TRUE(source) << source.error();
    auto& s = **source;
    ASSERT_TRUE(refresh_and_wait(s));
    ASSERT_TRUE(verifies(s, key1_, "k1"));
    const int before = server.requests();

    server.set_body(
        testing::jwks_json({testing::jwk_of(key1_, "k1"), testing::jwk_of(key2_, "k2")}));
    ASSERT_EQ(verify_failure(s, key2_, "k2"), jwt_failure::unknown_key);
    ASSERT_TRUE(refresh_and_wait(s));
    EXPECT_TRUE(verifies(s, key2_, "k2"));
    EXPECT_TRUE(verifies(s, key1_, "k1"));
    EXPECT_EQ(server.requests(), before + 1);
}

TEST_F(JwksSourceTest, RefreshesAtMostOncePerMinimumInterval) {
    jwks_server server;
    server.set_body(set_of(key1_, "k1"));
    auto source = start_at(server.url(), 3600s);
    ASSERT_TRUE(source) << source.error();
    auto& s = **source;
    ASSERT_TRUE(refresh_and_wait(s));  // waits for the first fetch, or is rate-limited after it
    ASSERT_TRUE(s.current());
    EXPECT_EQ(server.requests(), 1);

    server.set_body(set_of(key2_, "k2"));
    const auto limited_before = s.statistics().rate_limited;
    for (int i = 0; i < 5; ++i) {
        const auto ran_on = refresh_and_wait(s);
        ASSERT_TRUE(ran_on) << "a rate-limited refresh still calls back";
        EXPECT_NE(*ran_on, std::this_thread::get_id());
    }
    EXPECT_EQ(server.requests(), 1) << "tokens naming new kids must not hammer the provider";
    EXPECT_EQ(s.statistics().rate_limited, limited_before + 5);
    EXPECT_EQ(verify_failure(s, key2_, "k2"), jwt_failure::unknown_key);
}

TEST_F(JwksSourceTest, RefreshesPeriodically) {
    jwks_server server;
    server.set_body(set_of(key1_, "k1"));
    auto source = start_at(server.url(), 30s, 1s);
    ASSERT_TRUE(source) << source.error();
    ASSERT_TRUE(refresh_and_wait(**source));
    server.set_body(set_of(key2_, "k2"));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!verifies(**source, key2_, "k2") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    EXPECT_TRUE(verifies(**source, key2_, "k2"));
    EXPECT_GE(server.requests(), 2);
}

TEST_F(JwksSourceTest, UnreachableUrlGivesAnErrorNotAHang) {
    std::string url;
    {
        asio::io_context ioc;
        tcp::acceptor closed(ioc, {asio::ip::make_address("127.0.0.1"), 0});
        url = "http://127.0.0.1:" + std::to_string(closed.local_endpoint().port()) + "/jwks";
    }  // closed: connections are refused
    auto source = start_at(url, 30s, 3600s, 5s);
    ASSERT_TRUE(source) << source.error();
    ASSERT_TRUE(refresh_and_wait(**source)) << "the callback must come even when fetching fails";
    EXPECT_FALSE((*source)->current());
    const auto stats = (*source)->statistics();
    EXPECT_EQ(stats.failures, 1u);
    EXPECT_EQ(stats.last_error.rfind("jwks URL '" + url + "': ", 0), 0u) << stats.last_error;
}

TEST_F(JwksSourceTest, SilentServerTimesOut) {
    jwks_server server;
    server.set_silent();
    auto source = start_at(server.url(), 30s, 3600s, 1s);
    ASSERT_TRUE(source) << source.error();
    ASSERT_TRUE(refresh_and_wait(**source));
    EXPECT_FALSE((*source)->current());
    EXPECT_NE((*source)->statistics().last_error.find("imed out"), std::string::npos)
        << (*source)->statistics().last_error;
}

TEST_F(JwksSourceTest, HttpErrorsAndBadBodiesKeepTheLastGoodSet) {
    jwks_server server;
    server.set_body(set_of(key1_, "k1"));
    auto source = start_at(server.url(), 0s);
    ASSERT_TRUE(source) << source.error();
    auto& s = **source;
    ASSERT_TRUE(refresh_and_wait(s));
    ASSERT_TRUE(verifies(s, key1_, "k1"));

    server.set_body("{\"message\":\"not found\"}", http::status::not_found);
    ASSERT_TRUE(refresh_and_wait(s));
    EXPECT_EQ(s.statistics().last_error,
              "jwks URL '" + server.url() + "': HTTP status 404; expected 200");
    server.set_body("<html>", http::status::ok);
    ASSERT_TRUE(refresh_and_wait(s));
    EXPECT_NE(s.statistics().last_error.find("not valid JSON"), std::string::npos);
    server.set_body(std::string(jwks::max_json_bytes + 10, ' '));
    ASSERT_TRUE(refresh_and_wait(s));
    EXPECT_NE(s.statistics().last_error.find("answer is over 1048576 bytes"), std::string::npos)
        << s.statistics().last_error;
    EXPECT_TRUE(verifies(s, key1_, "k1"));
}

TEST_F(JwksSourceTest, DestroyingTheSourceAbortsAFetchInFlight) {
    jwks_server server;
    server.set_silent();
    std::atomic<bool> called{false};
    {
        auto source = start_at(server.url(), 30s, 3600s, 60s);
        ASSERT_TRUE(source) << source.error();
        (*source)->refresh([&] { called = true; });
        std::this_thread::sleep_for(50ms);  // let the fetch start (not required for the test)
    }
    EXPECT_FALSE(called) << "callbacks still pending at destruction are dropped";
}

TEST_F(JwksSourceTest, DestroyingTheSourceAfterTheTransportStoppedDoesNotHang) {
    jwks_server server;
    server.set_silent();
    std::atomic<int> called{0};
    {
        auto source = start_at(server.url(), 30s, 3600s, 60s);
        ASSERT_TRUE(source) << source.error();
        (*source)->refresh([&] { ++called; });
        std::this_thread::sleep_for(50ms);
        // As at shutdown: the transport stops (ending the fetch, which calls back once) before
        // the authorizer and its sources are destroyed.
        transport_.stop();
        EXPECT_LE(called.load(), 1);
        EXPECT_FALSE((*source)->current());
    }
    EXPECT_LE(called.load(), 1);
}

TEST_F(JwksSourceTest, QueuedWorkFindsNothingOnceTheSourceIsGone) {
    // Timers and a rate-limited callback stay queued on the transport after the source is
    // destroyed; they must not touch it (ASan reports a use after free if they do).
    write_file(set_of(key1_, "k1"));
    std::atomic<int> called{0};
    {
        auto source = start_at(file(), 3600s, 1s);  // periodic timer armed 1 s out
        ASSERT_TRUE(source) << source.error();
        (*source)->refresh([&] { ++called; });  // rate-limited: posted to the transport
    }
    std::this_thread::sleep_for(1500ms);  // the periodic timer fires into nothing
    EXPECT_LE(called.load(), 1);
    auto probe = std::make_shared<std::promise<void>>();
    auto ran = probe->get_future();
    transport_.post([probe] { probe->set_value(); });
    EXPECT_EQ(ran.wait_for(10s), std::future_status::ready) << "the transport still runs";
}

TEST_F(JwksSourceTest, FileSourceWithoutATransportStartsNoThreadAndRefreshesInline) {
    write_file(set_of(key1_, "k1"));
    const auto threads_before = thread_count();
    jwks_source::options opts;
    opts.location = file();
    opts.min_refresh_interval = 0s;
    auto source = jwks_source::start(std::move(opts), nullptr);
    ASSERT_TRUE(source) << source.error();
    EXPECT_EQ(thread_count(), threads_before) << "no transport: nothing in the background";
    EXPECT_TRUE(verifies(**source, key1_, "k1"));
    write_file(set_of(key2_, "k2"));
    std::optional<std::thread::id> ran_on;
    (*source)->refresh([&] { ran_on = std::this_thread::get_id(); });
    ASSERT_TRUE(ran_on) << "without a transport the callback runs before refresh() returns";
    EXPECT_EQ(*ran_on, std::this_thread::get_id());
    EXPECT_TRUE(verifies(**source, key2_, "k2"));
    EXPECT_EQ(thread_count(), threads_before);
}

TEST_F(JwksSourceTest, UrlSourceNeedsATransport) {
    jwks_source::options opts;
    opts.location = "https://idp.example/jwks.json";
    auto source = jwks_source::start(std::move(opts), nullptr);
    ASSERT_FALSE(source);
    EXPECT_EQ(source.error(),
              "jwks URL 'https://idp.example/jwks.json': needs the outbound HTTP transport");
}

}  // namespace
}  // namespace eventcast::auth

// The route table as the HTTP session drives it: targets with repeated slashes reach their
// routes, nothing else is rewritten, and OPTIONS preflights carry the CORS decisions of
// net/cors.hpp with the methods the route table has. No sockets.
#include "net/http_router.hpp"

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include <optional>

namespace eventcast::net {
namespace {

namespace http = boost::beast::http;

class RouterTest : public ::testing::Test {
protected:
    void SetUp() override { make(); }

    void make() {
        auto named = [this](std::string name) {
            return
                [this, name](const http_request&, const route_args& args, http_responder respond) {
                    last_route_ = name;
                    last_param_ = args.param_count ? std::string(args.param(0)) : std::string();
                    http_response res{http::status::ok, 11};
                    res.body() = name;
                    respond(std::move(res));
                };
        };
        std::vector<route> routes{
            {http::verb::post, "/event", named("publish")},
            {http::verb::post, "/chat", named("chat")},
            {http::verb::get, "/chat/{streamId}", named("status")},
            {http::verb::post, "/chat/{streamId}/cancel", named("cancel")},
            {http::verb::get, "/healthz", named("health")},
        };
        router_ = std::make_unique<router>(
            std::move(routes),
            [this](const http_request& req, std::string_view allow) {
                return preflight_reply(req, allow, cfg_);
            },
            cfg_);
    }

    http_response send(http::verb method, std::string target,
                       std::vector<std::pair<http::field, std::string>> headers = {}) {
        http_request req{method, target, 11};
        for (auto& [f, v] : headers)
            req.set(f, v);
        last_route_.clear();
        std::optional<http_response> got;
        router_->dispatch(req, [&](http_response res) { got = std::move(res); });
        EXPECT_TRUE(got.has_value()) << "no answer for " << target;
        return got ? std::move(*got) : http_response{};
    }

    http_response preflight(std::string target, std::string origin, std::string request_headers) {
        return send(http::verb::options, std::move(target),
                    {{http::field::origin, std::move(origin)},
                     {http::field::access_control_request_method, "POST"},
                     {http::field::access_control_request_headers, std::move(request_headers)}});
    }

    core::config cfg_;
    std::unique_ptr<router> router_;
    std::string last_route_;
    std::string last_param_;
};

TEST_F(RouterTest, RepeatedSlashesReachTheirRoutes) {
    EXPECT_EQ(send(http::verb::post, "//chat").result_int(), 200u);
    EXPECT_EQ(last_route_, "chat");
    EXPECT_EQ(send(http::verb::post, "//event").result_int(), 200u);
    EXPECT_EQ(last_route_, "publish");
    EXPECT_EQ(send(http::verb::post, "/chat//s-1/cancel").result_int(), 200u);
    EXPECT_EQ(last_route_, "cancel");
    EXPECT_EQ(last_param_, "s-1");
    EXPECT_EQ(send(http::verb::get, "///chat///s-2?x=1//").result_int(), 200u);
    EXPECT_EQ(last_route_, "status");
    EXPECT_EQ(last_param_, "s-2");
}

TEST_F(RouterTest, NothingButSlashesIsRewritten) {
    for (const char* target : {"/chat/../event", "/%2Fchat", "/CHAT", "/chat/./x/cancel"}) {
        const auto res = send(http::verb::post, target);
        EXPECT_EQ(res.result_int(), 404u) << target;
        EXPECT_TRUE(last_route_.empty()) << target << " reached " << last_route_;
    }
    // A trailing slash stays, so it is another path (API Gateway: 404 too).
    EXPECT_EQ(send(http::verb::post, "/chat/").result_int(), 404u);
}

TEST_F(RouterTest, NotFoundListsTheRoutesFromTheTable) {
    const auto res = send(http::verb::get, "/nope");
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_NE(res.body().find("POST /event, POST /chat, GET /chat/{streamId}"), std::string::npos)
        << res.body();
}

TEST_F(RouterTest, WrongMethodIs405WithAllowFromTheTable) {
    const auto res = send(http::verb::get, "//chat");
    EXPECT_EQ(res.result_int(), 405u);
    EXPECT_EQ(res[http::field::allow], "POST, OPTIONS");
}

// What Chromium asks before the AWS sample's fetch: its page sends Access-Control-Allow-*
// as request headers, so the preflight must allow exactly those names too.
TEST_F(RouterTest, PreflightFromAnyOriginAllowsTheRequestedHeadersAndTheRouteMethods) {
    const auto res = preflight("//chat", "http://localhost:5173",
                               "access-control-allow-headers,access-control-allow-methods,"
                               "access-control-allow-origin,content-type,x-api-key");
    EXPECT_EQ(res.result_int(), 204u);
    EXPECT_EQ(res[http::field::access_control_allow_origin], "*");
    EXPECT_EQ(res[http::field::access_control_allow_methods], "POST, OPTIONS");
    EXPECT_EQ(res[http::field::access_control_allow_headers],
              "access-control-allow-headers, access-control-allow-methods, "
              "access-control-allow-origin, content-type, x-api-key");
}

TEST_F(RouterTest, PreflightMethodsComeFromThePathsRoutes) {
    const auto res = preflight("/chat/s-1", "http://localhost:5173", "x-api-key");
    EXPECT_EQ(res[http::field::access_control_allow_methods], "GET, HEAD, OPTIONS");
}

TEST_F(RouterTest, ConfiguredOriginIsEchoedAndOthersGetNoCorsHeaders) {
    cfg_.cors_origins = {"https://app.example.com"};
    make();
    auto ok = preflight("/chat", "https://app.example.com", "content-type, x-api-key");
    EXPECT_EQ(ok.result_int(), 204u);
    EXPECT_EQ(ok[http::field::access_control_allow_origin], "https://app.example.com");
    EXPECT_NE(ok[http::field::vary].find("Origin"), std::string_view::npos);
    EXPECT_EQ(ok[http::field::access_control_allow_headers], "content-type, x-api-key");

    auto refused = preflight("/chat", "https://evil.example.com", "content-type, x-api-key");
    EXPECT_EQ(refused.result_int(), 204u);
    EXPECT_EQ(refused.count(http::field::access_control_allow_origin), 0u);
    EXPECT_EQ(refused.count(http::field::access_control_allow_headers), 0u);
    EXPECT_EQ(refused.count(http::field::access_control_allow_methods), 0u);
}

TEST_F(RouterTest, RepliesCarryCorsOnlyForAnAllowedOrigin) {
    cfg_.cors_origins = {"https://app.example.com"};
    http_response res{http::status::ok, 11};
    add_cors(res, cfg_, "https://app.example.com");
    EXPECT_EQ(res[http::field::access_control_allow_origin], "https://app.example.com");
    EXPECT_NE(res[http::field::access_control_expose_headers].find("x-amzn-RequestId"),
              std::string_view::npos);
    http_response other{http::status::ok, 11};
    add_cors(other, cfg_, "https://evil.example.com");
    EXPECT_EQ(other.count(http::field::access_control_allow_origin), 0u);
    http_response none{http::status::ok, 11};
    add_cors(none, cfg_, "");
    EXPECT_EQ(none.count(http::field::access_control_allow_origin), 0u);
}

}  // namespace
}  // namespace eventcast::net

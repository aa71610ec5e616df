// Tests src/net/http_router.cpp: pattern matching, dispatch by method, HEAD from GET, OPTIONS as
// the preflight with the path's methods, 405 with Allow, and the 404's listing, all from the
// table's rows; then the target's path normalisation and the CORS answers. No sockets: requests
// are built in memory, responses recorded.
#include "net/http_router.hpp"

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace eventcast::net {
namespace {

namespace http = boost::beast::http;

http_request request(http::verb method, std::string target) {
    http_request req{method, target, 11};
    req.set(http::field::host, "localhost");
    return req;
}

http_response text_reply(std::string body) {
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

class HttpRouterTest : public ::testing::Test {
protected:
    // A table shaped like net/http_routes.cpp's: fixed paths, a {param} route, an unlisted one.
    std::vector<route> rows() {
        auto named = [this](std::string name) {
            return
                [this, name](const http_request&, const route_args& args, http_responder respond) {
                    calls.push_back(name);
                    last_args = std::vector<std::string>();
                    for (std::size_t i = 0; i < args.param_count; ++i)
                        last_args->emplace_back(args.param(i));
                    respond(text_reply(name + " answered"));
                };
        };
        std::vector<route> r;
        r.emplace_back(http::verb::post, "/event", named("publish"));
        r.emplace_back(http::verb::get, "/event/realtime", named("upgrade"), "(WebSocket upgrade)");
        r.emplace_back(http::verb::post, "/chat", named("chat"));
        r.emplace_back(http::verb::get, "/chat/{streamId}", named("status"));
        r.emplace_back(http::verb::post, "/chat/{streamId}/cancel", named("cancel"));
        r.emplace_back(http::verb::get, "/healthz", named("health"));
        r.emplace_back(http::verb::get, "/app.js", named("file"), "", false);
        return r;
    }

    http_response run(http::verb method, std::string path) {
        std::optional<http_response> got;
        const auto req = request(method, path);
        table_.dispatch(req, path, [&](http_response res) { got = std::move(res); });
        EXPECT_TRUE(got.has_value()) << "no answer for " << path;  // exactly one
        return got ? std::move(*got) : http_response{};
    }

    std::vector<std::string> calls;
    std::optional<std::vector<std::string>> last_args;
    std::vector<std::string> preflights;  // the Allow each preflight was given
    core::config cfg_;
    router table_{rows(),
                  [this](const http_request&, std::string_view allow) {
                      preflights.emplace_back(allow);
                      http_response res{http::status::no_content, 11};
                      res.set(http::field::access_control_allow_methods, allow);
                      return res;
                  },
                  cfg_};
};

TEST_F(HttpRouterTest, PatternsMatchWholeSegments) {
    route_args args;
    EXPECT_TRUE(router::matches("/chat", "/chat", args));
    EXPECT_EQ(args.param_count, 0u);
    EXPECT_TRUE(router::matches("/chat/{id}/cancel", "/chat/abc/cancel", args));
    ASSERT_EQ(args.param_count, 1u);
    EXPECT_EQ(args.param(0), "abc");
    EXPECT_EQ(args.path, "/chat/abc/cancel");
    for (std::string_view path : {"/chat/", "/chatx", "/cha", "/chat/abc", "/chat//cancel",
                                  "/chat/abc/cancel/", "chat/abc/cancel", ""})
        EXPECT_FALSE(router::matches("/chat/{id}/cancel", path, args)) << path;
    EXPECT_FALSE(router::matches("/chat/{id}", "/chat/", args));  // a {name} is never empty
    EXPECT_TRUE(router::matches("/", "/", args));
}

TEST_F(HttpRouterTest, AtMostFourParametersAreTaken) {
    route_args args;
    EXPECT_TRUE(router::matches("/{a}/{b}/{c}/{d}", "/1/2/3/4", args));
    EXPECT_EQ(args.param(3), "4");
    EXPECT_FALSE(router::matches("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", args));
}

TEST_F(HttpRouterTest, DispatchesByMethodAndPathWithParameters) {
    auto res = run(http::verb::post, "/chat/s-1/cancel");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "cancel answered");
    ASSERT_EQ(calls, std::vector<std::string>{"cancel"});
    EXPECT_EQ(*last_args, std::vector<std::string>{"s-1"});
    run(http::verb::get, "/chat/s-2");
    EXPECT_EQ(calls.back(), "status");
    run(http::verb::post, "/event");
    EXPECT_EQ(calls.back(), "publish");
}

TEST_F(HttpRouterTest, HeadIsTheGetAnswerWithoutItsBody) {
    auto res = run(http::verb::head, "/healthz");
    EXPECT_EQ(calls, std::vector<std::string>{"health"});
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.body().empty());
    EXPECT_EQ(res[http::field::content_length],
              std::to_string(std::string("health answered").size()));
}

TEST_F(HttpRouterTest, HeadOnAPostOnlyPathIs405) {
    auto res = run(http::verb::head, "/event");
    EXPECT_EQ(res.result_int(), 405);
    EXPECT_TRUE(calls.empty());
}

TEST_F(HttpRouterTest, AnotherMethodOnAKnownPathIs405WithAllowFromTheTable) {
    auto res = run(http::verb::delete_, "/event");
    EXPECT_EQ(res.result_int(), 405);
    EXPECT_EQ(res[http::field::allow], "POST, OPTIONS");
    EXPECT_NE(res.body().find("DELETE is not allowed on /event; allowed: POST, OPTIONS"),
              std::string::npos)
        << res.body();
    EXPECT_EQ(res["x-amzn-ErrorType"], "BadRequestException");
    EXPECT_EQ(run(http::verb::put, "/healthz")[http::field::allow], "GET, HEAD, OPTIONS");
    EXPECT_TRUE(calls.empty());
}

TEST_F(HttpRouterTest, AllowListsEveryMethodOfThePathOnce) {
    EXPECT_EQ(table_.allow("/chat"), "POST, OPTIONS");
    EXPECT_EQ(table_.allow("/chat/x"), "GET, HEAD, OPTIONS");
    EXPECT_EQ(table_.allow("/chat/x/cancel"), "POST, OPTIONS");
    EXPECT_EQ(table_.allow("/nowhere"), "");
}

TEST_F(HttpRouterTest, OptionsIsThePreflightWithThePathsMethods) {
    auto res = run(http::verb::options, "/chat");
    EXPECT_EQ(res.result_int(), 204);
    ASSERT_EQ(preflights, std::vector<std::string>{"POST, OPTIONS"});
    EXPECT_EQ(res[http::field::access_control_allow_methods], "POST, OPTIONS");
    EXPECT_TRUE(calls.empty());
}

TEST_F(HttpRouterTest, OptionsOnAnUnknownPathIs404NotAPreflight) {
    EXPECT_EQ(run(http::verb::options, "/nowhere").result_int(), 404);
    EXPECT_TRUE(preflights.empty());
}

TEST_F(HttpRouterTest, UnknownPathIs404ListingTheRoutesFromTheTable) {
    auto res = run(http::verb::get, "/nowhere");
    EXPECT_EQ(res.result_int(), 404);
    EXPECT_EQ(res["x-amzn-ErrorType"], "NotFoundException");
    const std::string listing =
        "POST /event, GET /event/realtime (WebSocket upgrade), POST /chat, GET /chat/{streamId}, "
        "POST /chat/{streamId}/cancel, GET /healthz";
    EXPECT_EQ(table_.listing(), listing);  // the unlisted /app.js is not in it
    EXPECT_NE(res.body().find("no route for GET /nowhere; routes: " + listing), std::string::npos)
        << res.body();
    EXPECT_TRUE(calls.empty());
}

TEST_F(HttpRouterTest, UnlistedRoutesAreStillServed) {
    run(http::verb::get, "/app.js");
    EXPECT_EQ(calls, std::vector<std::string>{"file"});
}

TEST_F(HttpRouterTest, TheQuotedPathInAnErrorIsBounded) {
    const std::string path = "/" + std::string(5000, 'a');
    auto res = run(http::verb::get, path);
    EXPECT_EQ(res.result_int(), 404);
    EXPECT_EQ(res.body().find(std::string(101, 'a')), std::string::npos);
}

// The table as the HTTP session drives it (dispatch on the request target), with the real
// preflight (preflight_reply): repeated slashes reach their routes, nothing else is rewritten,
// and preflights carry net/cors.hpp's decisions with the methods of the path's routes.
class HttpRouterCorsTest : public ::testing::Test {
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

TEST_F(HttpRouterCorsTest, RepeatedSlashesReachTheirRoutes) {
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

TEST_F(HttpRouterCorsTest, NothingButSlashesIsRewritten) {
    for (const char* target : {"/chat/../event", "/%2Fchat", "/CHAT", "/chat/./x/cancel"}) {
        const auto res = send(http::verb::post, target);
        EXPECT_EQ(res.result_int(), 404u) << target;
        EXPECT_TRUE(last_route_.empty()) << target << " reached " << last_route_;
    }
    // A trailing slash stays, so it is another path (API Gateway: 404 too).
    EXPECT_EQ(send(http::verb::post, "/chat/").result_int(), 404u);
}

TEST_F(HttpRouterCorsTest, NotFoundListsTheRoutesFromTheTable) {
    const auto res = send(http::verb::get, "/nope");
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_NE(res.body().find("POST /event, POST /chat, GET /chat/{streamId}"), std::string::npos)
        << res.body();
}

TEST_F(HttpRouterCorsTest, WrongMethodIs405WithAllowFromTheTable) {
    const auto res = send(http::verb::get, "//chat");
    EXPECT_EQ(res.result_int(), 405u);
    EXPECT_EQ(res[http::field::allow], "POST, OPTIONS");
}

// What Chromium asks before the AWS sample's fetch: its page sends Access-Control-Allow-*
// as request headers, so the preflight must allow exactly those names too.
TEST_F(HttpRouterCorsTest, PreflightFromAnyOriginAllowsTheRequestedHeadersAndTheRouteMethods) {
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

TEST_F(HttpRouterCorsTest, PreflightMethodsComeFromThePathsRoutes) {
    const auto res = preflight("/chat/s-1", "http://localhost:5173", "x-api-key");
    EXPECT_EQ(res[http::field::access_control_allow_methods], "GET, HEAD, OPTIONS");
}

TEST_F(HttpRouterCorsTest, ConfiguredOriginIsEchoedAndOthersGetNoCorsHeaders) {
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

TEST_F(HttpRouterCorsTest, RepliesCarryCorsOnlyForAnAllowedOrigin) {
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

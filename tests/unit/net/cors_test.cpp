// CORS decisions: preflights echo what was asked, responses carry the origin when allowed,
// disallowed origins get nothing, and the WebSocket Origin check.
#include "net/cors.hpp"

#include <gtest/gtest.h>

#include <array>

namespace eventcast::net {
namespace {

constexpr std::array<std::string_view, 1> post_only{"POST"};
constexpr std::array<std::string_view, 2> get_post{"GET", "POST"};

// What Chromium asks for the AWS sample's fetch(): its page sets three Access-Control-* request
// headers next to content-type and x-api-key.
constexpr std::string_view sample_request_headers =
    "access-control-allow-headers,access-control-allow-methods,access-control-allow-origin,"
    "content-type,x-api-key";

TEST(CorsTest, AnyOriginPreflightAllowsExactlyTheRequestedHeaders) {
    const cors_policy any({"*"});
    const auto h = preflight_headers(any, "http://localhost:5173", sample_request_headers, post_only);
    EXPECT_EQ(h.allow_origin, "*");
    EXPECT_EQ(h.allow_headers,
              "access-control-allow-headers, access-control-allow-methods, "
              "access-control-allow-origin, content-type, x-api-key");
    EXPECT_EQ(h.allow_methods, "POST, OPTIONS");
    EXPECT_EQ(h.max_age, "600");
    EXPECT_EQ(h.vary, "Access-Control-Request-Headers");
    EXPECT_TRUE(h.expose_headers.empty());
}

TEST(CorsTest, PreflightAnswersTheRouteMethods) {
    const cors_policy any({"*"});
    EXPECT_EQ(preflight_headers(any, "https://a.example", "", get_post).allow_methods,
              "GET, POST, OPTIONS");
    EXPECT_EQ(preflight_headers(any, "https://a.example", "", {}).allow_methods, "OPTIONS");
}

TEST(CorsTest, PreflightEchoesAuthorizationWhichAStarWouldNotCover) {
    const cors_policy any({"*"});
    const auto h = preflight_headers(any, "https://a.example", "Authorization, X-Amz-Date",
                                     post_only);
    EXPECT_EQ(h.allow_headers, "authorization, x-amz-date");
}

TEST(CorsTest, ConfiguredOriginIsEchoedWithVary) {
    const cors_policy only({"https://app.example.com"});
    const auto h = preflight_headers(only, "https://app.example.com", "content-type", post_only);
    EXPECT_EQ(h.allow_origin, "https://app.example.com");
    EXPECT_EQ(h.vary, "Origin, Access-Control-Request-Headers");
    const auto r = response_headers(only, "https://app.example.com");
    EXPECT_EQ(r.allow_origin, "https://app.example.com");
    EXPECT_EQ(r.vary, "Origin");
    EXPECT_EQ(r.expose_headers, "x-amzn-ErrorType, x-amzn-RequestId");
}

TEST(CorsTest, DisallowedOriginGetsNoHeadersAtAll) {
    const cors_policy only({"https://app.example.com"});
    EXPECT_TRUE(preflight_headers(only, "https://evil.example", "content-type", post_only).empty());
    EXPECT_TRUE(preflight_headers(only, "https://evil.example", "content-type", post_only)
                    .fields()
                    .empty());
    EXPECT_TRUE(response_headers(only, "https://evil.example").fields().empty());
    // Not a prefix match, not a suffix match, not another port or scheme.
    EXPECT_FALSE(only.allows("https://app.example.com.evil.example"));
    EXPECT_FALSE(only.allows("https://app.example.co"));
    EXPECT_FALSE(only.allows("http://app.example.com"));
    EXPECT_FALSE(only.allows("https://app.example.com:8443"));
    EXPECT_FALSE(only.allows("null"));
}

TEST(CorsTest, NoOriginMeansNoCorsHeaders) {
    const cors_policy any({"*"});
    EXPECT_TRUE(response_headers(any, "").empty());
    EXPECT_TRUE(preflight_headers(any, "", "content-type", post_only).empty());
}

TEST(CorsTest, ConfiguredOriginsCompareWithoutCaseOrTrailingSlash) {
    const cors_policy only({"https://App.Example.com/", "http://localhost:5173"});
    EXPECT_TRUE(only.allows("https://app.example.com"));
    EXPECT_TRUE(only.allows("http://localhost:5173"));
    EXPECT_FALSE(only.any_origin());
    // The echoed origin is the request's, as sent.
    EXPECT_EQ(response_headers(only, "https://app.example.com").allow_origin,
              "https://app.example.com");
}

TEST(CorsTest, StarAmongOthersAllowsAny) {
    const cors_policy mixed({"https://app.example.com", "*"});
    EXPECT_TRUE(mixed.any_origin());
    EXPECT_EQ(response_headers(mixed, "https://other.example").allow_origin, "*");
}

TEST(CorsTest, RequestedHeadersAreTrimmedLowerCasedAndChecked) {
    EXPECT_EQ(requested_headers(" Content-Type ,, X-Api-Key,"), "content-type, x-api-key");
    EXPECT_EQ(requested_headers(""), "");
    EXPECT_EQ(requested_headers("content-type, bad header"), "");
    EXPECT_EQ(requested_headers("content-type, x\r\ny"), "");
    EXPECT_EQ(requested_headers("a:b"), "");
    std::string many;
    for (int i = 0; i < 65; ++i)
        many += "h" + std::to_string(i) + ",";
    EXPECT_EQ(requested_headers(many), "");
    many.resize(many.rfind(",h64"));
    EXPECT_FALSE(requested_headers(many).empty());
}

TEST(CorsTest, InvalidRequestedHeadersAreNotEchoedSoTheBrowserRefuses) {
    const cors_policy any({"*"});
    const auto h = preflight_headers(any, "https://a.example", "x\ry", post_only);
    EXPECT_EQ(h.allow_origin, "*");
    EXPECT_TRUE(h.allow_headers.empty());
    for (const auto& [name, value] : h.fields())
        EXPECT_NE(name, "access-control-allow-headers");
}

TEST(CorsTest, WebSocketOriginCheck) {
    const cors_policy any({"*"});
    EXPECT_TRUE(any.allows_websocket("https://anything.example"));
    EXPECT_TRUE(any.allows_websocket(""));
    const cors_policy only({"https://app.example.com"});
    EXPECT_TRUE(only.allows_websocket("https://app.example.com"));
    EXPECT_TRUE(only.allows_websocket(""));  // not a browser: Node, curl, Amplify in Node
    EXPECT_FALSE(only.allows_websocket("https://evil.example"));
    EXPECT_FALSE(only.allows_websocket("null"));
}

TEST(CorsTest, EmptyListAllowsNoOrigin) {
    const cors_policy none(std::vector<std::string>{});
    EXPECT_FALSE(none.allows("https://a.example"));
    EXPECT_FALSE(none.allows_websocket("https://a.example"));
    EXPECT_TRUE(none.allows_websocket(""));
}

TEST(CorsTest, FieldsListsOnlyWhatIsSet) {
    const cors_policy any({"*"});
    const auto h = response_headers(any, "https://a.example");
    const auto f = h.fields();  // views into h
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].first, "access-control-allow-origin");
    EXPECT_EQ(f[0].second, "*");
    EXPECT_EQ(f[1].first, "access-control-expose-headers");
}

}  // namespace
}  // namespace eventcast::net

// Path normalisation: repeated slashes collapse (as API Gateway does), nothing else changes.
#include "net/http_path.hpp"

#include <gtest/gtest.h>

namespace eventcast::net {
namespace {

TEST(HttpPathTest, CollapsesTheDoubleSlashOfAJoinedBaseUrl) {
    // new URL("https://host").toString() + "/chat" is "https://host//chat".
    EXPECT_EQ(normalize_path("//chat"), "/chat");
    EXPECT_EQ(normalize_path("//event"), "/event");
    EXPECT_EQ(normalize_path("/event//realtime"), "/event/realtime");
}

TEST(HttpPathTest, CollapsesRunsAnywhereInThePath) {
    EXPECT_EQ(normalize_path("/chat//s-1/cancel"), "/chat/s-1/cancel");
    EXPECT_EQ(normalize_path("///chat///s-1////cancel"), "/chat/s-1/cancel");
    EXPECT_EQ(normalize_path("/chat/s-1/cancel//"), "/chat/s-1/cancel/");
}

TEST(HttpPathTest, LeavesEverythingElseAlone) {
    EXPECT_EQ(normalize_path("/chat"), "/chat");
    EXPECT_EQ(normalize_path("/"), "/");
    EXPECT_EQ(normalize_path(""), "");
    EXPECT_EQ(normalize_path("/chat/"), "/chat/");  // a trailing slash is a different path
    EXPECT_EQ(normalize_path("/a/../chat"), "/a/../chat");
    EXPECT_EQ(normalize_path("/./chat"), "/./chat");
    EXPECT_EQ(normalize_path("/%2Fchat"), "/%2Fchat");
    EXPECT_EQ(normalize_path("/%2f%2Fchat"), "/%2f%2Fchat");
    EXPECT_EQ(normalize_path("/Chat"), "/Chat");
    EXPECT_EQ(normalize_path("/chat\\\\x"), "/chat\\\\x");
    EXPECT_EQ(normalize_path("chat//x"), "chat/x");  // not origin-form; still only slashes
}

TEST(HttpPathTest, KeepsNulAndHighBytes) {
    const std::string in("/a\0//\xff", 6);
    EXPECT_EQ(normalize_path(in), std::string("/a\0/\xff", 5));
}

TEST(HttpPathTest, TargetPathStopsAtTheQuery) {
    EXPECT_EQ(target_path("/event/realtime?header=abc&payload=e30="), "/event/realtime");
    EXPECT_EQ(target_path("//chat?x=//y"), "//chat");
    EXPECT_EQ(target_path("/chat"), "/chat");
    EXPECT_EQ(target_path("?q"), "");
}

TEST(HttpPathTest, IsIdempotent) {
    for (const char* p : {"//chat", "/a//b///c", "////", "/x/", "a//"}) {
        const auto once = normalize_path(p);
        EXPECT_EQ(normalize_path(once), once) << p;
    }
}

}  // namespace
}  // namespace eventcast::net

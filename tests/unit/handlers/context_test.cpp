// ctx as AWS's context reference gives it, per operation and auth mode.
#include "handlers/context.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace eventcast::handlers {
namespace {

namespace json = boost::json;

json::value parsed(const invocation& inv) { return json::parse(build_context(inv)); }

TEST(BuildContextTest, PublishHasEventsChannelInfoRequestAndStash) {
    std::vector<std::string> events{R"({"a":1})", R"("text")"};
    std::vector<std::string> ids{"id-1", "id-2"};
    std::vector<std::pair<std::string, std::string>> headers{{"x-api-key", "k"}, {"host", "h"}};
    invocation inv;
    inv.op = operation::publish;
    inv.channel = "/default/room/1";
    inv.ns = "default";
    inv.events = &events;
    inv.ids = &ids;
    inv.headers = &headers;
    auto ctx = parsed(inv).as_object();
    ASSERT_EQ(ctx.at("events").as_array().size(), 2u);
    EXPECT_EQ(ctx.at("events").at(0).at("id"), "id-1");
    EXPECT_EQ(ctx.at("events").at(0).at("payload").at("a"), 1);
    EXPECT_EQ(ctx.at("events").at(1).at("payload"), "text");
    EXPECT_EQ(ctx.at("channel"), "/default/room/1");
    EXPECT_EQ(ctx.at("info").at("channel").at("path"), "/default/room/1");
    EXPECT_EQ(ctx.at("info").at("channel").at("segments"), json::parse(R"(["default","room","1"])"));
    EXPECT_EQ(ctx.at("info").at("channelNamespace").at("name"), "default");
    EXPECT_EQ(ctx.at("info").at("operation"), "PUBLISH");
    EXPECT_EQ(ctx.at("request").at("headers").at("x-api-key"), "k");
    EXPECT_TRUE(ctx.at("request").at("domainName").is_null());
    EXPECT_TRUE(ctx.at("stash").as_object().empty());
    EXPECT_TRUE(ctx.at("identity").is_null());  // API key
}

TEST(BuildContextTest, SubscribeHasNoEventsAndItsPattern) {
    invocation inv;
    inv.op = operation::subscribe;
    inv.channel = "/chat/*";
    inv.ns = "chat";
    auto ctx = parsed(inv).as_object();
    EXPECT_FALSE(ctx.contains("events"));
    EXPECT_EQ(ctx.at("info").at("operation"), "SUBSCRIBE");
    EXPECT_EQ(ctx.at("info").at("channel").at("segments"), json::parse(R"(["chat","*"])"));
}

TEST(BuildContextTest, IdentityIsCopiedAsGiven) {
    invocation inv;
    inv.channel = "/ns/a";
    inv.ns = "ns";
    inv.identity_json = R"({"sub":"u1","groups":["admin"]})";
    auto ctx = parsed(inv).as_object();
    EXPECT_EQ(ctx.at("identity").at("sub"), "u1");
    EXPECT_EQ(ctx.at("identity").at("groups").at(0), "admin");
}

TEST(BuildContextTest, ChannelTextIsEscaped) {
    invocation inv;
    inv.channel = "/ns/\"q\"";
    inv.ns = "ns";
    auto ctx = parsed(inv).as_object();
    EXPECT_EQ(ctx.at("channel"), "/ns/\"q\"");
}

}  // namespace
}  // namespace eventcast::handlers

// Every rule of the onPublish/onSubscribe return contract, including malformed answers.
#include "handlers/result_mapping.hpp"

#include <gtest/gtest.h>

namespace eventcast::handlers {
namespace {

const std::vector<std::string> ids{"a", "b", "c"};

TEST(MapPublishTest, ReturningTheEventsBroadcastsThemInOrder) {
    auto d = map_publish(R"({"ok":[{"id":"a","payload":{"x":1}},{"id":"b","payload":"s"}]})", ids);
    ASSERT_TRUE(d);
    ASSERT_EQ(d->broadcast.size(), 2u);
    EXPECT_EQ(d->broadcast[0].index, 0u);
    EXPECT_EQ(d->broadcast[0].payload, R"({"x":1})");
    EXPECT_EQ(d->broadcast[1].index, 1u);
    EXPECT_EQ(d->broadcast[1].payload, R"("s")");
    EXPECT_TRUE(d->failed.empty());
}

TEST(MapPublishTest, ReorderedEventsKeepTheHandlersOrder) {
    auto d = map_publish(R"({"ok":[{"id":"c","payload":3},{"id":"a","payload":1}]})", ids);
    ASSERT_TRUE(d);
    ASSERT_EQ(d->broadcast.size(), 2u);
    EXPECT_EQ(d->broadcast[0].index, 2u);
    EXPECT_EQ(d->broadcast[1].index, 0u);
}

TEST(MapPublishTest, EmptyArrayAndNullBroadcastNothing) {
    for (const char* env : {R"({"ok":[]})", R"({"ok":null})"}) {
        auto d = map_publish(env, ids);
        ASSERT_TRUE(d) << env;
        EXPECT_TRUE(d->broadcast.empty()) << env;
        EXPECT_TRUE(d->failed.empty()) << env;
    }
}

TEST(MapPublishTest, NullEntriesAreDropped) {
    auto d = map_publish(R"({"ok":[null,{"id":"b","payload":2},null]})", ids);
    ASSERT_TRUE(d);
    ASSERT_EQ(d->broadcast.size(), 1u);
    EXPECT_EQ(d->broadcast[0].index, 1u);
}

TEST(MapPublishTest, AnEventWithAnErrorIsFailedWithItsMessage) {
    auto d = map_publish(R"({"ok":[{"id":"a","payload":1},{"id":"b","error":"too long"}]})", ids);
    ASSERT_TRUE(d);
    ASSERT_EQ(d->broadcast.size(), 1u);
    ASSERT_EQ(d->failed.size(), 1u);
    EXPECT_EQ(d->failed[0].index, 1u);
    EXPECT_EQ(d->failed[0].message, "too long");
}

TEST(MapPublishTest, AnIdThatWasNotPublishedFailsThePublish) {
    auto d = map_publish(R"({"ok":[{"id":"z","payload":1}]})", ids);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().what, failure::kind::bad_result);
    EXPECT_NE(d.error().message.find("'z'"), std::string::npos) << d.error().message;
}

TEST(MapPublishTest, ADuplicateIdFailsThePublish) {
    auto d = map_publish(R"({"ok":[{"id":"a","payload":1},{"id":"a","payload":2}]})", ids);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().what, failure::kind::bad_result);
    EXPECT_NE(d.error().message.find("repeats"), std::string::npos) << d.error().message;
}

TEST(MapPublishTest, MalformedReturnsFailWithTheRuleTheyBreak) {
    const char* cases[] = {
        R"({"ok":{"id":"a","payload":1}})",  // not an array
        R"({"ok":"events"})",
        R"({"ok":42})",
        R"({"ok":[1]})",                       // entry not an object
        R"({"ok":[{"payload":1}]})",           // no id
        R"({"ok":[{"id":7,"payload":1}]})",    // id not a string
        R"({"ok":[{"id":"a"}]})",              // neither payload nor error
    };
    for (const char* env : cases) {
        auto d = map_publish(env, ids);
        ASSERT_FALSE(d) << env;
        EXPECT_EQ(d.error().what, failure::kind::bad_result) << env;
        EXPECT_FALSE(d.error().message.empty()) << env;
    }
}

TEST(MapPublishTest, RefusalsExceptionsAndLimitsBecomeFailures) {
    auto u = map_publish(R"({"refuse":"unauthorized"})", ids);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().what, failure::kind::unauthorized);
    auto e = map_publish(R"({"refuse":"error","message":"no spam","type":"Spam"})", ids);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().what, failure::kind::error);
    EXPECT_EQ(e.error().message, "no spam");
    EXPECT_EQ(e.error().error_type, "Spam");
    auto t = map_publish(R"({"threw":"TypeError: x is undefined"})", ids);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().what, failure::kind::exception);
    EXPECT_NE(t.error().message.find("TypeError: x is undefined"), std::string::npos);
    auto l = map_publish(R"({"limit":"timeout"})", ids);
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().what, failure::kind::timeout);
    auto m = map_publish(R"({"limit":"memory"})", ids);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().what, failure::kind::memory);
}

TEST(MapPublishTest, AnEnvelopeThatIsNotJsonIsAnException) {
    for (const char* env : {"", "{", "[]", "null", R"({"other":1})"}) {
        auto d = map_publish(env, ids);
        ASSERT_FALSE(d) << env;
        EXPECT_EQ(d.error().what, failure::kind::exception) << env;
    }
}

TEST(MapSubscribeTest, ReturningNothingAccepts) {
    EXPECT_FALSE(map_subscribe(R"({"ok":null})"));
    EXPECT_FALSE(map_subscribe(R"({"ok":{"anything":1}})"));
}

TEST(MapSubscribeTest, UnauthorizedAndErrorRefuse) {
    auto u = map_subscribe(R"({"refuse":"unauthorized"})");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->what, failure::kind::unauthorized);
    auto e = map_subscribe(R"({"refuse":"error","message":"closed for today"})");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->what, failure::kind::error);
    EXPECT_EQ(e->message, "closed for today");
    auto t = map_subscribe(R"({"limit":"timeout"})");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->what, failure::kind::timeout);
}

}  // namespace
}  // namespace eventcast::handlers

// Tests src/pubsub/broker.cpp without sockets: matching, fan-out, unsubscribe, expired
// subscribers, trie pruning and concurrent publish/subscribe (run under ASan/UBSan).
#include "pubsub/broker.hpp"

#include "events/message.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace eventcast::pubsub {
namespace {

// Records every frame delivered to it, as prefix + body, like a WebSocket session would write.
class recording_subscriber : public subscriber {
public:
    void deliver(const shared_bytes& prefix, const shared_batch& batch) override {
        std::lock_guard lock(mutex_);
        for (const auto& body : batch->bodies)
            frames_.push_back(*prefix + body);
        deliveries_.fetch_add(1, std::memory_order_relaxed);
    }
    std::vector<std::string> frames() const {
        std::lock_guard lock(mutex_);
        return frames_;
    }
    std::size_t deliveries() const { return deliveries_.load(); }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> frames_;
    std::atomic<std::size_t> deliveries_{0};
};

events::channel_pattern pattern(std::string_view text) {
    auto r = events::channel_pattern::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

events::channel_path path(std::string_view text) {
    auto r = events::channel_path::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

shared_bytes prefix_for(std::string_view subscription_id) {
    return std::make_shared<const std::string>(events::data_prefix(subscription_id));
}

shared_batch batch_of(const std::vector<std::string>& events) {
    auto b = std::make_shared<event_batch>();
    for (const auto& e : events) {
        b->bodies.push_back(events::data_body(e, {1, 1}));
        b->bytes += b->bodies.back().size();
    }
    return b;
}

std::string frame(std::string_view id, std::string_view event) {
    return events::data_prefix(id) + events::data_body(event, {1, 1});
}

class BrokerTest : public ::testing::Test {
protected:
    subscription_handle subscribe(std::string_view channel,
                                  const std::shared_ptr<recording_subscriber>& target,
                                  std::string_view id) {
        return broker_.subscribe(pattern(channel), target, prefix_for(id));
    }
    std::size_t publish(std::string_view channel, const std::vector<std::string>& events) {
        return broker_.publish(path(channel), batch_of(events));
    }

    broker broker_;
};

TEST_F(BrokerTest, DeliversToAnExactSubscription) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("ns/a", s, "s1");
    EXPECT_EQ(broker_.subscription_count(), 1u);
    EXPECT_EQ(publish("/ns/a/", {R"({"x":1})"}), 1u);
    EXPECT_EQ(s->frames(), (std::vector<std::string>{frame("s1", R"({"x":1})")}));
    broker_.unsubscribe(h);
}

TEST_F(BrokerTest, DeliversEveryEventOfABatchInOrder) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("ns/a", s, "s1");
    EXPECT_EQ(publish("ns/a", {"1", "2", "3"}), 1u);
    EXPECT_EQ(s->frames(),
              (std::vector<std::string>{frame("s1", "1"), frame("s1", "2"), frame("s1", "3")}));
    broker_.unsubscribe(h);
}

TEST_F(BrokerTest, ExactSubscriptionMissesOtherChannels) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("ns/a", s, "s1");
    EXPECT_EQ(publish("ns", {"1"}), 0u);
    EXPECT_EQ(publish("ns/a/b", {"1"}), 0u);
    EXPECT_EQ(publish("ns/b", {"1"}), 0u);
    EXPECT_EQ(publish("other/a", {"1"}), 0u);
    EXPECT_TRUE(s->frames().empty());
    broker_.unsubscribe(h);
}

TEST_F(BrokerTest, WildcardReachesEveryDepthBelowItsPrefix) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("default/*", s, "w");
    EXPECT_EQ(publish("default/messages", {"1"}), 1u);
    EXPECT_EQ(publish("default/greetings/tutorial", {"2"}), 1u);
    EXPECT_EQ(publish("default/download/user/id", {"3"}), 1u);
    EXPECT_EQ(publish("default/a/b/c/d", {"4"}), 1u);
    EXPECT_EQ(s->frames().size(), 4u);
    broker_.unsubscribe(h);
}

TEST_F(BrokerTest, WildcardMissesItsPrefixAndOtherBranches) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("ns/a/*", s, "w");
    EXPECT_EQ(publish("ns/a", {"1"}), 0u);
    EXPECT_EQ(publish("ns", {"1"}), 0u);
    EXPECT_EQ(publish("ns/b/c", {"1"}), 0u);
    EXPECT_EQ(publish("ns/ab/c", {"1"}), 0u);
    EXPECT_TRUE(s->frames().empty());
    EXPECT_EQ(publish("ns/a/b", {"1"}), 1u);
    broker_.unsubscribe(h);
}

TEST_F(BrokerTest, WildcardsAtSeveralDepthsEachDeliver) {
    auto s1 = std::make_shared<recording_subscriber>();
    auto s2 = std::make_shared<recording_subscriber>();
    auto s3 = std::make_shared<recording_subscriber>();
    auto s4 = std::make_shared<recording_subscriber>();
    auto h1 = subscribe("ns/*", s1, "d1");
    auto h2 = subscribe("ns/a/*", s2, "d2");
    auto h3 = subscribe("ns/a/b/*", s3, "d3");
    auto h4 = subscribe("ns/a/b/c/*", s4, "d4");
    EXPECT_EQ(publish("ns/a/b/c/d", {"1"}), 4u);
    EXPECT_EQ(publish("ns/a/b/c", {"2"}), 3u);
    EXPECT_EQ(publish("ns/a/b", {"3"}), 2u);
    EXPECT_EQ(publish("ns/a", {"4"}), 1u);
    EXPECT_EQ(publish("ns", {"5"}), 0u);
    EXPECT_EQ(s1->frames().size(), 4u);
    EXPECT_EQ(s2->frames().size(), 3u);
    EXPECT_EQ(s3->frames().size(), 2u);
    EXPECT_EQ(s4->frames().size(), 1u);
    for (auto h : {h1, h2, h3, h4})
        broker_.unsubscribe(h);
}

TEST_F(BrokerTest, OverlappingSubscriptionsOfOneSubscriberEachGetAFrame) {
    auto s = std::make_shared<recording_subscriber>();
    auto wild = subscribe("ns/*", s, "wild");
    auto exact = subscribe("ns/a", s, "exact");
    auto again = subscribe("ns/a", s, "again");
    EXPECT_EQ(publish("ns/a", {"7"}), 3u);
    auto frames = s->frames();
    std::sort(frames.begin(), frames.end());
    std::vector<std::string> expected{frame("again", "7"), frame("exact", "7"), frame("wild", "7")};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(frames, expected);
    for (auto h : {wild, exact, again})
        broker_.unsubscribe(h);
}

TEST_F(BrokerTest, UnsubscribeStopsDelivery) {
    auto s = std::make_shared<recording_subscriber>();
    auto h = subscribe("ns/a", s, "s1");
    auto w = subscribe("ns/*", s, "w1");
    EXPECT_EQ(publish("ns/a", {"1"}), 2u);
    broker_.unsubscribe(h);
    EXPECT_EQ(publish("ns/a", {"2"}), 1u);
    broker_.unsubscribe(w);
    EXPECT_EQ(publish("ns/a", {"3"}), 0u);
    auto frames = s->frames();
    std::sort(frames.begin(), frames.end());  // one publish's subscriptions come in any order
    std::vector<std::string> expected{frame("s1", "1"), frame("w1", "1"), frame("w1", "2")};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(frames, expected);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

TEST_F(BrokerTest, UnsubscribeLeavesTheOtherSubscriptionsOnTheChannel) {
    std::vector<std::shared_ptr<recording_subscriber>> subs;
    std::vector<subscription_handle> handles;
    for (int i = 0; i < 5; ++i) {
        subs.push_back(std::make_shared<recording_subscriber>());
        handles.push_back(subscribe("ns/a", subs.back(), "s" + std::to_string(i)));
    }
    // Remove from the middle, the front and the back: the slot bookkeeping must stay right.
    broker_.unsubscribe(handles[2]);
    broker_.unsubscribe(handles[0]);
    broker_.unsubscribe(handles[4]);
    EXPECT_EQ(publish("ns/a", {"1"}), 2u);
    EXPECT_EQ(subs[1]->frames().size(), 1u);
    EXPECT_EQ(subs[3]->frames().size(), 1u);
    EXPECT_TRUE(subs[0]->frames().empty());
    EXPECT_TRUE(subs[2]->frames().empty());
    EXPECT_TRUE(subs[4]->frames().empty());
    broker_.unsubscribe(handles[1]);
    broker_.unsubscribe(handles[3]);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

TEST_F(BrokerTest, UnsubscribeOfNullIsANoOp) {
    broker_.unsubscribe(nullptr);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

// A subscriber unsubscribes before it goes (the broker keeps a plain pointer); one that had
// already expired when it subscribed is never delivered to.
TEST_F(BrokerTest, DeliversUntilUnsubscribedAndSkipsAnExpiredSubscriber) {
    auto alive = std::make_shared<recording_subscriber>();
    auto going = std::make_shared<recording_subscriber>();
    auto h1 = subscribe("ns/a", alive, "alive");
    auto h2 = subscribe("ns/a", going, "going");
    auto h3 = subscribe("ns/*", going, "going-wild");
    std::weak_ptr<recording_subscriber> expired;
    {
        auto tmp = std::make_shared<recording_subscriber>();
        expired = tmp;
    }
    auto h4 = broker_.subscribe(pattern("ns/a"), expired, prefix_for("expired"));
    EXPECT_EQ(publish("ns/a", {"1"}), 3u) << "the expired subscriber is not counted as reached";
    EXPECT_EQ(going->frames().size(), 2u) << "exact and wildcard";
    broker_.unsubscribe(h2);
    broker_.unsubscribe(h3);
    going.reset();
    EXPECT_EQ(publish("ns/a", {"2"}), 1u);
    EXPECT_EQ(alive->frames().size(), 2u);
    broker_.unsubscribe(h4);
    broker_.unsubscribe(h1);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

TEST_F(BrokerTest, ManySubscribersOnOneChannelAllGetTheSameBatch) {
    constexpr int n = 1000;
    std::vector<std::shared_ptr<recording_subscriber>> subs;
    std::vector<subscription_handle> handles;
    for (int i = 0; i < n; ++i) {
        subs.push_back(std::make_shared<recording_subscriber>());
        handles.push_back(subscribe("ns/room", subs.back(), "s" + std::to_string(i)));
    }
    EXPECT_EQ(broker_.subscription_count(), static_cast<std::size_t>(n));
    EXPECT_EQ(publish("ns/room", {R"({"m":"hi"})"}), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        ASSERT_EQ(subs[i]->frames(),
                  (std::vector<std::string>{frame("s" + std::to_string(i), R"({"m":"hi"})")}));
    for (auto h : handles)
        broker_.unsubscribe(h);
    EXPECT_EQ(broker_.subscription_count(), 0u);
    EXPECT_EQ(broker_.node_count(), 0u);
}

TEST_F(BrokerTest, SubscribersShareOneBatchInsteadOfCopies) {
    struct batch_keeper : subscriber {
        std::vector<shared_batch> seen;
        void deliver(const shared_bytes&, const shared_batch& batch) override {
            seen.push_back(batch);
        }
    };
    auto a = std::make_shared<batch_keeper>();
    auto b = std::make_shared<batch_keeper>();
    auto h1 = broker_.subscribe(pattern("ns/a"), a, prefix_for("a"));
    auto h2 = broker_.subscribe(pattern("ns/*"), b, prefix_for("b"));
    const auto batch = batch_of({"1"});
    EXPECT_EQ(broker_.publish(path("ns/a"), batch), 2u);
    ASSERT_EQ(a->seen.size(), 1u);
    ASSERT_EQ(b->seen.size(), 1u);
    EXPECT_EQ(a->seen[0].get(), batch.get());
    EXPECT_EQ(b->seen[0].get(), batch.get());
    broker_.unsubscribe(h1);
    broker_.unsubscribe(h2);
}

TEST_F(BrokerTest, TrieNodesArePrunedWhenTheLastSubscriptionGoes) {
    auto s = std::make_shared<recording_subscriber>();
    EXPECT_EQ(broker_.node_count(), 0u);
    auto deep = subscribe("a/b/c/d/e", s, "deep");
    EXPECT_EQ(broker_.node_count(), 5u);
    auto mid = subscribe("a/b/*", s, "mid");
    EXPECT_EQ(broker_.node_count(), 5u) << "a/b/* lives on the a/b node";
    auto side = subscribe("a/x", s, "side");
    EXPECT_EQ(broker_.node_count(), 6u);
    broker_.unsubscribe(deep);
    EXPECT_EQ(broker_.node_count(), 3u) << "c, d, e pruned; a/b kept for a/b/*";
    broker_.unsubscribe(mid);
    EXPECT_EQ(broker_.node_count(), 2u);
    broker_.unsubscribe(side);
    EXPECT_EQ(broker_.node_count(), 0u);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

TEST_F(BrokerTest, RepeatedSubscribeAndUnsubscribeLeavesNothingBehind) {
    auto s = std::make_shared<recording_subscriber>();
    const char* channels[] = {"ns/a", "ns/*", "ns/a/b/c/*", "x/y/z", "ns", "ns/a/b/c/d"};
    for (int round = 0; round < 200; ++round) {
        std::vector<subscription_handle> handles;
        for (const char* c : channels)
            handles.push_back(subscribe(c, s, "r" + std::to_string(round)));
        EXPECT_EQ(broker_.subscription_count(), std::size(channels));
        // Unsubscribe in a different order each round.
        for (std::size_t i = 0; i < handles.size(); ++i)
            broker_.unsubscribe(handles[(i + static_cast<std::size_t>(round)) % handles.size()]);
        ASSERT_EQ(broker_.subscription_count(), 0u) << "round " << round;
        ASSERT_EQ(broker_.node_count(), 0u) << "round " << round;
    }
    EXPECT_EQ(publish("ns/a", {"1"}), 0u);
    EXPECT_TRUE(s->frames().empty());
}

TEST_F(BrokerTest, PublishToAChannelNobodyWatchesCreatesNoNodes) {
    EXPECT_EQ(publish("ns/a/b/c", {"1"}), 0u);
    EXPECT_EQ(broker_.node_count(), 0u);
}

TEST(BrokerLifetimeTest, DestroyingTheBrokerReleasesLiveSubscriptions) {
    // Checked by LeakSanitizer: subscriptions still live when the broker goes are freed with it.
    auto s = std::make_shared<recording_subscriber>();
    broker b;
    b.subscribe(pattern("ns/a"), s, prefix_for("1"));
    b.subscribe(pattern("ns/*"), s, prefix_for("2"));
    b.subscribe(pattern("ns/a/b/c/d"), s, prefix_for("3"));
    EXPECT_EQ(b.subscription_count(), 3u);
}

// Two threads publish while a third subscribes, unsubscribes and then destroys subscribers. The
// steady subscriber must see every event exactly once; ASan/UBSan (and TSan where built) watch
// the rest.
TEST(BrokerConcurrencyTest, PublishesFromTwoThreadsWhileAnotherSubscribesAndUnsubscribes) {
    broker b;
    auto steady = std::make_shared<recording_subscriber>();
    auto steady_handle = b.subscribe(pattern("ns/a/b"), steady, prefix_for("steady"));
    constexpr int publishes_per_thread = 2000;
    std::atomic<bool> churn_done{false};
    std::atomic<int> publishers_done{0};

    auto publisher = [&](int t) {
        const auto where = path("ns/a/b");
        for (int i = 0; i < publishes_per_thread; ++i) {
            auto reached =
                b.publish(where, batch_of({std::to_string(t * publishes_per_thread + i)}));
            EXPECT_GE(reached, 1u);
        }
        publishers_done.fetch_add(1);
    };
    auto churn = [&] {
        const char* channels[] = {"ns/a/b", "ns/*", "ns/a/*", "other/x", "ns/a/b/c"};
        int round = 0;
        while (publishers_done.load() < 2 || round < 100) {
            std::vector<std::shared_ptr<recording_subscriber>> subs;
            std::vector<subscription_handle> handles;
            for (const char* c : channels) {
                subs.push_back(std::make_shared<recording_subscriber>());
                handles.push_back(b.subscribe(pattern(c), subs.back(), prefix_for("c")));
            }
            for (auto h : handles)
                b.unsubscribe(h);
            subs.clear();  // destroyed once unsubscribed, while the publishers go on
            ++round;
        }
        churn_done = true;
    };

    std::thread t1(publisher, 0);
    std::thread t2(publisher, 1);
    std::thread t3(churn);
    t1.join();
    t2.join();
    t3.join();
    ASSERT_TRUE(churn_done.load());

    const auto frames = steady->frames();
    ASSERT_EQ(frames.size(), 2u * publishes_per_thread);
    std::map<std::string, int> seen;
    for (const auto& f : frames)
        ++seen[f];
    for (int i = 0; i < 2 * publishes_per_thread; ++i)
        EXPECT_EQ(seen[frame("steady", std::to_string(i))], 1) << i;
    b.unsubscribe(steady_handle);
    EXPECT_EQ(b.subscription_count(), 0u);
    EXPECT_EQ(b.node_count(), 0u);
}

TEST(BrokerNamespaceTest, ListenerSeesFirstAndLastSubscriptionOfEachNamespace) {
    // What a cluster node subscribes to in NATS: a namespace from its first local subscription
    // (exact or wildcard, any depth) to its last.
    broker b;
    auto sub = std::make_shared<recording_subscriber>();
    auto early = b.subscribe(pattern("/early/x"), sub, prefix_for("e"));
    std::vector<std::string> calls;
    b.set_namespace_listener([&](std::string_view ns, bool interested) {
        calls.push_back((interested ? "+" : "-") + std::string(ns));
    });
    EXPECT_EQ(calls, (std::vector<std::string>{"+early"}));  // already subscribed: reported
    calls.clear();

    auto h1 = b.subscribe(pattern("/default/a"), sub, prefix_for("1"));
    auto h2 = b.subscribe(pattern("/default/*"), sub, prefix_for("2"));
    auto h3 = b.subscribe(pattern("/default/a/b/c"), sub, prefix_for("3"));
    auto h4 = b.subscribe(pattern("/other"), sub, prefix_for("4"));
    EXPECT_EQ(calls, (std::vector<std::string>{"+default", "+other"}));
    b.unsubscribe(h1);
    b.unsubscribe(h3);
    EXPECT_EQ(calls.size(), 2u);
    b.unsubscribe(h2);
    b.unsubscribe(h4);
    b.unsubscribe(early);
    EXPECT_EQ(calls,
              (std::vector<std::string>{"+default", "+other", "-default", "-other", "-early"}));
    auto again = b.subscribe(pattern("/default/*"), sub, prefix_for("5"));
    EXPECT_EQ(calls.back(), "+default");
    b.set_namespace_listener({});
    b.unsubscribe(again);
    EXPECT_EQ(calls.back(), "+default");  // removed listener: not called
}

}  // namespace
}  // namespace eventcast::pubsub

// Tests src/history/memory_store.cpp: positions, the count/age/byte bounds (the clock is passed
// in, so age needs no sleeping), exact and wildcard queries, and every refusal of since().
#include "history/memory_store.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventcast::history {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t epoch = 0x0a0b0c0d;

events::channel_path path(std::string_view text) {
    auto r = events::channel_path::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

events::channel_pattern pattern(std::string_view text) {
    auto r = events::channel_pattern::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

core::history_config config(std::size_t count, std::chrono::milliseconds age,
                            std::size_t max_bytes = 1 << 20) {
    core::history_config c;
    c.defaults = {count, age};
    c.max_bytes = max_bytes;
    return c;
}

class MemoryStoreTest : public ::testing::Test {
protected:
    // Publishes `n` events of `bytes` bytes each to `channel` at the test clock, one per batch
    // as event_api does for single-event publishes. Returns the first seq.
    std::uint64_t publish(memory_store& s, std::string_view channel, std::size_t n = 1,
                          std::size_t bytes = 10) {
        const auto p = path(channel);
        const auto first = s.reserve(p.namespace_name(), n);
        auto batch = std::make_shared<pubsub::event_batch>();
        for (std::size_t i = 0; i < n; ++i)
            batch->bodies.push_back(std::string(bytes, 'x'));
        s.append(p, first, batch, now_);
        return first;
    }

    // The seqs since() answers, or {} and `error` set.
    std::vector<std::uint64_t> seqs(memory_store& s, std::string_view pat, std::uint64_t after,
                                    events::protocol_error* error = nullptr) {
        auto r = s.since(pattern(pat), {s.epoch(), after}, now_);
        if (!r) {
            if (error)
                *error = r.error();
            else
                ADD_FAILURE() << "since failed: " << r.error().message;
            return {};
        }
        EXPECT_EQ(error, nullptr) << "since succeeded where a refusal was expected";
        std::vector<std::uint64_t> out;
        for (const auto& e : *r)
            out.push_back(e.seq);
        return out;
    }

    clock::time_point now_ = clock::time_point(1000h);
};

using seq_list = std::vector<std::uint64_t>;

TEST_F(MemoryStoreTest, PositionsCountFromOnePerNamespace) {
    memory_store s(config(10, 10min), epoch);
    EXPECT_EQ(s.epoch(), epoch);
    EXPECT_EQ(s.newest("default"), (events::position{epoch, 0}));
    EXPECT_EQ(publish(s, "default/a", 3), 1u);
    EXPECT_EQ(publish(s, "default/b"), 4u) << "one counter for every channel of a namespace";
    EXPECT_EQ(publish(s, "chat/a", 2), 1u) << "namespaces count on their own";
    EXPECT_EQ(s.newest("default"), (events::position{epoch, 4}));
    EXPECT_EQ(s.newest("chat"), (events::position{epoch, 2}));
}

TEST_F(MemoryStoreTest, ExactQueryGivesTheChannelsEventsAfterThePosition) {
    memory_store s(config(10, 10min), epoch);
    publish(s, "default/a", 2);  // 1, 2
    publish(s, "default/b");     // 3
    publish(s, "default/a");     // 4
    EXPECT_EQ(seqs(s, "default/a", 0), (seq_list{1, 2, 4}));
    EXPECT_EQ(seqs(s, "default/a", 1), (seq_list{2, 4}));
    EXPECT_EQ(seqs(s, "default/a", 3), (seq_list{4}));
    EXPECT_EQ(seqs(s, "default/a", 4), seq_list{});
    EXPECT_EQ(seqs(s, "default/never", 2), seq_list{}) << "a channel with no events: nothing";
}

TEST_F(MemoryStoreTest, ReplayHandsBackTheLiveBodiesWithoutCopying) {
    memory_store s(config(10, 10min), epoch);
    auto batch = std::make_shared<pubsub::event_batch>();
    batch->bodies = {"one", "two"};
    const auto first = s.reserve("default", 2);
    s.append(path("default/a"), first, batch, now_);
    auto r = s.since(pattern("default/a"), {epoch, 0}, now_);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].batch.get(), batch.get());
    EXPECT_EQ((*r)[1].index, 1u);
}

TEST_F(MemoryStoreTest, WildcardQueryGivesEveryChannelBelowThePrefixInPositionOrder) {
    memory_store s(config(10, 10min), epoch);
    publish(s, "default/a/x");    // 1
    publish(s, "default/b");      // 2
    publish(s, "default/a/y/z");  // 3
    publish(s, "default/a");      // 4: the prefix itself is not below it
    publish(s, "default/a/x");    // 5
    EXPECT_EQ(seqs(s, "default/a/*", 0), (seq_list{1, 3, 5}));
    EXPECT_EQ(seqs(s, "default/a/*", 3), (seq_list{5}));
    EXPECT_EQ(seqs(s, "default/*", 1), (seq_list{2, 3, 4, 5}));
}

TEST_F(MemoryStoreTest, CountBoundKeepsTheNewestPerChannel) {
    memory_store s(config(3, 10min), epoch);
    publish(s, "default/a", 5);  // 1..5, keeps 3..5
    publish(s, "default/b");     // 6
    EXPECT_EQ(seqs(s, "default/a", 2), (seq_list{3, 4, 5}));
    events::protocol_error e{};
    EXPECT_EQ(seqs(s, "default/a", 1, &e), seq_list{});
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
    EXPECT_STREQ(e.ws_error_type(), "ResumeWindowExceeded");
    EXPECT_NE(e.message.find("events after position '0a0b0c0d-1' on /default/a are no longer "
                             "retained (retained: after '0a0b0c0d-2'"),
              std::string::npos)
        << e.message;
    EXPECT_NE(e.message.find("keeps 3 events per channel for 10m"), std::string::npos) << e.message;
    EXPECT_EQ(seqs(s, "default/b", 0), (seq_list{6})) << "other channels keep theirs";
    EXPECT_EQ(s.stats().events, 4u);
    EXPECT_EQ(s.stats().evicted, 2u);
}

TEST_F(MemoryStoreTest, WildcardIsRefusedOnlyWhenAMatchingChannelLostEvents) {
    memory_store s(config(1, 10min), epoch);
    publish(s, "default/a/x", 2);  // 1 evicted, 2 kept
    publish(s, "default/b/x");     // 3
    EXPECT_EQ(seqs(s, "default/b/*", 0), (seq_list{3}));
    events::protocol_error e{};
    seqs(s, "default/a/*", 0, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
    EXPECT_EQ(seqs(s, "default/a/*", 1), (seq_list{2}));
    EXPECT_EQ(seqs(s, "default/*", 1), (seq_list{2, 3}));
}

TEST_F(MemoryStoreTest, AgeBoundDropsOldEventsByTheInjectedClock) {
    memory_store s(config(100, 10s), epoch);
    publish(s, "default/a");  // 1 at t
    now_ += 5s;
    publish(s, "default/a");  // 2 at t+5
    now_ += 6s;               // t+11: 1 is past 10 s
    events::protocol_error e{};
    seqs(s, "default/a", 0, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
    EXPECT_EQ(seqs(s, "default/a", 1), (seq_list{2}));
    now_ += 5s;  // t+16: everything is past its age; the channel record goes too
    s.expire(now_);
    EXPECT_EQ(s.stats().events, 0u);
    EXPECT_EQ(s.stats().bytes, 0u) << "nothing counted for a forgotten channel";
    seqs(s, "default/a", 1, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old) << "a forgotten channel still refuses";
    EXPECT_EQ(seqs(s, "default/a", 2), seq_list{}) << "nothing was missed after the newest";
}

TEST_F(MemoryStoreTest, ByteBoundEvictsTheOldestAcrossNamespaces) {
    const std::size_t per_event = 100 + memory_store::event_overhead;
    const std::size_t per_channel = memory_store::channel_overhead + 9;  // "default/a", "other/a/"
    memory_store s(config(100, 10min, 2 * per_channel + 4 * per_event), epoch);
    publish(s, "default/a", 1, 100);  // default 1
    now_ += 1s;
    publish(s, "other/a", 2, 100);  // other 1, 2
    now_ += 1s;
    publish(s, "default/a", 1, 100);  // default 2: 4 events, at the cap
    EXPECT_EQ(s.stats().events, 4u);
    now_ += 1s;
    publish(s, "other/a", 1, 100);  // other 3: the oldest of all (default 1) goes
    EXPECT_EQ(s.stats().events, 4u);
    EXPECT_LE(s.stats().bytes, 2 * per_channel + 4 * per_event);
    EXPECT_EQ(seqs(s, "default/a", 1), (seq_list{2}));
    EXPECT_EQ(seqs(s, "other/a", 0), (seq_list{1, 2, 3}));
    events::protocol_error e{};
    seqs(s, "default/a", 0, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
}

TEST_F(MemoryStoreTest, AnEventLargerThanTheCapIsNotKept) {
    memory_store s(config(100, 10min, 1000), epoch);
    publish(s, "default/a", 1, 5000);
    EXPECT_EQ(s.stats().events, 0u);
    EXPECT_EQ(s.stats().bytes, 0u);
    events::protocol_error e{};
    seqs(s, "default/a", 0, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
}

TEST_F(MemoryStoreTest, PerNamespaceLimitsOverrideTheDefaults) {
    auto cfg = config(2, 10min);
    cfg.per_namespace = {{"chat", {5, 10min}}, {"off", {0, 10min}}};
    memory_store s(cfg, epoch);
    publish(s, "default/a", 5);
    publish(s, "chat/a", 5);
    publish(s, "off/a", 3);
    EXPECT_EQ(seqs(s, "default/a", 3), (seq_list{4, 5}));
    EXPECT_EQ(seqs(s, "chat/a", 0), (seq_list{1, 2, 3, 4, 5}));
    // History off: positions still count, only "nothing missed" can be resumed.
    EXPECT_EQ(s.newest("off"), (events::position{epoch, 3}));
    EXPECT_EQ(seqs(s, "off/a", 3), seq_list{});
    events::protocol_error e{};
    seqs(s, "off/a", 2, &e);
    EXPECT_EQ(e.kind, events::error_kind::resume_too_old);
}

TEST_F(MemoryStoreTest, APositionAheadOfTheNewestIsInvalidInput) {
    memory_store s(config(10, 10min), epoch);
    publish(s, "default/a", 2);
    events::protocol_error e{};
    seqs(s, "default/a", 3, &e);
    EXPECT_EQ(e.kind, events::error_kind::invalid_input);
    EXPECT_NE(e.message.find("'0a0b0c0d-3' is ahead of the newest in namespace 'default' "
                             "('0a0b0c0d-2')"),
              std::string::npos)
        << e.message;
    seqs(s, "fresh/a", 1, &e);
    EXPECT_EQ(e.kind, events::error_kind::invalid_input) << "a namespace with no events yet";
    EXPECT_EQ(seqs(s, "fresh/a", 0), seq_list{});
}

TEST_F(MemoryStoreTest, APositionFromAnotherEpochIsTooOld) {
    memory_store s(config(10, 10min), epoch);
    publish(s, "default/a", 2);
    auto r = s.since(pattern("default/a"), {epoch + 1, 1}, now_);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, events::error_kind::resume_too_old);
    EXPECT_NE(r.error().message.find("from another run of the server"), std::string::npos);
}

TEST_F(MemoryStoreTest, APartlyEvictedPublishStillCountsItsBodies) {
    // One publish of 5 events shares one allocation; while any of them is retained, all of the
    // bodies are held, and counted.
    memory_store s(config(2, 10min), epoch);
    publish(s, "default/a", 5, 1000);  // keeps 4, 5
    EXPECT_EQ(s.stats().events, 2u);
    EXPECT_EQ(s.stats().bytes,
              memory_store::channel_overhead + 9 + 5 * 1000 + 2 * memory_store::event_overhead);
    publish(s, "default/a", 2, 10);  // 6, 7: the first publish is gone entirely
    EXPECT_EQ(s.stats().bytes,
              memory_store::channel_overhead + 9 + 2 * 10 + 2 * memory_store::event_overhead);
}

TEST_F(MemoryStoreTest, BytesReturnToZeroWhenEverythingIsEvicted) {
    memory_store s(config(1, 1s), epoch);
    for (int i = 0; i < 50; ++i)
        publish(s, "default/c" + std::to_string(i % 7), 3, 20);
    EXPECT_EQ(s.stats().events, 7u);
    now_ += 2s;
    s.expire(now_);
    EXPECT_EQ(s.stats().events, 0u);
    EXPECT_EQ(s.stats().bytes, 0u);
}

}  // namespace
}  // namespace eventcast::history

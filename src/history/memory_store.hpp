// The single-node history store: every namespace's recent events in memory, bounded per channel
// by count and age (per namespace, core::history_config) and overall by bytes (oldest first).
#pragma once

#include "core/config.hpp"
#include "history/store.hpp"

#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace eventcast::history {

/// Bytes: each event counts `event_overhead`, and a publish's bodies count until its last event
/// is evicted (they share one allocation with the live frames).
/// Thread-safe (one mutex; every operation is O(events touched), never a scan of the store
/// except since() for a wildcard, which visits the namespace's channels once).
class memory_store final : public store {
public:
    memory_store(const core::history_config& cfg, std::uint32_t epoch);
    ~memory_store() override;
    memory_store(const memory_store&) = delete;
    memory_store& operator=(const memory_store&) = delete;

    std::uint32_t epoch() const noexcept override { return epoch_; }
    std::uint64_t reserve(std::string_view ns, std::size_t n) override;
    void append(const events::channel_path& path, std::uint64_t first_seq,
                const pubsub::shared_batch& batch, clock::time_point now) override;
    events::result<std::vector<stored_event>> since(const events::channel_pattern& pattern,
                                                    const events::position& after,
                                                    clock::time_point now) override;
    events::position newest(std::string_view ns) const override;
    usage stats() const override;

    /// Drops the events older than their namespace's age everywhere (the server's ticker calls
    /// this, so idle channels give their memory back without waiting for a publish).
    void expire(clock::time_point now) override;

    /// Bytes counted for one retained event besides its body, and for one channel besides its
    /// path: the list node, the index slot, the shared batch's share, the map node.
    static constexpr std::size_t event_overhead = 96;
    static constexpr std::size_t channel_overhead = 192;

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    struct channel_rec;
    struct entry {
        std::uint64_t seq;
        clock::time_point at;
        pubsub::shared_batch batch;
        std::uint32_t index;
        channel_rec* ch;
        std::size_t bytes;
    };
    struct ns_rec;
    struct channel_rec {
        events::channel_path path;
        ns_rec* ns;
        std::deque<std::list<entry>::iterator> items;  // this channel's entries, oldest first
        std::uint64_t evicted_through = 0;  // seq of the newest event evicted from this channel
    };
    struct ns_rec {
        std::string name;
        core::history_limits lim;
        std::uint64_t last_seq = 0;
        // Highest seq evicted from a channel whose record is gone since: a resume from before it
        // cannot be proven complete for any pattern in the namespace.
        std::uint64_t dropped_through = 0;
        std::list<entry> order;  // every retained entry of the namespace, in seq order
        std::unordered_map<std::string, channel_rec, string_hash, std::equal_to<>> channels;
    };

    ns_rec& ns_for(std::string_view ns);
    // Evicts the oldest entry of `ch` (the oldest of the namespace too when it is the
    // namespace's front); drops the channel record once empty. `ch` is invalid afterwards then.
    void evict_oldest(channel_rec& ch);
    void expire_ns(ns_rec& ns, clock::time_point now);

    const core::history_config cfg_;
    const std::uint32_t epoch_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, ns_rec, string_hash, std::equal_to<>> namespaces_;
    std::size_t events_ = 0;
    std::size_t bytes_ = 0;
    std::uint64_t evicted_ = 0;
};

}  // namespace eventcast::history

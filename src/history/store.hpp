// Channel history: what each channel recently carried, so a subscriber that lost its connection
// can resume from the last position it saw (docs/protocol.md, "History and resume").
//
// `store` is the seam between event_api and where history lives. memory_store (this folder)
// keeps it in this process, for a single node, and assigns positions itself. In cluster mode
// cluster::jetstream_history keeps it in one JetStream stream per namespace: positions are the
// stream's sequence (assigns_positions() is false; events arrive with them through
// event_api::deliver_at) and since() reads the stream.
#pragma once

#include "events/channel.hpp"
#include "events/error.hpp"
#include "events/position.hpp"
#include "pubsub/broker.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

namespace eventcast::history {

using clock = std::chrono::steady_clock;

/// One retained event: the data frame body that went out live (it carries the position),
/// shared with the publish's batch, so replay sends the very same bytes without a copy.
struct stored_event {
    std::uint64_t seq = 0;
    pubsub::shared_batch batch;
    std::uint32_t index = 0;  // which body of batch
};

/// Thread-safe. Ordering is the caller's: event_api holds one lock per namespace around
/// reserve(), append() and the live fan-out, and around since() plus the broker subscription of a
/// resume, so live delivery order is position order and a resume has no gap and no duplicate.
class store {
public:
    virtual ~store() = default;

    /// The epoch of every position this store hands out.
    virtual std::uint32_t epoch() const noexcept = 0;

    /// Reserves `n` consecutive positions in namespace `ns`; returns the first seq (>= 1).
    virtual std::uint64_t reserve(std::string_view ns, std::size_t n) = 0;

    /// Records the events of `batch`, published to `path` at `now`: bodies[i] has seq
    /// `first_seq + i`, as reserve() returned. May evict older events (count, age, bytes).
    virtual void append(const events::channel_path& path, std::uint64_t first_seq,
                        const pubsub::shared_batch& batch, clock::time_point now) = 0;

    /// The retained events matching `pattern` with seq > `after.seq`, in position order. Fails
    /// with resume_too_old when an event that would belong to the answer is no longer retained
    /// (or `after` is from another epoch), and with invalid_input when `after` is ahead of the
    /// namespace's newest position.
    virtual events::result<std::vector<stored_event>> since(const events::channel_pattern& pattern,
                                                            const events::position& after,
                                                            clock::time_point now) = 0;

    /// The newest position handed out in `ns` (seq 0 before its first event).
    virtual events::position newest(std::string_view ns) const = 0;

    /// Maintenance, called periodically: drop what is past its age even where nothing is
    /// published (a store whose server expires events itself does nothing).
    virtual void expire(clock::time_point now) { (void)now; }

    struct usage {
        std::size_t events = 0;     // retained now
        std::size_t bytes = 0;      // counted against the byte cap
        std::uint64_t evicted = 0;  // since start, by count, age or bytes
    };
    virtual usage stats() const = 0;

    // A store whose positions come from elsewhere (cluster::jetstream_history: the JetStream
    // stream's sequence, the same on every node) says so here. event_api then delivers what
    // arrives with a position through deliver_at(), and a batch delivered locally without one
    // (a NATS outage) gets newest(ns) and is not recorded.
    virtual bool assigns_positions() const noexcept { return true; }

    /// For a store that does not assign positions: whether the live event at `p` should be
    /// delivered (false when it was already handed out here, e.g. by a resume's replay).
    /// Called under the namespace's order lock.
    virtual bool take_live(std::string_view ns, const events::position& p) {
        (void)ns;
        (void)p;
        return true;
    }

    /// Called before subscribe_resume takes the order lock: a store may wait here (bounded)
    /// until this node has caught up with `after`, or refuse early.
    virtual events::result<void> prepare_resume(std::string_view ns,
                                                const events::position& after) {
        (void)ns;
        (void)after;
        return {};
    }
};

}  // namespace eventcast::history

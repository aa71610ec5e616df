// Channel history in cluster mode, kept by NATS JetStream so that any node can serve a resume
// with positions that are the same on every node (docs/CLUSTER.md, "History across nodes").
//
// One stream per namespace with history (count and age both > 0), named from the subject prefix
// and the namespace, capturing <prefix>.<ns> and <prefix>.<ns>.>, bounded by MaxMsgs = the
// namespace's count (per namespace here, not per channel), MaxAge = its age and MaxBytes =
// --history-max-bytes, discarding the oldest. Only whole-stream limits: the retained range is
// always contiguous, so "after.seq + 1 < first retained seq" is an exact too-old test (a
// per-subject limit would delete from the middle and a resume could skip events silently).
//
// A position is {epoch, stream sequence}: the epoch is a hash of the stream's name and creation
// time, which every node reads from the stream, so a position from a deleted and recreated
// stream is recognised. Each event is its own NATS message (one sequence per event). The stream
// republishes what it stores to <prefix>-live.<ns>.<original subject> with its sequence in a
// header; the bridge subscribes there (one subscription per namespace, so in sequence order) and
// hands each event to event_api::deliver_at.
//
// Thread-safe. I/O (stream info, direct gets) happens on the caller's thread, each request
// bounded by --cluster-subscribe-timeout-ms; since() does it under the namespace's order lock.
#pragma once

#include "core/config.hpp"
#include "history/store.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <nats/nats.h>
#include <shared_mutex>
#include <string>

namespace eventcast::cluster {

class jetstream_history final : public history::store {
public:
    explicit jetstream_history(const core::config& cfg);
    jetstream_history(const jetstream_history&) = delete;
    jetstream_history& operator=(const jetstream_history&) = delete;

    // --- for the bridge ---
    /// The JetStream context to use (null: none, e.g. at shutdown; waits for requests in flight).
    void set_context(jsCtx* js);
    /// Called when the connection to NATS is (re)established: creates or updates every stream
    /// (a stream must exist before anything is published, or nothing is captured, and so
    /// nothing delivered) and, for namespaces this node listens to, moves the live start past
    /// what was stored while it was away (delivery is at most once; a resume replays those).
    /// Blocking, bounded per request.
    void connected();
    /// Whether `ns` keeps history (then its events travel one per message through its stream).
    bool has_stream(std::string_view ns) const;
    /// Whether the stream of `ns` is known to exist (created or updated on this connection).
    bool ready(std::string_view ns) const;
    /// The subject the stream of `ns` republishes to; subscribe to it + ".>".
    std::string live_subject(std::string_view ns) const;
    /// The epoch of `ns`'s stream, creating or updating the stream first if not done yet
    /// (blocking, bounded); 0 when NATS cannot tell.
    std::uint32_t epoch_of(std::string_view ns);
    /// The node's NATS subscription for `ns` is confirmed: events stored from now on arrive
    /// live. Reads the stream's last sequence (blocking, bounded) so that older ones, which may
    /// or may not still arrive, are not delivered live and a resume replays them instead.
    /// With `connected` false it only notes the interest (connected() reads the bounds later).
    void interest_started(std::string_view ns, bool connected);
    void interest_stopped(std::string_view ns);

    /// For the live path: the newest sequence delivered live in `ns` and whether the node's
    /// interest there is established (before that, a sequence gap means nothing).
    std::uint64_t live_through(std::string_view ns, bool& interest) const;
    /// Reads the message at `seq` of `ns`'s stream (blocking, bounded): its subject and payload,
    /// and (when `origin` is given) its Eventcast-Origin header ("" without one). False when it
    /// is not there (expired) or NATS does not answer.
    bool fetch(std::string_view ns, std::uint64_t seq, std::string& subject, std::string& payload,
               std::string* origin = nullptr);

    /// The stream name for `ns`: prefix and namespace with every byte outside [A-Za-z0-9_-]
    /// written as '_' (so distinct prefixes that differ only there share streams: avoid them).
    static std::string stream_name(std::string_view prefix, std::string_view ns);

    // --- history::store ---
    std::uint32_t epoch() const noexcept override { return 0; }  // per namespace: epoch_of
    std::uint64_t reserve(std::string_view, std::size_t) override { return 0; }
    void append(const events::channel_path&, std::uint64_t, const pubsub::shared_batch&,
                history::clock::time_point) override {}
    events::result<std::vector<history::stored_event>> since(
        const events::channel_pattern& pattern, const events::position& after,
        history::clock::time_point now) override;
    events::position newest(std::string_view ns) const override;
    usage stats() const override;
    bool assigns_positions() const noexcept override { return false; }
    bool take_live(std::string_view ns, const events::position& p) override;
    events::result<void> prepare_resume(std::string_view ns,
                                        const events::position& after) override;

private:
    struct ns_state {
        std::string stream;
        std::string subjects[2];  // <prefix>.<ns>, <prefix>.<ns>.>
        std::string live;         // republish prefix
        core::history_limits lim;
        bool ready = false;  // stream created/updated and epoch known
        std::uint32_t epoch = 0;
        std::uint64_t through = 0;  // newest sequence delivered (or skipped) live here
        bool interest = false;
    };
    // Creates or updates the stream of `st` when not ready (or always, with `force`). Call with
    // io_ shared, mutex_ not held.
    bool ensure(ns_state& st, bool force = false);
    // Stream info (first, last); false when NATS does not answer.
    bool bounds(const ns_state& st, std::uint64_t& first, std::uint64_t& last);

    const core::config& cfg_;
    std::shared_mutex io_;  // held shared during requests, exclusively by set_context
    jsCtx* js_ = nullptr;
    mutable std::mutex mutex_;  // guards the fields of every ns_state below
    std::condition_variable caught_up_;
    std::map<std::string, ns_state, std::less<>> ns_;
    std::uint64_t served_ = 0;  // events replayed (stats)
};

}  // namespace eventcast::cluster

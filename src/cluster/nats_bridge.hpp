// Cluster mode: the bridge between this node and NATS (docs/CLUSTER.md). Publishes go to NATS
// and come back to every interested node, this one included, so all nodes deliver a channel's
// events in the order the NATS server gives them. A node subscribes in NATS only to the
// namespaces its local clients subscribe to (reference-counted by the broker's trie).
//
// A publish this node sends to a namespace it listens to waits for its own echo at most
// --cluster-echo-timeout-ms; past that (a link gone silent) it is delivered here directly and a
// late echo is dropped (docs/decisions/006-cluster-local-delivery.md).
//
// Threads: publish() runs on whichever thread publishes (I/O threads, the llm thread); NATS
// messages and connection events arrive on nats.c's threads and go straight into the
// thread-safe, non-blocking broker (event_api::deliver_local). The echo thread delivers what
// NATS did not echo in time. The interest thread subscribes and unsubscribes namespaces in NATS
// and waits for NATS to confirm (the broker only queues the change, under its write lock); the
// blocking thread runs resumes' JetStream reads. Nothing here blocks an I/O thread.
#pragma once

#include "api/event_api.hpp"
#include "cluster/jetstream_history.hpp"
#include "core/config.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nats/nats.h>
#include <shared_mutex>
#include <string>
#include <thread>

namespace eventcast::cluster {

/// Counters for /metrics and /readyz; relaxed atomics, updated from any thread.
struct bridge_stats {
    std::atomic<std::uint64_t> messages_out{0};      // NATS messages published (one per batch)
    std::atomic<std::uint64_t> messages_in{0};       // NATS messages delivered to local subscribers
    std::atomic<std::uint64_t> publish_failures{0};  // publishes NATS refused (then local only)
    std::atomic<std::uint64_t> refused{0};     // publishes with an event over max_payload: an error
    std::atomic<std::uint64_t> split{0};       // publishes sent as several messages (max_payload)
    std::atomic<std::uint64_t> local_only{0};  // publishes kept local while disconnected
    std::atomic<std::uint64_t> bad_messages{0};  // undecodable subject or payload, dropped
    std::atomic<std::uint64_t> dropped{0};       // slow-consumer drops inside nats.c
    std::atomic<std::uint64_t> disconnects{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::int64_t> namespaces{0};  // namespaces subscribed in NATS now
    // Events of publishes NATS did not echo within --cluster-echo-timeout-ms, delivered here
    // directly; of those, the ones NATS echoed later (so they reached NATS and the other
    // nodes; the echo was dropped here) and the ones never echoed once the link was back
    // (other nodes may have missed them).
    std::atomic<std::uint64_t> echo_timeouts{0};
    std::atomic<std::uint64_t> late_echoes{0};
    std::atomic<std::uint64_t> unconfirmed{0};
};

/// Lifetime: construct, start(), stop() (or destroy) before the event_api and broker go away.
class nats_bridge final : public api::cluster_link {
public:
    /// With `history` (cluster mode's JetStream history, owned by the event_api), namespaces
    /// that keep history travel through their stream (docs/CLUSTER.md, "History across nodes").
    /// `broker` is the event_api's: its namespace listener tells the bridge which namespaces
    /// this node needs from NATS.
    nats_bridge(const core::cluster_config& cfg, api::event_api& api, pubsub::broker& broker,
                jetstream_history* history = nullptr);
    ~nats_bridge() override;
    nats_bridge(const nats_bridge&) = delete;
    nats_bridge& operator=(const nats_bridge&) = delete;

    /// Connects (or keeps trying in the background when no server answers), then attaches to
    /// the event_api and the broker. Throws std::runtime_error on an unusable configuration.
    void start();
    /// Detaches, unsubscribes and closes the connection. After it returns no callback of ours
    /// runs again. Idempotent.
    void stop();

    events::result<route> publish(const events::channel_path& path,
                                  const pubsub::shared_batch& batch,
                                  std::function<void(events::position)> located) override;
    bool when_interested(std::string_view ns, std::function<void()> ready) override;
    void run_blocking(std::function<void()> job) override;

    bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }
    /// "connecting" (never connected yet), "connected", "reconnecting" or "closed".
    std::string state() const;
    const bridge_stats& stats() const noexcept { return stats_; }
    /// The counters above as Prometheus metrics (eventcast_cluster_*).
    void append_metrics(std::string& out) const;

private:
    struct namespace_subs {
        natsSubscription* exact = nullptr;  // <prefix>.<ns>: the bare namespace channel
        natsSubscription* below = nullptr;  // <prefix>.<ns>.>: everything below it
    };
    using clock = std::chrono::steady_clock;
    // A publish sent to a namespace this node listens to, until NATS echoes it back.
    struct awaiting_echo {
        events::channel_path path;
        pubsub::shared_batch batch;  // bodies open, as sent
        clock::time_point deadline;
    };
    // A publish whose first event's position a caller wants (publish's `located`): the
    // stream's acknowledgement comes to ack_inbox_.<number>.
    struct awaiting_ack {
        std::string ns;
        std::function<void(events::position)> located;
        clock::time_point deadline;
    };
    // Delivered here without its echo: a late echo is dropped.
    struct fell_back {
        std::size_t events;
        clock::time_point at;
    };

    // A namespace this node's broker has subscriptions in, as far as the broker told us.
    struct interest {
        std::uint64_t generation = 0;  // which queued change made it
        bool confirmed = false;        // NATS has the subscription (or the wait ended)
        std::vector<std::function<void()>> waiting;  // when_interested callers
    };
    struct interest_change {
        std::string ns;
        bool interested;
        std::uint64_t generation;
    };

    // The broker's namespace listener, under its write lock: only queues the change.
    void on_namespace(std::string_view ns, bool interested) noexcept;
    void interest_loop();
    void blocking_loop();
    // Subscribes (true if newly) or unsubscribes `ns` in NATS; no round trip.
    bool apply(const interest_change& change) noexcept;
    void unsubscribe(namespace_subs& subs) noexcept;
    bool listening(std::string_view ns);
    // The NATS messages for `batch`: one per event with `stored`, else as few as the connected
    // server's max_payload allows, in index order. An error (for the publisher) when an event
    // alone does not fit.
    events::result<std::vector<pubsub::shared_batch>> split_batch(const events::channel_path& path,
                                                                  const std::string& subject,
                                                                  const pubsub::shared_batch& batch,
                                                                  bool stored);
    // One NATS message; with `track`, remembered until it is echoed (or delivered here past the
    // echo timeout). False when nats.c refused it (nothing remembered then).
    // `reply`: the subject JetStream acknowledges the message to (null: none).
    natsStatus send(const std::string& subject, const events::channel_path& path,
                    const pubsub::shared_batch& part, bool track, const char* reply = nullptr);
    // JetStream's acknowledgements of located publishes ({"stream":..,"seq":N}).
    static void on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
    // Whether a message that arrived from NATS is to be delivered: false for an echo of ours
    // already delivered here (counted as late). `origin` is its Eventcast-Origin header or null.
    bool take_echo(const char* origin);
    void echo_loop();

    // nats.c callbacks; `closure` is the bridge.
    static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
    // What a namespace's stream republishes: the original subject and the stream sequence in
    // headers.
    static void on_stored(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
    // Decodes one stored message and hands it to event_api::deliver_at; false when undecodable.
    bool deliver_stored(std::string_view subject, std::string_view payload, std::uint64_t seq,
                        const char* origin);
    static void on_connected(natsConnection*, void* closure);
    static void on_disconnected(natsConnection*, void* closure);
    static void on_reconnected(natsConnection*, void* closure);
    static void on_closed(natsConnection*, void* closure);
    static void on_error(natsConnection*, natsSubscription*, natsStatus status, void* closure);
    static std::int64_t reconnect_delay(natsConnection*, int attempts, void* closure);
    static void on_subscription_complete(void* closure);

    const core::cluster_config& cfg_;
    api::event_api& api_;
    pubsub::broker& broker_;
    jetstream_history* history_;
    jsCtx* js_ = nullptr;
    bridge_stats stats_;
    std::atomic<bool> connected_{false};
    std::atomic<bool> ever_connected_{false};
    std::atomic<bool> closing_{false};  // stop() closes the connection: no outage to report

    // Held shared by every publish and every NATS callback, exclusively by stop(): once
    // stopped_ is set under it, nothing touches the connection or the event_api again.
    mutable std::shared_mutex life_;
    bool stopped_ = false;
    bool started_ = false;

    natsOptions* opts_ = nullptr;
    natsConnection* conn_ = nullptr;
    std::shared_mutex subs_mutex_;  // the broker's write lock already serializes on_namespace
    std::map<std::string, namespace_subs, std::less<>> subs_;

    // stop() waits until nats.c is done calling us: the connection's closed callback has run and
    // every subscription's completion callback (no message handler running or to come).
    std::mutex closed_mutex_;
    std::condition_variable closed_cv_;
    bool closed_ = false;
    int live_subscriptions_ = 0;

    // Echo tracking: this node's origin (a random id per process) and the next message number.
    const std::string origin_;
    std::atomic<std::uint64_t> next_echo_{1};
    std::atomic<std::int64_t> connected_since_{0};  // clock ticks of the last (re)connect
    std::mutex echo_mutex_;
    std::condition_variable echo_cv_;
    std::map<std::uint64_t, awaiting_echo> awaiting_;  // by message number: oldest first
    std::size_t awaiting_bytes_ = 0;
    std::map<std::uint64_t, fell_back> fell_back_;
    std::map<std::uint64_t, awaiting_ack> acks_;  // by message number
    std::string ack_inbox_;                       // a unique inbox; acks go to <it>.<number>
    natsSubscription* ack_sub_ = nullptr;
    bool echo_stop_ = false;
    std::thread echo_thread_;

    // Interest: what the broker reported, the changes not yet made in NATS, and callbacks of
    // answers that wait for a confirmation.
    std::mutex interest_mutex_;
    std::condition_variable interest_cv_;
    std::map<std::string, interest, std::less<>> interest_;
    std::deque<interest_change> changes_;
    std::vector<std::function<void()>> release_;  // waiters of namespaces dropped meanwhile
    std::uint64_t next_generation_ = 1;
    bool interest_stop_ = false;
    std::thread interest_thread_;

    std::mutex jobs_mutex_;
    std::condition_variable jobs_cv_;
    std::deque<std::function<void()>> jobs_;
    bool jobs_stop_ = false;
    std::thread jobs_thread_;
};

}  // namespace eventcast::cluster

// The AppSync Events operations independent of transport: authorize connect/subscribe/publish,
// check namespaces, and publish (encode once, fan out, hand back identifiers). Both the
// WebSocket session and HTTP POST /event call this, so their rules cannot drift apart.
#pragma once

#include "auth/authorizer.hpp"
#include "core/config.hpp"
#include "core/stats.hpp"
#include "events/message.hpp"
#include "history/store.hpp"
#include "pubsub/broker.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::api {

/// Where publishes go in cluster mode (implemented by cluster::nats_bridge). Thread-safe.
class cluster_link {
public:
    virtual ~cluster_link() = default;
    /// Sends `batch` to every node, this one included; it comes back through deliver_local().
    /// Returns false when it could not (not connected, or the send failed): the caller then
    /// delivers locally. Must not block.
    virtual bool publish(const events::channel_path& path, const pubsub::shared_batch& batch) = 0;
};

/// Thread-safe: all state is read-only after construction except the broker and the history
/// store (both thread-safe), the per-namespace order locks and the stats counters.
class event_api {
public:
    /// Without `history`, keeps an in-memory one (history::memory_store, cfg.history) with a
    /// random epoch.
    event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
              auth::authorizer& authz, std::shared_ptr<history::store> history = nullptr);

    const core::config& config() const noexcept { return cfg_; }
    pubsub::broker& broker() noexcept { return broker_; }
    core::stats& stats() noexcept { return stats_; }
    history::store& history() noexcept { return *history_; }

    /// Who may do what (spec §9). Callers count refusals with count_refusal().
    auth::authorizer& auth() noexcept { return auth_; }
    void count_refusal() noexcept { core::stats::add(stats_.auth_failures); }

    /// An undefined namespace is UnauthorizedException, as AWS answers (spec §7.2).
    events::result<void> check_namespace(std::string_view ns) const;

    /// Publishes `events` (validated JSON texts) to `path`: each is escaped and framed once,
    /// then, in this node's delivery step, given the next positions of its namespace, recorded
    /// in history and fanned out to every matching subscription. Returns one identifier per
    /// event and, when delivered here at once, the first position. With a cluster attached and
    /// connected, the batch goes to NATS and is delivered (and given positions) when it comes
    /// back, so every node sees the NATS order; `first` is then left at seq 0 (unknown yet).
    events::publish_outcome publish(const events::channel_path& path,
                                    const std::vector<std::string>& events);

    /// Hands an accepted batch to this node's subscribers: the one step both local publishes and
    /// batches arriving from the cluster go through. Bodies arrive open (`"<event as a JSON
    /// string>"`, events::data_body_open); here they get their positions and are closed. Any
    /// thread; takes the namespace's order lock, never blocks on I/O. Returns the first position
    /// (seq 0 when the store does not assign positions: cluster mode with NATS down).
    events::position deliver_local(const events::channel_path& path,
                                   std::shared_ptr<pubsub::event_batch> batch);

    /// deliver_local for a batch that already has its position (cluster mode with JetStream
    /// history: the stream sequence, the same on every node). Every body gets `at`; the store's
    /// take_live() may drop it (already replayed to a resuming subscriber).
    void deliver_at(const events::channel_path& path, std::shared_ptr<pubsub::event_batch> batch,
                    const events::position& at);

    /// Cluster mode on (non-null) or off (null). The link must outlive its attachment.
    void attach_cluster(cluster_link* link) noexcept { cluster_.store(link); }

    /// A subscription that resumes: the retained events matching `pattern` after `after`, and
    /// the live subscription (as broker::subscribe gives it), taken together under the
    /// namespace's order lock so that every event after `after` is in exactly one of the two.
    struct resumed {
        pubsub::subscription_handle handle = nullptr;
        std::vector<history::stored_event> missed;  // position order; send them before any live
    };
    /// Fails (and subscribes nothing) when `after` cannot be resumed from: resume_too_old or
    /// invalid_input, from history::store::since.
    events::result<resumed> subscribe_resume(const events::channel_pattern& pattern,
                                             const events::position& after,
                                             std::weak_ptr<pubsub::subscriber> target,
                                             pubsub::shared_bytes prefix);

private:
    const core::config& cfg_;
    pubsub::broker& broker_;
    core::stats& stats_;
    auth::authorizer& auth_;
    std::unordered_set<std::string> namespaces_;
    std::atomic<cluster_link*> cluster_{nullptr};
    // Serialises position assignment, history append and live fan-out per namespace, so that
    // delivery order is position order and a resume sees each event once (docs/protocol.md).
    std::mutex& order_lock(std::string_view ns);

    std::shared_ptr<history::store> history_;
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    // Fixed at start; looked up by string_view, so a publish allocates nothing to find its lock.
    std::unordered_map<std::string, std::unique_ptr<std::mutex>, string_hash, std::equal_to<>>
        order_locks_;
    std::mutex other_order_lock_;  // namespaces not configured (refused before publish anyway)
};

}  // namespace eventcast::api

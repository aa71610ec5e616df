// The AppSync Events operations independent of transport: authorize connect/subscribe/publish,
// check namespaces, and publish (encode once, fan out, hand back identifiers). Both the
// WebSocket session and HTTP POST /event call this, so their rules cannot drift apart.
#pragma once

#include "auth/authorizer.hpp"
#include "core/config.hpp"
#include "core/stats.hpp"
#include "events/message.hpp"
#include "pubsub/broker.hpp"

#include <atomic>
#include <optional>
#include <string>
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

/// Thread-safe: all state is read-only after construction except the broker (itself
/// thread-safe) and the stats counters.
class event_api {
public:
    event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
              auth::authorizer& authz);

    const core::config& config() const noexcept { return cfg_; }
    pubsub::broker& broker() noexcept { return broker_; }
    core::stats& stats() noexcept { return stats_; }

    /// Who may do what (spec §9). Callers count refusals with count_refusal().
    auth::authorizer& auth() noexcept { return auth_; }
    void count_refusal() noexcept { core::stats::add(stats_.auth_failures); }

    /// An undefined namespace is UnauthorizedException, as AWS answers (spec §7.2).
    events::result<void> check_namespace(std::string_view ns) const;

    /// Publishes `events` (validated JSON texts) to `path`: each is escaped and framed once,
    /// then every matching subscription gets the shared batch. Returns one identifier per event.
    /// With a cluster attached and connected, the batch goes to NATS and reaches local
    /// subscribers when it comes back (so every node sees the NATS order); otherwise it is
    /// delivered locally at once.
    events::publish_outcome publish(const events::channel_path& path,
                                    const std::vector<std::string>& events);

    /// Hands an accepted batch to this node's subscribers: the one step both local publishes and
    /// batches arriving from the cluster go through. Any thread; does not block.
    void deliver_local(const events::channel_path& path, const pubsub::shared_batch& batch);

    /// Cluster mode on (non-null) or off (null). The link must outlive its attachment.
    void attach_cluster(cluster_link* link) noexcept { cluster_.store(link); }

private:
    const core::config& cfg_;
    pubsub::broker& broker_;
    core::stats& stats_;
    auth::authorizer& auth_;
    std::unordered_set<std::string> namespaces_;
    std::atomic<cluster_link*> cluster_{nullptr};
};

}  // namespace eventcast::api

// The AppSync Events operations independent of transport: authorize connect/subscribe/publish,
// check namespaces, and publish (encode once, fan out, hand back identifiers). Both the
// WebSocket session and HTTP POST /event call this, so their rules cannot drift apart.
#pragma once

#include "auth/api_keys.hpp"
#include "core/config.hpp"
#include "core/stats.hpp"
#include "events/message.hpp"
#include "history/store.hpp"
#include "pubsub/broker.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::api {

/// Thread-safe: all state is read-only after construction except the broker and the history
/// store (both thread-safe), the per-namespace order locks and the stats counters.
class event_api {
public:
    /// Without `history`, keeps an in-memory one (history::memory_store, cfg.history) with a
    /// random epoch.
    event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
              std::shared_ptr<history::store> history = nullptr);

    const core::config& config() const noexcept { return cfg_; }
    pubsub::broker& broker() noexcept { return broker_; }
    core::stats& stats() noexcept { return stats_; }
    history::store& history() noexcept { return *history_; }

    /// Connect: credentials from the header- subprotocol or the upgrade request headers.
    events::result<void> authorize_connect(const events::credentials& creds) const;

    /// Subscribe or publish: the message's `authorization` object (HTTP: the request headers).
    /// A missing object is refused (spec §9.7). `operation` names it in the message.
    events::result<void> authorize(const std::optional<events::credentials>& creds,
                                   std::string_view operation) const;

    /// An undefined namespace is UnauthorizedException, as AWS answers (spec §7.2).
    events::result<void> check_namespace(std::string_view ns) const;

    /// Publishes `events` (validated JSON texts) to `path`: each is escaped and framed once,
    /// given the next positions of its namespace, recorded in history, then every matching
    /// subscription gets the shared batch. Returns one identifier per event and the first
    /// position. Publishes to one namespace are delivered in position order.
    events::publish_outcome publish(const events::channel_path& path,
                                    const std::vector<std::string>& events);

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
    // Serialises position assignment, history append and live fan-out per namespace, so that
    // delivery order is position order and a resume sees each event once (docs/protocol.md).
    std::mutex& order_lock(std::string_view ns);

    auth::api_key_store keys_;
    std::unordered_set<std::string> namespaces_;
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

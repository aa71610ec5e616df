// The local broker: a subscription index by channel path (a trie of segments) and fan-out.
// One publish encodes each event once into an event_batch; every matching subscription gets a
// reference to that batch plus its own precomputed frame prefix; the session copies prefix and
// body into its socket write only then (docs/decisions/005-write-path.md).
#pragma once

#include "events/channel.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

namespace eventcast::pubsub {

using shared_bytes = std::shared_ptr<const std::string>;

/// The bodies of one publish's data frames (`"<event as JSON string>"}`), in index order.
struct event_batch {
    std::vector<std::string> bodies;
    std::size_t bytes = 0;  // sum of bodies' sizes
};
using shared_batch = std::shared_ptr<const event_batch>;

/// Receives fan-out. Implemented by WebSocket sessions.
class subscriber {
public:
    virtual ~subscriber() = default;
    /// Called on the publisher's thread, possibly concurrently from several publishers, while the
    /// broker holds its read lock: must not block and must not call back into the broker.
    /// `prefix` is the subscription's frame prefix; every body of `batch` becomes one frame.
    /// The broker calls it through a plain pointer, with no reference counted (issue #15: the
    /// weak_ptr lock and release per delivery were a fifth of the fan-out's time), so a
    /// subscriber must unsubscribe all its subscriptions before it is destroyed.
    virtual void deliver(const shared_bytes& prefix, const shared_batch& batch) = 0;
};

class subscription;  // opaque; owned by the broker between subscribe() and unsubscribe()
using subscription_handle = subscription*;

/// Thread-safe. Subscribe/unsubscribe take the write lock; publish takes the read lock, so
/// publishes on different threads proceed in parallel.
class broker {
public:
    broker();
    /// Frees the subscriptions still live; their handles must not be used afterwards.
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    /// Adds a subscription; it is live (receives publishes) when this returns, so the caller
    /// may acknowledge it then (spec §11.2). `prefix` is the frame prefix for its data frames.
    /// `target` must stay alive until unsubscribe() returns (an expired one gets nothing).
    subscription_handle subscribe(const events::channel_pattern& pattern,
                                  std::weak_ptr<subscriber> target, shared_bytes prefix);
    /// Removes a subscription; no delivery for it starts after this returns. `h` is invalid after.
    void unsubscribe(subscription_handle h);

    /// Delivers `batch` to every subscription matching `path`. Returns the number of
    /// subscriptions reached. Cost: O(segments + matches), never a scan of all subscriptions.
    std::size_t publish(const events::channel_path& path, const shared_batch& batch);

    std::size_t subscription_count() const noexcept { return subscriptions_.load(); }

    /// Called with (namespace, true) when the first subscription in a namespace arrives and
    /// (namespace, false) when its last one leaves: the interest a cluster node needs from the
    /// other nodes. Runs under the write lock, so calls are serialized and in order with the
    /// subscriptions, and the first subscription is acknowledged only after it returns; must
    /// not call back into the broker. Setting it reports every namespace already subscribed;
    /// an empty function removes it.
    using namespace_listener = std::function<void(std::string_view ns, bool interested)>;
    void set_namespace_listener(namespace_listener listener);

    /// Nodes in the subscription trie besides the root. Empty nodes are pruned, so this is 0
    /// whenever nothing is subscribed. O(nodes) under the read lock: for tests and diagnostics.
    std::size_t node_count() const;

    /// Per namespace (first segment) with anything subscribed: its subscriptions and the
    /// distinct subscribers (connections) holding them. O(subscriptions) under the read lock,
    /// so once per metrics scrape, never per operation.
    struct namespace_count {
        std::string ns;
        std::size_t subscriptions = 0;
        std::size_t subscribers = 0;
    };
    std::vector<namespace_count> namespace_counts() const;

private:
    friend class subscription;
    struct node;
    void prune(node* n);

    mutable std::shared_mutex mutex_;
    std::unique_ptr<node> root_;
    std::atomic<std::size_t> subscriptions_{0};
    namespace_listener namespace_listener_;
};

}  // namespace eventcast::pubsub

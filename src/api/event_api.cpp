// Transport-independent operations. publish() is the top of the hot path: one allocation per
// event body plus one for the batch, then O(matches) deliveries of shared pointers.
#include "api/event_api.hpp"

#include "core/ids.hpp"
#include "history/memory_store.hpp"

#include <random>

namespace eventcast::api {

namespace {
// A random nonzero epoch per run: a position from an earlier run is recognised as such.
std::uint32_t random_epoch() {
    std::random_device rd;
    std::uint32_t e = 0;
    while (e == 0)
        e = rd();
    return e;
}
}  // namespace

event_api::event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
                     auth::authorizer& authz, std::shared_ptr<history::store> history)
    : cfg_(cfg),
      broker_(broker),
      stats_(stats),
      auth_(authz),
      namespaces_(cfg.namespaces.begin(), cfg.namespaces.end()),
      history_(history ? std::move(history)
                       : std::make_shared<history::memory_store>(cfg.history, random_epoch())) {
    for (const auto& ns : namespaces_)
        order_locks_.emplace(ns, std::make_unique<std::mutex>());
}

std::mutex& event_api::order_lock(std::string_view ns) {
    auto it = order_locks_.find(ns);
    return it == order_locks_.end() ? other_order_lock_ : *it->second;
}

events::result<void> event_api::check_namespace(std::string_view ns) const {
    if (namespaces_.count(std::string(ns)))
        return {};
    return events::protocol_error::unauthorized("namespace '" + std::string(ns) +
                                                "' is not defined on this server");
}

events::publish_outcome event_api::publish(const events::channel_path& path,
                                           const std::vector<std::string>& events) {
    auto batch = std::make_shared<pubsub::event_batch>();
    batch->bodies.reserve(events.size());
    events::publish_outcome outcome;
    outcome.identifiers.reserve(events.size());
    for (const auto& e : events) {
        batch->bodies.push_back(events::data_body_open(e));  // the costly part, outside the lock
        batch->bytes += batch->bodies.back().size();
        outcome.identifiers.push_back(core::uuid_v4());
    }
    core::stats::add(stats_.events_in, events.size());
    auto* link = cluster_.load(std::memory_order_acquire);
    if (!link || !link->publish(path, batch))
        outcome.first = deliver_local(path, std::move(batch));
    return outcome;
}

events::position event_api::deliver_local(const events::channel_path& path,
                                          std::shared_ptr<pubsub::event_batch> batch) {
    std::size_t reached = 0;
    events::position first;
    if (!history_->assigns_positions()) {
        // Positions come from the cluster's stream; a batch that did not go through it (NATS
        // down) is not in history and carries the newest stored position before it.
        // Returns seq 0: the events have no position of their own to resume before.
        std::lock_guard lock(order_lock(path.namespace_name()));
        const auto newest = history_->newest(path.namespace_name());
        batch->bytes = 0;
        for (auto& body : batch->bodies) {
            events::data_body_close(body, newest);
            batch->bytes += body.size();
        }
        pubsub::shared_batch shared = std::move(batch);
        reached = broker_.publish(path, shared);
        core::stats::add(stats_.frames_out, reached * shared->bodies.size());
        return first;
    }
    {
        std::lock_guard lock(order_lock(path.namespace_name()));
        const auto seq = history_->reserve(path.namespace_name(), batch->bodies.size());
        const auto epoch = history_->epoch();
        batch->bytes = 0;
        for (std::size_t i = 0; i < batch->bodies.size(); ++i) {
            events::data_body_close(batch->bodies[i], {epoch, seq + i});
            batch->bytes += batch->bodies[i].size();
        }
        first = {epoch, seq};
        // History before fan-out: an event is retained by the time anyone can have seen it.
        pubsub::shared_batch shared = std::move(batch);
        history_->append(path, seq, shared, history::clock::now());
        reached = broker_.publish(path, shared);
        core::stats::add(stats_.frames_out, reached * shared->bodies.size());
    }
    return first;
}

void event_api::deliver_at(const events::channel_path& path,
                           std::shared_ptr<pubsub::event_batch> batch, const events::position& at) {
    std::lock_guard lock(order_lock(path.namespace_name()));
    if (!history_->take_live(path.namespace_name(), at))
        return;
    batch->bytes = 0;
    for (auto& body : batch->bodies) {
        events::data_body_close(body, at);
        batch->bytes += body.size();
    }
    pubsub::shared_batch shared = std::move(batch);
    const auto reached = broker_.publish(path, shared);
    core::stats::add(stats_.frames_out, reached * shared->bodies.size());
}

events::result<event_api::resumed> event_api::subscribe_resume(
    const events::channel_pattern& pattern, const events::position& after,
    std::weak_ptr<pubsub::subscriber> target, pubsub::shared_bytes prefix) {
    if (auto ready = history_->prepare_resume(pattern.namespace_name(), after); !ready)
        return ready.error();
    std::lock_guard lock(order_lock(pattern.namespace_name()));
    // Subscribed first: in cluster mode the node's first subscription in a namespace starts
    // its interest in NATS, and the store learns there from which position on live events
    // will arrive; since() answers up to exactly that position. No live delivery runs in
    // between (it needs this lock), so for a store that assigns positions the order is moot.
    resumed r;
    r.handle = broker_.subscribe(pattern, std::move(target), std::move(prefix));
    auto missed = history_->since(pattern, after, history::clock::now());
    if (!missed) {
        broker_.unsubscribe(r.handle);
        return missed.error();
    }
    r.missed = std::move(*missed);
    return r;
}

}  // namespace eventcast::api

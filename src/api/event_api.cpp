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
                     std::shared_ptr<history::store> history)
    : cfg_(cfg),
      broker_(broker),
      stats_(stats),
      keys_(cfg.api_keys),
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

events::result<void> event_api::authorize_connect(const events::credentials& creds) const {
    auto r = keys_.check(creds);
    if (!r)
        core::stats::add(stats_.auth_failures);
    return r;
}

events::result<void> event_api::authorize(const std::optional<events::credentials>& creds,
                                          std::string_view operation) const {
    if (!creds) {
        core::stats::add(stats_.auth_failures);
        return events::protocol_error::unauthorized(
            std::string(operation) +
            " needs an 'authorization' object with the API key, like {\"x-api-key\":\"...\"}");
    }
    auto r = keys_.check(*creds);
    if (!r)
        core::stats::add(stats_.auth_failures);
    return r;
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
        outcome.identifiers.push_back(core::uuid_v4());
    }
    std::size_t reached = 0;
    {
        std::lock_guard lock(order_lock(path.namespace_name()));
        const auto first = history_->reserve(path.namespace_name(), events.size());
        const auto epoch = history_->epoch();
        for (std::size_t i = 0; i < batch->bodies.size(); ++i) {
            events::data_body_close(batch->bodies[i], {epoch, first + i});
            batch->bytes += batch->bodies[i].size();
        }
        outcome.first = {epoch, first};
        // History before fan-out: an event is retained by the time anyone can have seen it.
        // (Cluster mode delivers what NATS brings through this same point.)
        history_->append(path, first, batch, history::clock::now());
        reached = broker_.publish(path, batch);
    }
    core::stats::add(stats_.events_in, events.size());
    core::stats::add(stats_.frames_out, reached * events.size());
    return outcome;
}

events::result<event_api::resumed> event_api::subscribe_resume(
    const events::channel_pattern& pattern, const events::position& after,
    std::weak_ptr<pubsub::subscriber> target, pubsub::shared_bytes prefix) {
    std::lock_guard lock(order_lock(pattern.namespace_name()));
    auto missed = history_->since(pattern, after, history::clock::now());
    if (!missed)
        return missed.error();
    resumed r;
    r.missed = std::move(*missed);
    r.handle = broker_.subscribe(pattern, std::move(target), std::move(prefix));
    return r;
}

}  // namespace eventcast::api

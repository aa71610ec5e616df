// Transport-independent operations. publish() is the top of the hot path: one allocation per
// event body plus one for the batch, then O(matches) deliveries of shared pointers.
#include "api/event_api.hpp"

#include "core/ids.hpp"

namespace eventcast::api {

event_api::event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
                     auth::authorizer& authz)
    : cfg_(cfg),
      broker_(broker),
      stats_(stats),
      auth_(authz),
      namespaces_(cfg.namespaces.begin(), cfg.namespaces.end()) {}

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
        batch->bodies.push_back(events::data_body(e));
        batch->bytes += batch->bodies.back().size();
        outcome.identifiers.push_back(core::uuid_v4());
    }
    core::stats::add(stats_.events_in, events.size());
    auto* link = cluster_.load(std::memory_order_acquire);
    if (!link || !link->publish(path, batch))
        deliver_local(path, batch);
    return outcome;
}

void event_api::deliver_local(const events::channel_path& path, const pubsub::shared_batch& batch) {
    const auto reached = broker_.publish(path, batch);
    core::stats::add(stats_.frames_out, reached * batch->bodies.size());
}

}  // namespace eventcast::api

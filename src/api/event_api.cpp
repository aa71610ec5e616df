// Transport-independent operations. publish() is the top of the hot path: one allocation per
// event body plus one for the batch, then O(matches) deliveries of shared pointers.
#include "api/event_api.hpp"

#include "auth/identity_json.hpp"
#include "core/ids.hpp"
#include "handlers/context.hpp"
#include "history/memory_store.hpp"

#include <algorithm>
#include <future>
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
events::protocol_error handler_refusal(const handlers::failure& f) {
    using kind = handlers::failure::kind;
    if (f.what == kind::unauthorized)
        return events::protocol_error::unauthorized();
    return {events::error_kind::handler_error, f.message};
}

}  // namespace

event_api::event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
                     auth::authorizer& authz, std::shared_ptr<history::store> history)
    : cfg_(cfg),
      broker_(broker),
      stats_(stats),
      auth_(authz),
      namespaces_(cfg.namespaces),
      history_(history ? std::move(history)
                       : std::make_shared<history::memory_store>(cfg.history, random_epoch())) {
    namespaces_.for_each([&](namespace_state& s) { s.auth = &authz.policy_for(s.name); });
}

events::protocol_error event_api::undefined_namespace(std::string_view ns) {
    return events::protocol_error::unauthorized("namespace '" + std::string(ns) +
                                                "' is not defined on this server");
}

std::mutex& event_api::order_lock(std::string_view ns) {
    auto* state = namespaces_.find(ns);
    return state ? state->order : other_ns_.order;
}

events::result<namespace_state*> event_api::check_namespace(std::string_view ns) const {
    if (auto* state = namespaces_.find(ns))
        return state;
    return undefined_namespace(ns);
}

std::optional<events::protocol_error> event_api::over_rate(const caller& who) const {
    if (!who.ops || who.ops->take())
        return std::nullopt;
    core::stats::add(stats_.rate_limited_operations);
    return events::protocol_error{events::error_kind::limit_exceeded,
                                  "more than " + std::to_string(cfg_.auth.max_ops_per_second) +
                                      " operations per second on this connection; slow down"};
}

publish_result event_api::finish_publish(const publish_request& req, const auth::auth_result& a,
                                         namespace_state* ns, const events::credentials* creds) {
    if (!a) {
        count_refusal();
        return a.error();
    }
    if (req.invalid || !req.channel)
        return req.invalid ? *req.invalid
                           : events::protocol_error{events::error_kind::bad_request,
                                                    "the publish names no channel"};
    if (!ns)
        return undefined_namespace(req.channel->namespace_name());
    if (auto* h = handlers_.load(std::memory_order_acquire))
        if (auto code = h->find(ns->name); code && code->has_publish)
            return publish_through_handler(*h, *code, *ns, req, *a, creds);
    return publish_in(*ns, *req.channel, req.events);
}

publish_result event_api::publish_through_handler(handlers::registry& h,
                                                  const handlers::module_source& code,
                                                  namespace_state& ns, const publish_request& req,
                                                  const auth::identity& who,
                                                  const events::credentials* creds) {
    events::publish_outcome outcome;
    outcome.identifiers.reserve(req.events.size());
    for (std::size_t i = 0; i < req.events.size(); ++i)
        outcome.identifiers.push_back(core::uuid_v4());
    const auto identity = auth::identity_json(who);
    handlers::invocation inv;
    inv.op = handlers::operation::publish;
    inv.channel = req.channel->str();
    inv.ns = ns.name;
    inv.events = &req.events;
    inv.ids = &outcome.identifiers;
    inv.identity_json = identity;
    inv.headers = creds ? &creds->entries() : nullptr;
    auto decision = h.on_publish(code, inv);
    return deliver_decided(ns, *req.channel, req.events.size(), std::move(outcome),
                           std::move(decision));
}

publish_result event_api::deliver_decided(namespace_state& ns, const events::channel_path& path,
                                          std::size_t incoming, events::publish_outcome outcome,
                                          handlers::result<handlers::publish_decision> decision) {
    core::stats::add(stats_.events_in, incoming);
    ns.publishes.fetch_add(1, std::memory_order_relaxed);
    ns.events_in.fetch_add(incoming, std::memory_order_relaxed);
    if (!decision) {
        count_handler_failure();
        return handler_refusal(decision.error());
    }
    for (auto& f : decision->failed)
        outcome.failed.push_back({f.index, std::move(f.message)});
    std::sort(outcome.failed.begin(), outcome.failed.end(),
              [](const auto& x, const auto& y) { return x.index < y.index; });
    if (decision->broadcast.empty())
        return outcome;
    auto batch = std::make_shared<pubsub::event_batch>();
    batch->bodies.reserve(decision->broadcast.size());
    for (const auto& e : decision->broadcast) {
        batch->bodies.push_back(events::data_body_open(e.payload));
        batch->bytes += batch->bodies.back().size();
    }
    auto first = route_batch(ns, path, std::move(batch), false);
    if (!first)
        return first.error();
    outcome.first = *first;
    return outcome;
}

bool event_api::publish_waits(const publish_request& req, const auth::auth_result& a,
                              const namespace_state* ns) const {
    if (!a || req.invalid || !req.channel || !ns)
        return false;
    auto* h = handlers_.load(std::memory_order_acquire);
    return h && h->waits(ns->name, handlers::operation::publish);
}

void event_api::publish_waiting(publish_request req, const auth::identity& who, namespace_state& ns,
                                const events::credentials* creds,
                                std::function<void(publish_result)> done) {
    auto held = std::make_shared<publish_request>(std::move(req));
    auto outcome = std::make_shared<events::publish_outcome>();
    outcome->identifiers.reserve(held->events.size());
    for (std::size_t i = 0; i < held->events.size(); ++i)
        outcome->identifiers.push_back(core::uuid_v4());
    const auto identity = identity_json(who);
    handlers::invocation inv;
    inv.op = handlers::operation::publish;
    inv.channel = held->channel->str();
    inv.ns = ns.name;
    inv.events = &held->events;
    inv.ids = &outcome->identifiers;
    inv.identity_json = identity;
    inv.headers = creds ? &creds->entries() : nullptr;
    handlers_.load()->on_publish_async(
        inv, [this, held, outcome, &ns,
              done = std::move(done)](handlers::result<handlers::publish_decision> decision) {
            done(deliver_decided(ns, *held->channel, held->events.size(), std::move(*outcome),
                                 std::move(decision)));
        });
}

void event_api::count_handler_failure() noexcept {
    core::stats::add(stats_.handler_failures);
}

void event_api::finish_subscribe(subscribe_request& req, const auth::auth_result& a,
                                 namespace_state* ns, const events::credentials* creds,
                                 std::function<void(subscribe_result)> done) {
    if (!a) {
        count_refusal();
        return done(a.error());
    }
    if (!ns)
        return done(undefined_namespace(req.channel.namespace_name()));
    if (auto* h = handlers_.load(std::memory_order_acquire);
        h && h->waits(ns->name, handlers::operation::subscribe)) {
        // Held before `inv` views it: the views must point into what the answer keeps.
        auto held = std::make_shared<subscribe_request>(std::move(req));
        const auto identity = identity_json(*a);
        handlers::invocation inv;
        inv.op = handlers::operation::subscribe;
        inv.channel = held->raw_channel;
        inv.ns = ns->name;
        inv.identity_json = identity;
        inv.headers = creds ? &creds->entries() : nullptr;
        return h->on_subscribe_async(
            inv, [this, held, done = std::move(done)](std::optional<handlers::failure> refused) {
                if (refused) {
                    if (refused->what != handlers::failure::kind::unauthorized &&
                        refused->what != handlers::failure::kind::error)
                        count_handler_failure();
                    return done(handler_refusal(*refused));
                }
                subscribe_accepted(*held, done);
            });
    }
    if (auto* h = handlers_.load(std::memory_order_acquire)) {
        if (auto code = h->find(ns->name); code && code->has_subscribe) {
            const auto identity = auth::identity_json(*a);
            handlers::invocation inv;
            inv.op = handlers::operation::subscribe;
            inv.channel = req.raw_channel;
            inv.ns = ns->name;
            inv.identity_json = identity;
            inv.headers = creds ? &creds->entries() : nullptr;
            if (auto refused = h->on_subscribe(*code, inv)) {
                if (refused->what != handlers::failure::kind::unauthorized &&
                    refused->what != handlers::failure::kind::error)
                    count_handler_failure();
                return done(handler_refusal(*refused));
            }
        }
    }
    subscribe_accepted(req, std::move(done));
}

void event_api::subscribe_accepted(subscribe_request& req,
                                   std::function<void(subscribe_result)> done) {
    auto* link = cluster_.load(std::memory_order_acquire);
    if (req.resume_after) {
        if (!link)
            return done(subscribe_resume(req.channel, *req.resume_after, std::move(req.target),
                                         std::move(req.prefix)));
        // Cluster history is read from JetStream: wait on the link's thread, not this one.
        auto held = std::make_shared<subscribe_request>(std::move(req));
        return link->run_blocking([this, held, done = std::move(done)] {
            resume_and_answer(held->channel, *held->resume_after, std::move(held->target),
                              std::move(held->prefix), done);
        });
    }
    subscribed s;
    s.handle = broker_.subscribe(req.channel, std::move(req.target), std::move(req.prefix));
    if (!link || link->when_interested(req.channel.namespace_name(),
                                       [done, s]() mutable { done(std::move(s)); }))
        return done(std::move(s));
}

events::result<void> event_api::unsubscribe(const caller& who, std::string_view id,
                                            pubsub::subscription_handle handle) {
    if (auto limited = over_rate(who))
        return std::move(*limited);
    if (!handle)
        return events::protocol_error{events::error_kind::unknown_operation,
                                      "Unknown operation id " + std::string(id)};
    broker_.unsubscribe(handle);
    return {};
}

std::vector<event_api::namespace_metrics> event_api::namespace_counts() const {
    std::vector<namespace_metrics> out;
    namespaces_.for_each([&](const namespace_state& s) {
        out.push_back({s.name, s.publishes.load(std::memory_order_relaxed),
                       s.events_in.load(std::memory_order_relaxed),
                       s.deliveries.load(std::memory_order_relaxed), 0, 0});
    });
    for (const auto& c : broker_.namespace_counts())
        for (auto& m : out)
            if (m.ns == c.ns) {
                m.subscriptions = c.subscriptions;
                m.connections = c.subscribers;
            }
    std::sort(out.begin(), out.end(),
              [](const namespace_metrics& a, const namespace_metrics& b) { return a.ns < b.ns; });
    return out;
}

events::publish_outcome event_api::publish(const events::channel_path& path,
                                           const std::vector<std::string>& events) {
    auto* ns = namespaces_.find(path.namespace_name());
    // Never an error: the server's own events are delivered here when NATS cannot carry them.
    return publish_in(ns ? *ns : other_ns_, path, events, true).value();
}

bool event_api::publish_located(const events::channel_path& path,
                                const std::vector<std::string>& events,
                                events::publish_outcome& out,
                                std::function<void(events::position)> located) {
    auto* ns = namespaces_.find(path.namespace_name());
    bool later = false;
    out = publish_in(ns ? *ns : other_ns_, path, events, true, std::move(located), &later).value();
    return later;
}

publish_result event_api::publish_in(namespace_state& ns, const events::channel_path& path,
                                     const std::vector<std::string>& events, bool server,
                                     std::function<void(events::position)> located, bool* later) {
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
    ns.publishes.fetch_add(1, std::memory_order_relaxed);
    ns.events_in.fetch_add(events.size(), std::memory_order_relaxed);
    auto first = route_batch(ns, path, std::move(batch), server, std::move(located), later);
    if (!first)
        return first.error();
    outcome.first = *first;
    return outcome;
}

events::result<events::position> event_api::route_batch(
    namespace_state& ns, const events::channel_path& path,
    std::shared_ptr<pubsub::event_batch> batch, bool server,
    std::function<void(events::position)> located, bool* later) {
    auto* link = cluster_.load(std::memory_order_acquire);
    if (!link)
        return deliver_in(ns, path, std::move(batch));
    auto routed = link->publish(path, batch, std::move(located));
    if (routed && *routed == cluster_link::route::sent) {
        if (later)
            *later = true;
        return events::position{};
    }
    if (!routed && !server)
        return routed.error();
    // Not connected, the send failed, or (the server's own event) too large for NATS: this
    // node's subscribers still get it; the link counted and logged why.
    return deliver_in(ns, path, std::move(batch));
}

events::position event_api::deliver_local(const events::channel_path& path,
                                          std::shared_ptr<pubsub::event_batch> batch) {
    auto* ns = namespaces_.find(path.namespace_name());
    return deliver_in(ns ? *ns : other_ns_, path, std::move(batch));
}

events::position event_api::deliver_in(namespace_state& ns, const events::channel_path& path,
                                       std::shared_ptr<pubsub::event_batch> batch) {
    std::size_t reached = 0;
    events::position first;
    if (!history_->assigns_positions()) {
        // Positions come from the cluster's stream; a batch that did not go through it (NATS
        // down) is not in history and carries the newest stored position before it.
        // Returns seq 0: the events have no position of their own to resume before.
        std::lock_guard lock(ns.order);
        const auto newest = history_->newest(path.namespace_name());
        batch->bytes = 0;
        for (auto& body : batch->bodies) {
            events::data_body_close(body, newest);
            batch->bytes += body.size();
        }
        pubsub::shared_batch shared = std::move(batch);
        reached = broker_.publish(path, shared);
        core::stats::add(stats_.frames_out, reached * shared->bodies.size());
        ns.deliveries.fetch_add(reached * shared->bodies.size(), std::memory_order_relaxed);
        return first;
    }
    {
        std::lock_guard lock(ns.order);
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
        ns.deliveries.fetch_add(reached * shared->bodies.size(), std::memory_order_relaxed);
    }
    return first;
}

void event_api::deliver_at(const events::channel_path& path,
                           std::shared_ptr<pubsub::event_batch> batch, const events::position& at) {
    auto* state = namespaces_.find(path.namespace_name());
    auto& ns = state ? *state : other_ns_;
    std::lock_guard lock(ns.order);
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
    ns.deliveries.fetch_add(reached * shared->bodies.size(), std::memory_order_relaxed);
}

subscribe_result event_api::subscribe_resume(const events::channel_pattern& pattern,
                                             const events::position& after,
                                             std::weak_ptr<pubsub::subscriber> target,
                                             pubsub::shared_bytes prefix) {
    std::optional<subscribe_result> out;
    resume_and_answer(pattern, after, std::move(target), std::move(prefix),
                      [&out](subscribe_result r) { out = std::move(r); });
    return std::move(*out);
}

void event_api::resume_and_answer(const events::channel_pattern& pattern,
                                  const events::position& after,
                                  std::weak_ptr<pubsub::subscriber> target,
                                  pubsub::shared_bytes prefix,
                                  const std::function<void(subscribe_result)>& done) {
    if (auto ready = history_->prepare_resume(pattern.namespace_name(), after); !ready)
        return done(ready.error());
    std::unique_lock lock(order_lock(pattern.namespace_name()));
    // Subscribed first: in cluster mode the node's first subscription in a namespace starts
    // its interest in NATS, and the store learns there from which position on live events
    // will arrive; since() answers up to exactly that position. No live delivery runs in
    // between (it needs this lock), so for a store that assigns positions the order is moot.
    subscribed r;
    r.handle = broker_.subscribe(pattern, std::move(target), std::move(prefix));
    if (auto* link = cluster_.load(std::memory_order_acquire)) {
        // Only on the link's thread (finish_subscribe): the interest must be confirmed before
        // since(), which answers up to where live delivery starts. Bounded by the link.
        auto interested = std::make_shared<std::promise<void>>();
        auto confirmed = interested->get_future();
        if (!link->when_interested(pattern.namespace_name(),
                                   [interested] { interested->set_value(); }))
            confirmed.wait();
    }
    auto missed = history_->since(pattern, after, history::clock::now());
    if (!missed) {
        broker_.unsubscribe(r.handle);
        lock.unlock();
        return done(missed.error());
    }
    r.missed = std::move(*missed);
    // Answered under the lock: from the link's thread `done` posts to the connection's strand,
    // and the first live delivery to the new subscription (which needs this lock) queues
    // behind it there, after the missed events.
    done(std::move(r));
}

}  // namespace eventcast::api

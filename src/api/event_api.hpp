// The AppSync Events operations, end to end, for every transport: connect, subscribe,
// unsubscribe, publish and the chat routes' authorization each run
//   rate limit -> authorize (at once, or with I/O) -> namespace -> history/broker -> answer
// here and only here. The WebSocket connection (net/appsync_connection) and HTTP routes
// (net/http_routes) are adapters: they turn frames and requests into these calls and the
// answers back into frames and responses, so their rules cannot drift apart.
#pragma once

#include "api/namespace_state.hpp"
#include "auth/authorizer.hpp"
#include "auth/rate_limit.hpp"
#include "core/config.hpp"
#include "core/stats.hpp"
#include "events/message.hpp"
#include "handlers/registry.hpp"
#include "history/store.hpp"
#include "pubsub/broker.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace eventcast::api {

/// Where publishes go in cluster mode (implemented by cluster::nats_bridge). Thread-safe.
class cluster_link {
public:
    virtual ~cluster_link() = default;
    /// What publish() did with a batch it did not refuse.
    enum class route {
        sent,   // handed to NATS: it comes back to this node through deliver_local/deliver_at
        local,  // not sent (not connected, or the send failed): the caller delivers it here
    };
    /// Sends `batch` to every node, this one included, in as many NATS messages as the server's
    /// max_payload needs (in order). An error when an event alone does not fit in one NATS
    /// message: nothing was sent, and the caller answers the publisher with it rather than
    /// acknowledge an event no other node can get. Must not block.
    ///
    /// `located` (may be empty), when the answer is route::sent: runs exactly once, later, on
    /// another thread (never inside this call), with the first event's position once its
    /// namespace's stream acknowledged storing it, or seq 0 (no history in the namespace, no
    /// acknowledgement within --cluster-subscribe-timeout-ms). Never runs otherwise.
    virtual events::result<route> publish(const events::channel_path& path,
                                          const pubsub::shared_batch& batch,
                                          std::function<void(events::position)> located) = 0;
    /// Whether this node's NATS interest in `ns` is established, so a subscription made now gets
    /// what other nodes publish from now on (spec §11.2). False while a node's first subscription
    /// there is on its way to NATS: `ready` then runs once NATS confirmed it (or the bounded wait
    /// ended), on another thread. Never blocks (no NATS round trip under the broker's lock or on
    /// an I/O thread).
    virtual bool when_interested(std::string_view ns, std::function<void()> ready) = 0;
    /// Runs `job` on the link's own thread, for work that waits on NATS (the JetStream reads of
    /// a resume), so that no I/O thread waits. Jobs run one at a time, in order.
    virtual void run_blocking(std::function<void()> job) = 0;
};

/// Who asks, as the transport saw it. The pointees must outlive the operation's call (not its
/// answer: an operation that waits copies what it needs).
struct caller {
    const events::credentials* creds = nullptr;  // null: the message had no authorization
    const auth::http_view* http = nullptr;       // HTTP requests: what AWS_IAM checks
    auth::token_bucket* ops = nullptr;           // the connection's --max-ops-per-second
};

struct publish_request {
    std::optional<events::channel_path> channel;  // none only when `invalid` says why
    std::string raw_channel;          // as sent: IAM signatures and Lambda authorizers see it
    std::vector<std::string> events;  // validated JSON texts
    // Set when the transport found the request itself wrong (an HTTP body that does not parse,
    // a media type it does not take): answered after authorization, so that an unauthenticated
    // caller learns nothing about the body rules or the server's namespaces.
    std::optional<events::protocol_error> invalid;
};
using publish_result = events::result<events::publish_outcome>;

struct subscribe_request {
    events::channel_pattern channel;
    std::string raw_channel;
    std::optional<events::position> resume_after;  // "resume":{"after":...}
    std::weak_ptr<pubsub::subscriber> target;      // gets the deliveries
    pubsub::shared_bytes prefix;                   // `{"type":"data","id":"<id>","event":`
};

/// A live subscription, and for a resume the retained events it missed.
struct subscribed {
    pubsub::subscription_handle handle = nullptr;
    std::vector<history::stored_event> missed;  // position order; send them before any live
};
using subscribe_result = events::result<subscribed>;

/// Thread-safe: all state is read-only after construction except the broker and the history
/// store (both thread-safe), the namespaces' order locks and the stats counters.
///
/// Each operation calls `done(result)` exactly once: on the calling thread before it returns
/// when no step needs I/O (the common case: API keys, IAM, a JWT with a known key), otherwise
/// later from another thread (a JWKS refresh, a Lambda authorizer's answer). Callers must not
/// assume which; net/appsync_connection pauses reading until an answer that waits is in.
class event_api {
public:
    /// Without `history`, keeps an in-memory one (history::memory_store, cfg.history) with a
    /// random epoch.
    event_api(const core::config& cfg, pubsub::broker& broker, core::stats& stats,
              auth::authorizer& authz, std::shared_ptr<history::store> history = nullptr);

    const core::config& config() const noexcept { return cfg_; }
    core::stats& stats() noexcept { return stats_; }
    history::store& history() noexcept { return *history_; }
    std::size_t subscription_count() const { return broker_.subscription_count(); }

    /// The per-namespace metrics of every configured namespace (subscriptions and
    /// connections from the broker's walk: once per scrape).
    struct namespace_metrics {
        std::string ns;
        std::uint64_t publishes = 0, events_in = 0, deliveries = 0;
        std::size_t subscriptions = 0, connections = 0;
    };
    std::vector<namespace_metrics> namespace_counts() const;
    auth::auth_counters auth_counters() const { return auth_.counters(); }

    // ---- operations -------------------------------------------------------------------------

    /// connection_init's authorization (the upgrade's credentials).
    template <class Done>
    void connect(const caller& who, Done&& done) {
        auth::auth_request r;
        r.op = auth::operation::connect;
        r.creds = who.creds;
        decide(r, [this, done = std::forward<Done>(done)](auth::auth_result a) mutable {
            if (!a)
                count_refusal();
            done(std::move(a));
        });
    }

    template <class Done>
    void publish(publish_request&& req, const caller& who, Done&& done) {
        if (auto limited = over_rate(who))
            return done(publish_result(std::move(*limited)));
        auth::auth_request r;
        r.op = auth::operation::publish;
        r.creds = who.creds;
        r.http = who.http;
        r.ns = req.channel ? req.channel->namespace_name() : std::string_view{};
        r.raw_channel = req.raw_channel;
        r.path = req.channel ? &*req.channel : nullptr;
        r.events = who.http ? nullptr : &req.events;  // HTTP: the signed body covers them
        // The namespace, found once: its policy for the authorizer, its state for the rest.
        namespace_state* ns = req.channel ? namespaces_.find(r.ns) : nullptr;
        r.policy = ns ? ns->auth : nullptr;
        if (auto decided = auth_.try_authorize(r)) {
            if (publish_waits(req, *decided, ns))
                return publish_waiting(
                    std::move(req), **decided, *ns, who.creds,
                    std::function<void(publish_result)>(std::forward<Done>(done)));
            return done(finish_publish(req, *decided, ns, who.creds));
        }
        // The request outlives this call only when the decision waits.
        auto held = std::make_shared<publish_request>(std::move(req));
        auto creds = who.creds ? std::make_shared<events::credentials>(*who.creds) : nullptr;
        r.ns = held->channel ? held->channel->namespace_name() : std::string_view{};
        r.raw_channel = held->raw_channel;
        r.path = held->channel ? &*held->channel : nullptr;
        r.events = who.http ? nullptr : &held->events;
        auth_.authorize_async(r, [this, held, ns, creds,
                                  done = std::function<void(publish_result)>(
                                      std::forward<Done>(done))](auth::auth_result a) {
            if (publish_waits(*held, a, ns))
                return publish_waiting(std::move(*held), *a, *ns, creds.get(), done);
            done(finish_publish(*held, a, ns, creds.get()));
        });
    }

    /// Subscribes `req.target` (live before `done` runs, so no publish that follows the answer
    /// is missed, spec §11.2); with `resume_after`, also the missed events.
    template <class Done>
    void subscribe(subscribe_request&& req, const caller& who, Done&& done) {
        if (auto limited = over_rate(who))
            return done(subscribe_result(std::move(*limited)));
        auth::auth_request r;
        r.op = auth::operation::subscribe;
        r.creds = who.creds;
        r.ns = req.channel.namespace_name();
        r.raw_channel = req.raw_channel;
        r.pattern = &req.channel;
        namespace_state* ns = namespaces_.find(r.ns);
        r.policy = ns ? ns->auth : nullptr;
        // In cluster mode the answer may wait for NATS (finish_subscribe), so it is a function.
        std::function<void(subscribe_result)> answer(std::forward<Done>(done));
        if (auto decided = auth_.try_authorize(r))
            return finish_subscribe(req, *decided, ns, who.creds, std::move(answer));
        auto held = std::make_shared<subscribe_request>(std::move(req));
        auto creds = who.creds ? std::make_shared<events::credentials>(*who.creds) : nullptr;
        r.ns = held->channel.namespace_name();
        r.raw_channel = held->raw_channel;
        r.pattern = &held->channel;
        auth_.authorize_async(
            r, [this, held, ns, creds, answer = std::move(answer)](auth::auth_result a) {
                finish_subscribe(*held, a, ns, creds.get(), answer);
            });
    }

    /// Ends a subscription. `handle` null: the connection has no subscription `id`.
    events::result<void> unsubscribe(const caller& who, std::string_view id,
                                     pubsub::subscription_handle handle);

    /// Takes a subscription out of the broker without an answer (the connection is closing).
    void drop(pubsub::subscription_handle handle) { broker_.unsubscribe(handle); }

    /// POST /chat and its routes, authorized with --auth-chat's modes on the chat namespace.
    /// The identity names the caller's userId where the mode carries one.
    template <class Done>
    void authorize_chat(const caller& who, Done&& done) {
        auth::auth_request r;
        r.op = auth::operation::chat;
        r.creds = who.creds;
        r.http = who.http;
        r.ns = cfg_.chat.chat_namespace;
        decide(r, [this, done = std::forward<Done>(done)](auth::auth_result a) mutable {
            if (!a)
                count_refusal();
            done(std::move(a));
        });
    }

    // ---- server-side entry points ---------------------------------------------------------

    /// An undefined namespace is UnauthorizedException, as AWS answers (spec §7.2).
    events::result<namespace_state*> check_namespace(std::string_view ns) const;

    /// Publishes `events` (validated JSON texts) to `path` as the server itself (chat streams):
    /// no caller to authorize. Each is escaped and framed once, then, in this node's delivery
    /// step, given the next positions of its namespace, recorded in history and fanned out to
    /// every matching subscription. Returns one identifier per event and, when delivered here at
    /// once, the first position. With a cluster attached and connected, the batch goes to NATS
    /// and is delivered (and given positions) when it comes back, so every node sees the NATS
    /// order; `first` is then left at seq 0 (unknown yet).
    events::publish_outcome publish(const events::channel_path& path,
                                    const std::vector<std::string>& events);
    /// publish() for a caller that needs the first event's position (a chat stream's start
    /// event, for its resumeAfter). False: `out.first` is final and `located` never runs. True
    /// (cluster mode, sent to NATS): the position is not known yet; `located` runs exactly once,
    /// later, on another thread, with it (seq 0 when it cannot be learned in time).
    bool publish_located(const events::channel_path& path, const std::vector<std::string>& events,
                         events::publish_outcome& out,
                         std::function<void(events::position)> located);

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

    /// Namespace handlers on (non-null) or off (null: no namespace runs code, nothing is paid).
    /// The registry must outlive its attachment. onPublish runs after authorization, before
    /// history, the broker and the cluster link, so once per publish on the accepting node.
    void attach_handlers(handlers::registry* h) noexcept { handlers_.store(h); }
    handlers::registry* attached_handlers() const noexcept { return handlers_.load(); }

    /// Cluster mode on (non-null) or off (null). The link must outlive its attachment.
    void attach_cluster(cluster_link* link) noexcept { cluster_.store(link); }

    /// A subscription that resumes: the retained events matching `pattern` after `after`, and
    /// the live subscription (as broker::subscribe gives it), taken together under the
    /// namespace's order lock so that every event after `after` is in exactly one of the two.
    /// Fails (and subscribes nothing) when `after` cannot be resumed from: resume_too_old or
    /// invalid_input, from history::store::since.
    subscribe_result subscribe_resume(const events::channel_pattern& pattern,
                                      const events::position& after,
                                      std::weak_ptr<pubsub::subscriber> target,
                                      pubsub::shared_bytes prefix);

private:
    // The one place that knows an authorization may need I/O: at once when it does not, else
    // through the authorizer's asynchronous path.
    template <class Done>
    void decide(const auth::auth_request& r, Done&& done) {
        if (auto decided = auth_.try_authorize(r))
            return done(std::move(*decided));
        auth_.authorize_async(r, std::function<void(auth::auth_result)>(std::forward<Done>(done)));
    }

    void count_refusal() noexcept { core::stats::add(stats_.auth_failures); }
    std::optional<events::protocol_error> over_rate(const caller& who) const;
    // `ns`: the request's namespace_state, null when the namespace is not defined (refused
    // after authorization, as AWS does).
    publish_result finish_publish(const publish_request& req, const auth::auth_result& a,
                                  namespace_state* ns, const events::credentials* creds);
    // Calls `done` at once, or in cluster mode once NATS has the node's interest (a first
    // subscription in a namespace) or the resume's JetStream reads are done (on the link's
    // thread). Runs the namespace's onSubscribe first, when it has one.
    void finish_subscribe(subscribe_request& req, const auth::auth_result& a, namespace_state* ns,
                          const events::credentials* creds,
                          std::function<void(subscribe_result)> done);
    // subscribe_resume, answering through `done` while still holding the order lock.
    void resume_and_answer(const events::channel_pattern& pattern, const events::position& after,
                           std::weak_ptr<pubsub::subscriber> target, pubsub::shared_bytes prefix,
                           const std::function<void(subscribe_result)>& done);
    // The namespace's onPublish, then the decided events' delivery (publish_in's steps).
    publish_result publish_through_handler(handlers::registry& h,
                                           const handlers::module_source& code, namespace_state& ns,
                                           const publish_request& req, const auth::identity& who,
                                           const events::credentials* creds);
    void count_handler_failure() noexcept;
    // Whether an authorized, valid publish goes to a data source (handlers::registry::waits).
    bool publish_waits(const publish_request& req, const auth::auth_result& a,
                       const namespace_state* ns) const;
    // The publish whose handler waits for a data source: `done` runs when its answer is in
    // (on the transport thread), or at once.
    void publish_waiting(publish_request req, const auth::identity& who, namespace_state& ns,
                         const events::credentials* creds,
                         std::function<void(publish_result)> done);
    // The handler's decision, delivered: publish_through_handler's and publish_waiting's end.
    publish_result deliver_decided(namespace_state& ns, const events::channel_path& path,
                                   std::size_t incoming, events::publish_outcome outcome,
                                   handlers::result<handlers::publish_decision> decision);
    // finish_subscribe past the handler: broker, cluster interest, resume.
    void subscribe_accepted(subscribe_request& req, std::function<void(subscribe_result)> done);
    static events::protocol_error undefined_namespace(std::string_view ns);
    // `server`: the server's own publish (chat), with no publisher to refuse to: an event the
    // cluster link refuses is delivered here only.
    // `located`: as in publish_located; `*later` says whether it will run.
    publish_result publish_in(namespace_state& ns, const events::channel_path& path,
                              const std::vector<std::string>& events, bool server = false,
                              std::function<void(events::position)> located = {},
                              bool* later = nullptr);
    // To the cluster link, or here (no cluster, NATS down, the send failed): the first
    // position when delivered here, seq 0 when sent. An error when the link refused the batch
    // (nothing delivered), unless `server`.
    events::result<events::position> route_batch(namespace_state& ns,
                                                 const events::channel_path& path,
                                                 std::shared_ptr<pubsub::event_batch> batch,
                                                 bool server,
                                                 std::function<void(events::position)> located = {},
                                                 bool* later = nullptr);
    events::position deliver_in(namespace_state& ns, const events::channel_path& path,
                                std::shared_ptr<pubsub::event_batch> batch);
    std::mutex& order_lock(std::string_view ns);

    const core::config& cfg_;
    pubsub::broker& broker_;
    core::stats& stats_;
    auth::authorizer& auth_;
    namespace_table namespaces_;
    std::atomic<cluster_link*> cluster_{nullptr};
    std::atomic<handlers::registry*> handlers_{nullptr};
    std::shared_ptr<history::store> history_;
    // Namespaces not configured: refused before a client's publish, but batches from other
    // nodes and the server's own publishes may still name one.
    namespace_state other_ns_{""};
};

}  // namespace eventcast::api

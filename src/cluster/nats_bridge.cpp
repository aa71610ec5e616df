// NATS bridge. Why a whole namespace per NATS subscription rather than one per local pattern:
// NATS delivers a message once per matching subscription, so a node holding both /ns/a/* and
// /ns/a/b as NATS subscriptions would receive (and deliver) every /ns/a/b event twice; the
// disjoint pair <prefix>.<ns> and <prefix>.<ns>.> per namespace gets each message exactly once,
// and the local broker's trie does the exact matching in O(segments). docs/CLUSTER.md measures
// and discusses the cost (a node receives all of a namespace's traffic once any local client
// subscribes in it).
#include "cluster/nats_bridge.hpp"

#include "cluster/batch_codec.hpp"
#include "cluster/nats_options.hpp"
#include "cluster/subjects.hpp"
#include "core/log.hpp"
#include "core/metrics_text.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <vector>

namespace eventcast::cluster {

namespace {

// Log the 1st, 2nd, 4th, 8th... occurrence: a stuck NATS server or a stream of bad messages
// must not flood the log, but the first one is always seen.
bool worth_logging(std::uint64_t count) noexcept {
    return (count & (count - 1)) == 0;
}

std::string status_text(natsStatus s) {
    std::string out = natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last && *last)
        out += std::string(" (") + last + ")";
    return out;
}

// The server we are connected to, for the log, without any user:password@ it may carry.
std::string connected_url(natsConnection* nc) {
    char buf[256] = {0};
    if (natsConnection_GetConnectedUrl(nc, buf, sizeof buf) != NATS_OK)
        return "?";
    std::string url = buf;
    const auto scheme = url.find("://");
    const auto at = url.find('@', scheme == std::string::npos ? 0 : scheme + 3);
    if (at != std::string::npos)
        url.erase(scheme == std::string::npos ? 0 : scheme + 3,
                  at + 1 - (scheme == std::string::npos ? 0 : scheme + 3));
    return url;
}

// The header naming a message's publishing node and its number there: "<16 hex>-<n>".
constexpr const char* origin_header = "Eventcast-Origin";

std::string random_origin() {
    std::random_device rd;
    const std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// At most this much of this node's publishes waits for its echo: past it a publish is delivered
// here at once and not sent (a link silent for seconds under heavy publishing).
constexpr std::size_t max_awaiting_bytes = 64 << 20;

}  // namespace

nats_bridge::nats_bridge(const core::cluster_config& cfg, api::event_api& api,
                         pubsub::broker& broker, jetstream_history* history)
    : cfg_(cfg), api_(api), broker_(broker), history_(history), origin_(random_origin()) {}

void nats_bridge::append_metrics(std::string& out) const {
    const auto& cs = stats_;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
        core::append_metric(out, name, type, help, value);
    };
    metric("eventcast_cluster_connected", "gauge", "1 while connected to NATS, else 0.",
           connected() ? 1 : 0);
    metric("eventcast_cluster_disconnects_total", "counter", "NATS connections lost.",
           cs.disconnects.load());
    metric("eventcast_cluster_reconnects_total", "counter", "NATS reconnections.",
           cs.reconnects.load());
    metric("eventcast_cluster_namespaces", "gauge", "Namespaces this node subscribes to in NATS.",
           cs.namespaces.load());
    metric("eventcast_cluster_messages_out_total", "counter", "Messages published to NATS.",
           cs.messages_out.load());
    metric("eventcast_cluster_messages_in_total", "counter",
           "NATS messages handed to this node's broker (matched or not).", cs.messages_in.load());
    metric("eventcast_cluster_publish_failures_total", "counter",
           "Publishes NATS refused; delivered on this node only.", cs.publish_failures.load());
    metric("eventcast_cluster_refused_total", "counter",
           "Publishes refused because an event does not fit in one NATS message (max_payload).",
           cs.refused.load());
    metric("eventcast_cluster_split_publishes_total", "counter",
           "Publishes sent as several NATS messages to stay within max_payload.", cs.split.load());
    metric("eventcast_cluster_local_only_total", "counter",
           "Publishes delivered on this node only because NATS was disconnected.",
           cs.local_only.load());
    metric("eventcast_cluster_bad_messages_total", "counter",
           "NATS messages dropped because their subject or payload did not decode.",
           cs.bad_messages.load());
    metric("eventcast_cluster_dropped_total", "counter",
           "NATS messages dropped because this node fell behind (slow consumer).",
           cs.dropped.load());
    metric("eventcast_cluster_echo_timeouts_total", "counter",
           "Events NATS did not echo back in time, delivered on this node directly.",
           cs.echo_timeouts.load());
    metric("eventcast_cluster_late_echoes_total", "counter",
           "Of those, events NATS echoed later: they reached the other nodes too.",
           cs.late_echoes.load());
    metric("eventcast_cluster_unconfirmed_total", "counter",
           "Of those, events never echoed once NATS was back: other nodes may lack them.",
           cs.unconfirmed.load());
}

nats_bridge::~nats_bridge() {
    stop();
}

std::string nats_bridge::state() const {
    std::shared_lock lock(life_);
    if (stopped_)
        return "closed";
    if (connected())
        return "connected";
    return ever_connected_.load() ? "reconnecting" : "connecting";
}

void nats_bridge::start() {
    if (started_)
        return;
    started_ = true;
    auto check = [](natsStatus s, const char* what) {
        if (s != NATS_OK)
            throw std::runtime_error(std::string("cluster: ") + what + ": " + status_text(s));
    };
    check(natsOptions_Create(&opts_), "options");
    apply_connection_options(opts_, cfg_);  // servers, TLS, credentials
    check(natsOptions_SetName(opts_, "eventcast"), "name");
    // Reconnect forever: a node keeps serving its local clients meanwhile, and resubscription
    // is automatic in nats.c. The delay (with jitter) comes from reconnect_delay().
    check(natsOptions_SetAllowReconnect(opts_, true), "reconnect");
    check(natsOptions_SetMaxReconnect(opts_, -1), "reconnect");
    check(natsOptions_SetCustomReconnectDelay(opts_, &nats_bridge::reconnect_delay, this),
          "reconnect delay");
    // A link that went silent without closing TCP (a partition, a frozen server, a dead
    // balancer) is given up after ping_interval * (max_pings_out + 1), about 3 s by default:
    // until then publishes handed to NATS wait for an echo that never comes (echo_timeout
    // bounds that), and /readyz would say ready.
    check(natsOptions_SetPingInterval(opts_, cfg_.ping_interval.count()), "ping interval");
    check(natsOptions_SetMaxPingsOut(opts_, static_cast<int>(cfg_.max_pings_out)), "pings out");
    check(natsOptions_SetTimeout(opts_, 2'000), "connect timeout");
    check(natsOptions_SetDisconnectedCB(opts_, &nats_bridge::on_disconnected, this), "callback");
    check(natsOptions_SetReconnectedCB(opts_, &nats_bridge::on_reconnected, this), "callback");
    check(natsOptions_SetClosedCB(opts_, &nats_bridge::on_closed, this), "callback");
    check(natsOptions_SetErrorHandler(opts_, &nats_bridge::on_error, this), "callback");
    // Start-up with NATS unreachable: Connect returns at once and keeps trying in the
    // background; on_connected reports success.
    check(natsOptions_SetRetryOnFailedConnect(opts_, true, &nats_bridge::on_connected, this),
          "retry");
    const auto s = natsConnection_Connect(&conn_, opts_);
    if (s == NATS_OK) {
        // Asked, not assumed: the connection may already have dropped again (on_disconnected
        // found nothing to clear then).
        connected_ = natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
        connected_since_ = clock::now().time_since_epoch().count();
        ever_connected_ = true;
        log::info("cluster: connected to NATS at {}", connected_url(conn_));
    } else if (s == NATS_NOT_YET_CONNECTED) {
        // A refusal nats-server sends (-ERR 'Authorization Violation') stays on the connection
        // as its last error: without it, a wrong password reads like an outage. A TLS
        // verification failure leaves nothing there (nats.c clears it before retrying).
        const char* text = nullptr;
        const auto last = natsConnection_GetLastError(conn_, &text);
        std::string why = text && *text ? text : "";
        if (why.empty() && last != NATS_OK)
            why = natsStatus_GetText(last);
        if (why.empty())
            why = "no reason given by nats.c";
        log::warn(
            "cluster: no NATS server reachable yet ({}); serving local clients only and retrying "
            "in the background",
            why);
    } else {
        check(s, "connect");
    }
    if (history_) {
        // The context only names the connection; requests go out once it is connected.
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = cfg_.subscribe_timeout.count();
        check(natsConnection_JetStream(&js_, conn_, &jo), "JetStream");
        history_->set_context(js_);
        // on_connected may have run before the context existed: set the streams up here too.
        if (natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED)
            history_->connected();
        // Where the streams acknowledge publishes whose position a caller wants (a chat
        // stream's start event, for POST /chat's resumeAfter). nats.c resubscribes it after a
        // reconnect like the others.
        natsInbox* inbox = nullptr;
        check(natsInbox_Create(&inbox), "inbox");
        ack_inbox_ = inbox;
        natsInbox_Destroy(inbox);
        const auto sub = natsConnection_Subscribe(&ack_sub_, conn_, (ack_inbox_ + ".*").c_str(),
                                                  &nats_bridge::on_ack, this);
        if (sub == NATS_CONNECTION_CLOSED) {
            // nats.c gave the connection up during start-up (a TLS verification failure does
            // that, after the warning above): the node keeps serving its local clients, not
            // ready, as when the failure comes a moment later. Exiting here was a race.
            log::error(
                "cluster: nats.c closed the NATS connection during start-up; serving "
                "local clients only, not ready (restart once NATS is reachable)");
        } else {
            check(sub, "acknowledgement subscription");
            {
                std::lock_guard closed_lock(closed_mutex_);
                ++live_subscriptions_;
            }
            if (natsSubscription_SetOnCompleteCB(ack_sub_, &nats_bridge::on_subscription_complete,
                                                 this) != NATS_OK) {
                std::lock_guard closed_lock(closed_mutex_);
                --live_subscriptions_;
            }
        }
    }
    echo_thread_ = std::thread([this] { echo_loop(); });
    interest_thread_ = std::thread([this] { interest_loop(); });
    jobs_thread_ = std::thread([this] { blocking_loop(); });
    // Interest first, then publishes: by the time a publish goes to NATS, the namespaces this
    // node already serves are subscribed there.
    broker_.set_namespace_listener(
        [this](std::string_view ns, bool interested) { on_namespace(ns, interested); });
    api_.attach_cluster(this);
}

void nats_bridge::stop() {
    if (!started_)
        return;
    {
        std::unique_lock lock(life_);
        if (stopped_)
            return;
    }
    api_.attach_cluster(nullptr);
    broker_.set_namespace_listener({});
    {
        // Resumes in progress finish first: they may wait for an interest confirmation.
        std::lock_guard lock(jobs_mutex_);
        jobs_stop_ = true;
        jobs_cv_.notify_all();
    }
    if (jobs_thread_.joinable())
        jobs_thread_.join();
    {
        std::lock_guard lock(interest_mutex_);
        interest_stop_ = true;
        interest_cv_.notify_all();
    }
    if (interest_thread_.joinable())
        interest_thread_.join();
    {
        // Waits for publishes and message handlers in progress; none starts after this.
        std::unique_lock lock(life_);
        stopped_ = true;
    }
    std::map<std::uint64_t, awaiting_ack> acks;
    {
        // What still waits for its echo has nobody left to reach: the server is down.
        std::lock_guard lock(echo_mutex_);
        echo_stop_ = true;
        awaiting_.clear();
        acks.swap(acks_);
        echo_cv_.notify_all();
    }
    if (echo_thread_.joinable())
        echo_thread_.join();
    for (auto& [n, a] : acks)
        a.located({});
    if (ack_sub_) {
        natsSubscription_Unsubscribe(ack_sub_);
        natsSubscription_Destroy(ack_sub_);
        ack_sub_ = nullptr;
    }
    {
        std::lock_guard lock(subs_mutex_);
        for (auto& [ns, subs] : subs_)
            unsubscribe(subs);
        subs_.clear();
    }
    if (history_)
        history_->set_context(nullptr);  // waits for history requests in flight
    closing_ = true;
    if (!conn_) {  // start() failed before connecting
        natsOptions_Destroy(opts_);
        opts_ = nullptr;
        return;
    }
    natsConnection_Close(conn_);
    {
        std::unique_lock lock(closed_mutex_);
        if (!closed_cv_.wait_for(lock, std::chrono::seconds(5),
                                 [this] { return closed_ && live_subscriptions_ == 0; }))
            log::warn("cluster: NATS callbacks still pending after 5 s at shutdown");
    }
    if (js_)
        jsCtx_Destroy(js_);
    js_ = nullptr;
    natsConnection_Destroy(conn_);
    natsOptions_Destroy(opts_);
    conn_ = nullptr;
    opts_ = nullptr;
    connected_ = false;
    log::info("cluster: disconnected from NATS (shutdown)");
}

events::result<api::cluster_link::route> nats_bridge::publish(
    const events::channel_path& path, const pubsub::shared_batch& batch,
    std::function<void(events::position)> located) {
    std::shared_lock lock(life_);
    if (stopped_)
        return route::local;
    if (!connected()) {
        core::stats::add(stats_.local_only);
        return route::local;
    }
    const bool stored = history_ && history_->has_stream(path.namespace_name());
    if (stored && !history_->ready(path.namespace_name())) {
        // Its stream is not there yet (or NATS refused to create it): what we published would
        // reach nobody, as nodes receive what the stream stores. Deliver here instead.
        const auto n = stats_.local_only.fetch_add(1, std::memory_order_relaxed) + 1;
        if (worth_logging(n))
            log::warn(
                "cluster: the JetStream stream of namespace {} is not set up (yet); publish "
                "delivered to this node's subscribers only (local-only publishes so far: {})",
                path.namespace_name(), n);
        return route::local;
    }
    const auto subject = channel_subject(cfg_.subject_prefix, path);
    // The messages: with history one per event (the stream gives each its own sequence, its
    // position), else as few as the server's max_payload allows, in index order. One
    // connection and one subject, so they arrive in that order everywhere.
    auto parts = split_batch(path, subject, batch, stored);
    if (!parts)
        return parts.error();
    if (parts->size() > 1 && !stored)
        core::stats::add(stats_.split);
    // This node's own subscribers get the batch from NATS's echo, if it listens to the
    // namespace (otherwise it has none there, and no echo comes).
    const bool track = listening(path.namespace_name());
    if (track) {
        std::lock_guard echo_lock(echo_mutex_);
        if (awaiting_bytes_ + batch->bytes > max_awaiting_bytes) {
            const auto n = stats_.local_only.fetch_add(1, std::memory_order_relaxed) + 1;
            if (worth_logging(n))
                log::warn(
                    "cluster: {} bytes of publishes wait for their NATS echo; delivering this "
                    "one to this node's subscribers only (local-only publishes so far: {})",
                    awaiting_bytes_, n);
            return route::local;
        }
    }
    // A caller that wants the first event's position gets it from the stream's acknowledgement
    // of the first message (its reply subject); without a stream there is none to wait for.
    std::uint64_t ack = 0;
    std::string reply;
    if (located) {
        ack = next_echo_.fetch_add(1, std::memory_order_relaxed);
        const auto deadline = stored ? clock::now() + cfg_.subscribe_timeout : clock::now();
        if (stored)
            reply = ack_inbox_ + "." + std::to_string(ack);
        std::lock_guard echo_lock(echo_mutex_);
        acks_.emplace(
            ack, awaiting_ack{std::string(path.namespace_name()), std::move(located), deadline});
        echo_cv_.notify_all();
    }
    std::size_t sent = 0;
    natsStatus s = NATS_OK;
    for (const auto& part : *parts) {
        const char* to = sent == 0 && !reply.empty() ? reply.c_str() : nullptr;
        if ((s = send(subject, path, part, track, to)) != NATS_OK)
            break;
        ++sent;
    }
    if (sent == 0 && ack != 0) {
        // Not sent, so not located either: the caller delivers it here and knows that.
        std::lock_guard echo_lock(echo_mutex_);
        acks_.erase(ack);
    }
    if (s != NATS_OK) {
        const auto n = stats_.publish_failures.fetch_add(1, std::memory_order_relaxed) + 1;
        if (worth_logging(n))
            log::warn(
                "cluster: NATS refused a message of a publish to {} ({} of {} sent): {}; the "
                "rest is delivered on this node only (failures so far: {})",
                path.str(), sent, parts->size(), status_text(s), n);
        if (sent == 0)
            return route::local;
        // What went out comes back (or falls back) as any other; the rest is delivered here
        // now, so nothing is delivered twice or not at all on this node.
        for (std::size_t i = sent; i < parts->size(); ++i)
            api_.deliver_local(path, std::make_shared<pubsub::event_batch>(*(*parts)[i]));
    }
    core::stats::add(stats_.messages_out, sent);
    return route::sent;
}

events::result<std::vector<pubsub::shared_batch>> nats_bridge::split_batch(
    const events::channel_path& path, const std::string& subject, const pubsub::shared_batch& batch,
    bool stored) {
    // Headers travel inside max_payload too: ours (Eventcast-Origin, about 60 bytes) and, for
    // a stream, what RePublish adds to the copy it sends (Nats-Stream, Nats-Subject holding the
    // subject, Nats-Sequence, Nats-Last-Sequence, Nats-Time-Stamp: about 150 bytes plus the
    // subject), to a live subject that is the subject plus a few bytes.
    const auto max_payload = natsConnection_GetMaxPayload(conn_);
    const std::size_t room_for_headers = 512 + 2 * subject.size();
    // Unknown (0): nats.c then checks each message itself, and a refusal is a send failure.
    const std::size_t room =
        max_payload > 0 ? static_cast<std::size_t>(max_payload) -
                              std::min(static_cast<std::size_t>(max_payload), room_for_headers)
                        : 0;
    const auto& bodies = batch->bodies;
    // The largest escaped event one message holds, after the batch layout's own bytes.
    const auto max_event = room > encoded_batch_bytes(1, 0) ? room - encoded_batch_bytes(1, 0) : 0;
    if (room > 0)
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            if (bodies[i].size() <= max_event)
                continue;
            const auto n = stats_.refused.fetch_add(1, std::memory_order_relaxed) + 1;
            if (worth_logging(n))
                log::warn(
                    "cluster: refused a publish to {}: event {} is {} bytes escaped; a NATS "
                    "message holds at most {} (max_payload {}) (refused so far: {})",
                    path.str(), i, bodies[i].size(), max_event, max_payload, n);
            return events::protocol_error::invalid(
                "event " + std::to_string(i) + " is " + std::to_string(bodies[i].size()) +
                " bytes once JSON-escaped; one NATS message of this cluster carries at most " +
                std::to_string(max_event) + " (nats-server max_payload " +
                std::to_string(max_payload) +
                "); publish smaller events or raise max_payload in the nats-server "
                "configuration");
        }
    std::vector<pubsub::shared_batch> parts;
    const auto one_part = [&](std::size_t from, std::size_t to) {
        if (from == 0 && to == bodies.size())
            return parts.push_back(batch);
        auto part = std::make_shared<pubsub::event_batch>();
        for (std::size_t i = from; i < to; ++i) {
            part->bodies.push_back(bodies[i]);
            part->bytes += bodies[i].size();
        }
        parts.push_back(std::move(part));
    };
    if (stored) {
        for (std::size_t i = 0; i < bodies.size(); ++i)
            one_part(i, i + 1);
        return parts;
    }
    // Greedy, in index order: each message takes as many of the next events as fit.
    std::size_t from = 0, bytes = 0;
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        if (room > 0 && i > from &&
            encoded_batch_bytes(i - from + 1, bytes + bodies[i].size()) > room) {
            one_part(from, i);
            from = i;
            bytes = 0;
        }
        bytes += bodies[i].size();
    }
    one_part(from, bodies.size());
    return parts;
}

bool nats_bridge::listening(std::string_view ns) {
    std::shared_lock lock(subs_mutex_);
    return subs_.find(ns) != subs_.end();
}

natsStatus nats_bridge::send(const std::string& subject, const events::channel_path& path,
                             const pubsub::shared_batch& part, bool track, const char* reply) {
    const auto payload = encode_batch(*part);
    if (!track)
        return reply ? natsConnection_PublishRequest(conn_, subject.c_str(), reply, payload.data(),
                                                     static_cast<int>(payload.size()))
                     : natsConnection_Publish(conn_, subject.c_str(), payload.data(),
                                              static_cast<int>(payload.size()));
    natsMsg* msg = nullptr;
    auto s = natsMsg_Create(&msg, subject.c_str(), reply, payload.data(),
                            static_cast<int>(payload.size()));
    if (s != NATS_OK)
        return s;
    const auto number = next_echo_.fetch_add(1, std::memory_order_relaxed);
    const auto origin = origin_ + "-" + std::to_string(number);
    s = natsMsgHeader_Set(msg, origin_header, origin.c_str());
    if (s == NATS_OK) {
        // Remembered before it goes out: the echo may arrive before PublishMsg returns.
        {
            std::lock_guard lock(echo_mutex_);
            awaiting_.emplace(number, awaiting_echo{path, part, clock::now() + cfg_.echo_timeout});
            awaiting_bytes_ += part->bytes;
        }
        s = natsConnection_PublishMsg(conn_, msg);
        if (s != NATS_OK) {
            std::lock_guard lock(echo_mutex_);
            if (auto it = awaiting_.find(number); it != awaiting_.end()) {
                awaiting_bytes_ -= it->second.batch->bytes;
                awaiting_.erase(it);
            }
        }
    }
    natsMsg_Destroy(msg);
    return s;
}

bool nats_bridge::take_echo(const char* origin) {
    if (!origin)
        return true;
    const std::string_view o(origin);
    if (o.size() <= origin_.size() + 1 || o.substr(0, origin_.size()) != origin_ ||
        o[origin_.size()] != '-')
        return true;  // another node's
    const auto number = parse_sequence(o.substr(origin_.size() + 1));
    if (!number)
        return true;
    std::lock_guard lock(echo_mutex_);
    if (auto it = awaiting_.find(*number); it != awaiting_.end()) {
        awaiting_bytes_ -= it->second.batch->bytes;
        awaiting_.erase(it);
        return true;
    }
    if (auto it = fell_back_.find(*number); it != fell_back_.end()) {
        core::stats::add(stats_.late_echoes, it->second.events);
        fell_back_.erase(it);
        return false;
    }
    return true;  // not tracked (published before this node listened) or long forgotten
}

void nats_bridge::echo_loop() {
    // A fallen-back publish may still be echoed once the link is back: nats.c resends what it
    // buffered, and a partition may deliver what it held. Past this much time connected again,
    // no echo is expected any more and it counts as unconfirmed.
    const auto stale_after = cfg_.ping_interval * (cfg_.max_pings_out + 1);
    const auto grace =
        std::chrono::duration_cast<clock::duration>(stale_after) + std::chrono::seconds(5);
    std::unique_lock lock(echo_mutex_);
    while (!echo_stop_) {
        const auto now = clock::now();
        // Disconnected: nothing will be echoed before a reconnect; deliver everything now.
        const bool down = !connected();
        std::vector<awaiting_echo> due;
        while (!awaiting_.empty() && (down || awaiting_.begin()->second.deadline <= now)) {
            auto node = awaiting_.extract(awaiting_.begin());
            awaiting_bytes_ -= node.mapped().batch->bytes;
            fell_back_.emplace(node.key(), fell_back{node.mapped().batch->bodies.size(), now});
            due.push_back(std::move(node.mapped()));
        }
        std::vector<std::function<void(events::position)>> unlocated;
        for (auto it = acks_.begin(); it != acks_.end();) {
            if (it->second.deadline > now) {
                ++it;
                continue;
            }
            unlocated.push_back(std::move(it->second.located));
            it = acks_.erase(it);
        }
        if (!unlocated.empty()) {
            // No acknowledgement in time (or no stream to give one): the position stays unknown.
            lock.unlock();
            for (auto& u : unlocated)
                u({});
            lock.lock();
            continue;
        }
        const auto since = clock::time_point(clock::duration(connected_since_.load()));
        if (!down && now - since >= grace) {
            for (auto it = fell_back_.begin(); it != fell_back_.end();) {
                if (now - it->second.at < grace) {
                    ++it;
                    continue;
                }
                core::stats::add(stats_.unconfirmed, it->second.events);
                it = fell_back_.erase(it);
            }
        }
        if (!due.empty()) {
            lock.unlock();
            std::size_t events = 0;
            {
                std::shared_lock life(life_);
                for (auto& d : due) {
                    events += d.batch->bodies.size();
                    if (!stopped_)
                        api_.deliver_local(d.path, std::make_shared<pubsub::event_batch>(*d.batch));
                }
            }
            const auto before = stats_.echo_timeouts.fetch_add(events, std::memory_order_relaxed);
            if (worth_logging(before + 1) || worth_logging(before + events))
                log::warn(
                    "cluster: NATS did not echo {} event(s) within {} ms{}; delivered them to this "
                    "node's subscribers directly (so far: {})",
                    events, cfg_.echo_timeout.count(), down ? " (disconnected)" : "",
                    before + events);
            lock.lock();
            continue;
        }
        auto wake = now + std::chrono::milliseconds(250);
        if (!awaiting_.empty())
            wake = std::min(wake, awaiting_.begin()->second.deadline);
        for (const auto& [n, a] : acks_)
            wake = std::min(wake, a.deadline);
        echo_cv_.wait_until(lock, wake);
    }
}

void nats_bridge::on_namespace(std::string_view ns, bool interested) noexcept {
    try {
        std::lock_guard lock(interest_mutex_);
        const auto generation = next_generation_++;
        if (interested) {
            interest_[std::string(ns)] = interest{generation, false, {}};
        } else if (auto it = interest_.find(ns); it != interest_.end()) {
            for (auto& w : it->second.waiting)
                release_.push_back(std::move(w));
            interest_.erase(it);
        }
        changes_.push_back({std::string(ns), interested, generation});
        interest_cv_.notify_all();
    } catch (const std::exception& e) {
        log::error("cluster: namespace {} interest change failed: {}", ns, e.what());
    }
}

bool nats_bridge::when_interested(std::string_view ns, std::function<void()> ready) {
    std::lock_guard lock(interest_mutex_);
    auto it = interest_.find(ns);
    if (interest_stop_ || it == interest_.end() || it->second.confirmed)
        return true;
    it->second.waiting.push_back(std::move(ready));
    return false;
}

void nats_bridge::run_blocking(std::function<void()> job) {
    {
        std::lock_guard lock(jobs_mutex_);
        if (!jobs_stop_) {
            jobs_.push_back(std::move(job));
            jobs_cv_.notify_all();
            return;
        }
    }
    job();  // shutting down: no thread left to take it
}

void nats_bridge::blocking_loop() {
    std::unique_lock lock(jobs_mutex_);
    for (;;) {
        jobs_cv_.wait(lock, [this] { return jobs_stop_ || !jobs_.empty(); });
        if (jobs_.empty())
            return;
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        try {
            job();
        } catch (const std::exception& e) {
            log::error("cluster: a resume failed: {}", e.what());
        }
        lock.lock();
    }
}

// Changes are taken in batches: every namespace that became interesting meanwhile is subscribed,
// then one PING/PONG round trip (bounded) confirms them all, so a stalled link costs one
// timeout per batch, on this thread only.
void nats_bridge::interest_loop() {
    std::unique_lock lock(interest_mutex_);
    for (;;) {
        interest_cv_.wait(
            lock, [this] { return interest_stop_ || !changes_.empty() || !release_.empty(); });
        if (interest_stop_ && changes_.empty() && release_.empty())
            break;
        auto changes = std::move(changes_);
        changes_.clear();
        auto release = std::move(release_);
        release_.clear();
        lock.unlock();
        for (auto& r : release)
            r();
        std::vector<const interest_change*> started;
        for (const auto& c : changes)
            if (apply(c) && c.interested)
                started.push_back(&c);
        if (!started.empty() && connected()) {
            // subscribe_success promises that later publishes arrive (spec §11.2): NATS must
            // have the interest before it goes out.
            std::shared_lock life(life_);
            const auto s = stopped_
                               ? NATS_OK
                               : natsConnection_FlushTimeout(conn_, cfg_.subscribe_timeout.count());
            if (s != NATS_OK)
                log::warn(
                    "cluster: NATS did not confirm the subscription to {} namespace(s) within {} "
                    "ms: {}",
                    started.size(), cfg_.subscribe_timeout.count(), status_text(s));
        }
        if (history_)
            for (const auto* c : started)
                if (history_->has_stream(c->ns))
                    history_->interest_started(c->ns, connected());
        std::vector<std::function<void()>> ready;
        lock.lock();
        for (const auto& c : changes) {
            auto it = interest_.find(c.ns);
            if (!c.interested || it == interest_.end() || it->second.generation != c.generation)
                continue;  // dropped or replaced meanwhile: a later change answers
            it->second.confirmed = true;
            for (auto& w : it->second.waiting)
                ready.push_back(std::move(w));
            it->second.waiting.clear();
        }
        lock.unlock();
        for (auto& r : ready)
            r();
        lock.lock();
    }
    // Stopped: nobody is left to confirm anything; answer whoever still waits.
    std::vector<std::function<void()>> ready;
    for (auto& [ns, st] : interest_)
        for (auto& w : st.waiting)
            ready.push_back(std::move(w));
    interest_.clear();
    lock.unlock();
    for (auto& r : ready)
        r();
}

bool nats_bridge::apply(const interest_change& change) noexcept {
    const std::string_view ns = change.ns;
    try {
        std::lock_guard lock(subs_mutex_);
        if (!change.interested) {
            auto it = subs_.find(ns);
            if (it == subs_.end())
                return false;
            unsubscribe(it->second);
            subs_.erase(it);
            if (history_)
                history_->interest_stopped(ns);
            stats_.namespaces.fetch_sub(1, std::memory_order_relaxed);
            return true;
        }
        std::shared_lock life(life_);
        if (stopped_ || subs_.count(ns))
            return false;
        const bool stored = history_ && history_->has_stream(ns);
        // With history: one subscription to what the stream republishes (so in sequence
        // order); without: the disjoint pair of plain subjects.
        const auto exact = stored ? history_->live_subject(ns) + ".>"
                                  : cfg_.subject_prefix + "." + encode_token(ns);
        const auto below = exact + ".>";
        namespace_subs subs;
        for (auto [slot, subject] :
             {std::pair{&subs.exact, &exact}, std::pair{&subs.below, &below}}) {
            if (stored && slot == &subs.below)
                break;
            const auto s = natsConnection_Subscribe(
                slot, conn_, subject->c_str(),
                stored ? &nats_bridge::on_stored : &nats_bridge::on_message, this);
            if (s != NATS_OK) {
                log::error("cluster: cannot subscribe to NATS subject {}: {}", *subject,
                           status_text(s));
                unsubscribe(subs);
                return false;
            }
            {
                std::lock_guard closed_lock(closed_mutex_);
                ++live_subscriptions_;
            }
            if (natsSubscription_SetOnCompleteCB(*slot, &nats_bridge::on_subscription_complete,
                                                 this) != NATS_OK) {
                // No completion call will come: do not let stop() wait for one.
                std::lock_guard closed_lock(closed_mutex_);
                --live_subscriptions_;
            }
            // Past these a subscription drops messages (counted in on_error) instead of growing
            // without bound when the broker cannot keep up.
            natsSubscription_SetPendingLimits(*slot, 1 << 16, 256 << 20);
        }
        subs_.emplace(std::string(ns), subs);
        stats_.namespaces.fetch_add(1, std::memory_order_relaxed);
        log::debug("cluster: subscribing to namespace {} in NATS", ns);
        return true;
    } catch (const std::exception& e) {
        log::error("cluster: namespace {} subscription failed: {}", ns, e.what());
        return false;
    }
}

void nats_bridge::unsubscribe(namespace_subs& subs) noexcept {
    for (auto* slot : {&subs.exact, &subs.below}) {
        if (!*slot)
            continue;
        natsSubscription_Unsubscribe(*slot);
        natsSubscription_Destroy(*slot);
        *slot = nullptr;
    }
}

void nats_bridge::on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    try {
        std::shared_lock lock(self->life_);
        if (!self->stopped_) {
            const std::string_view subject = natsMsg_GetSubject(msg);
            auto path = subject_channel(self->cfg_.subject_prefix, subject);
            auto batch = path ? decode_batch(std::string_view(natsMsg_GetData(msg),
                                                              natsMsg_GetDataLength(msg)))
                              : events::result<pubsub::event_batch>(path.error());
            if (!batch) {
                const auto n = self->stats_.bad_messages.fetch_add(1, std::memory_order_relaxed);
                if (worth_logging(n + 1))
                    log::warn("cluster: dropped a NATS message on {}: {} (dropped so far: {})",
                              subject.substr(0, 200), batch.error().message, n + 1);
            } else {
                const char* origin = nullptr;
                natsMsgHeader_Get(msg, origin_header, &origin);
                if (self->take_echo(origin))
                    self->api_.deliver_local(
                        *path, std::make_shared<pubsub::event_batch>(std::move(*batch)));
                core::stats::add(self->stats_.messages_in);
            }
        }
    } catch (const std::exception& e) {
        log::error("cluster: NATS message handler failed: {}", e.what());
    }
    natsMsg_Destroy(msg);
}

// RePublish does not keep the stream's order when several connections publish at once (seen
// here: about 0.2% of messages overtake one another with 4 concurrent publishers on
// nats-server 2.9.10), and a slow-consumer drop or a short disconnection leaves a hole. Each
// namespace's messages arrive on one thread in this handler, so when one comes with a sequence
// past the next expected, the ones in between are read from the stream first (direct gets,
// at most max_fill), so live delivery is in sequence order with no hole; the late copies are
// then recognised as already delivered (jetstream_history::take_live).
namespace {
constexpr std::uint64_t max_fill = 1024;
}

bool nats_bridge::deliver_stored(std::string_view subject, std::string_view payload,
                                 std::uint64_t seq, const char* origin) {
    auto path = subject_channel(cfg_.subject_prefix, subject);
    auto batch = path ? decode_batch(payload) : events::result<pubsub::event_batch>(path.error());
    const auto epoch = batch ? history_->epoch_of(path->namespace_name()) : 0;
    if (!batch || epoch == 0) {
        const auto n = stats_.bad_messages.fetch_add(1, std::memory_order_relaxed);
        if (worth_logging(n + 1))
            log::warn("cluster: dropped a stored NATS message: {} (dropped so far: {})",
                      batch ? "stream epoch unknown" : batch.error().message, n + 1);
        return false;
    }
    core::stats::add(stats_.messages_in);
    if (!take_echo(origin)) {
        // Delivered here already (no echo in time): only note that live delivery is past it,
        // or the next message would look like a gap to fill.
        history_->take_live(path->namespace_name(), {epoch, seq});
        return true;
    }
    api_.deliver_at(*path, std::make_shared<pubsub::event_batch>(std::move(*batch)), {epoch, seq});
    return true;
}

void nats_bridge::on_stored(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    try {
        std::shared_lock lock(self->life_);
        if (!self->stopped_) {
            const char* original = nullptr;
            const char* seq_text = nullptr;
            natsMsgHeader_Get(msg, "Nats-Subject", &original);
            natsMsgHeader_Get(msg, "Nats-Sequence", &seq_text);
            const std::uint64_t seq = seq_text ? parse_sequence(seq_text).value_or(0) : 0;
            if (!original || seq == 0) {
                const auto n = self->stats_.bad_messages.fetch_add(1, std::memory_order_relaxed);
                if (worth_logging(n + 1))
                    log::warn("cluster: dropped a republished message without its headers");
            } else {
                const std::string_view subject(original);
                // The namespace: the token after the prefix (subject_channel checks the rest).
                const auto rest =
                    subject.substr(std::min(subject.size(), self->cfg_.subject_prefix.size() + 1));
                const auto ns_token = rest.substr(0, rest.find('.'));
                const auto ns = decode_token(ns_token);
                bool interest = false;
                const auto through =
                    ns ? self->history_->live_through(*ns, interest) : std::uint64_t{0};
                if (interest && seq > through + 1 && seq - through - 1 <= max_fill) {
                    std::string s, p, o;
                    // Stops at the first miss (expired, or NATS slow to answer): each try is
                    // bounded, but a thousand timeouts in a row would not be.
                    for (auto missing = through + 1; missing < seq; ++missing) {
                        if (!self->history_->fetch(*ns, missing, s, p, &o))
                            break;
                        self->deliver_stored(s, p, missing, o.empty() ? nullptr : o.c_str());
                    }
                }
                const char* origin = nullptr;
                natsMsgHeader_Get(msg, origin_header, &origin);
                self->deliver_stored(
                    subject,
                    std::string_view(natsMsg_GetData(msg),
                                     static_cast<std::size_t>(natsMsg_GetDataLength(msg))),
                    seq, origin);
            }
        }
    } catch (const std::exception& e) {
        log::error("cluster: NATS message handler failed: {}", e.what());
    }
    natsMsg_Destroy(msg);
}

void nats_bridge::on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    std::function<void(events::position)> located;
    events::position where;
    try {
        std::shared_lock lock(self->life_);
        const std::string_view subject = natsMsg_GetSubject(msg);
        const auto number = subject.size() > self->ack_inbox_.size() + 1
                                ? parse_sequence(subject.substr(self->ack_inbox_.size() + 1))
                                : std::nullopt;
        if (!self->stopped_ && number) {
            std::string ns;
            {
                std::lock_guard echo_lock(self->echo_mutex_);
                if (auto it = self->acks_.find(*number); it != self->acks_.end()) {
                    located = std::move(it->second.located);
                    ns = std::move(it->second.ns);
                    self->acks_.erase(it);
                }
            }
            // {"stream":"<name>","seq":N}; an error or a no-responders status has no seq, and
            // the position stays unknown.
            boost::system::error_code ec;
            const auto ack = boost::json::parse(
                std::string_view(natsMsg_GetData(msg),
                                 static_cast<std::size_t>(natsMsg_GetDataLength(msg))),
                ec);
            const auto* o = ec ? nullptr : ack.if_object();
            const auto* seq = o ? o->if_contains("seq") : nullptr;
            std::uint64_t n = 0;
            if (seq && seq->is_uint64())
                n = seq->as_uint64();
            else if (seq && seq->is_int64() && seq->as_int64() > 0)
                n = static_cast<std::uint64_t>(seq->as_int64());
            if (located && n > 0)
                if (const auto epoch = self->history_->epoch_of(ns); epoch != 0)
                    where = {epoch, n};
        }
    } catch (const std::exception& e) {
        log::error("cluster: NATS acknowledgement handler failed: {}", e.what());
    }
    natsMsg_Destroy(msg);
    if (located)
        located(where);  // outside our locks: it may take the caller's
}

void nats_bridge::on_connected(natsConnection* nc, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    self->connected_since_ = clock::now().time_since_epoch().count();
    self->connected_ = true;
    self->ever_connected_ = true;
    log::info("cluster: connected to NATS at {}", connected_url(nc));
    if (self->history_)
        self->history_->connected();
}

void nats_bridge::on_disconnected(natsConnection*, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    const bool was = self->connected_.exchange(false);
    if (!was || self->closing_.load())
        return;
    {
        // What waits for its echo is delivered here now (echo_loop).
        std::lock_guard lock(self->echo_mutex_);
        self->echo_cv_.notify_all();
    }
    const auto n = self->stats_.disconnects.fetch_add(1, std::memory_order_relaxed) + 1;
    log::warn(
        "cluster: lost the NATS connection (#{}); delivering local publishes locally "
        "while reconnecting",
        n);
}

void nats_bridge::on_reconnected(natsConnection* nc, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    self->connected_since_ = clock::now().time_since_epoch().count();
    self->connected_ = true;
    self->ever_connected_ = true;
    const auto n = self->stats_.reconnects.fetch_add(1, std::memory_order_relaxed) + 1;
    log::info("cluster: reconnected to NATS at {} (#{})", connected_url(nc), n);
    if (self->history_)
        self->history_->connected();
}

void nats_bridge::on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    self->connected_ = false;
    std::lock_guard lock(self->closed_mutex_);
    self->closed_ = true;
    self->closed_cv_.notify_all();
}

void nats_bridge::on_subscription_complete(void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    std::lock_guard lock(self->closed_mutex_);
    --self->live_subscriptions_;
    self->closed_cv_.notify_all();
}

void nats_bridge::on_error(natsConnection*, natsSubscription*, natsStatus status, void* closure) {
    auto* self = static_cast<nats_bridge*>(closure);
    if (status == NATS_SLOW_CONSUMER) {
        const auto n = self->stats_.dropped.fetch_add(1, std::memory_order_relaxed) + 1;
        if (worth_logging(n))
            log::warn(
                "cluster: NATS messages dropped: this node's subscribers fall behind "
                "(drops so far: {})",
                n);
        return;
    }
    log::warn("cluster: NATS error: {}", natsStatus_GetText(status));
}

std::int64_t nats_bridge::reconnect_delay(natsConnection*, int attempts, void* closure) {
    // Exponential from reconnect_wait to reconnect_max, plus up to 50% jitter, so nodes that
    // lost NATS together do not come back in step.
    auto* self = static_cast<nats_bridge*>(closure);
    const auto base = self->cfg_.reconnect_wait.count();
    const auto cap = self->cfg_.reconnect_max.count();
    std::int64_t delay = base;
    for (int i = 1; i < attempts && delay < cap; ++i)
        delay *= 2;
    delay = std::min(delay, cap);
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_int_distribution<std::int64_t> jitter(0, delay / 2);
    return delay + jitter(rng);
}

}  // namespace eventcast::cluster

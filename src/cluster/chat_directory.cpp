// Request/reply with libnats: the asker subscribes a fresh inbox with a timeout (the handler
// gets NULL when nothing came in time), publishes the request with that inbox as reply subject,
// and takes the first answer. Every node, the asker included, listens on `<prefix>._chat.>`
// and answers only for streams it owns.
#include "cluster/chat_directory.hpp"

#include "cluster/nats_options.hpp"
#include "core/log.hpp"

#include <boost/json.hpp>

#include <mutex>
#include <nats/nats.h>
#include <shared_mutex>
#include <stdexcept>
#include <vector>

namespace eventcast::cluster {

namespace json = boost::json;

namespace {

bool token_ok(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max)
        return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    return true;
}

// One outstanding ask: the handler may fire before natsConnection_SubscribeTimeout returns, so
// the subscription pointer is set and read under the mutex.
struct pending {
    std::mutex m;
    natsSubscription* sub = nullptr;
    bool done = false;
    std::function<void(std::optional<remote_answer>)> callback;
};

}  // namespace

struct chat_directory::impl {
    core::cluster_config cfg;
    lookup local;
    natsOptions* opts = nullptr;
    natsConnection* conn = nullptr;
    natsSubscription* listener = nullptr;
    std::shared_mutex life;  // exclusive in stop(): no handler runs past it
    bool stopped = false;

    static void on_connected(natsConnection* nc, void* closure) {
        auto* self = static_cast<impl*>(closure);
        (void)nc;
        log::debug("cluster: chat directory connected");
        (void)self;
    }

    // A request from any node, this one included.
    static void on_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
        auto* self = static_cast<impl*>(closure);
        try {
            std::shared_lock lock(self->life);
            const char* reply = natsMsg_GetReply(msg);
            if (!self->stopped && reply && *reply) {
                const std::string_view subj = natsMsg_GetSubject(msg);
                // <prefix>._chat.<op>.<id>
                const auto rest = subj.substr(self->cfg.subject_prefix.size() + 7);
                const auto dot = rest.find('.');
                if (dot != std::string_view::npos) {
                    const auto op = rest.substr(0, dot);
                    const auto id = rest.substr(dot + 1);
                    const std::string_view user(
                        natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
                    if (auto a = self->local(op, id, user)) {
                        const auto out =
                            json::serialize(json::object{{"status", a->status},
                                                         {"body", a->body},
                                                         {"errorType", a->error_type}});
                        natsConnection_Publish(nc, reply, out.data(), static_cast<int>(out.size()));
                    }
                }
            }
        } catch (const std::exception& e) {
            log::error("cluster: chat directory request failed: {}", e.what());
        }
        natsMsg_Destroy(msg);
    }

    static void on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
        auto* p = static_cast<pending*>(closure);
        std::optional<remote_answer> answer;
        if (msg) {
            boost::system::error_code ec;
            auto v =
                json::parse(std::string_view(natsMsg_GetData(msg),
                                             static_cast<std::size_t>(natsMsg_GetDataLength(msg))),
                            ec);
            const auto* o = ec ? nullptr : v.if_object();
            if (o && o->contains("status") && o->at("status").is_int64() && o->contains("body") &&
                o->at("body").is_string()) {
                remote_answer a;
                a.status = static_cast<unsigned>(o->at("status").as_int64());
                a.body = std::string(o->at("body").as_string());
                if (const auto* t = o->if_contains("errorType"); t && t->is_string())
                    a.error_type = std::string(t->as_string());
                if (a.status >= 100 && a.status < 600)
                    answer = std::move(a);
            }
            natsMsg_Destroy(msg);
        }
        std::function<void(std::optional<remote_answer>)> cb;
        {
            std::lock_guard lock(p->m);
            if (p->done)
                return;
            p->done = true;
            cb = std::move(p->callback);
            if (p->sub)
                natsSubscription_Unsubscribe(p->sub);
        }
        cb(std::move(answer));
        // The subscription (and with it this closure) is freed by its completion callback.
    }

    static void on_complete(void* closure) {
        auto* p = static_cast<pending*>(closure);
        natsSubscription* sub = nullptr;
        {
            std::lock_guard lock(p->m);
            sub = p->sub;
        }
        natsSubscription_Destroy(sub);
        delete p;
    }
};

chat_directory::chat_directory(const core::cluster_config& cfg, lookup local)
    : impl_(std::make_unique<impl>()) {
    impl_->cfg = cfg;
    impl_->local = std::move(local);
}

chat_directory::~chat_directory() {
    stop();
}

std::string chat_directory::subject(std::string_view prefix, std::string_view op,
                                    std::string_view stream_id) {
    if ((op != "status" && op != "cancel") || !token_ok(stream_id, 64))
        return {};
    std::string s(prefix);
    s += "._chat.";
    s += op;
    s += '.';
    s += stream_id;
    return s;
}

void chat_directory::start() {
    auto& d = *impl_;
    auto check = [](natsStatus s, const char* what) {
        if (s != NATS_OK)
            throw std::runtime_error(std::string("cluster chat directory: ") + what + ": " +
                                     natsStatus_GetText(s));
    };
    check(natsOptions_Create(&d.opts), "options");
    apply_connection_options(d.opts, d.cfg);  // servers, TLS, credentials: the bridge's
    check(natsOptions_SetName(d.opts, "eventcast-chat-directory"), "name");
    check(natsOptions_SetAllowReconnect(d.opts, true), "reconnect");
    check(natsOptions_SetMaxReconnect(d.opts, -1), "reconnect");
    check(natsOptions_SetReconnectWait(d.opts, d.cfg.reconnect_wait.count()), "reconnect wait");
    check(natsOptions_SetRetryOnFailedConnect(d.opts, true, &impl::on_connected, &d), "retry");
    const auto s = natsConnection_Connect(&d.conn, d.opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED)
        check(s, "connect");
    check(natsConnection_Subscribe(&d.listener, d.conn, (d.cfg.subject_prefix + "._chat.>").c_str(),
                                   &impl::on_request, &d),
          "subscribe");
}

void chat_directory::stop() {
    auto& d = *impl_;
    {
        std::unique_lock lock(d.life);
        if (d.stopped)
            return;
        d.stopped = true;
    }
    if (d.listener)
        natsSubscription_Unsubscribe(d.listener);
    if (d.conn)
        natsConnection_Close(d.conn);
    if (d.listener)
        natsSubscription_Destroy(d.listener);
    if (d.conn)
        natsConnection_Destroy(d.conn);
    if (d.opts)
        natsOptions_Destroy(d.opts);
    d.listener = nullptr;
    d.conn = nullptr;
    d.opts = nullptr;
}

void chat_directory::ask(std::string_view op, std::string_view stream_id, std::string_view user,
                         std::chrono::milliseconds timeout,
                         std::function<void(std::optional<remote_answer>)> done) {
    auto& d = *impl_;
    const auto subj = subject(d.cfg.subject_prefix, op, stream_id);
    std::shared_lock lock(d.life);
    if (subj.empty() || d.stopped || !d.conn ||
        natsConnection_Status(d.conn) != NATS_CONN_STATUS_CONNECTED) {
        lock.unlock();
        return done(std::nullopt);
    }
    char* inbox = nullptr;
    if (natsInbox_Create(&inbox) != NATS_OK) {
        lock.unlock();
        return done(std::nullopt);
    }
    auto* p = new pending;
    p->callback = std::move(done);
    natsStatus s;
    {
        std::lock_guard plock(p->m);
        s = natsConnection_SubscribeTimeout(&p->sub, d.conn, inbox, timeout.count(),
                                            &impl::on_reply, p);
        if (s == NATS_OK)
            s = natsSubscription_SetOnCompleteCB(p->sub, &impl::on_complete, p);
    }
    if (s == NATS_OK)
        s = natsConnection_PublishRequest(d.conn, subj.c_str(), inbox, user.data(),
                                          static_cast<int>(user.size()));
    natsInbox_Destroy(inbox);
    if (s != NATS_OK) {
        // Nothing will call back: answer now and free what was made.
        std::function<void(std::optional<remote_answer>)> cb;
        natsSubscription* sub = nullptr;
        {
            std::lock_guard plock(p->m);
            if (!p->done) {
                p->done = true;
                cb = std::move(p->callback);
            }
            sub = p->sub;
        }
        if (sub) {
            natsSubscription_Unsubscribe(sub);  // on_complete runs and frees p
        } else {
            delete p;
        }
        lock.unlock();
        if (cb)
            cb(std::nullopt);
    }
}

}  // namespace eventcast::cluster

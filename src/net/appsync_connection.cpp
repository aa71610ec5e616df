// The protocol state of one connection. Each message becomes one event_api operation; the
// rules (rate limit, authorization, namespaces, history) live there, the ids and subscriptions
// of this connection here.
#include "net/appsync_connection.hpp"

#include "core/log.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

namespace eventcast::net {

namespace asio = boost::asio;
using close_code = boost::beast::websocket::close_code;

appsync_connection::appsync_connection(api::event_api& api, const core::config& cfg,
                                       connection_host& host, asio::any_io_executor executor)
    : api_(api),
      lim_(cfg.lim),
      host_(host),
      executor_(std::move(executor)),
      ops_(cfg.auth.max_ops_per_second, cfg.auth.max_ops_per_second) {}

// The answer of an operation, on this connection's executor. An answer decided at once comes
// while the operation's call is still on the stack (on_operation() marks that thread), so it runs
// right there; one that comes from another thread (authorization with I/O) is dispatched back
// here. Skipping the dispatch for the common case saves a type-erased executor call and its
// allocation per operation (bench/callgrind-publish). `answered_` tells on_text() which
// happened, so it pauses reading only for an answer still to come.
template <class Result, class Then>
auto appsync_connection::on_executor(Then then) {
    answered_ = false;
    return [this, keep = host_.keep_alive(), then = std::move(then)](Result r) mutable {
        if (calling_.load(std::memory_order_relaxed) == std::this_thread::get_id())
            return answer(then, r);
        asio::dispatch(executor_, [this, keep = std::move(keep), then = std::move(then),
                                   r = std::move(r)]() mutable { answer(then, r); });
    };
}

template <class Result, class Then>
void appsync_connection::answer(Then& then, Result& r) {
    answered_ = true;
    then(r);
    if (!waiting_)
        return;
    waiting_ = false;
    if (host_.closing())
        return end();  // no more reads: nothing else would take its subscriptions out
    host_.resume_reading();
}

template <class Call>
void appsync_connection::on_operation(Call call) {
    calling_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    call();
    calling_.store(std::thread::id(), std::memory_order_relaxed);
}

bool appsync_connection::start(events::upgrade_auth&& auth) {
    if (auth.error) {
        core::stats::add(api_.stats().auth_failures);
        log::info("net connect refused: {}", auth.error->message);
        host_.send_text(events::connection_error(*auth.error));
        host_.close_after_sending(close_code::normal, "connection refused");
        return true;  // reading goes on, for the client's close reply
    }
    // The credentials are needed only for this decision; they go when `auth` does.
    on_operation([&] {
        api_.connect(api::caller{&auth.creds, nullptr, nullptr},
                     on_executor<auth::auth_result>([this](const auth::auth_result& r) {
                         if (host_.closing())
                             return;
                         if (!r) {
                             log::info("net connect refused: unauthorized");
                             host_.send_text(events::connection_error(r.error()));
                             host_.close_after_sending(close_code::normal, "unauthorized");
                             return;
                         }
                         connected_ = true;
                         log::debug("net connected ({})", auth::mode_name(r->how));
                     }));
    });
    if (!answered_) {
        waiting_ = true;  // read nothing until the decision is in
        return false;
    }
    return true;
}

bool appsync_connection::on_text(std::string_view text) {
    auto parsed = events::parse_client_message(text, lim_);
    if (!parsed) {
        auto err = std::move(parsed.error());
        // Never put a live subscription's id on a generic error: Amplify would fail that
        // subscription (spec §8).
        if (err.type.empty() && subs_.count(err.id))
            err.id.clear();
        reply_error(err);
        return true;
    }
    std::visit([this](auto& msg) { on_message(msg); }, *parsed);
    if (answered_)
        return true;
    waiting_ = true;
    return false;
}

void appsync_connection::on_binary() {
    reply_error({events::protocol_error{events::error_kind::unsupported,
                                        "binary frames are not supported; send each message as "
                                        "a JSON text frame"},
                 {},
                 {}});
}

void appsync_connection::on_message(events::connection_init_msg&) {
    host_.send_text(events::connection_ack(lim_.connection_timeout.count()));
    host_.send_text(events::ka());  // starts the client's keep-alive watchdog right away
}

void appsync_connection::on_message(events::subscribe_msg& m) {
    if (subs_.count(m.id))
        return reply_error({{events::error_kind::duplicate_id,
                             "subscription id '" + m.id + "' is already live on this connection"},
                            "subscribe",
                            m.id});
    if (subs_.size() >= lim_.max_subscriptions)
        return reply_error(
            {{events::error_kind::max_subscriptions,
              "this connection has " + std::to_string(subs_.size()) +
                  " subscriptions; the limit is " + std::to_string(lim_.max_subscriptions)},
             "subscribe",
             m.id});
    auto prefix = std::make_shared<const std::string>(events::data_prefix(m.id));
    api::subscribe_request req{std::move(m.channel), std::move(m.raw_channel),
                               std::move(m.resume_after), host_.subscriber(), prefix};
    const api::caller who{m.authorization ? &*m.authorization : nullptr, nullptr, &ops_};
    on_operation([&] {
        api_.subscribe(std::move(req), who,
                       on_executor<api::subscribe_result>(
                           [this, id = std::move(m.id), prefix](api::subscribe_result& r) {
                               on_subscribed(id, prefix, r);
                           }));
    });
}

void appsync_connection::on_subscribed(const std::string& id, const pubsub::shared_bytes& prefix,
                                       api::subscribe_result& r) {
    if (!r) {
        if (!host_.closing())
            reply_error({std::move(r.error()), "subscribe", id});
        return;
    }
    if (host_.closing())
        return api_.drop(r->handle);  // closed while authorizing: no read will end() it
    // Live in the broker before the ack is queued, so no publish that follows the ack is missed
    // (spec §11.2). Live deliveries are dispatched to this executor, so for a resume they queue
    // behind the missed frames queued here.
    live_prefixes_.insert(prefix.get());
    subs_.emplace(id, live_subscription{r->handle, prefix});
    host_.send_text(events::subscribe_success(id));
    for (const auto& e : r->missed)
        if (!host_.send_data(prefix, e.batch, e.index))
            return;
    core::stats::add(api_.stats().frames_out, r->missed.size());
}

void appsync_connection::on_message(events::unsubscribe_msg& m) {
    auto it = subs_.find(m.id);
    auto done = api_.unsubscribe(api::caller{nullptr, nullptr, &ops_}, m.id,
                                 it == subs_.end() ? nullptr : it->second.handle);
    if (!done)
        return reply_error({std::move(done.error()), "unsubscribe", m.id});
    live_prefixes_.erase(it->second.prefix.get());
    subs_.erase(it);
    host_.send_text(events::unsubscribe_success(m.id));
}

void appsync_connection::on_message(events::publish_msg& m) {
    api::publish_request req{std::move(m.channel), std::move(m.raw_channel), std::move(m.events),
                             std::nullopt};
    const api::caller who{m.authorization ? &*m.authorization : nullptr, nullptr, &ops_};
    on_operation([&] {
        api_.publish(
            std::move(req), who,
            on_executor<api::publish_result>([this, id = std::move(m.id)](api::publish_result& r) {
                if (host_.closing())
                    return;
                if (!r)
                    return reply_error({std::move(r.error()), "publish", id});
                host_.send_text(events::publish_success(id, *r));
            }));
    });
}

void appsync_connection::reply_error(const events::message_error& e) {
    auto& st = api_.stats();
    core::stats::add(st.protocol_errors);
    core::stats::add(st.errors_by_kind[static_cast<std::size_t>(e.error.kind)]);
    host_.send_text(events::error_reply(e));
}

void appsync_connection::deliver(const pubsub::shared_bytes& prefix,
                                 const pubsub::shared_batch& batch) {
    if (host_.closing() || !live_prefixes_.count(prefix.get()))
        return;
    for (std::uint32_t i = 0; i < batch->bodies.size(); ++i)
        if (!host_.send_data(prefix, batch, i))
            return;
}

void appsync_connection::end() {
    for (auto& [id, sub] : subs_)
        api_.drop(sub.handle);
    subs_.clear();
    live_prefixes_.clear();
}

}  // namespace eventcast::net

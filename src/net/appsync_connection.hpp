// The AppSync Events protocol on one WebSocket connection, without the socket: connection_init,
// subscribe, unsubscribe and publish turned into api::event_api operations, the connection's
// subscriptions and ids, and the answers turned back into messages (spec/appsync-events.md).
// It sees complete text messages in and hands frames out through its host (net/ws_session,
// or a test's fake); unit-tested without a socket (tests/unit/net/appsync_connection_test.cpp).
//
// Threading: every call is made on the connection's executor (its strand). Operations that
// wait for I/O answer from another thread; the answer is dispatched back onto that executor
// and, meanwhile, reading is paused so messages are handled in order.
#pragma once

#include "api/event_api.hpp"
#include "auth/rate_limit.hpp"
#include "events/handshake.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::net {

/// What the protocol needs from its transport. Called on the connection's executor.
class connection_host {
public:
    /// A control message (one JSON text frame).
    virtual void send_text(std::string text) = 0;
    /// One data frame: `prefix` + body `index` of `batch`. False when the connection is closing
    /// (or has just been closed as a slow consumer): send nothing more.
    virtual bool send_data(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch,
                           std::uint32_t index) = 0;
    /// Closes the connection with a close frame once what is queued is written.
    virtual void close_after_sending(std::uint16_t code, const char* reason) = 0;
    /// Reading may go on: an operation that waited has answered (see on_text()).
    virtual void resume_reading() = 0;
    /// True once the connection is closing: answers are dropped.
    virtual bool closing() const = 0;
    /// Who receives this connection's deliveries. The broker delivers through a plain pointer
    /// until the subscriptions are dropped (end()), so the host must call end() before it goes.
    virtual std::weak_ptr<pubsub::subscriber> subscriber() = 0;
    /// Keeps the host alive while an answer is in flight.
    virtual std::shared_ptr<void> keep_alive() = 0;

    virtual ~connection_host() = default;
};

class appsync_connection {
public:
    appsync_connection(api::event_api& api, const core::config& cfg, connection_host& host,
                       boost::asio::any_io_executor executor);

    /// Authorizes the connection with the upgrade's credentials. True when reading may start
    /// (also after a refusal decided at once: connection_error is sent, the connection closes
    /// and reading waits for the client's close reply); false while the decision is pending
    /// (host.resume_reading() follows unless it refused).
    bool start(events::upgrade_auth&& auth);

    /// One complete text message. True when the next may be handled now; false while an
    /// operation waits for I/O (host.resume_reading() follows its answer).
    bool on_text(std::string_view text);
    /// A binary message: refused with an error message, the connection goes on.
    void on_binary();

    /// A broker delivery, on the connection's executor: queued when its subscription is still
    /// live (a delivery posted before an unsubscribe finished is dropped, spec §5.5).
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch);

    /// Reading has ended: every subscription leaves the broker. Idempotent.
    void end();

    std::size_t subscription_count() const noexcept { return subs_.size(); }
    bool waiting() const noexcept { return waiting_; }
    bool connected() const noexcept { return connected_; }

private:
    struct live_subscription {
        pubsub::subscription_handle handle;
        pubsub::shared_bytes prefix;
    };

    void on_message(events::connection_init_msg& m);
    void on_message(events::subscribe_msg& m);
    void on_message(events::unsubscribe_msg& m);
    void on_message(events::publish_msg& m);
    void on_subscribed(const std::string& id, const pubsub::shared_bytes& prefix,
                       api::subscribe_result& r);
    void reply_error(const events::message_error& e);

    // Runs `then` on the connection's executor with the answer, keeping the host alive; marks
    // the operation answered so on_text() knows whether to pause.
    template <class Result, class Then>
    auto on_executor(Then then);
    template <class Result, class Then>
    void answer(Then& then, Result& r);
    // Runs `call` (one event_api operation) with this thread marked as inside it.
    template <class Call>
    void on_operation(Call call);

    api::event_api& api_;
    const core::limits& lim_;
    connection_host& host_;
    boost::asio::any_io_executor executor_;
    auth::token_bucket ops_;  // --max-ops-per-second
    // The thread inside an event_api call, while it is; an answer that comes on it is inline.
    std::atomic<std::thread::id> calling_{};
    bool answered_ = true;    // the last operation's answer has been handled
    bool waiting_ = false;    // reading is paused until that answer
    bool connected_ = false;  // connect authorized
    std::unordered_map<std::string, live_subscription> subs_;  // by subscription id
    std::unordered_set<const std::string*> live_prefixes_;     // prefixes of subs_, for deliver
};

}  // namespace eventcast::net

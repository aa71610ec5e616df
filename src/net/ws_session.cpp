// The WebSocket session: the AppSync Events protocol on one connection.
//
// Lifetime: owned only by the handlers it has in flight (each holds shared_from_this()); the
// broker holds weak_ptrs. Threading: every member is touched only on the strand that is the
// stream's executor; deliver() and shutdown() hop onto it.
//
// Outbox: one write in flight; the rest queue as (prefix, shared batch, index) triples, so a data
// frame costs no copy of the event. Past max_outbox_bytes the client is a slow consumer: its
// queue is dropped and it is closed with 1013, so it never slows anyone else.
#include "net/ws_session.hpp"

#include "core/log.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <array>
#include <vector>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;

namespace {

struct out_frame {
    pubsub::shared_bytes head;   // a whole control message, or a data frame's prefix
    pubsub::shared_batch batch;  // null for control messages
    std::uint32_t index = 0;     // which body of batch
    std::size_t size() const noexcept {
        return head->size() + (batch ? batch->bodies[index].size() : 0);
    }
};

// FIFO of frames that allocates nothing until the first frame: an idle connection's outbox
// costs two pointers, where std::deque allocates over 500 bytes up front.
class frame_queue {
public:
    bool empty() const noexcept { return head_ == items_.size(); }
    out_frame& front() noexcept { return items_[head_]; }
    void push_back(out_frame f) { items_.push_back(std::move(f)); }
    void pop_front() {
        items_[head_++] = out_frame{};
        if (head_ == items_.size()) {
            items_.clear();
            head_ = 0;
            if (items_.capacity() > 64)
                items_.shrink_to_fit();  // a burst is over; give its memory back
        } else if (head_ > 32 && head_ * 2 > items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }
    void clear() {
        items_.clear();
        items_.shrink_to_fit();
        head_ = 0;
    }

private:
    std::vector<out_frame> items_;
    std::size_t head_ = 0;
};

struct live_subscription {
    pubsub::subscription_handle handle;
    pubsub::shared_bytes prefix;
};

template <class Stream>
class ws_session final : public pubsub::subscriber,
                         public closable,
                         public std::enable_shared_from_this<ws_session<Stream>> {
public:
    ws_session(Stream&& stream, events::upgrade_auth&& auth, server_context& ctx)
        : ws_(std::move(stream)),
          ctx_(ctx),
          lim_(ctx.cfg.lim),
          auth_(std::move(auth)),
          deadline_(std::chrono::steady_clock::now() + ctx.cfg.lim.connection_lifetime) {}

    ~ws_session() override {
        ctx_.registry.remove(registry_id_);
        if (accepted_)
            ctx_.api.stats().connections_open.fetch_sub(1, std::memory_order_relaxed);
    }

    void run(http_request&& req) {
        registry_id_ = ctx_.registry.add(this->weak_from_this());
        beast::get_lowest_layer(ws_).expires_never();
        websocket::stream_base::timeout opt{};
        opt.handshake_timeout = lim_.handshake_timeout;
        // No per-connection idle timer: the server's ticker sends `ka` on every connection, so
        // a dead peer shows up as a failed write; TCP keep-alive (set at accept) covers a
        // silent one. A pending timer per connection would cost memory on every idle client.
        opt.idle_timeout = websocket::stream_base::none();
        opt.keep_alive_pings = false;
        ws_.set_option(opt);
        ws_.read_message_max(lim_.max_frame_bytes);
        ws_.auto_fragment(false);
        ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
            res.set(http::field::server, "eventcast");
            res.set(http::field::sec_websocket_protocol, events::appsync_subprotocol);
        }));
        req_ = std::move(req);
        ws_.async_accept(req_, beast::bind_front_handler(&ws_session::on_accept,
                                                         this->shared_from_this()));
    }

    // Any thread; called by the broker under its read lock, so only hop onto the strand.
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) override {
        asio::dispatch(ws_.get_executor(), [self = this->shared_from_this(), prefix, batch] {
            self->on_deliver(prefix, batch);
        });
    }

    void shutdown() override {
        asio::post(ws_.get_executor(), [self = this->shared_from_this()] {
            self->close_with(websocket::close_code::going_away, "server shutting down", true);
        });
    }

private:
    void on_accept(beast::error_code ec) {
        req_ = {};
        if (ec) {
            log::debug("net [w{}] upgrade failed: {}", registry_id_, ec.message());
            return;
        }
        accepted_ = true;
        auto& st = ctx_.api.stats();
        st.connections_open.fetch_add(1, std::memory_order_relaxed);
        core::stats::add(st.connections_total);
        ws_.text(true);
        if (auth_.error) {
            core::stats::add(st.auth_failures);
            log::info("net [w{}] connect refused: {}", registry_id_, auth_.error->message);
            send_control(events::connection_error(*auth_.error));
            return close_with(websocket::close_code::normal, "connection refused", false);
        }
        if (auto r = ctx_.api.authorize_connect(auth_.creds); !r) {
            log::info("net [w{}] connect refused: unauthorized", registry_id_);
            send_control(events::connection_error(r.error()));
            return close_with(websocket::close_code::normal, "unauthorized", false);
        }
        auth_ = {};  // credentials are not needed past connect; do not keep secrets around
        log::debug("net [w{}] connected", registry_id_);
        last_ka_ = std::chrono::steady_clock::now();
        do_read();
    }

    // The server's ticker, from any thread.
    void tick(std::chrono::steady_clock::time_point now) override {
        asio::post(ws_.get_executor(), [self = this->shared_from_this(), now] {
            if (!self->accepted_ || self->closing_)
                return;
            if (now >= self->deadline_)
                return self->close_with(websocket::close_code::normal,
                                        "connection lifetime reached", true);
            // A little early rather than late: the ticker's period is the interval itself.
            if (now - self->last_ka_ >= self->lim_.keepalive_interval * 9 / 10) {
                self->last_ka_ = now;
                self->send_control(events::ka());
            }
        });
    }

    void do_read() {
        ws_.async_read(buffer_, beast::bind_front_handler(&ws_session::on_read,
                                                          this->shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec)
            return on_end(ec);
        core::stats::add(ctx_.api.stats().ws_messages_in);
        if (!closing_) {
            if (!ws_.got_text()) {
                reply_error({events::protocol_error{events::error_kind::unsupported,
                                                    "binary frames are not supported; send each "
                                                    "message as a JSON text frame"},
                             {},
                             {}});
            } else {
                const auto data = buffer_.cdata();
                handle(std::string_view(static_cast<const char*>(data.data()), data.size()));
            }
        }
        buffer_.consume(buffer_.size());
        // Idle connections should not keep a read buffer sized for the largest message they
        // ever sent; a busy one pays an allocation per message instead, which is cheap.
        if (buffer_.capacity() > 0)
            buffer_.shrink_to_fit();
        do_read();
    }

    void handle(std::string_view text) {
        auto parsed = events::parse_client_message(text, lim_);
        if (!parsed) {
            auto err = std::move(parsed.error());
            // Never put a live subscription's id on a generic error: Amplify would fail that
            // subscription (spec §8).
            if (err.type.empty() && subs_.count(err.id))
                err.id.clear();
            return reply_error(err);
        }
        std::visit([this](auto& msg) { on_message(msg); }, *parsed);
    }

    void on_message(events::connection_init_msg&) {
        send_control(events::connection_ack(lim_.connection_timeout.count()));
        send_control(events::ka());  // starts the client's keep-alive watchdog right away
    }

    void on_message(events::subscribe_msg& m) {
        auto fail = [&](events::protocol_error e) {
            reply_error({std::move(e), "subscribe", m.id});
        };
        if (auto r = ctx_.api.authorize(m.authorization, "subscribe"); !r)
            return fail(r.error());
        if (auto r = ctx_.api.check_namespace(m.channel.namespace_name()); !r)
            return fail(r.error());
        if (subs_.count(m.id))
            return fail({events::error_kind::duplicate_id,
                         "subscription id '" + m.id + "' is already live on this connection"});
        if (subs_.size() >= lim_.max_subscriptions)
            return fail({events::error_kind::max_subscriptions,
                         "this connection has " + std::to_string(subs_.size()) +
                             " subscriptions; the limit is " +
                             std::to_string(lim_.max_subscriptions)});
        auto prefix = std::make_shared<const std::string>(events::data_prefix(m.id));
        // Live in the broker before the ack is queued, so no publish that follows the ack is
        // missed (spec §11.2).
        auto handle = ctx_.api.broker().subscribe(m.channel, this->weak_from_this(), prefix);
        live_prefixes_.insert(prefix.get());
        subs_.emplace(m.id, live_subscription{handle, std::move(prefix)});
        send_control(events::subscribe_success(m.id));
    }

    void on_message(events::unsubscribe_msg& m) {
        auto it = subs_.find(m.id);
        if (it == subs_.end())
            return reply_error({{events::error_kind::unknown_operation,
                                 "Unknown operation id " + m.id},
                                "unsubscribe",
                                m.id});
        ctx_.api.broker().unsubscribe(it->second.handle);
        live_prefixes_.erase(it->second.prefix.get());
        subs_.erase(it);
        send_control(events::unsubscribe_success(m.id));
    }

    void on_message(events::publish_msg& m) {
        auto fail = [&](events::protocol_error e) { reply_error({std::move(e), "publish", m.id}); };
        if (auto r = ctx_.api.authorize(m.authorization, "publish"); !r)
            return fail(r.error());
        if (auto r = ctx_.api.check_namespace(m.channel.namespace_name()); !r)
            return fail(r.error());
        auto outcome = ctx_.api.publish(m.channel, m.events);
        send_control(events::publish_success(m.id, outcome));
    }

    void reply_error(const events::message_error& e) {
        core::stats::add(ctx_.api.stats().protocol_errors);
        core::stats::add(ctx_.api.stats().errors_by_kind[static_cast<std::size_t>(e.error.kind)]);
        send_control(events::error_reply(e));
    }

    void on_deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) {
        // A delivery posted before an unsubscribe finished must not reach the client after
        // unsubscribe_success (spec §5.5).
        if (closing_ || !live_prefixes_.count(prefix.get()))
            return;
        for (std::uint32_t i = 0; i < batch->bodies.size(); ++i)
            if (!enqueue({prefix, batch, i}))
                return;
    }

    void send_control(std::string msg) {
        enqueue({std::make_shared<const std::string>(std::move(msg)), nullptr, 0});
    }

    bool enqueue(out_frame f) {
        if (closing_)
            return false;
        const auto size = f.size();
        if (outbox_bytes_ + size > lim_.max_outbox_bytes) {
            core::stats::add(ctx_.api.stats().slow_consumer_closes);
            log::warn("net [w{}] closing slow subscriber: outbox {} bytes + {} > limit {}",
                      registry_id_, outbox_bytes_, size, lim_.max_outbox_bytes);
            close_with(websocket::close_code::try_again_later, "slow consumer", true);
            return false;
        }
        outbox_bytes_ += size;
        outbox_.push_back(std::move(f));
        if (!writing_)
            write_next();
        return true;
    }

    void write_next() {
        if (outbox_.empty()) {
            if (close_pending_)
                do_close();
            return;
        }
        writing_ = true;
        const auto& f = outbox_.front();
        auto done = beast::bind_front_handler(&ws_session::on_write, this->shared_from_this());
        if (f.batch) {
            const auto& body = f.batch->bodies[f.index];
            std::array<asio::const_buffer, 2> bufs{asio::buffer(*f.head), asio::buffer(body)};
            ws_.async_write(bufs, std::move(done));
        } else {
            ws_.async_write(asio::buffer(*f.head), std::move(done));
        }
    }

    void on_write(beast::error_code ec, std::size_t n) {
        writing_ = false;
        if (ec) {
            log::debug("net [w{}] write failed: {}", registry_id_, ec.message());
            outbox_.clear();
            outbox_bytes_ = 0;
            return;  // the pending read fails too and ends the session
        }
        core::stats::add(ctx_.api.stats().bytes_out, n);
        core::stats::add(ctx_.api.stats().ws_frames_written);
        outbox_bytes_ -= outbox_.front().size();
        outbox_.pop_front();
        write_next();
    }

    // Stops queueing, then sends a close frame: right away when `drop` (pending frames are
    // discarded), else once the outbox has drained (so connection_error reaches the client).
    void close_with(websocket::close_code code, const char* reason, bool drop) {
        if (closing_ || !accepted_)
            return;
        closing_ = true;
        close_reason_ = websocket::close_reason(code, reason);
        if (drop && !outbox_.empty()) {
            // Keep the frame on the wire (writing_), drop the rest.
            const bool keep_front = writing_;
            auto front = keep_front ? std::move(outbox_.front()) : out_frame{};
            outbox_.clear();
            outbox_bytes_ = 0;
            if (keep_front) {
                outbox_bytes_ = front.size();
                outbox_.push_back(std::move(front));
            }
        }
        close_pending_ = true;
        if (!writing_)
            write_next();
    }

    void do_close() {
        close_pending_ = false;
        writing_ = true;  // a close counts as the one write in flight
        ws_.async_close(close_reason_, [self = this->shared_from_this()](beast::error_code ec) {
            self->writing_ = false;
            if (ec)
                log::debug("net [w{}] close failed: {}", self->registry_id_, ec.message());
        });
    }

    void on_end(beast::error_code ec) {
        if (ec != websocket::error::closed && ec != asio::error::operation_aborted &&
            ec != asio::error::eof && ec != beast::error::timeout)
            log::debug("net [w{}] read ended: {}", registry_id_, ec.message());
        else
            log::debug("net [w{}] closed", registry_id_);
        if (ec == websocket::error::message_too_big)
            core::stats::add(ctx_.api.stats().protocol_errors);
        closing_ = true;
        for (auto& [id, sub] : subs_)
            ctx_.api.broker().unsubscribe(sub.handle);
        subs_.clear();
        live_prefixes_.clear();
    }

    websocket::stream<Stream> ws_;
    server_context& ctx_;
    const core::limits& lim_;
    events::upgrade_auth auth_;
    http_request req_;
    beast::flat_buffer buffer_;
    const std::chrono::steady_clock::time_point deadline_;  // connection lifetime ends
    std::chrono::steady_clock::time_point last_ka_;
    std::uint64_t registry_id_ = 0;
    bool accepted_ = false;

    frame_queue outbox_;  // front() is on the wire while writing_
    std::size_t outbox_bytes_ = 0;
    bool writing_ = false;
    bool closing_ = false;
    bool close_pending_ = false;
    websocket::close_reason close_reason_;

    std::unordered_map<std::string, live_subscription> subs_;  // by subscription id
    std::unordered_set<const std::string*> live_prefixes_;    // prefixes of subs_, for deliver
};

}  // namespace

void start_ws_session(beast::tcp_stream&& stream, http_request&& req, events::upgrade_auth&& auth,
                      server_context& ctx) {
    std::make_shared<ws_session<beast::tcp_stream>>(std::move(stream), std::move(auth), ctx)
        ->run(std::move(req));
}

void start_ws_session(beast::ssl_stream<beast::tcp_stream>&& stream, http_request&& req,
                      events::upgrade_auth&& auth, server_context& ctx) {
    std::make_shared<ws_session<beast::ssl_stream<beast::tcp_stream>>>(std::move(stream),
                                                                       std::move(auth), ctx)
        ->run(std::move(req));
}

}  // namespace eventcast::net

// The WebSocket session: the AppSync Events protocol on one connection, over our own RFC 6455
// framing on the TCP or TLS stream.
//
// Why not Beast's websocket::stream: it writes one message per async_write, so a subscriber
// with 50 frames queued cost 50 sendmsg calls, and fan-out spent most of its time in syscalls
// (docs/BENCHMARKS.md). Here the frames queued for a connection leave in one send: copied into
// one buffer (header, shared prefix, shared body), written at once on plain TCP. Reads take up
// to 64 KiB into a per-thread buffer. The server side of RFC 6455 is small: unmasked frames
// out; masked frames in, fragmentation, ping/pong, close, UTF-8 checks on text (Beast's).
//
// Lifetime: owned only by the handlers it has in flight (each holds shared_from_this()); the
// broker holds weak_ptrs. Threading: every member is touched only on the strand that is the
// stream's executor; deliver(), shutdown() and tick() hop onto it.
//
// Outbox: frames queue as (prefix, shared batch, index) triples. Past max_outbox_bytes the client
// is a slow consumer: its queue is dropped and it is closed with 1013, so it never slows anyone.
#include "net/ws_session.hpp"

#include "core/log.hpp"
#include "net/ws_frame_reader.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <array>
#include <cstring>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace eventcast::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;

namespace {

enum class frame_kind : std::uint8_t { text, raw, pong, close };

struct out_frame {
    pubsub::shared_bytes head;   // control text, raw bytes, pong/close payload, or data prefix
    pubsub::shared_batch batch;  // data frames: the shared bodies; null otherwise
    std::uint32_t index = 0;     // which body of batch
    frame_kind kind = frame_kind::text;
    std::size_t payload_size() const noexcept {
        return head->size() + (batch ? batch->bodies[index].size() : 0);
    }
};

// FIFO of frames that allocates nothing until the first frame: an idle connection's outbox
// costs a few words, where std::deque allocates over 500 bytes up front.
class frame_queue {
public:
    bool empty() const noexcept { return head_ == items_.size(); }
    std::size_t size() const noexcept { return items_.size() - head_; }
    out_frame& at(std::size_t i) noexcept { return items_[head_ + i]; }
    void push_back(out_frame f) { items_.push_back(std::move(f)); }
    void pop_front(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i)
            items_[head_ + i] = out_frame{};
        head_ += n;
        if (head_ == items_.size()) {
            items_.clear();
            head_ = 0;
            if (items_.capacity() > 256)
                items_.shrink_to_fit();  // a burst is over; give its memory back
        } else if (head_ > 64 && head_ * 2 > items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }
    // Drops everything after the first `keep` frames.
    void truncate(std::size_t keep) { items_.resize(head_ + keep); }

private:
    std::vector<out_frame> items_;
    std::size_t head_ = 0;
};

struct live_subscription {
    pubsub::subscription_handle handle;
    pubsub::shared_bytes prefix;
};

constexpr std::size_t max_bytes_per_write = 64 * 1024;
constexpr std::size_t read_chunk = 64 * 1024;  // plain TCP reads, per thread

// Closes the connection's TCP socket; for TLS also without a close_notify (the WebSocket close
// handshake already ended the conversation).
template <class Stream>
void close_socket(Stream& s) {
    beast::error_code ec;
    beast::get_lowest_layer(s).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(s).close();
}

template <class Stream>
constexpr bool is_plain_tcp = std::is_same_v<Stream, beast::tcp_stream>;

template <class Stream>
class ws_session final : public pubsub::subscriber,
                         public closable,
                         public std::enable_shared_from_this<ws_session<Stream>> {
public:
    ws_session(Stream&& stream, events::upgrade_auth&& auth, server_context& ctx)
        : stream_(std::move(stream)),
          ctx_(ctx),
          lim_(ctx.cfg.lim),
          auth_(std::move(auth)),
          deadline_(std::chrono::steady_clock::now() + ctx.cfg.lim.connection_lifetime),
          ops_(ctx.cfg.auth.max_ops_per_second, ctx.cfg.auth.max_ops_per_second),
          reader_(ctx.cfg.lim.max_frame_bytes) {}

    ~ws_session() override {
        ctx_.registry.remove(registry_id_);
        if (counted_ip_)
            ctx_.per_ip.remove(peer_address_);
        if (accepted_)
            ctx_.api.stats().connections_open.fetch_sub(1, std::memory_order_relaxed);
    }

    void run(http_request&& req) {
        registry_id_ = ctx_.registry.add(this->weak_from_this());
        beast::get_lowest_layer(stream_).expires_never();
        if constexpr (is_plain_tcp<Stream>) {
            // write_next() writes synchronously first; it must never block the thread.
            beast::error_code ec;
            beast::get_lowest_layer(stream_).socket().non_blocking(true, ec);
        }
        const auto key = req[http::field::sec_websocket_key];
        if (key.empty() || key.size() > 64 || req[http::field::sec_websocket_version] != "13") {
            // Not a handshake we can answer; RFC 6455 §4.4 asks for the versions we speak.
            closing_ = true;
            close_after_write_ = true;  // set first: send_raw may write (and finish) at once
            send_raw(
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        if (ctx_.per_ip.limit() != 0) {
            beast::error_code ec;
            const auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
            peer_address_ = ec ? std::string("?") : ep.address().to_string();
            if (!ctx_.per_ip.try_add(peer_address_)) {
                core::stats::add(ctx_.api.stats().rate_limited_connections);
                log::info("net [w{}] refused: {} has {} connections (--max-connections-per-ip)",
                          registry_id_, peer_address_, ctx_.per_ip.limit());
                closing_ = true;
                close_after_write_ = true;
                send_raw(
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                    "x-amzn-ErrorType: LimitExceededException\r\nContent-Length: 115\r\n"
                    "Connection: close\r\n\r\n"
                    R"({"errors":[{"errorType":"LimitExceededException","message":"too many )"
                    R"(connections from this address"}]})");
                return;
            }
            counted_ip_ = true;
        }
        websocket::detail::sec_ws_accept_type accept;
        websocket::detail::make_sec_ws_accept(accept, key);
        std::string res =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nServer: eventcast\r\nSec-WebSocket-Accept: ";
        res.append(accept.data(), accept.size());
        if (auth_.offered_subprotocols) {
            res += "\r\nSec-WebSocket-Protocol: ";
            res += events::appsync_subprotocol;
        }
        res += "\r\n\r\n";
        send_raw(std::move(res));
        on_accept();
    }

    // Any thread; called by the broker under its read lock, so only hop onto the strand.
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) override {
        asio::dispatch(stream_.get_executor(), [self = this->shared_from_this(), prefix, batch] {
            self->on_deliver(prefix, batch);
        });
    }

    void shutdown() override {
        asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
            self->close_with(websocket::close_code::going_away, "server shutting down", true);
        });
    }

    // The server's ticker, from any thread.
    void tick(std::chrono::steady_clock::time_point now) override {
        asio::post(stream_.get_executor(), [self = this->shared_from_this(), now] {
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

private:
    void on_accept() {
        accepted_ = true;
        auto& st = ctx_.api.stats();
        st.connections_open.fetch_add(1, std::memory_order_relaxed);
        core::stats::add(st.connections_total);
        last_ka_ = std::chrono::steady_clock::now();
        if (auth_.error) {
            core::stats::add(st.auth_failures);
            log::info("net [w{}] connect refused: {}", registry_id_, auth_.error->message);
            send_control(events::connection_error(*auth_.error));
            close_with(websocket::close_code::normal, "connection refused", false);
        } else {
            auth::auth_request r;
            r.op = auth::operation::connect;
            r.creds = &auth_.creds;
            if (auto decided = ctx_.api.auth().try_authorize(r)) {
                on_connect_decided(*decided);
            } else {
                // The decision needs I/O (JWKS refresh, Lambda webhook): read nothing until it
                // is in, so no message is handled on an unauthorized connection.
                paused_ = true;
                ctx_.api.auth().authorize_async(
                    r, [self = this->shared_from_this()](auth::auth_result res) {
                        asio::post(self->stream_.get_executor(), [self, res = std::move(res)] {
                            self->paused_ = false;
                            self->on_connect_decided(res);
                            if (!self->closing_)
                                self->resume_reading();
                        });
                    });
                auth_ = {};
                return;
            }
        }
        auth_ = {};  // credentials are not needed past connect; do not keep secrets around
        do_read();
    }

    void on_connect_decided(const auth::auth_result& r) {
        if (closing_)
            return;
        if (!r) {
            ctx_.api.count_refusal();
            log::info("net [w{}] connect refused: unauthorized", registry_id_);
            send_control(events::connection_error(r.error()));
            close_with(websocket::close_code::normal, "unauthorized", false);
            return;
        }
        log::debug("net [w{}] connected ({})", registry_id_, auth::mode_name(r->how));
    }

    // Continues after an asynchronous authorization: frames already read, then the socket.
    void resume_reading() {
        if (reader_.resume(*this) == frame_verdict::next)
            do_read();
    }

    // ---- reading ----------------------------------------------------------------------------
    //
    // Plain TCP: wait until the socket is readable, then read up to read_chunk bytes into a
    // per-thread buffer, where reader_ handles the complete frames; it keeps only an incomplete
    // frame's bytes (or, while an authorization is pending, the unhandled rest). An idle
    // connection holds no read buffer, and one read takes everything the client has sent, so a
    // publisher's queued messages are handled (and their fan-out written) in one go. TLS:
    // OpenSSL may hold decrypted bytes the socket no longer shows, so TLS reads go through the
    // stream into reader_'s own buffer.

    void do_read() {
        if constexpr (is_plain_tcp<Stream>) {
            beast::get_lowest_layer(stream_).socket().async_wait(
                asio::socket_base::wait_read,
                beast::bind_front_handler(&ws_session::on_readable, this->shared_from_this()));
        } else {
            stream_.async_read_some(
                reader_.prepare(),
                beast::bind_front_handler(&ws_session::on_read, this->shared_from_this()));
        }
    }

    void on_readable(beast::error_code ec) {
        if (ec)
            return on_end(ec);
        static thread_local std::vector<char> chunk(read_chunk);
        for (int round = 0;; ++round) {
            const std::size_t n = beast::get_lowest_layer(stream_).socket().read_some(
                asio::buffer(chunk.data(), chunk.size()), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again)
                break;
            if (ec)
                return on_end(ec);
            if (reader_.feed(chunk.data(), n, *this) != frame_verdict::next)
                return;  // failing (no more reads), or paused until resume_reading()
            if (n < chunk.size())
                break;  // drained: the next byte to arrive wakes the wait again
            if (round == 3) {
                // More is waiting: let other connections on this thread have a turn first.
                asio::post(stream_.get_executor(),
                           [self = this->shared_from_this()] { self->on_readable({}); });
                return;
            }
        }
        do_read();
    }

    void on_read(beast::error_code ec, std::size_t n) {
        if (ec)
            return on_end(ec);
        if (reader_.commit(n, *this) == frame_verdict::next)
            do_read();
    }

public:
    // ws_frame_reader's handler (public for it only; the session is not reachable otherwise).
    frame_verdict on_frame(bool fin, unsigned opcode, std::string_view payload) {
        if (!handle_frame(fin, opcode, payload)) {
            unsubscribe_all();  // reading stops for good: on_end will not run
            return frame_verdict::fail;
        }
        return paused_ ? frame_verdict::pause : frame_verdict::next;
    }
    frame_verdict on_violation(const frame_violation& v) {
        fail_protocol(v.code, v.why);
        unsubscribe_all();
        return frame_verdict::fail;
    }
    std::size_t message_bytes() const noexcept { return message_.size(); }

private:
    bool handle_frame(bool fin, unsigned opcode, std::string_view payload) {
        switch (opcode) {
            case 0x0:  // continuation
                if (!in_message_)
                    return fail_protocol(websocket::close_code::protocol_error,
                                         "continuation frame without a message to continue");
                // A fragmented text message fails on its first bad byte, not at its end.
                if (!message_binary_ && !utf8_.write(reinterpret_cast<const std::uint8_t*>(
                                                         payload.data()),
                                                     payload.size()))
                    return fail_protocol(websocket::close_code::bad_payload,
                                         "text is not valid UTF-8");
                message_.append(payload);
                if (fin) {
                    in_message_ = false;
                    std::string msg;
                    msg.swap(message_);
                    return on_message_complete(message_binary_, msg);
                }
                return true;
            case 0x1:
            case 0x2:
                if (in_message_)
                    return fail_protocol(websocket::close_code::protocol_error,
                                         "new message before the previous one finished");
                if (fin)
                    return on_message_complete(opcode == 0x2, payload);
                in_message_ = true;
                message_binary_ = opcode == 0x2;
                utf8_.reset();
                if (!message_binary_ &&
                    !utf8_.write(reinterpret_cast<const std::uint8_t*>(payload.data()),
                                 payload.size()))
                    return fail_protocol(websocket::close_code::bad_payload,
                                         "text is not valid UTF-8");
                message_.assign(payload);
                return true;
            case 0x8: return on_close_frame(payload);
            case 0x9:
                if (!closing_)
                    enqueue({std::make_shared<const std::string>(payload), nullptr, 0,
                             frame_kind::pong});
                return true;
            case 0xA: return true;
            default: return fail_protocol(websocket::close_code::protocol_error, "unknown opcode");
        }
    }

    bool on_message_complete(bool binary, std::string_view data) {
        core::stats::add(ctx_.api.stats().ws_messages_in);
        if (!binary && !websocket::detail::check_utf8(data.data(), data.size()))
            return fail_protocol(websocket::close_code::bad_payload, "text is not valid UTF-8");
        if (closing_)
            return true;
        if (binary) {
            reply_error({events::protocol_error{events::error_kind::unsupported,
                                                "binary frames are not supported; send each "
                                                "message as a JSON text frame"},
                         {},
                         {}});
            return true;
        }
        handle(data);
        return true;
    }

    bool on_close_frame(std::string_view payload) {
        if (close_sent_) {
            // The reply to our close: the handshake is complete.
            if (close_timer_)
                close_timer_->cancel();
            close_socket(stream_);
            return false;
        }
        // The client closes: echo its code (RFC 6455 §5.5.1), then close the socket. A code
        // that may not be on the wire (§7.4: 1005, 1006, 1015, unassigned or out of range) or
        // a 1-byte payload is a protocol error (1002); a reason that is not UTF-8 is 1007.
        std::uint16_t code = websocket::close_code::normal;
        if (payload.size() == 1)
            return fail_protocol(websocket::close_code::protocol_error, "1-byte close payload");
        if (payload.size() >= 2) {
            code = static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                              static_cast<unsigned char>(payload[1]));
            const bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                               (code >= 3000 && code <= 4999);
            if (!valid)
                return fail_protocol(websocket::close_code::protocol_error,
                                     "close code not allowed on the wire");
            if (!websocket::detail::check_utf8(payload.data() + 2, payload.size() - 2))
                return fail_protocol(websocket::close_code::bad_payload,
                                     "close reason is not valid UTF-8");
        }
        close_when_written();
        close_with(static_cast<websocket::close_code>(code), "", true);
        return false;
    }

    bool fail_protocol(websocket::close_code code, const char* why) {
        log::debug("net [w{}] failing the connection: {}", registry_id_, why);
        core::stats::add(ctx_.api.stats().protocol_errors);
        close_when_written();  // the peer broke the protocol; do not wait for its close
        close_with(code, why, true);
        return false;
    }

    // The socket closes once the outbox is written: at once if nothing is queued or being
    // written. Set before queueing a close frame, since a write may finish synchronously.
    void close_when_written() {
        close_after_write_ = true;
        if (closing_ && !writing_ && !write_scheduled_ && outbox_.empty())
            linger_then_close();
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

    static auth::auth_request request_of(const events::subscribe_msg& m) {
        auth::auth_request r;
        r.op = auth::operation::subscribe;
        r.creds = m.authorization ? &*m.authorization : nullptr;
        r.ns = m.channel.namespace_name();
        r.raw_channel = m.raw_channel;
        r.pattern = &m.channel;
        return r;
    }
    static auth::auth_request request_of(const events::publish_msg& m) {
        auth::auth_request r;
        r.op = auth::operation::publish;
        r.creds = m.authorization ? &*m.authorization : nullptr;
        r.ns = m.channel.namespace_name();
        r.raw_channel = m.raw_channel;
        r.path = &m.channel;
        r.events = &m.events;
        return r;
    }

    // Authorizes `m`, then calls `then(m, result)`: at once when no I/O is needed, else after
    // the authorizer's answer, with reading paused meanwhile so messages stay in order.
    template <class Msg>
    void authorized(Msg& m, void (ws_session::*then)(Msg&, const auth::auth_result&)) {
        if (auto res = ctx_.api.auth().try_authorize(request_of(m)))
            return (this->*then)(m, *res);
        paused_ = true;
        auto held = std::make_shared<Msg>(std::move(m));
        ctx_.api.auth().authorize_async(request_of(*held), [self = this->shared_from_this(), held,
                                                            then](auth::auth_result res) {
            asio::post(self->stream_.get_executor(), [self, held, then, res = std::move(res)] {
                self->paused_ = false;
                if (self->closing_)
                    return self->unsubscribe_all();  // no more reads: on_end will not run
                ((*self).*then)(*held, res);
                self->resume_reading();
            });
        });
    }

    // --max-ops-per-second; false (and the error sent) when over it.
    bool within_rate(std::string_view type, const std::string& id) {
        if (ops_.take())
            return true;
        core::stats::add(ctx_.api.stats().rate_limited_operations);
        reply_error({{events::error_kind::limit_exceeded,
                      "more than " + std::to_string(ctx_.cfg.auth.max_ops_per_second) +
                          " operations per second on this connection; slow down"},
                     std::string(type),
                     id});
        return false;
    }

    void on_message(events::subscribe_msg& m) {
        if (within_rate("subscribe", m.id))
            authorized(m, &ws_session::on_subscribe);
    }

    void on_subscribe(events::subscribe_msg& m, const auth::auth_result& r) {
        auto fail = [&](events::protocol_error e) {
            reply_error({std::move(e), "subscribe", m.id});
        };
        if (!r) {
            ctx_.api.count_refusal();
            return fail(r.error());
        }
        if (auto ns = ctx_.api.check_namespace(m.channel.namespace_name()); !ns)
            return fail(ns.error());
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
        pubsub::subscription_handle handle = nullptr;
        std::vector<history::stored_event> missed;
        if (m.resume_after) {
            // Taken with the live subscription under the namespace's order lock: every later
            // event is delivered live, every earlier one is in `missed`. Live deliveries are
            // posted to this strand, so they queue behind the frames queued here.
            auto resumed = ctx_.api.subscribe_resume(m.channel, *m.resume_after,
                                                     this->weak_from_this(), prefix);
            if (!resumed)
                return fail(resumed.error());
            handle = resumed->handle;
            missed = std::move(resumed->missed);
        } else {
            handle = ctx_.api.broker().subscribe(m.channel, this->weak_from_this(), prefix);
        }
        live_prefixes_.insert(prefix.get());
        subs_.emplace(m.id, live_subscription{handle, prefix});
        send_control(events::subscribe_success(m.id));
        for (const auto& e : missed)
            if (!enqueue({prefix, e.batch, e.index, frame_kind::text}))
                return;
        core::stats::add(ctx_.api.stats().frames_out, missed.size());
    }

    void on_message(events::unsubscribe_msg& m) {
        if (!within_rate("unsubscribe", m.id))
            return;
        auto it = subs_.find(m.id);
        if (it == subs_.end())
            return reply_error(
                {{events::error_kind::unknown_operation, "Unknown operation id " + m.id},
                 "unsubscribe",
                 m.id});
        ctx_.api.broker().unsubscribe(it->second.handle);
        live_prefixes_.erase(it->second.prefix.get());
        subs_.erase(it);
        send_control(events::unsubscribe_success(m.id));
    }

    void on_message(events::publish_msg& m) {
        if (within_rate("publish", m.id))
            authorized(m, &ws_session::on_publish);
    }

    void on_publish(events::publish_msg& m, const auth::auth_result& r) {
        auto fail = [&](events::protocol_error e) { reply_error({std::move(e), "publish", m.id}); };
        if (!r) {
            ctx_.api.count_refusal();
            return fail(r.error());
        }
        if (auto ns = ctx_.api.check_namespace(m.channel.namespace_name()); !ns)
            return fail(ns.error());
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
            if (!enqueue({prefix, batch, i, frame_kind::text}))
                return;
    }

    void send_control(std::string msg) {
        enqueue(
            {std::make_shared<const std::string>(std::move(msg)), nullptr, 0, frame_kind::text});
    }

    void send_raw(std::string bytes) {
        outbox_.push_back(
            {std::make_shared<const std::string>(std::move(bytes)), nullptr, 0, frame_kind::raw});
        if (!writing_)
            write_next();
    }

    bool enqueue(out_frame f) {
        if (closing_)
            return false;
        const auto size = f.payload_size() + 10;
        if (outbox_bytes_ + size > lim_.max_outbox_bytes) {
            core::stats::add(ctx_.api.stats().slow_consumer_closes);
            log::warn("net [w{}] closing slow subscriber: outbox {} bytes + {} > limit {}",
                      registry_id_, outbox_bytes_, size, lim_.max_outbox_bytes);
            close_with(websocket::close_code::try_again_later, "slow consumer", true);
            return false;
        }
        outbox_bytes_ += size;
        outbox_.push_back(std::move(f));
        schedule_write();
        return true;
    }

    // Corking: the write starts from a handler posted behind the deliveries already queued on
    // this strand, so frames from several publishes processed in the same turn share one write.
    void schedule_write() {
        if (writing_ || write_scheduled_)
            return;
        write_scheduled_ = true;
        asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
            self->write_scheduled_ = false;
            if (!self->writing_)
                self->write_next();
        });
    }

    // ---- writing ----------------------------------------------------------------------------

    static std::size_t put_header(unsigned char* h, frame_kind kind, std::size_t len) {
        unsigned opcode = 0x1;
        if (kind == frame_kind::pong)
            opcode = 0xA;
        else if (kind == frame_kind::close)
            opcode = 0x8;
        h[0] = static_cast<unsigned char>(0x80 | opcode);
        if (len < 126) {
            h[1] = static_cast<unsigned char>(len);
            return 2;
        }
        if (len < 65536) {
            h[1] = 126;
            h[2] = static_cast<unsigned char>(len >> 8);
            h[3] = static_cast<unsigned char>(len);
            return 4;
        }
        h[1] = 127;
        for (int i = 0; i < 8; ++i)
            h[2 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(len) >> (56 - 8 * i));
        return 10;
    }

    // Copies the first frames of the outbox (header, prefix, body), up to about
    // max_bytes_per_write, into `out`. Returns how many frames it took.
    std::size_t flatten(std::string& out) {
        out.clear();
        std::size_t frames = 0;
        unsigned char h[10];
        for (std::size_t i = 0; i < outbox_.size() && out.size() < max_bytes_per_write; ++i) {
            const auto& f = outbox_.at(i);
            ++frames;
            if (f.kind == frame_kind::raw) {
                out.append(*f.head);
                continue;
            }
            out.append(reinterpret_cast<const char*>(h), put_header(h, f.kind, f.payload_size()));
            out.append(*f.head);
            if (f.batch)
                out.append(f.batch->bodies[f.index]);
            if (f.kind == frame_kind::close)
                break;  // nothing may follow a close frame
        }
        return frames;
    }

    // Writes what is queued. The frames are copied into one contiguous buffer per write:
    // asio's composed async_write passes at most 16 buffers to each sendmsg, so a gather write
    // of 100 frames (300 buffers: header, prefix, body) took 19 system calls, and on loopback
    // every one of them also runs the receiver's TCP input on this core. One copy of ~200
    // bytes per frame is far cheaper (docs/BENCHMARKS.md, "one buffer per write").
    // On plain TCP the write is tried at once, non-blocking, from a per-thread buffer: most
    // complete there, with no handler round trip and no per-connection memory; only what the
    // socket does not take is kept in wbuf_ and written asynchronously.
    void write_next() {
        constexpr bool plain_tcp = is_plain_tcp<Stream>;
        for (;;) {
            if (outbox_.empty()) {
                if (wbuf_.capacity() > 0)
                    std::string().swap(wbuf_);  // idle connections keep no write buffer
                if (close_after_write_)
                    linger_then_close();
                return;
            }
            if constexpr (plain_tcp) {
                static thread_local std::string scratch;
                const std::size_t frames = flatten(scratch);
                beast::error_code ec;
                const std::size_t n =
                    beast::get_lowest_layer(stream_).socket().write_some(asio::buffer(scratch), ec);
                if (!ec && n == scratch.size()) {
                    wrote(frames, n);
                    continue;
                }
                if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
                    return write_failed(ec);
                wbuf_.assign(scratch, n, std::string::npos);
                if (scratch.capacity() > 4 * max_bytes_per_write)
                    std::string().swap(scratch);  // after one very large frame
                start_async_write(frames, n);
            } else {
                start_async_write(flatten(wbuf_), 0);
            }
            return;
        }
    }

    // Writes wbuf_ (the rest of `frames` frames, `done` bytes of which are already written).
    void start_async_write(std::size_t frames, std::size_t done) {
        writing_ = true;
        in_flight_ = frames;
        asio::async_write(
            stream_, asio::buffer(wbuf_),
            [self = this->shared_from_this(), done](beast::error_code ec, std::size_t n) {
                self->writing_ = false;
                if (ec)
                    return self->write_failed(ec);
                self->wrote(self->in_flight_, done + n);
                self->write_next();
            });
    }

    void write_failed(beast::error_code ec) {
        log::debug("net [w{}] write failed: {}", registry_id_, ec.message());
        closing_ = true;  // queue nothing more for a socket that is going away
        outbox_.truncate(0);
        outbox_bytes_ = 0;
        in_flight_ = 0;
        close_socket(stream_);  // the pending read fails too and ends the session
    }

    // Everything we had to say is written and nothing more is read: close, but lingering on
    // plain TCP. Closing with the client's bytes still unread (say the rest of a frame just
    // refused with 1009) makes Linux send RST, and a client that gets RST may lose the close
    // frame before it reads it. So: FIN first, then read and drop what still comes until the
    // client closes or handshake_timeout passes, then close (nginx's lingering_close). Reached
    // only where no read is pending: after a protocol failure, the client's close, or an HTTP
    // refusal at the upgrade.
    void linger_then_close() {
        if constexpr (is_plain_tcp<Stream>) {
            auto& sock = beast::get_lowest_layer(stream_).socket();
            beast::error_code ec;
            if (!lingering_ && sock.is_open())
                sock.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
            if (!lingering_ && sock.is_open() && !ec) {
                lingering_ = true;
                close_timer_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
                close_timer_->expires_after(lim_.handshake_timeout);
                close_timer_->async_wait([self = this->shared_from_this()](beast::error_code e) {
                    if (!e)
                        close_socket(self->stream_);
                });
                return drain();
            }
        }
        close_socket(stream_);
    }

    void drain() {
        beast::get_lowest_layer(stream_).socket().async_wait(
            asio::socket_base::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
                if (ec)
                    return;  // closed by the timer
                static thread_local std::vector<char> sink(read_chunk);
                for (;;) {
                    beast::get_lowest_layer(self->stream_)
                        .socket()
                        .read_some(asio::buffer(sink.data(), sink.size()), ec);
                    if (ec == asio::error::would_block || ec == asio::error::try_again)
                        return self->drain();
                    if (ec) {  // EOF: the client has closed too
                        if (self->close_timer_)
                            self->close_timer_->cancel();
                        return close_socket(self->stream_);
                    }
                }
            });
    }

    // The first `frames` frames of the outbox (`bytes` bytes) are on the wire.
    void wrote(std::size_t frames, std::size_t bytes) {
        auto& st = ctx_.api.stats();
        core::stats::add(st.bytes_out, bytes);
        core::stats::add(st.ws_frames_written);
        for (std::size_t i = 0; i < frames; ++i) {
            const auto& f = outbox_.at(i);
            if (f.kind == frame_kind::close)
                close_sent_ = true;
            if (f.kind != frame_kind::raw)
                outbox_bytes_ -= std::min(outbox_bytes_, f.payload_size() + 10);
        }
        outbox_.pop_front(frames);
        in_flight_ = 0;
        if (close_sent_ && !close_after_write_ && !close_timer_) {
            // Wait for the client's close reply, but not forever. Allocated only now, so
            // open connections carry no timer.
            close_timer_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
            close_timer_->expires_after(lim_.handshake_timeout);
            close_timer_->async_wait([self = this->shared_from_this()](beast::error_code e) {
                if (!e)
                    close_socket(self->stream_);
            });
        }
    }

    // Stops queueing, then sends a close frame: right away when `drop` (pending frames are
    // discarded), else once the outbox has drained (so connection_error reaches the client).
    void close_with(websocket::close_code code, const char* reason, bool drop) {
        if (closing_)
            return;
        closing_ = true;
        if (drop) {
            outbox_.truncate(writing_ ? in_flight_ : 0);  // frames on the wire stay
            outbox_bytes_ = 0;
        }
        std::string payload;
        const auto c = static_cast<std::uint16_t>(code);
        payload.push_back(static_cast<char>(c >> 8));
        payload.push_back(static_cast<char>(c & 0xFF));
        payload.append(reason, std::min<std::size_t>(std::strlen(reason), 120));
        outbox_.push_back({std::make_shared<const std::string>(std::move(payload)), nullptr, 0,
                           frame_kind::close});
        if (!writing_)
            write_next();
    }

    void on_end(beast::error_code ec) {
        if (ec != asio::error::operation_aborted && ec != asio::error::eof &&
            ec != beast::error::timeout && ec != asio::error::bad_descriptor)
            log::debug("net [w{}] read ended: {}", registry_id_, ec.message());
        closing_ = true;
        unsubscribe_all();
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().close(ignored);
    }

    // Takes this connection's subscriptions out of the broker. Needed wherever reading ends
    // (on_end, a close frame, a protocol failure): the broker holds only weak_ptrs and skips
    // dead targets but never removes them. Never called from a delivery (broker lock held).
    void unsubscribe_all() {
        for (auto& [id, sub] : subs_)
            ctx_.api.broker().unsubscribe(sub.handle);
        subs_.clear();
        live_prefixes_.clear();
    }

    Stream stream_;
    server_context& ctx_;
    const core::limits& lim_;
    events::upgrade_auth auth_;
    const std::chrono::steady_clock::time_point deadline_;  // connection lifetime ends
    std::chrono::steady_clock::time_point last_ka_;
    std::uint64_t registry_id_ = 0;
    bool accepted_ = false;
    bool paused_ = false;      // an authorization is in flight; frames wait in reader_
    bool counted_ip_ = false;  // counted in ctx_.per_ip under peer_address_
    std::string peer_address_;
    auth::token_bucket ops_;  // --max-ops-per-second

    // reading
    ws_frame_reader reader_;  // bytes of an incomplete (or, while paused, unhandled) frame
    std::string message_;     // a fragmented message being assembled
    websocket::detail::utf8_checker utf8_;  // message_ so far, when it is text
    bool in_message_ = false;
    bool message_binary_ = false;

    // writing
    frame_queue outbox_;  // the first in_flight_ frames are on the wire while writing_
    std::size_t outbox_bytes_ = 0;
    std::size_t in_flight_ = 0;
    std::string wbuf_;  // what an asynchronous write is sending; empty between writes
    bool writing_ = false;
    bool write_scheduled_ = false;    // a write_next is posted (corking)
    bool closing_ = false;            // no more frames are queued
    bool close_sent_ = false;         // our close frame is on the wire
    bool close_after_write_ = false;  // close the socket once the outbox is written
    std::unique_ptr<asio::steady_timer> close_timer_;  // bounds the wait for the close reply
    bool lingering_ = false;  // our side is shut down; dropping reads until the client's FIN

    std::unordered_map<std::string, live_subscription> subs_;  // by subscription id
    std::unordered_set<const std::string*> live_prefixes_;     // prefixes of subs_, for deliver
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

// The WebSocket session: one upgraded connection's socket, strand, reads, writes, close
// handshake and linger. It is the outermost of three layers (uWebSockets splits the same way):
//   net/ws_frame_reader.hpp   bytes -> frames (RFC 6455 §5, client side in)
//   net/ws_writer.hpp         outbox, framing, the one-buffer write (server frames out)
//   net/appsync_connection    the AppSync Events protocol: messages -> event_api operations
// This file owns what needs the socket: reading into the frame reader, assembling fragmented
// messages, ping/pong and close frames, the system calls of the write path, the slow-consumer
// close and the lingering close.
//
// Why not Beast's websocket::stream: it writes one message per async_write, so a subscriber
// with 50 frames queued cost 50 sendmsg calls, and fan-out spent most of its time in syscalls
// (docs/BENCHMARKS.md). Beast parses the HTTP upgrade; the framing is ours.
//
// Lifetime: owned only by the handlers it has in flight (each holds shared_from_this()); the
// broker holds weak_ptrs. Threading: every member is touched only on the strand that is the
// stream's executor; deliver(), shutdown() and tick() hop onto it.
#include "net/ws_session.hpp"

#include "core/ids.hpp"
#include "core/log.hpp"
#include "net/appsync_connection.hpp"
#include "net/http_path.hpp"
#include "net/ws_frame_reader.hpp"
#include "net/ws_writer.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace eventcast::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;

namespace {

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
                         public connection_host,
                         public std::enable_shared_from_this<ws_session<Stream>> {
public:
    ws_session(Stream&& stream, events::upgrade_auth&& auth, server_context& ctx)
        : stream_(std::move(stream)),
          ctx_(ctx),
          lim_(ctx.cfg.lim),
          auth_(std::move(auth)),
          deadline_(std::chrono::steady_clock::now() + ctx.cfg.lim.connection_lifetime),
          reader_(ctx.cfg.lim.max_frame_bytes),
          writer_(ctx.cfg.lim.max_outbox_bytes),
          conn_(ctx.api, ctx.cfg, *this, stream_.get_executor()) {
        // With one I/O thread the connection runs on the io_context's executor, not a strand.
        const auto executor = stream_.get_executor();  // target<>() points into this copy
        if (const auto* ex = executor.template target<asio::io_context::executor_type>())
            own_context_ = &ex->context();
    }

    ~ws_session() override {
        // Every way a session ends calls conn_.end() first; this covers any that does not, since
        // the broker delivers through a plain pointer (pubsub::subscriber). Nothing to drop: no-op.
        conn_.end();
        release_incomplete();
        ctx_.registry.remove(registry_id_);
        if (counted_ip_)
            ctx_.per_ip.remove(peer_address_);
        if (accepted_)
            ctx_.api.stats().connections_open.fetch_sub(1, std::memory_order_relaxed);
    }

    void run(http_request&& req, beast::flat_buffer&& leftover) {
        leftover_ = std::move(leftover);
        registry_id_ = ctx_.registry.add(this->weak_from_this());
        beast::get_lowest_layer(stream_).expires_never();
        if constexpr (is_plain_tcp<Stream>) {
            // write_next() writes synchronously first; it must never block the thread.
            beast::error_code ec;
            beast::get_lowest_layer(stream_).socket().non_blocking(true, ec);
        }
        // The upgrade's access log line, once its answer (426, 429 or 101) is known.
        const auto logged = [&req, start = std::chrono::steady_clock::now()](unsigned status) {
            const std::chrono::duration<double, std::milli> took =
                std::chrono::steady_clock::now() - start;
            const auto id = core::uuid_v4();
            log::access({std::string_view(req.method_string().data(), req.method_string().size()),
                         target_path(std::string_view(req.target().data(), req.target().size())),
                         status, 0, took.count(), id});
        };
        const auto key = req[http::field::sec_websocket_key];
        if (key.empty() || key.size() > 64 || req[http::field::sec_websocket_version] != "13") {
            logged(426);
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
                logged(429);
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
        logged(101);
        send_raw(std::move(res));
        on_accept();
    }

    // pubsub::subscriber, from any thread: called by the broker under its read lock, so only
    // hop onto the strand.
    // On the connection's own thread (one I/O thread: no strands) the delivery is a plain call,
    // with no handler and no reference counted; from elsewhere it hops onto the strand.
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) override {
        if (own_context_ != nullptr && own_context_->get_executor().running_in_this_thread())
            return conn_.deliver(prefix, batch);
        // weak, not shared_from_this(): the session may be in its destructor, waiting in
        // end() for this publish's read lock to go; then it is past delivering to.
        auto self = this->weak_from_this().lock();
        if (!self)
            return;
        asio::dispatch(stream_.get_executor(), [self = std::move(self), prefix, batch] {
            self->conn_.deliver(prefix, batch);
        });
    }

    // closable: graceful shutdown, from any thread.
    void shutdown() override {
        asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
            self->close_with(websocket::close_code::going_away, "server shutting down", true);
        });
    }

    // closable: the server's ticker, from any thread.
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
                self->send_text(events::ka());
            }
        });
    }

    // ---- connection_host: what appsync_connection asks of the transport, on the strand ------

    void send_text(std::string text) override {
        if (text.size() <= ws_writer::max_copied_payload)
            return void(enqueue_copy(text, {}));
        enqueue(
            {std::make_shared<const std::string>(std::move(text)), nullptr, 0, frame_kind::text});
    }
    bool send_data(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch,
                   std::uint32_t index) override {
        // Data frames stay shared until the write copies them: copying each into its
        // connection at delivery cost more in cache misses than it saved in reference counts
        // (1,000 subscribers' runs are megabytes, written cold; docs/BENCHMARKS.md, issue #15).
        return enqueue({prefix, batch, index, frame_kind::text});
    }
    void close_after_sending(std::uint16_t code, const char* reason) override {
        close_with(static_cast<websocket::close_code>(code), reason, false);
    }
    void resume_reading() override {
        if (closing_)
            return;
        if (read_on(reader_.resume(*this)))
            do_read();
    }
    bool closing() const override { return closing_; }
    std::weak_ptr<pubsub::subscriber> subscriber() override { return this->weak_from_this(); }
    std::shared_ptr<void> keep_alive() override { return this->shared_from_this(); }

    // ---- ws_frame_reader's handler (public for it only) ------------------------------------

    frame_verdict on_frame(bool fin, unsigned opcode, std::string_view payload) {
        if (!handle_frame(fin, opcode, payload)) {
            conn_.end();  // reading stops for good: on_end will not run
            return frame_verdict::fail;
        }
        return conn_.waiting() ? frame_verdict::pause : frame_verdict::next;
    }
    frame_verdict on_violation(const frame_violation& v) {
        fail_protocol(v.code, v.why);
        conn_.end();
        return frame_verdict::fail;
    }
    std::size_t message_bytes() const noexcept { return message_.size(); }

private:
    void on_accept() {
        accepted_ = true;
        auto& st = ctx_.api.stats();
        st.connections_open.fetch_add(1, std::memory_order_relaxed);
        core::stats::add(st.connections_total);
        last_ka_ = std::chrono::steady_clock::now();
        const bool read_now = conn_.start(std::move(auth_));
        auth_ = {};  // credentials are not needed past connect; do not keep secrets around
        // Frames that came in the same read as the upgrade request go first: a client may send
        // connection_init (and more) without waiting for the 101. While connect waits for its
        // authorization, resume_reading() handles them.
        if (leftover_.size() != 0) {
            const auto bytes = leftover_.cdata();
            reader_.preload(static_cast<const char*>(bytes.data()), bytes.size());
            leftover_ = beast::flat_buffer();
            if (read_now && !read_on(reader_.resume(*this)))
                return;
        }
        if (read_now)
            do_read();
    }

    // ---- reading ----------------------------------------------------------------------------
    //
    // Plain TCP: wait until the socket is readable, then read up to read_chunk bytes into a
    // per-thread buffer, where reader_ handles the complete frames; it keeps only an incomplete
    // frame's bytes (or, while an operation waits, the unhandled rest). An idle connection
    // holds no read buffer, and one read takes everything the client has sent, so a
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
            const auto v = reader_.feed(chunk.data(), n, *this);
            if (v == frame_verdict::fail || !account_incomplete())
                return;  // failing: no more reads
            if (v != frame_verdict::next)
                return;  // paused until resume_reading()
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
        if (read_on(reader_.commit(n, *this)))
            do_read();
    }

    // After the reader handled what came in: true when reading goes on now (not failing, not
    // paused for an operation's answer, and the bytes still held are within bounds).
    bool read_on(frame_verdict v) {
        return v != frame_verdict::fail && account_incomplete() && v == frame_verdict::next;
    }

    // What this connection holds of messages still arriving (a partial frame, the fragments
    // of a message, frames waiting while an operation is decided), counted server-wide against
    // --max-buffered-bytes (past it: 1013); and the deadline of a message the client has begun
    // and not finished (--message-timeout-ms: 1008). False when the connection is closing.
    bool account_incomplete() {
        if (closing_) {
            release_incomplete();  // only the client's close reply is read now
            return true;
        }
        auto& st = ctx_.api.stats();
        const std::size_t held = reader_.buffered() + message_.size();
        if (held > incomplete_accounted_) {
            const auto grow = static_cast<std::int64_t>(held - incomplete_accounted_);
            const auto total =
                st.incomplete_bytes.fetch_add(grow, std::memory_order_relaxed) + grow;
            incomplete_accounted_ = held;
            if (static_cast<std::size_t>(total) > lim_.max_buffered_bytes) {
                core::stats::add(st.buffer_cap_refusals);
                log::warn(
                    "net [w{}] closed: the server holds {} bytes of incomplete messages "
                    "(--max-buffered-bytes {})",
                    registry_id_, total, lim_.max_buffered_bytes);
                conn_.end();
                fail_protocol(websocket::close_code::try_again_later,
                              "server is busy: too many bytes of incomplete messages");
                release_incomplete();
                return false;
            }
        } else if (held < incomplete_accounted_) {
            st.incomplete_bytes.fetch_sub(static_cast<std::int64_t>(incomplete_accounted_ - held),
                                          std::memory_order_relaxed);
            incomplete_accounted_ = held;
        }
        // A message is under way when bytes of it are in and no operation holds reading back.
        const bool under_way = (in_message_ || reader_.buffered() != 0) && !conn_.waiting();
        if (!under_way) {
            if (message_timer_armed_) {
                message_timer_armed_ = false;
                message_timer_->cancel();
            }
            return true;
        }
        if (message_timer_armed_)
            return true;  // the deadline runs from the message's first byte
        if (!message_timer_)
            message_timer_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
        message_timer_armed_ = true;
        const auto gen = ++message_gen_;  // a wait that expired just as it was cancelled is stale
        message_timer_->expires_after(lim_.message_timeout);
        message_timer_->async_wait([self = this->shared_from_this(), gen](beast::error_code ec) {
            if (ec || !self->message_timer_armed_ || gen != self->message_gen_ || self->closing_)
                return;
            self->message_timer_armed_ = false;
            core::stats::add(self->ctx_.api.stats().message_timeouts);
            log::info("net [w{}] closed: a message was not completed within {} ms",
                      self->registry_id_, self->lim_.message_timeout.count());
            self->conn_.end();
            self->fail_protocol(websocket::close_code::policy_error,
                                "message not completed within --message-timeout-ms");
            self->release_incomplete();
        });
        return true;
    }

    void release_incomplete() {
        if (incomplete_accounted_ != 0)
            ctx_.api.stats().incomplete_bytes.fetch_sub(
                static_cast<std::int64_t>(incomplete_accounted_), std::memory_order_relaxed);
        incomplete_accounted_ = 0;
        if (message_timer_armed_) {
            message_timer_armed_ = false;
            message_timer_->cancel();
        }
    }

    // One frame: data frames assemble messages, control frames are answered here. False when
    // the connection is failing or closing (read nothing more).
    bool handle_frame(bool fin, unsigned opcode, std::string_view payload) {
        switch (opcode) {
            case 0x0:  // continuation
                if (!in_message_)
                    return fail_protocol(websocket::close_code::protocol_error,
                                         "continuation frame without a message to continue");
                // A fragmented text message fails on its first bad byte, not at its end.
                if (!message_binary_ &&
                    !utf8_.write(reinterpret_cast<const std::uint8_t*>(payload.data()),
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
        if (binary)
            conn_.on_binary();
        else
            conn_.on_text(data);  // a false answer pauses: on_frame reports conn_.waiting()
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
        if (closing_ && !writing_ && !write_scheduled_ && writer_.empty())
            linger_then_close();
    }

    // ---- writing ----------------------------------------------------------------------------

    void send_raw(std::string bytes) {
        writer_.queue_unbounded(
            {std::make_shared<const std::string>(std::move(bytes)), nullptr, 0, frame_kind::raw});
        if (!writing_)
            write_next();
    }

    // Queues a frame, closing the connection as a slow consumer when its outbox is full.
    bool enqueue(out_frame f) {
        if (closing_)
            return false;
        const auto size = f.payload_size();
        if (!writer_.queue(std::move(f)))
            return slow_consumer(size);
        schedule_write();
        return true;
    }
    // The same for a small text frame `a` + `b`, copied now (ws_writer::queue_copy).
    bool enqueue_copy(std::string_view a, std::string_view b) {
        if (closing_)
            return false;
        if (!writer_.queue_copy(a, b))
            return slow_consumer(a.size() + b.size());
        schedule_write();
        return true;
    }
    bool slow_consumer(std::size_t size) {
        core::stats::add(ctx_.api.stats().slow_consumer_closes);
        log::warn("net [w{}] closing slow subscriber: outbox {} bytes + {} > limit {}",
                  registry_id_, writer_.queued_bytes(), size, writer_.limit());
        close_with(websocket::close_code::try_again_later, "slow consumer", true);
        return false;
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

    // Writes what is queued, as one buffer per write (ws_writer::flatten; asio's composed
    // async_write passes at most 16 buffers to each sendmsg, docs/decisions/005-write-path.md).
    // On plain TCP the write is tried at once, non-blocking, from a per-thread buffer: most
    // complete there, with no handler round trip and no per-connection memory; only what the
    // socket does not take is kept in wbuf_ and written asynchronously.
    void write_next() {
        for (;;) {
            if (writer_.empty()) {
                if (wbuf_.capacity() > 0)
                    std::string().swap(wbuf_);  // idle connections keep no write buffer
                if (close_after_write_)
                    linger_then_close();
                return;
            }
            if constexpr (is_plain_tcp<Stream>) {
                // Runs of copied frames at the head are written as they are, gathered; anything
                // else is flattened into the per-thread scratch buffer first.
                static thread_local std::string scratch;
                std::string_view pieces[16];
                std::size_t frames = writer_.leading_runs(pieces, std::size(pieces));
                std::size_t count = frames;  // pieces to write
                if (frames > 0) {
                    writer_.seal(frames);
                } else {
                    frames = writer_.flatten(scratch);
                    pieces[0] = scratch;
                    count = 1;
                }
                std::array<asio::const_buffer, std::size(pieces)> buffers;
                std::size_t total = 0;
                for (std::size_t i = 0; i < count; ++i) {
                    buffers[i] = asio::buffer(pieces[i].data(), pieces[i].size());
                    total += pieces[i].size();
                }
                beast::error_code ec;
                const std::size_t n = beast::get_lowest_layer(stream_).socket().write_some(
                    std::span<const asio::const_buffer>(buffers.data(), count), ec);
                if (!ec && n == total) {
                    wrote(frames, n);
                    continue;
                }
                if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
                    return write_failed(ec);
                wbuf_.clear();
                std::size_t skip = n;
                for (std::size_t i = 0; i < count; ++i) {
                    const std::size_t from = std::min(skip, pieces[i].size());
                    wbuf_.append(pieces[i].substr(from));
                    skip -= from;
                }
                if (scratch.capacity() > 4 * ws_writer::max_bytes_per_write)
                    std::string().swap(scratch);  // after one very large frame
                start_async_write(frames, n);
            } else {
                start_async_write(writer_.flatten(wbuf_), 0);
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
        writer_.drop_after(0);
        in_flight_ = 0;
        close_socket(stream_);  // the pending read fails too and ends the session
    }

    // The first `frames` frames of the outbox (`bytes` bytes) are on the wire.
    void wrote(std::size_t frames, std::size_t bytes) {
        auto& st = ctx_.api.stats();
        core::stats::add(st.bytes_out, bytes);
        core::stats::add(st.ws_frames_written);
        if (writer_.wrote(frames))
            close_sent_ = true;
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
        if (drop)
            writer_.drop_after(writing_ ? in_flight_ : 0);  // frames on the wire stay
        std::string payload;
        const auto c = static_cast<std::uint16_t>(code);
        payload.push_back(static_cast<char>(c >> 8));
        payload.push_back(static_cast<char>(c & 0xFF));
        payload.append(reason, std::min<std::size_t>(std::strlen(reason), 120));
        writer_.queue_unbounded({std::make_shared<const std::string>(std::move(payload)), nullptr,
                                 0, frame_kind::close});
        if (!writing_)
            write_next();
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

    void on_end(beast::error_code ec) {
        if (ec != asio::error::operation_aborted && ec != asio::error::eof &&
            ec != beast::error::timeout && ec != asio::error::bad_descriptor)
            log::debug("net [w{}] read ended: {}", registry_id_, ec.message());
        closing_ = true;
        conn_.end();
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().close(ignored);
    }

    Stream stream_;
    asio::io_context* own_context_ = nullptr;  // set when stream_ has no strand (one I/O thread)
    server_context& ctx_;
    const core::limits& lim_;
    events::upgrade_auth auth_;
    beast::flat_buffer leftover_;  // read past the upgrade request, until on_accept()
    const std::chrono::steady_clock::time_point deadline_;  // connection lifetime ends
    std::chrono::steady_clock::time_point last_ka_;
    std::uint64_t registry_id_ = 0;
    bool accepted_ = false;
    bool counted_ip_ = false;  // counted in ctx_.per_ip under peer_address_
    std::string peer_address_;

    // reading
    ws_frame_reader reader_;  // bytes of an incomplete (or, while paused, unhandled) frame
    std::string message_;     // a fragmented message being assembled
    std::size_t incomplete_accounted_ = 0;               // our share of stats().incomplete_bytes
    std::unique_ptr<asio::steady_timer> message_timer_;  // --message-timeout-ms, made lazily
    bool message_timer_armed_ = false;
    std::uint64_t message_gen_ = 0;
    websocket::detail::utf8_checker utf8_;  // message_ so far, when it is text
    bool in_message_ = false;
    bool message_binary_ = false;

    // writing
    ws_writer writer_;  // the first in_flight_ frames are on the wire while writing_
    std::size_t in_flight_ = 0;
    std::string wbuf_;  // what an asynchronous write is sending; empty between writes
    bool writing_ = false;
    bool write_scheduled_ = false;    // a write_next is posted (corking)
    bool closing_ = false;            // no more frames are queued
    bool close_sent_ = false;         // our close frame is on the wire
    bool close_after_write_ = false;  // close the socket once the outbox is written
    std::unique_ptr<asio::steady_timer> close_timer_;  // bounds the wait for the close reply
    bool lingering_ = false;  // our side is shut down; dropping reads until the client's FIN

    appsync_connection conn_;  // the protocol; last, so it goes first
};

}  // namespace

void start_ws_session(beast::tcp_stream&& stream, http_request&& req, beast::flat_buffer&& leftover,
                      events::upgrade_auth&& auth, server_context& ctx) {
    std::make_shared<ws_session<beast::tcp_stream>>(std::move(stream), std::move(auth), ctx)
        ->run(std::move(req), std::move(leftover));
}

void start_ws_session(beast::ssl_stream<beast::tcp_stream>&& stream, http_request&& req,
                      beast::flat_buffer&& leftover, events::upgrade_auth&& auth,
                      server_context& ctx) {
    std::make_shared<ws_session<beast::ssl_stream<beast::tcp_stream>>>(std::move(stream),
                                                                       std::move(auth), ctx)
        ->run(std::move(req), std::move(leftover));
}

}  // namespace eventcast::net

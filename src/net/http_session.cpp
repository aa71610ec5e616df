// One port, TLS and plain (DESIGN.md §1): beast::async_detect_ssl peeks at the first bytes; a TLS
// ClientHello goes to an ssl_stream, anything else is plain HTTP. Both share http_session<>.
#include "net/http_session.hpp"

#include "core/ids.hpp"
#include "core/log.hpp"
#include "net/cors.hpp"
#include "net/http_path.hpp"
#include "net/http_reply.hpp"
#include "net/http_router.hpp"
#include "net/ws_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <array>
#include <chrono>
#include <optional>

namespace eventcast::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

struct refusal {
    unsigned status;
    std::string message;
};

// What Beast's parser lets through but RFC 9112 forbids, checked once the head is read. A
// Transfer-Encoding whose last coding is not chunked leaves the body's length unknown: Beast
// reads it as empty and the bytes that follow would run as another request (request
// smuggling), so it is 400 and the connection closes (§6.1, §6.3). Chunked framing with a
// coding we do not decode (gzip, chunked) is 501. Host must appear exactly once in HTTP/1.1
// (§3.2).
std::optional<refusal> framing_refusal(const http_request& req) {
    std::size_t codings = 0;
    std::size_t chunked_at = 0;  // 1-based position of "chunked"; 0: none
    bool chunked_twice = false;
    for (auto it = req.find(http::field::transfer_encoding);
         it != req.end() && it->name() == http::field::transfer_encoding; ++it) {
        bool any = false;
        for (auto coding : http::token_list{it->value()}) {
            any = true;
            ++codings;
            if (beast::iequals(coding, "chunked")) {
                chunked_twice = chunked_twice || chunked_at != 0;
                chunked_at = codings;
            }
        }
        if (!any)
            ++codings;  // an empty or unparsable value counts as a coding we do not know
    }
    if (req.count(http::field::transfer_encoding) != 0) {
        if (req.version() < 11)
            return refusal{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request"};
        if (chunked_at != codings || chunked_twice)
            return refusal{400,
                           "Transfer-Encoding must end with chunked, once; the body's length "
                           "is unknown otherwise (RFC 9112 section 6.3)"};
        if (codings != 1)
            return refusal{501, "Transfer-Encoding: only chunked is supported"};
    }
    const auto hosts = req.count(http::field::host);
    if (hosts > 1)
        return refusal{
            400, "the request has " + std::to_string(hosts) + " Host headers; send exactly one"};
    if (hosts == 0 && req.version() >= 11)
        return refusal{400, "an HTTP/1.1 request needs a Host header"};
    return std::nullopt;
}

// A server must accept the absolute form of a request target (RFC 9112 §3.2.2,
// "GET http://host/event HTTP/1.1"); routes match the origin form, so keep only the path and
// query. The authority replaces Host for the request's meaning, which no route reads.
void to_origin_form(http_request& req) {
    const std::string_view target(req.target().data(), req.target().size());
    const auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || target.empty() || target.front() == '/')
        return;
    const auto scheme = target.substr(0, scheme_end);
    if (!beast::iequals(scheme, "http") && !beast::iequals(scheme, "https"))
        return;
    const auto path = target.find('/', scheme_end + 3);
    const auto query = target.find('?', scheme_end + 3);
    std::string origin;
    if (path != std::string_view::npos && (query == std::string_view::npos || path < query))
        origin = target.substr(path);
    else
        origin = "/" + std::string(query == std::string_view::npos ? "" : target.substr(query));
    req.target(origin);
}

// CRTP base: Derived provides stream(), release_stream(), do_eof().
template <class Derived>
class http_session : public closable {
public:
    http_session(beast::flat_buffer buffer, server_context& ctx, const port_role& role,
                 asio::any_io_executor strand)
        : buffer_(std::move(buffer)), ctx_(ctx), role_(role), strand_(std::move(strand)) {}

    ~http_session() override {
        release_body();
        ctx_.registry.remove(registry_id_);
    }

    void shutdown() override {
        asio::post(strand_, [self = derived().shared_from_this()] {
            self->stopping_ = true;
            if (!self->released_)
                beast::get_lowest_layer(self->stream()).cancel();
        });
    }

protected:
    Derived& derived() { return static_cast<Derived&>(*this); }

    void register_self() { registry_id_ = ctx_.registry.add(derived().weak_from_this()); }

    void do_read() {
        if (stopping_)
            return;
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(ctx_.cfg.lim.max_header_bytes));
        parser_->body_limit(ctx_.cfg.lim.max_body_bytes);
        if (buffer_.size() != 0)
            return read_head();
        // Between requests the connection may idle (--http-idle-timeout); the head deadline
        // starts with the next request's first byte.
        beast::get_lowest_layer(derived().stream()).expires_after(ctx_.cfg.lim.http_idle_timeout);
        derived().stream().async_read_some(
            buffer_.prepare(4096),
            [self = derived().shared_from_this()](beast::error_code ec, std::size_t n) {
                self->buffer_.commit(n);
                if (ec == asio::error::eof && n == 0)
                    return self->on_read(http::error::end_of_stream, 0);
                if (ec)
                    return self->on_read(ec, 0);
                self->read_head();
            });
    }

    // A request head must be complete within --handshake-timeout-ms of its first byte, however
    // slowly it trickles in (an idle timer restarted by every byte would let one byte per
    // minute hold the connection forever); the body then has the idle timeout to arrive.
    void read_head() {
        beast::get_lowest_layer(derived().stream()).expires_after(ctx_.cfg.lim.handshake_timeout);
        http::async_read_header(
            derived().stream(), buffer_, *parser_,
            [self = derived().shared_from_this()](beast::error_code ec, std::size_t n) {
                if (ec)
                    return self->on_read(ec, n);
                if (!self->reserve_body())
                    return self->write(
                        http_error(503, "ServiceUnavailableException",
                                   "the server is holding too many request bodies; retry later", 11,
                                   false, self->ctx_.cfg));
                beast::get_lowest_layer(self->derived().stream())
                    .expires_after(self->ctx_.cfg.lim.http_idle_timeout);
                http::async_read(self->derived().stream(), self->buffer_, *self->parser_,
                                 beast::bind_front_handler(&http_session::on_read, self));
            });
    }

    // A body announced by Content-Length is counted against --max-buffered-bytes from its head
    // on, until it is read: many slow bodies cannot hold unbounded memory. False past the bound.
    bool reserve_body() {
        const auto length = parser_->content_length();
        if (!length || *length == 0)
            return true;
        auto& st = ctx_.api.stats();
        reserved_ = static_cast<std::int64_t>(
            std::min<std::uint64_t>(*length, ctx_.cfg.lim.max_body_bytes));
        const auto total =
            st.incomplete_bytes.fetch_add(reserved_, std::memory_order_relaxed) + reserved_;
        if (static_cast<std::size_t>(total) <= ctx_.cfg.lim.max_buffered_bytes)
            return true;
        release_body();
        core::stats::add(st.buffer_cap_refusals);
        log::warn(
            "net http refused: the server holds {} bytes of incomplete requests and "
            "messages (--max-buffered-bytes {})",
            total, ctx_.cfg.lim.max_buffered_bytes);
        return false;
    }
    void release_body() {
        if (reserved_ != 0)
            ctx_.api.stats().incomplete_bytes.fetch_sub(reserved_, std::memory_order_relaxed);
        reserved_ = 0;
    }

    void on_read(beast::error_code ec, std::size_t) {
        release_body();
        if (ec == http::error::end_of_stream)
            return derived().do_eof();
        if (ec == http::error::body_limit)
            return send_error_and_close(413, "request body is over " +
                                                 std::to_string(ctx_.cfg.lim.max_body_bytes) +
                                                 " bytes (--max-body-bytes)");
        if (ec == http::error::header_limit)
            return send_error_and_close(431, "request headers are over " +
                                                 std::to_string(ctx_.cfg.lim.max_header_bytes) +
                                                 " bytes (--max-header-bytes)");
        if (ec) {
            if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
                ec != asio::error::eof && ec != asio::ssl::error::stream_truncated &&
                ec != asio::error::connection_reset)
                return send_error_and_close(400, "malformed HTTP request: " + ec.message());
            return;
        }
        auto req = parser_->release();
        parser_.reset();
        if (auto bad = framing_refusal(req))
            return send_error_and_close(bad->status, std::move(bad->message));
        to_origin_form(req);
        begin_request(req);

        if (role_.upgrades && beast::websocket::is_upgrade(req))
            return upgrade(std::move(req));
        core::stats::add(ctx_.api.stats().http_requests);
        // Routed on the path with runs of '/' collapsed, as API Gateway does: the AWS sample
        // posts to `new URL(url).toString() + '/chat'`, i.e. "//chat" (net/http_path.hpp).
        // The answer may come later from another thread (POST /chat); hop back onto our strand.
        role_.routes->dispatch(
            req,
            [self = derived().shared_from_this()](http_response res) {
                asio::dispatch(self->strand_, [self, res = std::move(res)]() mutable {
                    self->write(std::move(res));
                });
            },
            &route_);
    }

    void upgrade(http_request&& req) {
        const std::string_view target(req.target().data(), req.target().size());
        const auto q = target.find('?');
        // Amplify appends "/realtime" to the configured endpoint; a trailing slash in that
        // endpoint gives "/event//realtime" (spec §1.2): runs of '/' collapse, as for routes.
        if (normalize_path(target_path(target)) != "/event/realtime") {
            return write(http_error(404, "NotFoundException",
                                    "WebSocket endpoint is /event/realtime", req.version(), false,
                                    ctx_.cfg));
        }
        // Exactly one key, the base64 of 16 bytes (RFC 6455 §4.2.1). A missing key or a
        // version other than 13 is left to ws_session, which answers 426 with the version.
        const auto key = req[http::field::sec_websocket_key];
        if (const auto keys = req.count(http::field::sec_websocket_key);
            keys > 1 ||
            (keys == 1 && !events::valid_websocket_key(std::string_view(key.data(), key.size())))) {
            return write(http_error(400, "BadRequestException",
                                    "Sec-WebSocket-Key must be sent once, as the base64 of 16 "
                                    "bytes (24 characters ending in ==)",
                                    req.version(), false, ctx_.cfg));
        }
        // Browsers apply no CORS to WebSockets: with a --cors-origin list, another site's page
        // must not connect from a visitor's browser. Clients without Origin (Node, curl) pass.
        const auto origin = req[http::field::origin];
        if (!cors_policy(ctx_.cfg.cors_origins).allows_websocket(origin)) {
            core::stats::add(ctx_.api.stats().ws_origin_refused);
            log::debug("net WebSocket upgrade refused: Origin not in --cors-origin");
            return write(http_error(
                403, "ForbiddenException",
                "WebSocket connections from origin '" + std::string(origin.substr(0, 100)) +
                    "' are not allowed; the server allows the origins given with --cors-origin",
                req.version(), false, ctx_.cfg));
        }
        std::vector<std::string_view> protocols;
        for (auto it = req.find(http::field::sec_websocket_protocol);
             it != req.end() && it->name() == http::field::sec_websocket_protocol; ++it)
            protocols.push_back(it->value());
        auto auth = events::parse_upgrade(
            protocols, q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
            request_credentials(req));
        if (auth.offered_subprotocols && !auth.offered_appsync) {
            return write(http_error(400, "BadRequestException",
                                    "offer the WebSocket subprotocol aws-appsync-event-ws "
                                    "(Sec-WebSocket-Protocol: aws-appsync-event-ws,header-...)",
                                    req.version(), false, ctx_.cfg));
        }
        // net/ws_session.cpp logs the upgrade's line once it has answered (101, 426 or 429).
        request_id_.clear();
        beast::get_lowest_layer(derived().stream()).expires_never();
        released_ = true;
        // What the parser read past the request is the start of the WebSocket stream.
        start_ws_session(derived().release_stream(), std::move(req), std::move(buffer_),
                         std::move(auth), ctx_);
    }

    void send_error_and_close(unsigned status, std::string message) {
        write(http_error(status, "BadRequestException", message, 11, false, ctx_.cfg));
    }

    // The access log and the request id (x-amzn-RequestId, as AppSync answers) of the request
    // being answered. One request is in flight per session: the next is read after the write.
    void begin_request(const http_request& req) {
        request_start_ = std::chrono::steady_clock::now();
        request_method_ = std::string(req.method_string());
        request_path_ = std::string(
            target_path(std::string_view(req.target().data(), req.target().size()).substr(0, 512)));
        request_id_ = core::uuid_v4();
    }

    void end_request(unsigned status, std::size_t bytes) {
        if (request_id_.empty()) {  // not parsed (400, 413, 431): log it with its own id
            request_start_ = std::chrono::steady_clock::now();
            request_method_ = "-";
            request_path_ = "-";
            request_id_ = core::uuid_v4();
        }
        const std::chrono::duration<double, std::milli> took =
            std::chrono::steady_clock::now() - request_start_;
        log::access({request_method_, request_path_, status, bytes, took.count(), request_id_});
    }

    void write(http_response res) {
        end_request(res.result_int(), res.body().size());
        role_.routes->count(route_ == unset_route ? role_.routes->unrouted() : route_,
                            res.result_int());
        route_ = unset_route;
        res.set("x-amzn-RequestId", request_id_);
        request_id_.clear();
        const bool keep_alive = res.keep_alive() && !stopping_;
        res.keep_alive(keep_alive);
        response_ = std::make_shared<http_response>(std::move(res));
        http::async_write(
            derived().stream(), *response_,
            [self = derived().shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                self->response_.reset();
                if (ec)
                    return;
                if (!keep_alive)
                    return self->do_eof();
                self->do_read();
            });
    }

    std::int64_t reserved_ = 0;  // this request's body in stats().incomplete_bytes
    beast::flat_buffer buffer_;
    server_context& ctx_;
    const port_role& role_;
    static constexpr std::size_t unset_route = static_cast<std::size_t>(-1);
    std::size_t route_ = unset_route;  // the request's row in role_.routes, for its counter
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<http_response> response_;
    asio::any_io_executor strand_;  // kept apart from the stream, which upgrade() gives away
    std::uint64_t registry_id_ = 0;
    std::chrono::steady_clock::time_point request_start_;
    std::string request_method_;
    std::string request_path_;  // without the query, which may carry a header= credential
    std::string request_id_;    // empty between requests
    bool stopping_ = false;
    bool released_ = false;
};

class plain_http_session final : public http_session<plain_http_session>,
                                 public std::enable_shared_from_this<plain_http_session> {
public:
    plain_http_session(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, server_context& ctx,
                       const port_role& role)
        : http_session(std::move(buffer), ctx, role, stream.get_executor()),
          stream_(std::move(stream)) {}

    void run() {
        register_self();
        do_read();
    }
    beast::tcp_stream& stream() { return stream_; }
    beast::tcp_stream release_stream() { return std::move(stream_); }
    void do_eof() {
        beast::error_code ec;
        stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        drain();
    }

private:
    friend class http_session<plain_http_session>;
    // Lingering close: after an early answer (413, 400) the client may still be sending; closing
    // with unread bytes would make the kernel reset the connection and lose our response.
    void drain() {
        if (drained_ > 16 * 1024 * 1024)
            return;
        stream_.expires_after(std::chrono::seconds(2));
        stream_.async_read_some(asio::buffer(scratch_),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    self->drained_ += n;
                                    if (!ec)
                                        self->drain();
                                });
    }
    std::array<char, 4096> scratch_{};
    std::size_t drained_ = 0;
    beast::tcp_stream stream_;
};

class ssl_http_session final : public http_session<ssl_http_session>,
                               public std::enable_shared_from_this<ssl_http_session> {
public:
    ssl_http_session(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, server_context& ctx,
                     const port_role& role)
        : http_session(std::move(buffer), ctx, role, stream.get_executor()),
          stream_(std::move(stream), ctx.ssl) {}

    void run() {
        register_self();
        beast::get_lowest_layer(stream_).expires_after(ctx_.cfg.lim.handshake_timeout);
        // The detector already read the ClientHello's first bytes; hand them to OpenSSL.
        stream_.async_handshake(
            asio::ssl::stream_base::server, buffer_.data(),
            beast::bind_front_handler(&ssl_http_session::on_handshake, shared_from_this()));
    }
    beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
    beast::ssl_stream<beast::tcp_stream> release_stream() { return std::move(stream_); }
    void do_eof() {
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
        stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
    }

private:
    friend class http_session<ssl_http_session>;
    void on_handshake(beast::error_code ec, std::size_t used) {
        if (ec) {
            log::debug("net TLS handshake failed: {}", ec.message());
            return;
        }
        buffer_.consume(used);
        do_read();
    }
    beast::ssl_stream<beast::tcp_stream> stream_;
};

class detect_session : public std::enable_shared_from_this<detect_session> {
public:
    detect_session(asio::ip::tcp::socket&& socket, server_context& ctx, const port_role& role)
        : stream_(std::move(socket)), ctx_(ctx), role_(role) {}

    void run() {
        stream_.expires_after(ctx_.cfg.lim.handshake_timeout);
        beast::async_detect_ssl(
            stream_, buffer_,
            beast::bind_front_handler(&detect_session::on_detect, shared_from_this()));
    }

private:
    void on_detect(beast::error_code ec, bool tls) {
        if (ec)
            return;
        if (tls)
            return std::make_shared<ssl_http_session>(std::move(stream_), std::move(buffer_), ctx_,
                                                      role_)
                ->run();
        std::make_shared<plain_http_session>(std::move(stream_), std::move(buffer_), ctx_, role_)
            ->run();
    }

    beast::tcp_stream stream_;
    server_context& ctx_;
    const port_role& role_;
    beast::flat_buffer buffer_;
};

}  // namespace

void start_connection(asio::ip::tcp::socket&& socket, server_context& ctx, const port_role& role) {
    std::make_shared<detect_session>(std::move(socket), ctx, role)->run();
}

}  // namespace eventcast::net

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

// CRTP base: Derived provides stream(), release_stream(), do_eof().
template <class Derived>
class http_session : public closable {
public:
    http_session(beast::flat_buffer buffer, server_context& ctx, asio::any_io_executor strand)
        : buffer_(std::move(buffer)), ctx_(ctx), strand_(std::move(strand)) {}

    ~http_session() override { ctx_.registry.remove(registry_id_); }

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
        beast::get_lowest_layer(derived().stream()).expires_after(ctx_.cfg.lim.http_idle_timeout);
        http::async_read(
            derived().stream(), buffer_, *parser_,
            beast::bind_front_handler(&http_session::on_read, derived().shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
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
        begin_request(req);

        if (beast::websocket::is_upgrade(req))
            return upgrade(std::move(req));
        core::stats::add(ctx_.api.stats().http_requests);
        // Routed on the path with runs of '/' collapsed, as API Gateway does: the AWS sample
        // posts to `new URL(url).toString() + '/chat'`, i.e. "//chat" (net/http_path.hpp).
        // The answer may come later from another thread (POST /chat); hop back onto our strand.
        ctx_.routes->dispatch(req, [self = derived().shared_from_this()](http_response res) {
            asio::dispatch(self->strand_,
                           [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
        });
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
        start_ws_session(derived().release_stream(), std::move(req), std::move(auth), ctx_);
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

    beast::flat_buffer buffer_;
    server_context& ctx_;
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
    plain_http_session(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, server_context& ctx)
        : http_session(std::move(buffer), ctx, stream.get_executor()), stream_(std::move(stream)) {}

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
    ssl_http_session(beast::tcp_stream&& stream, beast::flat_buffer&& buffer, server_context& ctx)
        : http_session(std::move(buffer), ctx, stream.get_executor()),
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
    detect_session(asio::ip::tcp::socket&& socket, server_context& ctx)
        : stream_(std::move(socket)), ctx_(ctx) {}

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
            return std::make_shared<ssl_http_session>(std::move(stream_), std::move(buffer_), ctx_)
                ->run();
        std::make_shared<plain_http_session>(std::move(stream_), std::move(buffer_), ctx_)->run();
    }

    beast::tcp_stream stream_;
    server_context& ctx_;
    beast::flat_buffer buffer_;
};

}  // namespace

void start_connection(asio::ip::tcp::socket&& socket, server_context& ctx) {
    std::make_shared<detect_session>(std::move(socket), ctx)->run();
}

}  // namespace eventcast::net

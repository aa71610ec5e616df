// Integration test harness: starts the real eventcast binary on 127.0.0.1 port 0 and talks to
// it with Beast clients (HTTP, ws, wss). Every wait has a deadline; nothing sleeps blindly.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace eventcast::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using namespace std::chrono_literals;

/// The binary under test, from EVENTCAST_BIN (set by CMake).
std::string eventcast_binary();

/// A running `eventcast serve`. Killed (SIGKILL) on destruction if still running.
class server_process {
public:
    /// `soft_fd_limit` (when nonzero): the soft RLIMIT_NOFILE the server starts with, as on a
    /// stock system (Debian's default is 1,024).
    /// `log_to` (when not empty): the server's stderr goes to that file, and the harness's
    /// `--log-level warn` is left out, so the test's flags or config file choose the level.
    explicit server_process(std::vector<std::string> extra_args = {},
                            std::string api_key = "test-key", std::size_t soft_fd_limit = 0,
                            std::string log_to = {});
    ~server_process();
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;

    std::uint16_t port() const { return port_; }
    int pid() const { return pid_; }
    const std::string& api_key() const { return api_key_; }
    const std::string& cert_file() const { return cert_; }
    /// Sends SIGTERM and waits (up to `timeout`) for exit; returns the exit status or -1.
    int terminate(std::chrono::milliseconds timeout = 10s);
    /// Waits (up to `timeout`) for an exit without signalling; the exit status or -1.
    int wait_exit(std::chrono::milliseconds timeout);
    bool running();
    /// Sends `sig` to the server.
    void signal(int sig);
    /// A scratch directory of this server's, removed by nobody (under /tmp).
    const std::string& dir() const { return dir_; }

private:
    int pid_ = -1;
    std::uint16_t port_ = 0;
    std::string dir_;
    std::string cert_;
    std::string api_key_;
};

struct http_result {
    unsigned status = 0;
    std::string body;
    http::fields headers;
};

/// One HTTP request on a fresh connection (plain or TLS).
http_result http_request(std::uint16_t port, http::verb verb, const std::string& target,
                         const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         bool tls = false);

/// The value of an unlabelled line of the server's GET /metrics ("name value"), or -1.
long metric_value(std::uint16_t port, const std::string& name);

/// The status of GET /readyz (200 ready, 503 not), or 0 when the server does not answer.
unsigned readyz(std::uint16_t port);

/// base64url(JSON) of {"host":..., "x-api-key": key}, as Amplify sends it.
std::string header_subprotocol(const std::string& api_key);

/// A WebSocket client with deadlines on every read.
class ws_client {
public:
    struct options {
        bool tls = false;
        std::vector<std::string> subprotocols;  // empty: aws-appsync-event-ws + header-<key>
        std::vector<std::pair<std::string, std::string>> headers;
        std::string target = "/event/realtime";
        bool offer_none = false;  // send no Sec-WebSocket-Protocol at all
    };
    ws_client(std::uint16_t port, const std::string& api_key, options opt);
    ws_client(std::uint16_t port, const std::string& api_key)
        : ws_client(port, api_key, options{}) {}

    /// The selected subprotocol from the 101 response.
    const std::string& selected_protocol() const { return selected_; }

    void send(const std::string& text);
    void send_binary(const std::string& bytes);
    /// Next text frame, or nullopt on timeout/close. Sets closed()/close_code() on close.
    std::optional<std::string> read(std::chrono::milliseconds timeout = 3s);
    /// Reads until a frame whose "type" is not "ka" arrives.
    std::optional<json::object> read_json(std::chrono::milliseconds timeout = 3s);
    /// Reads frames until one has type `type` (skipping ka); nullopt on timeout.
    std::optional<json::object> expect_type(const std::string& type,
                                            std::chrono::milliseconds timeout = 3s);
    bool closed() const { return closed_; }
    int close_code() const { return close_code_; }
    /// Waits until the server closes the connection.
    bool wait_closed(std::chrono::milliseconds timeout = 5s);

    // Convenience: protocol steps with the API key in `authorization`.
    void init();
    void subscribe(const std::string& id, const std::string& channel);
    void publish(const std::string& id, const std::string& channel,
                 const std::vector<std::string>& events);
    std::string auth_json() const;

private:
    using plain_ws = websocket::stream<beast::tcp_stream>;
    using tls_ws = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;
    template <class F>
    auto with_ws(F&& f) {
        if (plain_)
            return f(*plain_);
        return f(*tls_);
    }
    asio::io_context ioc_;
    asio::ssl::context ssl_{asio::ssl::context::tls_client};
    std::optional<plain_ws> plain_;
    std::optional<tls_ws> tls_;
    std::string api_key_;
    std::string selected_;
    beast::flat_buffer buffer_;
    bool closed_ = false;
    int close_code_ = 0;
    bool pending_ = false;  // an async_read is outstanding
    bool done_ = false;
    beast::error_code ec_;
};

/// Polls `pred` until true or the deadline passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

/// First errors[0].errorType of a frame, or "".
std::string error_type(const json::object& frame);

}  // namespace eventcast::testing

// Byte-level clients for the conformance, framing and soak suites: a TCP or TLS connection that
// writes exactly the bytes it is given, and a WebSocket client on it that builds and parses
// RFC 6455 frames by hand, so a test can send what no well-behaved client library would.
// Every read has a deadline.
#pragma once

#include "harness.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::testing {

/// One connection to 127.0.0.1:port, plain or TLS (certificate not verified).
class raw_conn {
public:
    raw_conn(std::uint16_t port, bool tls);
    /// Writes all of `bytes`; false if the server has closed (that is not a test failure here).
    bool write(std::string_view bytes);
    /// Reads what arrives within `timeout` into buffer(); false on timeout, EOF or error.
    bool read_more(std::chrono::milliseconds timeout);
    /// Reads until buffer() contains `needle`; false at the deadline, EOF or error.
    bool read_until(std::string_view needle, std::chrono::milliseconds timeout = 3s);
    /// Reads until the server closes (EOF or reset); false if it is still open at the deadline.
    bool read_to_eof(std::chrono::milliseconds timeout = 5s);
    std::string& buffer() { return buffer_; }
    bool eof() const { return eof_; }
    void shutdown_send();

private:
    asio::io_context ioc_;
    asio::ssl::context ssl_{asio::ssl::context::tls_client};
    std::optional<asio::ip::tcp::socket> plain_;
    std::optional<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
    std::string buffer_;
    bool eof_ = false;
};

struct raw_response {
    unsigned status = 0;
    std::string body;
    http::fields headers;
    bool keep_alive = true;
};

/// Every complete HTTP response at the start of `bytes`, in order.
std::vector<raw_response> parse_responses(std::string_view bytes);

/// Sends `request` in one write on a fresh connection, reads until the server closes (or
/// `timeout`), and returns the responses it sent.
std::vector<raw_response> exchange(std::uint16_t port, std::string_view request,
                                   std::chrono::milliseconds timeout = 3s, bool tls = false);

/// A POST /event request with Content-Length, ready to send.
std::string publish_request(const std::string& api_key, const std::string& channel,
                            const std::string& event, std::string_view content_type =
                                                          "application/json");

struct ws_frame {
    bool fin = true;
    unsigned rsv = 0;  // RSV1..3 as bits 2..0
    unsigned opcode = 0;
    std::string payload;
};

/// Encodes one client frame: masked unless `mask` is false.
std::string encode_frame(unsigned opcode, std::string_view payload, bool fin = true,
                         unsigned rsv = 0, bool mask = true);

/// A WebSocket client that speaks raw frames over raw_conn.
class raw_ws {
public:
    struct options {
        bool tls = false;
        std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
        std::string extra;    // appended to the upgrade request's bytes (frames riding along)
        bool expect_101 = true;  // false: the caller inspects upgrade_response()
    };
    raw_ws(std::uint16_t port, const std::string& api_key, options opt);
    raw_ws(std::uint16_t port, const std::string& api_key) : raw_ws(port, api_key, options{}) {}

    const std::string& upgrade_response() const { return upgrade_response_; }
    bool upgraded() const { return upgraded_; }
    bool send_frame(unsigned opcode, std::string_view payload, bool fin = true, unsigned rsv = 0,
                    bool mask = true);
    bool send_text(std::string_view text) { return send_frame(0x1, text); }
    bool send_bytes(std::string_view bytes) { return conn_.write(bytes); }
    /// Next frame from the server, or nullopt at the deadline or when the connection ended.
    std::optional<ws_frame> next_frame(std::chrono::milliseconds timeout = 3s);
    /// Next text frame whose JSON "type" is not "ka"; control frames other than close skipped.
    std::optional<json::object> next_json(std::chrono::milliseconds timeout = 3s);
    /// Next frame whose type is `type`; nullopt on timeout or close.
    std::optional<json::object> expect_type(const std::string& type,
                                            std::chrono::milliseconds timeout = 3s);
    /// Reads until a close frame arrives; returns its code (0: empty payload), or -1 if the
    /// connection ended or the deadline passed without one.
    int wait_close(std::chrono::milliseconds timeout = 5s);
    /// The payload of the close frame wait_close() saw.
    const std::string& close_payload() const { return close_payload_; }
    raw_conn& conn() { return conn_; }

private:
    raw_conn conn_;
    std::string upgrade_response_;
    std::string close_payload_;
    bool upgraded_ = false;
};

/// The client's authorization object for `api_key`, as JSON text.
std::string auth_object(const std::string& api_key);
std::string subscribe_text(const std::string& api_key, const std::string& id,
                           const std::string& channel);
std::string publish_text(const std::string& api_key, const std::string& id,
                         const std::string& channel, const std::vector<std::string>& events);

/// Resident set size (kB) and open fd count of process `pid`, from /proc.
std::size_t rss_kb(int pid);
std::size_t open_fds(int pid);

}  // namespace eventcast::testing

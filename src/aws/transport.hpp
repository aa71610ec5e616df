// The outbound HTTP thread (still "the llm thread" in logs): one libcurl multi handle driving
// every outbound transfer (model providers, the Lambda authorizer webhook, JWKS fetches), plus
// timers, on one dedicated thread. Thousands of concurrent streams cost no thread each (DESIGN.md §2).
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::aws {

struct http_call {
    std::string method = "POST";
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;
    std::chrono::milliseconds connect_timeout{10'000};
    /// No byte for this long ends the transfer as timed out. Never a total timeout: long answers
    /// must not be cut (spec/model-providers.md §1).
    std::chrono::milliseconds idle_timeout{120'000};
    /// Bound on the whole transfer, connect included; 0 (the default): none, so model streams
    /// are never cut. For small answers only (a JWKS is a few KiB).
    std::chrono::milliseconds total_timeout{0};
    /// Protocols libcurl may use, as CURLOPT_PROTOCOLS_STR ("https" refuses a plain http://
    /// URL). Redirects are never followed.
    std::string protocols = "http,https";
    /// PEM file of CA certificates trusted instead of the system store (a private CA); empty:
    /// the system store.
    std::string ca_file;
    /// Connect directly, ignoring the proxy environment variables (loopback fetches).
    bool no_proxy = false;
    /// Accept-Encoding: nullopt (the default) sends none; "" offers every encoding libcurl
    /// decodes, and the handler sees the decoded body.
    std::optional<std::string> accept_encoding;
    /// Most body bytes the handler is given; one more ends the transfer with
    /// transfer_result::too_large. 0 (the default): no bound.
    std::size_t max_body_bytes = 0;
};

struct transfer_result {
    bool cancelled = false;  // cancel() was called
    bool timed_out = false;  // connect or idle timeout
    bool too_large = false;  // the body passed http_call::max_body_bytes
    std::string error;       // transport failure (empty when the exchange completed)
    /// libcurl's own, more specific message for the failure (names host, port, elapsed time),
    /// e.g. "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server";
    /// may be empty.
    std::string detail;
    long status = 0;  // HTTP status, 0 if none was received
};

/// Receives one transfer's events on the transport thread.
class http_handler {
public:
    virtual ~http_handler() = default;
    /// Each response header (of the final response), name as sent.
    virtual void on_header(std::string_view name, std::string_view value) {
        (void)name;
        (void)value;
    }
    /// Body bytes in arbitrary slices; `status` is the HTTP status. Return false to abort.
    virtual bool on_body(long status, std::string_view bytes) = 0;
    /// Exactly once, last.
    virtual void on_complete(const transfer_result& result) = 0;
};

/// Thread-safe: every public member may be called from any thread.
class transport {
public:
    using transfer_id = std::uint64_t;

    transport();
    ~transport();  // cancels what is running and joins the thread
    transport(const transport&) = delete;
    transport& operator=(const transport&) = delete;

    transfer_id start(http_call call, std::shared_ptr<http_handler> handler);
    /// The handler's on_complete(cancelled) runs on the transport thread, unless it already completed.
    void cancel(transfer_id id);
    /// Runs `fn` on the transport thread after `delay`.
    void schedule(std::chrono::milliseconds delay, std::function<void()> fn);
    /// Runs `fn` on the transport thread soon.
    void post(std::function<void()> fn) { schedule(std::chrono::milliseconds(0), std::move(fn)); }
    /// Cancels every transfer (their handlers complete), runs no more timers and joins the transport
    /// thread. Idempotent; the destructor calls it. Call it before destroying what handlers use.
    void stop();
    /// Active transfers (approximate; for metrics).
    std::size_t active() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// A URL's scheme and host as libcurl reads it, the parser that will fetch it (Boost.URL 1.81
/// reads "http://127.0.0.1.example.com/" as host 127.0.0.1).
struct url_parts {
    url_parts() = default;  // not an aggregate: result<T, std::string> stays unambiguous
    std::string scheme;     // lower case, e.g. "https"
    std::string host;       // "[::1]" for IPv6 literals; may be empty
};
/// Parses `url`; any scheme is accepted. Fails with e.g. "not a valid URL (Bad scheme)".
boost::system::result<url_parts, std::string> parse_url(const std::string& url);

}  // namespace eventcast::aws

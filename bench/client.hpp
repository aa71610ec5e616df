// eventcast-bench client core: one io_context per worker thread, and a minimal client-side
// AppSync Events WebSocket connection over plain TCP. With ws_target::nats the same connection
// speaks the NATS client protocol inside WebSocket frames instead (nats-server's websocket
// listener): no subprotocol, binary frames, NATS parsed as one byte stream across frames.
//
// Receive path: each connection has one receive buffer (16 KiB by default, 1 KiB for idle
// connections) that async_read_some fills; every complete text frame goes to the listener as a
// string_view into it, and an incomplete tail moves to the front. One read() per wake-up, many
// frames per read when the server coalesces; no allocation per message once buffers have grown.
// Send path: frames are appended (masked) to a per-connection buffer and written with
// non-blocking write_some; what the kernel does not take waits for writability.
//
// Threading: a connection and its listener callbacks run only on its worker's thread. The
// objects must outlive the worker threads (stop the workers before destroying connections).
#pragma once

#include "histogram.hpp"
#include "wire.hpp"

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace eventcast::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// steady_clock (CLOCK_MONOTONIC) in nanoseconds: comparable across processes on one machine.
inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

class ws_conn;

/// One event loop on one thread, with the read buffer its connections share.
class worker {
public:
    explicit worker(std::size_t index);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    asio::io_context& ioc() { return ioc_; }
    std::size_t index() const { return index_; }
    void start();
    /// Stops the loop and joins the thread; idempotent.
    void stop();

    /// Initial receive buffer of each connection started on this worker (grows past a larger
    /// frame). Idle connections need little; busy ones get many frames per read.
    std::size_t read_buffer_bytes = 16 * 1024;

    /// Spin on poll() instead of sleeping in run(); set before start().
    bool busy_poll = false;
    /// With busy_poll: nanoseconds spent in polls that ran at least one handler.
    std::int64_t busy_ns() const { return busy_ns_.load(std::memory_order_relaxed); }

    /// Connection pacing: at most `max_connecting` TCP connects + upgrades in progress.
    void queue_connect(ws_conn* conn);
    void connect_finished();
    std::size_t max_connecting = 64;

    // Per-worker measurement state, touched only on this thread; merged after stop().
    latency_histogram latency;
    latency_histogram secondary;  // time to first chunk (chat)

private:
    std::size_t index_;
    asio::io_context ioc_{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
    std::thread thread_;
    std::atomic<std::int64_t> busy_ns_{0};
    std::deque<ws_conn*> pending_;
    std::size_t connecting_ = 0;
};

/// Where and how to connect.
struct ws_target {
    tcp::endpoint server;
    std::string host_header;  // "127.0.0.1:8080"
    std::string path = "/event/realtime";
    std::string api_key;
    /// NATS client protocol instead of AppSync: a plain upgrade (no subprotocol, no key), and
    /// server frames are NATS bytes handed to ws_listener::on_nats one protocol message each.
    bool nats = false;
};

/// Callbacks of a connection; all on the connection's worker thread.
class ws_listener {
public:
    virtual ~ws_listener() = default;
    /// The 101 arrived with the aws-appsync-event-ws subprotocol.
    virtual void on_open(ws_conn& conn) = 0;
    /// One complete text message. `payload` points into a buffer reused after the call.
    virtual void on_text(ws_conn& conn, std::string_view payload, std::int64_t recv_ns) = 0;
    /// NATS mode: one server protocol message (MSG: `payload` is the message payload; -ERR,
    /// INFO: the whole line). Server PINGs are answered by the connection and not passed on.
    /// `payload` points into a buffer reused after the call.
    virtual void on_nats(ws_conn& /*conn*/, nats_op /*op*/, std::string_view /*payload*/,
                         std::int64_t /*recv_ns*/) {}
    /// After each read's frames were handed over (a place to publish batched counters).
    virtual void on_read_done(ws_conn& /*conn*/) {}
    /// The connection failed or was closed; `why` is for humans. Called once.
    virtual void on_closed(ws_conn& conn, std::string_view why) = 0;
};

class ws_conn {
public:
    ws_conn(worker& owner, const ws_target& target, ws_listener& listener, std::size_t index);
    ws_conn(const ws_conn&) = delete;
    ws_conn& operator=(const ws_conn&) = delete;

    /// Binds to this local address before connecting (several 127.0.0.x sources lift the
    /// ~28k ephemeral-port limit of one source address).
    void set_source(asio::ip::address source) { source_ = source; }
    /// Thread-safe: queues the connect on the worker (paced by worker::max_connecting).
    void start();

    /// Worker thread only. Appends one masked text frame; flush() sends what was appended.
    void append_text(std::string_view payload) { append_frame(opcode::text, payload); }
    /// Appends one masked binary frame (NATS mode sends its protocol bytes this way).
    void append_binary(std::string_view payload) { append_frame(opcode::binary, payload); }
    void flush();
    void send_text(std::string_view payload) {
        append_text(payload);
        flush();
    }
    /// Closes the socket without a closing handshake; no callback follows.
    void shutdown();

    bool is_open() const { return state_ == state::open; }
    bool is_closed() const { return state_ == state::closed; }
    std::size_t index() const { return index_; }
    worker& owner() { return worker_; }
    /// Bytes appended but not yet taken by the kernel.
    std::size_t pending_bytes() const { return out_.size() - out_pos_; }

    /// Scratch space for building a message before append_text (reused, never shrinks).
    std::string scratch;
    /// Owned by the listener (worker thread only): NATS mode marks the connection's first PONG.
    bool ready = false;

private:
    friend class worker;
    enum class state : std::uint8_t { idle, connecting, handshaking, open, closed };

    void begin_connect();
    void on_connect(const boost::system::error_code& ec);
    void arm_read();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    /// Handles the upgrade answer and every complete frame in [data, data+size); returns the
    /// bytes consumed. Sets `need` to the bytes a frame needs when it does not fit.
    std::size_t consume(char* data, std::size_t size, std::int64_t now, std::size_t& need);
    void handle_frame(bool fin, std::uint8_t op, char* payload, std::size_t size, std::int64_t now);
    void append_frame(opcode op, std::string_view payload);
    /// NATS mode: the payload of one WebSocket frame, a piece of the NATS byte stream.
    void nats_data(const char* data, std::size_t size, std::int64_t now);
    /// Hands every complete NATS message in [data, data+size) over; returns the bytes used.
    std::size_t nats_consume(const char* data, std::size_t size, std::int64_t now);
    void fail(std::string_view why);
    std::uint32_t next_mask();

    worker& worker_;
    const ws_target& target_;
    ws_listener& listener_;
    std::size_t index_;
    tcp::socket socket_;
    std::optional<asio::ip::address> source_;
    std::vector<char> in_;  // [0, have_) received, not yet consumed (an incomplete frame)
    std::size_t have_ = 0;
    std::string out_;
    std::size_t out_pos_ = 0;
    std::string fragments_;
    std::string nats_in_;  // NATS mode: an incomplete protocol message carried to the next frame
    std::uint32_t mask_state_;
    std::uint8_t fragment_op_ = 0;
    state state_ = state::idle;
    bool write_waiting_ = false;
    bool reading_ = false;
    bool counted_connect_ = false;
};

/// One HTTP/1.1 request on a fresh connection (Connection: close); the callback gets the
/// status (0 on a transport error) and the body. Runs on `ioc`; allocates per request.
void http_request(asio::io_context& ioc, const tcp::endpoint& server, std::string request,
                  std::function<void(unsigned status, std::string body)> done);

/// One keep-alive HTTP/1.1 connection for a request at a time (HTTP-published fan-out): the
/// request's bytes in, the status and body of its answer (Content-Length framed) out. Status 0:
/// the connection failed, and further requests fail at once. Runs on `ioc`; keeps its buffers.
class http_keepalive : public std::enable_shared_from_this<http_keepalive> {
public:
    using callback = std::function<void(unsigned status, std::string_view body)>;
    explicit http_keepalive(asio::io_context& ioc) : socket_(ioc) {}
    /// Connects; `ready(true)` once connected.
    void connect(const tcp::endpoint& server, std::function<void(bool)> ready);
    /// Sends `request` (a whole HTTP/1.1 request); `done` gets its answer.
    void send(std::string_view request, callback done);
    bool busy() const noexcept { return busy_; }
    bool failed() const noexcept { return failed_; }

private:
    void read_more();
    bool try_complete();
    void fail();
    tcp::socket socket_;
    std::string out_;
    std::string in_;
    std::array<char, 16384> chunk_{};
    callback done_;
    bool busy_ = false;
    bool failed_ = false;
};

/// Resident set size of a process in bytes from /proc/<pid>/status (VmRSS); -1 if unreadable.
std::int64_t read_rss_bytes(int pid);

/// Raises RLIMIT_NOFILE's soft limit towards `wanted` (up to the hard limit); returns the
/// resulting soft limit.
std::uint64_t raise_fd_limit(std::uint64_t wanted);

}  // namespace eventcast::bench

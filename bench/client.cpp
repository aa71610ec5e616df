// eventcast-bench client core: worker threads, the WebSocket client connection, one-shot HTTP.
#include "client.hpp"

#include "wire.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <sys/resource.h>

namespace eventcast::bench {

namespace {

// Free space a read gets at least; the buffer grows (and stays grown) past a larger frame.
constexpr std::size_t min_read_space = 512;
// The upgrade answer must fit in this; an answer without "\r\n\r\n" by then is broken.
constexpr std::size_t max_response_head = 16 * 1024;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
using bind_address_no_port =
    asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>;

}  // namespace

// ---- worker -------------------------------------------------------------------------------

worker::worker(std::size_t index) : index_(index) {}

worker::~worker() {
    stop();
}

void worker::start() {
    guard_.emplace(ioc_.get_executor());
    if (!busy_poll) {
        thread_ = std::thread([this] { ioc_.run(); });
        return;
    }
    // Never sleeps in epoll_wait: no context switch per wake-up, at the price of a whole core.
    thread_ = std::thread([this] {
        while (!ioc_.stopped()) {
            const std::int64_t t0 = now_ns();
            if (ioc_.poll() > 0)
                busy_ns_.fetch_add(now_ns() - t0, std::memory_order_relaxed);
        }
    });
}

void worker::stop() {
    guard_.reset();
    ioc_.stop();
    if (thread_.joinable())
        thread_.join();
}

void worker::queue_connect(ws_conn* conn) {
    if (connecting_ < max_connecting) {
        ++connecting_;
        conn->begin_connect();
        return;
    }
    pending_.push_back(conn);
}

void worker::connect_finished() {
    if (connecting_ > 0)
        --connecting_;
    while (connecting_ < max_connecting && !pending_.empty()) {
        ws_conn* next = pending_.front();
        pending_.pop_front();
        ++connecting_;
        next->begin_connect();
    }
}

// ---- ws_conn ------------------------------------------------------------------------------

ws_conn::ws_conn(worker& owner, const ws_target& target, ws_listener& listener, std::size_t index)
    : worker_(owner),
      target_(target),
      listener_(listener),
      index_(index),
      socket_(owner.ioc()),
      in_(owner.read_buffer_bytes),
      mask_state_(static_cast<std::uint32_t>(index * 2654435761u) | 1u) {}

void ws_conn::start() {
    asio::post(worker_.ioc(), [this] { worker_.queue_connect(this); });
}

std::uint32_t ws_conn::next_mask() {
    // xorshift32: masks need not be secret here, only present (RFC 6455 §5.3).
    std::uint32_t x = mask_state_;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    mask_state_ = x;
    return x;
}

void ws_conn::begin_connect() {
    state_ = state::connecting;
    boost::system::error_code ec;
    socket_.open(tcp::v4(), ec);
    if (!ec && source_) {
        socket_.set_option(bind_address_no_port(true), ec);
        if (!ec)
            socket_.bind(tcp::endpoint(*source_, 0), ec);
    }
    if (ec)
        return fail("socket: " + ec.message());
    socket_.async_connect(target_.server,
                          [this](const boost::system::error_code& e) { on_connect(e); });
}

void ws_conn::on_connect(const boost::system::error_code& ec) {
    if (state_ == state::closed)
        return;
    if (ec)
        return fail("connect: " + ec.message());
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    state_ = state::handshaking;
    out_ += target_.nats ? plain_upgrade_request(target_.host_header, target_.path)
                         : upgrade_request(target_.host_header, target_.path, target_.api_key);
    flush();
    arm_read();
}

void ws_conn::arm_read() {
    if (state_ == state::closed || reading_)
        return;
    if (in_.size() - have_ < min_read_space)
        in_.resize(std::max(in_.size() * 2, have_ + min_read_space));
    reading_ = true;
    // Asio reads speculatively only after an edge; a short read leaves the next one waiting
    // for the next edge: one read() per wake-up, no epoll_ctl.
    socket_.async_read_some(
        asio::buffer(in_.data() + have_, in_.size() - have_),
        [this](const boost::system::error_code& ec, std::size_t n) { on_read(ec, n); });
}

void ws_conn::on_read(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (state_ == state::closed)
        return;
    if (ec)
        return fail(ec == asio::error::eof ? "closed by server (EOF)" : "read: " + ec.message());
    have_ += n;
    std::size_t need = 0;
    const std::size_t used = consume(in_.data(), have_, now_ns(), need);
    listener_.on_read_done(*this);
    if (state_ == state::closed)
        return;
    if (used > 0 && used < have_)
        std::memmove(in_.data(), in_.data() + used, have_ - used);
    have_ -= used;
    if (need > in_.size())
        in_.resize(need + min_read_space);
    arm_read();
}

std::size_t ws_conn::consume(char* data, std::size_t size, std::int64_t now, std::size_t& need) {
    std::size_t pos = 0;
    if (state_ == state::handshaking) {
        const std::string_view text(data, size);
        const std::size_t end = text.find("\r\n\r\n");
        if (end == std::string_view::npos) {
            if (size > max_response_head)
                fail("upgrade answer has no end of headers within 16 KiB");
            return 0;
        }
        const std::string_view head = text.substr(0, end + 2);
        if (head.substr(0, 12) != "HTTP/1.1 101") {
            const std::size_t line_end = head.find("\r\n");
            fail("upgrade refused: " + std::string(head.substr(0, line_end)));
            return size;
        }
        const std::string_view protocol = header_value(head, "sec-websocket-protocol");
        if (!target_.nats && protocol.find("aws-appsync-event-ws") == std::string_view::npos) {
            fail("upgrade answer selected subprotocol '" + std::string(protocol) +
                 "', not aws-appsync-event-ws");
            return size;
        }
        state_ = state::open;
        if (!counted_connect_) {
            counted_connect_ = true;
            worker_.connect_finished();
        }
        listener_.on_open(*this);
        if (state_ == state::closed)
            return size;
        pos = end + 4;
    }
    while (pos < size && state_ == state::open) {
        auto* bytes = reinterpret_cast<unsigned char*>(data + pos);
        const frame_header h = parse_frame_header(bytes, size - pos);
        if (h.state == frame_header::status::need_more) {
            need = 64;
            break;
        }
        if (h.state == frame_header::status::bad) {
            fail("bad frame header from server");
            return size;
        }
        const std::uint64_t total = h.header_len + h.payload_len;
        if (total > size - pos) {
            need = static_cast<std::size_t>(total);
            break;
        }
        char* payload = data + pos + h.header_len;
        const auto len = static_cast<std::size_t>(h.payload_len);
        if (h.masked)
            apply_mask(payload, len, h.mask);
        handle_frame(h.fin, static_cast<std::uint8_t>(h.op), payload, len, now);
        pos += static_cast<std::size_t>(total);
    }
    return pos;
}

void ws_conn::handle_frame(bool fin, std::uint8_t op, char* payload, std::size_t size,
                           std::int64_t now) {
    if (target_.nats && static_cast<opcode>(op) <= opcode::binary) {
        // nats-server sends binary frames; a NATS message may span frames or share one, so
        // frame and fragment boundaries do not matter: the payloads are one byte stream.
        return nats_data(payload, size, now);
    }
    switch (static_cast<opcode>(op)) {
        case opcode::text:
        case opcode::binary:
            if (!fin) {
                fragment_op_ = op;
                fragments_.assign(payload, size);
                return;
            }
            if (static_cast<opcode>(op) == opcode::binary)
                return fail("unexpected binary message from server");
            listener_.on_text(*this, std::string_view(payload, size), now);
            return;
        case opcode::continuation:
            fragments_.append(payload, size);
            if (!fin)
                return;
            if (static_cast<opcode>(fragment_op_) == opcode::text)
                listener_.on_text(*this, fragments_, now);
            fragments_.clear();
            return;
        case opcode::ping:
            append_client_frame(out_, opcode::pong, std::string_view(payload, size), next_mask());
            flush();
            return;
        case opcode::pong: return;
        case opcode::close: {
            unsigned code = size >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                            static_cast<unsigned char>(payload[1])
                                      : 1005;
            std::string why = "closed by server with code " + std::to_string(code);
            if (size > 2)
                why += " (" + std::string(payload + 2, size - 2) + ")";
            return fail(why);
        }
    }
}

void ws_conn::nats_data(const char* data, std::size_t size, std::int64_t now) {
    if (nats_in_.empty()) {
        // Usual case: whole messages, parsed in place in the receive buffer.
        const std::size_t used = nats_consume(data, size, now);
        if (state_ == state::open && used < size)
            nats_in_.assign(data + used, size - used);
        return;
    }
    nats_in_.append(data, size);  // capacity is kept: no allocation once grown
    const std::size_t used = nats_consume(nats_in_.data(), nats_in_.size(), now);
    if (state_ == state::open)
        nats_in_.erase(0, used);
}

std::size_t ws_conn::nats_consume(const char* data, std::size_t size, std::int64_t now) {
    std::size_t pos = 0;
    while (pos < size && state_ == state::open) {
        nats_message m;
        std::size_t used = 0;
        const auto status = parse_nats_message(data + pos, size - pos, m, used);
        if (status == nats_message::status::need_more)
            break;
        if (status == nats_message::status::bad) {
            const std::string_view rest(data + pos, std::min<std::size_t>(size - pos, 80));
            fail("bad NATS protocol message from server: '" + std::string(rest) + "'");
            return size;
        }
        pos += used;
        if (m.op == nats_op::ping) {
            append_binary("PONG\r\n");
            flush();
            continue;
        }
        listener_.on_nats(*this, m.op, m.payload, now);
    }
    return pos;
}

void ws_conn::append_frame(opcode op, std::string_view payload) {
    if (out_pos_ > 0 && out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    } else if (out_pos_ > 64 * 1024 && out_pos_ > out_.size() / 2) {
        out_.erase(0, out_pos_);
        out_pos_ = 0;
    }
    append_client_frame(out_, op, payload, next_mask());
}

void ws_conn::flush() {
    if (write_waiting_ || state_ == state::closed || state_ == state::idle ||
        state_ == state::connecting)
        return;
    while (out_pos_ < out_.size()) {
        boost::system::error_code ec;
        const std::size_t n =
            socket_.write_some(asio::buffer(out_.data() + out_pos_, out_.size() - out_pos_), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            write_waiting_ = true;
            socket_.async_wait(tcp::socket::wait_write, [this](const boost::system::error_code& e) {
                write_waiting_ = false;
                if (state_ == state::closed)
                    return;
                if (e)
                    return fail("wait for write: " + e.message());
                flush();
            });
            return;
        }
        if (ec)
            return fail("write: " + ec.message());
        out_pos_ += n;
    }
    out_.clear();
    out_pos_ = 0;
}

void ws_conn::fail(std::string_view why) {
    if (state_ == state::closed)
        return;
    const bool was_connecting = !counted_connect_;
    state_ = state::closed;
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (was_connecting) {
        counted_connect_ = true;
        worker_.connect_finished();
    }
    listener_.on_closed(*this, why);
}

void ws_conn::shutdown() {
    if (state_ == state::closed)
        return;
    state_ = state::closed;
    boost::system::error_code ignored;
    socket_.close(ignored);
}

// ---- one-shot HTTP ------------------------------------------------------------------------

namespace {

struct http_call : std::enable_shared_from_this<http_call> {
    http_call(asio::io_context& ioc, std::string req, std::function<void(unsigned, std::string)> cb)
        : socket(ioc), request(std::move(req)), done(std::move(cb)) {}

    void start(const tcp::endpoint& server) {
        socket.async_connect(
            server, [self = shared_from_this()](const boost::system::error_code& ec) {
                if (ec)
                    return self->finish(0);
                boost::system::error_code ignored;
                self->socket.set_option(tcp::no_delay(true), ignored);
                asio::async_write(self->socket, asio::buffer(self->request),
                                  [self](const boost::system::error_code& wec, std::size_t) {
                                      if (wec)
                                          return self->finish(0);
                                      self->read_more();
                                  });
            });
    }

    void read_more() {
        socket.async_read_some(
            asio::buffer(chunk),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                self->response.append(self->chunk.data(), n);
                if (ec)
                    return self->parse();  // Connection: close, so EOF ends the answer
                if (self->complete())
                    return self->parse();
                self->read_more();
            });
    }

    // With Content-Length the answer may end before the server closes.
    bool complete() const {
        const std::size_t end = response.find("\r\n\r\n");
        if (end == std::string::npos)
            return false;
        const std::string_view head(response.data(), end + 2);
        const std::string_view len = header_value(head, "content-length");
        if (len.empty())
            return false;
        std::size_t n = 0;
        std::from_chars(len.data(), len.data() + len.size(), n);
        return response.size() >= end + 4 + n;
    }

    void parse() {
        unsigned status = 0;
        if (response.size() > 12 && response.compare(0, 5, "HTTP/") == 0)
            std::from_chars(response.data() + 9, response.data() + 12, status);
        const std::size_t end = response.find("\r\n\r\n");
        std::string body = end == std::string::npos ? std::string() : response.substr(end + 4);
        finish(status, std::move(body));
    }

    void finish(unsigned status, std::string body = {}) {
        boost::system::error_code ignored;
        socket.close(ignored);
        if (done) {
            auto cb = std::move(done);
            done = nullptr;
            cb(status, std::move(body));
        }
    }

    tcp::socket socket;
    std::string request;
    std::string response;
    std::array<char, 4096> chunk{};
    std::function<void(unsigned, std::string)> done;
};

}  // namespace

void http_request(asio::io_context& ioc, const tcp::endpoint& server, std::string request,
                  std::function<void(unsigned status, std::string body)> done) {
    std::make_shared<http_call>(ioc, std::move(request), std::move(done))->start(server);
}

// ---- keep-alive HTTP ---------------------------------------------------------------------

void http_keepalive::connect(const tcp::endpoint& server, std::function<void(bool)> ready) {
    socket_.async_connect(server, [self = shared_from_this(),
                                   ready = std::move(ready)](const boost::system::error_code& ec) {
        if (ec) {
            self->failed_ = true;
            return ready(false);
        }
        boost::system::error_code ignored;
        self->socket_.set_option(tcp::no_delay(true), ignored);
        ready(true);
    });
}

void http_keepalive::send(std::string_view request, callback done) {
    if (failed_ || busy_)
        return done(0, {});
    busy_ = true;
    done_ = std::move(done);
    out_.assign(request);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
            if (ec)
                return self->fail();
            self->read_more();
        });
}

void http_keepalive::read_more() {
    if (try_complete())
        return;
    socket_.async_read_some(
        asio::buffer(chunk_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            if (ec)
                return self->fail();
            self->in_.append(self->chunk_.data(), n);
            self->read_more();
        });
}

// A whole answer at the front of in_: hands it over and keeps what follows.
bool http_keepalive::try_complete() {
    const std::size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos)
        return false;
    const std::string_view head(in_.data(), end + 2);
    const std::string_view len = header_value(head, "content-length");
    std::size_t n = 0;
    std::from_chars(len.data(), len.data() + len.size(), n);
    if (in_.size() < end + 4 + n)
        return false;
    unsigned status = 0;
    if (in_.size() > 12 && in_.compare(0, 5, "HTTP/") == 0)
        std::from_chars(in_.data() + 9, in_.data() + 12, status);
    const std::string body = in_.substr(end + 4, n);
    in_.erase(0, end + 4 + n);
    busy_ = false;
    auto cb = std::move(done_);
    done_ = nullptr;
    cb(status, body);
    return true;
}

void http_keepalive::fail() {
    failed_ = true;
    busy_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (done_) {
        auto cb = std::move(done_);
        done_ = nullptr;
        cb(0, {});
    }
}

std::int64_t read_rss_bytes(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            std::int64_t kb = 0;
            std::size_t i = 6;
            while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
                ++i;
            std::from_chars(line.data() + i, line.data() + line.size(), kb);
            return kb * 1024;
        }
    }
    return -1;
}

std::uint64_t raise_fd_limit(std::uint64_t wanted) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 0;
    if (lim.rlim_cur >= wanted)
        return lim.rlim_cur;
    rlimit raised = lim;
    raised.rlim_cur = std::min<rlim_t>(wanted, lim.rlim_max);
    if (wanted > lim.rlim_max) {
        raised.rlim_max = wanted;  // root with CAP_SYS_RESOURCE may raise the hard limit too
        raised.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return wanted;
        raised.rlim_max = lim.rlim_max;
        raised.rlim_cur = lim.rlim_max;
    }
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0)
        return lim.rlim_cur;
    return raised.rlim_cur;
}

}  // namespace eventcast::bench

// eventcast-bench fake-openai: one thread, one session per request, Connection: close.
#include "fake_openai.hpp"

#include "client.hpp"
#include "wire.hpp"

#include <boost/asio.hpp>

#include <charconv>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

namespace eventcast::bench {

namespace {

// A request head or body past this is refused: eventcast sends a few hundred bytes.
constexpr std::size_t max_request_bytes = 1024 * 1024;

class sse_session : public std::enable_shared_from_this<sse_session> {
public:
    sse_session(tcp::socket socket, const fake_openai_options& opt)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), opt_(opt) {}

    void start() { read_more(); }

private:
    void read_more() {
        socket_.async_read_some(
            asio::buffer(chunk_),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                if (ec)
                    return;
                self->request_.append(self->chunk_.data(), n);
                if (self->request_.size() > max_request_bytes)
                    return self->answer_plain("413 Payload Too Large");
                self->on_request_bytes();
            });
    }

    void on_request_bytes() {
        const std::size_t end = request_.find("\r\n\r\n");
        if (end == std::string::npos)
            return read_more();
        const std::string_view head(request_.data(), end + 2);
        std::size_t length = 0;
        const std::string_view len = header_value(head, "content-length");
        std::from_chars(len.data(), len.data() + len.size(), length);
        if (request_.size() < end + 4 + length)
            return read_more();
        const bool post = head.rfind("POST ", 0) == 0;
        const std::size_t path_end = head.find(' ', 5);
        const std::string_view path =
            head.substr(5, path_end == std::string_view::npos ? 0 : path_end - 5);
        if (!post || path.find("/chat/completions") == std::string_view::npos)
            return answer_plain("404 Not Found");
        queue(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Connection: close\r\n\r\n");
        schedule(opt_.first_delay_ms);
    }

    void answer_plain(const char* status) {
        queue(std::string("HTTP/1.1 ") + status +
              "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        closing_ = true;
    }

    void schedule(double ms) {
        if (ms <= 0)
            return send_chunk();
        timer_.expires_after(std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000)));
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec)
                self->send_chunk();
        });
    }

    void send_chunk() {
        if (next_ < opt_.chunks) {
            std::string content = "~T";
            append_number(content, now_ns());
            content += "~K";
            append_number(content, static_cast<std::int64_t>(next_));
            content += "~N";
            append_number(content, static_cast<std::int64_t>(opt_.chunks));
            content += "~";
            static constexpr std::string_view filler = " lorem ipsum dolor sit amet";
            while (content.size() < opt_.chunk_bytes)
                content += filler[content.size() % filler.size()];
            ++next_;
            queue(
                R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"fake","choices":[{"index":0,"delta":{"content":")" +
                content + R"("},"finish_reason":null}]})" + "\n\n");
            return schedule(opt_.interval_ms);
        }
        queue(
            R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"fake","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
            "\n\n"
            R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"fake","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":)" +
            std::to_string(opt_.chunks) + R"(,"total_tokens":)" + std::to_string(opt_.chunks + 8) +
            "}}\n\ndata: [DONE]\n\n");
        closing_ = true;
    }

    void queue(std::string bytes) {
        outbox_.push_back(std::move(bytes));
        if (!writing_)
            write_next();
    }

    void write_next() {
        if (outbox_.empty()) {
            if (closing_) {
                boost::system::error_code ignored;
                socket_.shutdown(tcp::socket::shutdown_send, ignored);
                socket_.close(ignored);
                timer_.cancel();
            }
            return;
        }
        writing_ = true;
        asio::async_write(
            socket_, asio::buffer(outbox_.front()),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                self->writing_ = false;
                if (ec) {
                    self->timer_.cancel();
                    return;
                }
                self->outbox_.pop_front();
                self->write_next();
            });
    }

    tcp::socket socket_;
    asio::steady_timer timer_;
    const fake_openai_options& opt_;
    std::array<char, 4096> chunk_{};
    std::string request_;
    std::deque<std::string> outbox_;
    std::size_t next_ = 0;
    bool writing_ = false;
    bool closing_ = false;
};

void accept_loop(tcp::acceptor& acceptor, const fake_openai_options& opt) {
    acceptor.async_accept(
        [&acceptor, &opt](const boost::system::error_code& ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted)
                return;
            if (!ec) {
                boost::system::error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                std::make_shared<sse_session>(std::move(socket), opt)->start();
            }
            accept_loop(acceptor, opt);
        });
}

}  // namespace

int run_fake_openai(const fake_openai_options& opt) {
    asio::io_context ioc{1};
    tcp::acceptor acceptor(ioc);
    const tcp::endpoint ep(asio::ip::make_address(opt.host), opt.port);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    const auto port = acceptor.local_endpoint().port();
    if (!opt.port_file.empty()) {
        const std::string tmp = opt.port_file + ".tmp";
        std::ofstream(tmp) << port << "\n";
        std::filesystem::rename(tmp, opt.port_file);
    }
    std::cout << "fake-openai listening on http://" << opt.host << ":" << port << " port " << port
              << std::endl;
    accept_loop(acceptor, opt);
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) { ioc.stop(); });
    asio::steady_timer limit(
        ioc, std::chrono::milliseconds(static_cast<std::int64_t>(opt.max_seconds * 1000)));
    limit.async_wait([&](const boost::system::error_code& ec) {
        if (!ec)
            ioc.stop();
    });
    ioc.run();
    return 0;
}

}  // namespace eventcast::bench

// Integration harness implementation: fork/exec of the server, Beast clients with deadlines.
#include "harness.hpp"

#include <boost/beast/core/detail/base64.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace eventcast::testing {

std::string eventcast_binary() {
    const char* bin = std::getenv("EVENTCAST_BIN");
    if (!bin)
        throw std::runtime_error("EVENTCAST_BIN is not set");
    return bin;
}

namespace {
// EVENTCAST_TEST_THREADS picks the server's I/O threads (default 2): with one, connections run
// without strands (net/server.cpp), so ctest runs the whole suite both ways.
std::string io_threads() {
    const char* t = std::getenv("EVENTCAST_TEST_THREADS");
    return t && *t ? t : "2";
}
}  // namespace

server_process::server_process(std::vector<std::string> extra_args, std::string api_key,
                               std::size_t soft_fd_limit, std::string log_to)
    : api_key_(std::move(api_key)) {
    char tmpl[] = "/tmp/eventcast-it-XXXXXX";
    if (!mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    cert_ = dir_ + "/cert.pem";
    const std::string port_file = dir_ + "/port";
    std::vector<std::string> args = {eventcast_binary(),
                                     "serve",
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--port-file",
                                     port_file,
                                     "--tls-self-signed-out",
                                     cert_,
                                     "--threads",
                                     io_threads()};
    if (log_to.empty()) {
        args.push_back("--log-level");
        args.push_back("warn");
    }
    if (!api_key_.empty()) {
        args.push_back("--api-key");
        args.push_back(api_key_);
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid_ = fork();
    if (pid_ == 0) {
        if (soft_fd_limit != 0) {
            rlimit lim{};
            getrlimit(RLIMIT_NOFILE, &lim);
            lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, soft_fd_limit);
            setrlimit(RLIMIT_NOFILE, &lim);
        }
        if (!log_to.empty()) {
            const int fd = ::open(log_to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0)
                dup2(fd, 2);
        }
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    const bool up =
        eventually([&] { return std::filesystem::exists(port_file) || !running(); }, 30s);
    if (!up || !std::filesystem::exists(port_file))
        throw std::runtime_error("eventcast did not start (see its stderr above)");
    std::ifstream(port_file) >> port_;
}

bool server_process::running() {
    if (pid_ <= 0)
        return false;
    int status = 0;
    const int r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        pid_ = -1;
        return false;
    }
    return true;
}

void server_process::signal(int sig) {
    if (pid_ > 0)
        kill(pid_, sig);
}

int server_process::terminate(std::chrono::milliseconds timeout) {
    if (pid_ <= 0)
        return -1;
    kill(pid_, SIGTERM);
    return wait_exit(timeout);
}

int server_process::wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0)
        return -1;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        std::this_thread::sleep_for(10ms);
    }
    return -1;
}

server_process::~server_process() {
    if (pid_ > 0) {
        kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

http_result http_request(std::uint16_t port, http::verb verb, const std::string& target,
                         const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         bool tls) {
    asio::io_context ioc;
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers)
        req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    if (tls) {
        asio::ssl::context ctx(asio::ssl::context::tls_client);
        ctx.set_verify_mode(asio::ssl::verify_none);
        beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
        beast::get_lowest_layer(s).connect(ep);
        s.handshake(asio::ssl::stream_base::client);
        http::write(s, req);
        http::read(s, buf, res);
    } else {
        beast::tcp_stream s(ioc);
        s.connect(ep);
        // The server may answer (413) before the body is sent; read its answer anyway.
        beast::error_code ec;
        http::write(s, req, ec);
        http::read(s, buf, res);
    }
    http_result out;
    out.status = res.result_int();
    out.body = res.body();
    for (const auto& f : res)
        out.headers.insert(f.name_string(), f.value());
    return out;
}

std::string header_subprotocol(const std::string& api_key) {
    json::object o;
    o["host"] = "127.0.0.1";
    o["x-api-key"] = api_key;
    const auto text = json::serialize(o);
    std::string b64(beast::detail::base64::encoded_size(text.size()), '\0');
    b64.resize(beast::detail::base64::encode(b64.data(), text.data(), text.size()));
    for (auto& c : b64) {
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
    }
    while (!b64.empty() && b64.back() == '=')
        b64.pop_back();
    return "header-" + b64;
}

ws_client::ws_client(std::uint16_t port, const std::string& api_key, options opt)
    : api_key_(api_key) {
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    auto protocols = opt.subprotocols;
    if (protocols.empty() && !opt.offer_none)
        protocols = {"aws-appsync-event-ws", header_subprotocol(api_key)};
    std::string offered;
    for (const auto& p : protocols)
        offered += (offered.empty() ? "" : ",") + p;
    auto decorate = [offered, opt](websocket::request_type& req) {
        if (!offered.empty())
            req.set(http::field::sec_websocket_protocol, offered);
        for (const auto& [k, v] : opt.headers)
            req.set(k, v);
    };
    websocket::response_type res;
    if (opt.tls) {
        ssl_.set_verify_mode(asio::ssl::verify_none);
        tls_.emplace(ioc_, ssl_);
        beast::get_lowest_layer(*tls_).connect(ep);
        tls_->next_layer().handshake(asio::ssl::stream_base::client);
        tls_->set_option(websocket::stream_base::decorator(decorate));
        tls_->read_message_max(64 * 1024 * 1024);
        tls_->handshake(res, "localhost:" + std::to_string(port), opt.target);
    } else {
        plain_.emplace(ioc_);
        beast::get_lowest_layer(*plain_).connect(ep);
        plain_->set_option(websocket::stream_base::decorator(decorate));
        plain_->read_message_max(64 * 1024 * 1024);
        plain_->handshake(res, "127.0.0.1:" + std::to_string(port), opt.target);
    }
    selected_ = std::string(res[http::field::sec_websocket_protocol]);
}

void ws_client::send(const std::string& text) {
    with_ws([&](auto& ws) {
        ws.text(true);
        ws.write(asio::buffer(text));
    });
}

void ws_client::send_binary(const std::string& bytes) {
    with_ws([&](auto& ws) {
        ws.binary(true);
        ws.write(asio::buffer(bytes));
        ws.text(true);
    });
}

std::optional<std::string> ws_client::read(std::chrono::milliseconds timeout) {
    if (closed_)
        return std::nullopt;
    // A read that timed out stays pending (cancelling would break the stream); the next call
    // keeps waiting for it.
    if (!pending_) {
        pending_ = true;
        done_ = false;
        with_ws([&](auto& ws) {
            ws.async_read(buffer_, [this](beast::error_code e, std::size_t) {
                ec_ = e;
                done_ = true;
            });
        });
    }
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done_)
        return std::nullopt;
    pending_ = false;
    if (ec_) {
        closed_ = true;
        close_code_ = with_ws([](auto& ws) { return static_cast<int>(ws.reason().code); });
        return std::nullopt;
    }
    std::string out = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    return out;
}

std::optional<json::object> ws_client::read_json(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return std::nullopt;
        auto text = read(left);
        if (!text)
            return std::nullopt;
        auto v = json::parse(*text);
        if (v.as_object().at("type").as_string() == "ka")
            continue;
        return v.as_object();
    }
}

std::optional<json::object> ws_client::expect_type(const std::string& type,
                                                   std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return std::nullopt;
        auto frame = read_json(left);
        if (!frame)
            return std::nullopt;
        if (frame->at("type").as_string() == type)
            return frame;
    }
}

bool ws_client::wait_closed(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < end)
        read(std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now()));
    return closed_;
}

std::string ws_client::auth_json() const {
    json::object o;
    o["host"] = "127.0.0.1";
    o["x-api-key"] = api_key_;
    return json::serialize(o);
}

void ws_client::init() {
    send(R"({"type":"connection_init"})");
}

void ws_client::subscribe(const std::string& id, const std::string& channel) {
    json::object o;
    o["type"] = "subscribe";
    o["id"] = id;
    o["channel"] = channel;
    o["authorization"] = json::parse(auth_json());
    send(json::serialize(o));
}

void ws_client::publish(const std::string& id, const std::string& channel,
                        const std::vector<std::string>& events) {
    json::object o;
    o["type"] = "publish";
    o["id"] = id;
    o["channel"] = channel;
    json::array arr;
    for (const auto& e : events)
        arr.emplace_back(e);
    o["events"] = std::move(arr);
    o["authorization"] = json::parse(auth_json());
    send(json::serialize(o));
}

std::string error_type(const json::object& frame) {
    const auto* errors = frame.if_contains("errors");
    if (!errors || !errors->is_array() || errors->as_array().empty())
        return "";
    const auto* t = errors->as_array()[0].as_object().if_contains("errorType");
    return t && t->is_string() ? std::string(t->as_string()) : "";
}

long metric_value(std::uint16_t port, const std::string& name) {
    const auto body = http_request(port, http::verb::get, "/metrics", "", {}).body;
    const auto at = body.find("\n" + name + " ");
    if (at == std::string::npos)
        return -1;
    return std::stol(body.substr(at + name.size() + 2));
}

unsigned readyz(std::uint16_t port) {
    try {
        return http_request(port, http::verb::get, "/readyz", "", {}).status;
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace eventcast::testing

// libFuzzer target: whole byte streams through the real HTTP session code (net/http_session.cpp:
// TLS/plain detection, Beast's parser with our limits, the framing refusals, routing, the
// WebSocket upgrade and what ws_session then reads), not only the body parsers. One server (the
// real net::server with an event_api, authorizer and broker) runs on 127.0.0.1 in this process
// for the whole run; each input is written to a fresh connection, the sending side is shut, and
// the answer is read to the end. A crash, an ASan/UBSan report or a hang (libFuzzer's -timeout)
// anywhere in the server is the finding. Every 64 inputs GET /healthz must still answer 200.
#include "api/event_api.hpp"
#include "auth/authorizer.hpp"
#include "fuzz_check.hpp"
#include "net/server.hpp"
#include "net/tls.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <thread>

namespace {

using namespace eventcast;
namespace asio = boost::asio;
using asio::ip::tcp;

struct fuzz_server {
    core::config cfg;
    pubsub::broker broker;
    core::stats stats;
    std::unique_ptr<auth::authorizer> authz;
    std::unique_ptr<api::event_api> api;
    net::tls_setup tls;
    std::unique_ptr<net::server> srv;
    std::uint16_t port = 0;

    fuzz_server() {
        cfg.host = "127.0.0.1";
        cfg.port = 0;
        cfg.threads = 1;
        cfg.api_keys = {{"fuzz-key", std::nullopt}};
        cfg.namespaces = {"default", "BedrockChat"};
        cfg.lim.handshake_timeout = std::chrono::milliseconds(2000);
        cfg.lim.max_body_bytes = 64 * 1024;
        authz = *auth::authorizer::create(cfg, nullptr);
        api = std::make_unique<api::event_api>(cfg, broker, stats, *authz);
        net::make_tls(cfg, tls);
        srv = std::make_unique<net::server>(cfg, *api, nullptr, tls);
        port = srv->port();
        std::thread([s = srv.get()] { s->run(); }).detach();  // lives as long as the process
    }
};

fuzz_server& server() {
    static auto* s = new fuzz_server;  // never destroyed: the run ends with the process
    return *s;
}

// Writes `bytes` on a new connection, shuts the sending side, reads until the server closes.
std::string round_trip(std::uint16_t port, const std::string& bytes) {
    asio::io_context ioc;
    tcp::socket sock(ioc);
    boost::system::error_code ec;
    sock.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    fuzz::check(!ec, "the server stopped accepting connections");
    timeval tv{3, 0};  // a server that never closes is a hang; libFuzzer's -timeout reports it
    setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    asio::write(sock, asio::buffer(bytes), ec);
    sock.shutdown(tcp::socket::shutdown_send, ec);
    std::string answer;
    char buf[4096];
    for (;;) {
        const auto n = sock.read_some(asio::buffer(buf), ec);
        answer.append(buf, n);
        if (ec || answer.size() > (1 << 20))
            break;
    }
    return answer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& s = server();
    static unsigned runs = 0;
    round_trip(s.port, std::string(reinterpret_cast<const char*>(data), size));
    if (++runs % 64 == 0) {
        const auto health =
            round_trip(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        fuzz::check(health.rfind("HTTP/1.1 200", 0) == 0, "GET /healthz stopped answering 200");
    }
    return 0;
}

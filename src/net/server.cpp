// Listener and lifecycle. Shutdown: stop accepting, tell every session to close (WebSocket:
// 1001 going away), let run() return as their work drains; ioc.stop() only after a grace period.
#include "net/server.hpp"

#include "core/log.hpp"
#include "net/http_routes.hpp"
#include "net/http_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <csignal>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace eventcast::net {

namespace asio = boost::asio;

server::server(const core::config& cfg, api::event_api& api, chat::chat_service* chat,
               tls_setup& tls, cluster_parts cluster)
    : cfg_(cfg),
      ioc_(static_cast<int>(cfg.threads)),
      ctx_{api,
           chat,
           cfg,
           tls.context,
           registry_,
           {},
           auth::connection_counter(cfg.auth.max_connections_per_ip)},
      acceptor_(ioc_),
      signals_(ioc_, SIGINT, SIGTERM),
      reload_signals_(ioc_, SIGHUP),
      last_resort_(ioc_),
      ticker_(ioc_) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(cfg.host, ec);
    if (ec)
        throw std::runtime_error("--host " + cfg.host + ": not an IP address (" + ec.message() +
                                 ")");
    const asio::ip::tcp::endpoint ep(address, cfg.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep, ec);
    if (ec)
        throw std::runtime_error("cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                                 ": " + ec.message());
    acceptor_.listen(asio::socket_base::max_listen_connections);
    ctx_.cluster = cluster.status;
    ctx_.chat_directory = chat ? cluster.chat : nullptr;
    routes_ = make_routes(ctx_);
    ctx_.routes = routes_.get();
}

void server::do_accept() {
    // A connection's handlers run on its strand, so with several I/O threads they never run
    // concurrently. With one I/O thread they cannot anyway, and the plain executor makes the
    // broker's hop onto a subscriber (asio::dispatch) a direct call instead of a strand
    // enqueue per delivery (docs/BENCHMARKS.md, "One I/O thread without strands").
    const auto executor = cfg_.threads == 1 ? asio::any_io_executor(ioc_.get_executor())
                                            : asio::any_io_executor(asio::make_strand(ioc_));
    acceptor_.async_accept(executor, [this](boost::system::error_code ec,
                                            asio::ip::tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open())
            return;
        if (ec) {
            // EMFILE and friends: keep the listener alive; the next accept may succeed.
            log::warn("net accept failed: {}", ec.message());
        } else {
            socket.set_option(asio::ip::tcp::no_delay(true), ec);
            // Find dead peers of idle connections (no per-connection timer does it for us).
            socket.set_option(asio::socket_base::keep_alive(true), ec);
            const int idle_s = 60, interval_s = 10, count = 6;
            ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
            ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval_s,
                         sizeof interval_s);
            ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
            start_connection(std::move(socket), ctx_);
        }
        do_accept();
    });
}

void server::arm_ticker() {
    const auto period = std::min(cfg_.lim.keepalive_interval, cfg_.lim.connection_lifetime);
    ticker_.expires_after(period);
    ticker_.async_wait([this](boost::system::error_code ec) {
        if (ec || ctx_.stopping)
            return;
        const auto now = std::chrono::steady_clock::now();
        registry_.tick_all(now);
        ctx_.api.history().expire(now);  // idle channels give back their expired events
        arm_ticker();
    });
}

void server::begin_shutdown() {
    if (ctx_.stopping.exchange(true))
        return;
    ticker_.cancel();
    log::info("shutting down: closing {} connections", registry_.size());
    boost::system::error_code ec;
    acceptor_.close(ec);
    signals_.cancel();
    reload_signals_.cancel();
    registry_.shutdown_all();
    wait_drained(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

void server::wait_drained(std::chrono::steady_clock::time_point deadline) {
    // Sessions leave the registry when destroyed, i.e. after their close handshake. Connections
    // still in TLS detection are not registered and would hold run() for their handshake
    // timeout, so stop as soon as every registered session is gone.
    if (registry_.size() == 0)
        return ioc_.stop();
    if (std::chrono::steady_clock::now() >= deadline) {
        log::warn("shutdown grace period over; stopping with {} connections open",
                  registry_.size());
        return ioc_.stop();
    }
    last_resort_.expires_after(std::chrono::milliseconds(20));
    last_resort_.async_wait([this, deadline](boost::system::error_code e) {
        if (!e)
            wait_drained(deadline);
    });
}

void server::arm_reload() {
    reload_signals_.async_wait([this](boost::system::error_code ec, int) {
        if (ec)
            return;  // cancelled: shutting down
        log::info("received SIGHUP: reloading");
        if (!reload_)
            log::warn("reload: nothing to reload in this process");
        else
            try {
                reload_();
            } catch (const std::exception& e) {
                log::error("reload failed, the running configuration is kept: {}", e.what());
            }
        arm_reload();
    });
}

void server::stop() {
    asio::post(ioc_, [this] { begin_shutdown(); });
}

int server::run() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
        if (!ec) {
            log::info("received signal {}", sig);
            begin_shutdown();
        }
    });
    arm_reload();
    do_accept();
    arm_ticker();
    std::vector<std::thread> threads;
    threads.reserve(cfg_.threads - 1);
    for (unsigned i = 1; i < cfg_.threads; ++i)
        threads.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& t : threads)
        t.join();
    log::info("stopped");
    return 0;
}

}  // namespace eventcast::net

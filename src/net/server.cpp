// Listeners and lifecycle. Shutdown is a drain (begin_shutdown): /readyz 503 at once, serve on
// for --drain-delay-ms, stop accepting, tell the sessions to close (WebSocket: 1001 going away)
// spread over --drain-spread-ms, let run() return as their work drains; ioc.stop() at the
// latest --shutdown-timeout-ms after the signal.
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
      admin_acceptor_(ioc_),
      signals_(ioc_, SIGINT, SIGTERM),
      reload_signals_(ioc_, SIGHUP),
      last_resort_(ioc_),
      drain_(ioc_),
      ticker_(ioc_) {
    auto listen = [](asio::ip::tcp::acceptor& acceptor, const std::string& host, std::uint16_t port,
                     const char* what) {
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(host, ec);
        if (ec)
            throw std::runtime_error(std::string(what) + " " + host + ": not an IP address (" +
                                     ec.message() + ")");
        const asio::ip::tcp::endpoint ep(address, port);
        acceptor.open(ep.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(ep, ec);
        if (ec)
            throw std::runtime_error(std::string("cannot listen on ") + host + ":" +
                                     std::to_string(port) + " (" + what + "): " + ec.message());
        acceptor.listen(asio::socket_base::max_listen_connections);
    };
    listen(acceptor_, cfg.host, cfg.port, "--host");
    ctx_.cluster = cluster.status;
    ctx_.chat_directory = chat ? cluster.chat : nullptr;
    routes_ = make_routes(ctx_);
    ctx_.routes = routes_.get();
    client_role_ = {routes_.get(), true};
    if (!cfg.admin_listen.empty()) {
        std::string host;
        std::uint16_t port = 0;
        if (!core::split_host_port(cfg.admin_listen, host, port))
            throw std::runtime_error("--admin-listen " + cfg.admin_listen + ": not HOST:PORT");
        listen(admin_acceptor_, host, port, "--admin-listen");
        admin_routes_ = make_admin_routes(ctx_);
        ctx_.admin_routes = admin_routes_.get();
        admin_role_ = {admin_routes_.get(), false};
    }
}

std::uint16_t server::admin_port() const {
    boost::system::error_code ec;
    return admin_acceptor_.is_open() ? admin_acceptor_.local_endpoint(ec).port() : 0;
}

void server::do_accept(asio::ip::tcp::acceptor& acceptor, const port_role& role) {
    // A connection's handlers run on its strand, so with several I/O threads they never run
    // concurrently. With one I/O thread they cannot anyway, and the plain executor makes the
    // broker's hop onto a subscriber (asio::dispatch) a direct call instead of a strand
    // enqueue per delivery (docs/BENCHMARKS.md, "One I/O thread without strands").
    const auto executor = cfg_.threads == 1 ? asio::any_io_executor(ioc_.get_executor())
                                            : asio::any_io_executor(asio::make_strand(ioc_));
    acceptor.async_accept(executor, [this, &acceptor, &role](boost::system::error_code ec,
                                                             asio::ip::tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open())
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
            start_connection(std::move(socket), ctx_, role);
        }
        do_accept(acceptor, role);
    });
}

void server::arm_ticker() {
    const auto period = std::min(cfg_.lim.keepalive_interval, cfg_.lim.connection_lifetime);
    ticker_.expires_after(period);
    ticker_.async_wait([this](boost::system::error_code ec) {
        if (ec)
            return;
        // Keeps running through the drain: the connections still served get their ka.
        const auto now = std::chrono::steady_clock::now();
        registry_.tick_all(now);
        ctx_.api.history().expire(now);  // idle channels give back their expired events
        arm_ticker();
    });
}

void server::arm_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
        if (ec)
            return;
        if (!ctx_.stopping.load()) {
            log::info("received signal {}", sig);
            begin_shutdown();
            return arm_signals();
        }
        log::warn("received signal {} again: exiting now with {} connections open", sig,
                  registry_.size());
        ioc_.stop();
    });
}

// The drain (README, "Run it as a service"): /readyz is 503 from the first
// moment, so a load balancer stops sending new clients; everything open keeps being served
// for --drain-delay-ms while it does; then the listeners close and the open connections are
// told to go (WebSocket 1001) a few at a time over --drain-spread-ms, so their clients do not
// all reconnect to the other nodes in the same instant; run() returns when the last is gone,
// or at --shutdown-timeout-ms from the signal whatever is left.
void server::begin_shutdown() {
    if (ctx_.stopping.exchange(true))
        return;
    const auto start = std::chrono::steady_clock::now();
    log::info(
        "draining: /readyz answers 503; serving {} connections for {} ms, then closing them "
        "over {} ms; exit by {} ms",
        registry_.size(), cfg_.drain_delay.count(), cfg_.drain_spread.count(),
        cfg_.shutdown_timeout.count());
    last_resort_.expires_at(start + cfg_.shutdown_timeout);
    last_resort_.async_wait([this](boost::system::error_code e) {
        if (e)
            return;
        log::warn("--shutdown-timeout-ms over; stopping with {} connections open",
                  registry_.size());
        ioc_.stop();
    });
    drain_.expires_at(start + cfg_.drain_delay);
    drain_.async_wait([this](boost::system::error_code e) {
        if (e)
            return;
        boost::system::error_code ec;
        acceptor_.close(ec);
        admin_acceptor_.close(ec);
        reload_signals_.cancel();
        auto sessions = registry_.live();
        log::info("shutting down: closing {} connections", sessions.size());
        close_spread(std::move(sessions), 0, std::chrono::steady_clock::now());
    });
}

// Closes sessions[next..] whose turn has come (session i at spread * i / n after `start`),
// then waits for the next turn; the last turn waits for the registry to empty.
void server::close_spread(std::vector<std::shared_ptr<closable>> sessions, std::size_t next,
                          std::chrono::steady_clock::time_point start) {
    const auto n = sessions.size();
    const auto spread = cfg_.drain_spread;
    const auto now = std::chrono::steady_clock::now();
    auto turn = [&](std::size_t i) {
        return start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           spread * static_cast<double>(i) / static_cast<double>(n));
    };
    while (next < n && turn(next) <= now) {
        sessions[next]->shutdown();
        sessions[next].reset();
        ++next;
    }
    if (next == n)
        return wait_drained();
    // Whole milliseconds at least: thousands of connections do not need a timer each.
    drain_.expires_at(std::max(turn(next), now + std::chrono::milliseconds(1)));
    drain_.async_wait(
        [this, sessions = std::move(sessions), next, start](boost::system::error_code e) mutable {
            if (!e)
                close_spread(std::move(sessions), next, start);
        });
}

void server::wait_drained() {
    // Sessions leave the registry when destroyed, i.e. after their close handshake. Connections
    // still in TLS detection are not registered and would hold run() for their handshake
    // timeout, so stop as soon as every registered session is gone.
    if (registry_.size() == 0) {
        log::info("drained: every connection is closed");
        return ioc_.stop();
    }
    drain_.expires_after(std::chrono::milliseconds(20));
    drain_.async_wait([this](boost::system::error_code e) {
        if (!e)
            wait_drained();
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
    arm_signals();
    arm_reload();
    do_accept(acceptor_, client_role_);
    if (admin_acceptor_.is_open())
        do_accept(admin_acceptor_, admin_role_);
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

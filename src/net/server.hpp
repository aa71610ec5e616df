// The network front: one listening port for HTTP, HTTPS, ws and wss (and, with
// --admin-listen, an operator's port for metrics and health); N threads on one io_context; a
// drain on SIGTERM/SIGINT (/readyz 503, serve for --drain-delay-ms, close WebSockets 1001
// spread over --drain-spread-ms, exit by --shutdown-timeout-ms; a second signal exits at
// once); SIGHUP calls the reload hook.
#pragma once

#include "api/event_api.hpp"
#include "net/http_router.hpp"
#include "net/server_context.hpp"
#include "net/tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>

namespace eventcast::net {

/// What cluster mode gives the server (app/ builds it): null members for a single node.
struct cluster_parts {
    const cluster_status* status = nullptr;
    remote_chat* chat = nullptr;
};

class server {
public:
    /// Binds the port (throws std::runtime_error with the reason if it cannot). Everything
    /// given must outlive the server.
    server(const core::config& cfg, api::event_api& api, chat::chat_service* chat, tls_setup& tls,
           cluster_parts cluster = {});

    /// The port actually bound (useful with --port 0).
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    /// The admin port actually bound; 0 without --admin-listen.
    std::uint16_t admin_port() const;

    /// Accepts and runs the threads until shutdown completes. Returns the process exit code.
    int run();

    /// Thread-safe: begins graceful shutdown (what SIGTERM does).
    void stop();

    /// What SIGHUP does (app/ re-reads the configuration); set before run(). Runs on an I/O
    /// thread, so it must be quick. Without a hook SIGHUP is logged and ignored, never fatal.
    void on_reload(std::function<void()> hook) { reload_ = std::move(hook); }

private:
    void do_accept(boost::asio::ip::tcp::acceptor& acceptor, const port_role& role);
    void arm_signals();
    void begin_shutdown();
    void close_spread(std::vector<std::shared_ptr<closable>> sessions, std::size_t next,
                      std::chrono::steady_clock::time_point start);
    void arm_ticker();
    void wait_drained();
    void arm_reload();

    const core::config& cfg_;
    boost::asio::io_context ioc_;
    session_registry registry_;
    server_context ctx_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::ip::tcp::acceptor admin_acceptor_;  // open only with --admin-listen
    port_role client_role_;
    port_role admin_role_;
    boost::asio::signal_set signals_;
    boost::asio::signal_set reload_signals_;  // SIGHUP
    std::function<void()> reload_;
    boost::asio::steady_timer last_resort_;  // --shutdown-timeout-ms from the first SIGTERM
    boost::asio::steady_timer drain_;        // the drain's steps
    boost::asio::steady_timer ticker_;       // keep-alives and lifetimes of every session
    std::unique_ptr<router> routes_;
    std::unique_ptr<router> admin_routes_;
};

}  // namespace eventcast::net

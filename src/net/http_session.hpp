// Accepted TCP connections: detect TLS on the first bytes, then serve HTTP/1.1 (plain or TLS)
// and hand WebSocket upgrades to ws_session.
#pragma once

#include "net/server_context.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace eventcast::net {

/// Takes over `socket` (whose executor is a fresh strand) and serves it until it closes, with
/// the routes of the port that accepted it (`role` outlives the connection).
void start_connection(boost::asio::ip::tcp::socket&& socket, server_context& ctx,
                      const port_role& role);

}  // namespace eventcast::net

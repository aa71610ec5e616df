// Starts an AppSync Events WebSocket session on an upgraded HTTP connection, plain or TLS.
#pragma once

#include "events/handshake.hpp"
#include "net/http_reply.hpp"
#include "net/server_context.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace eventcast::net {

/// Takes over `stream` (whose executor is the connection's strand) and answers the upgrade in
/// `req`. `auth` is what parse_upgrade found in it; the subprotocol has been checked.
void start_ws_session(boost::beast::tcp_stream&& stream, http_request&& req,
                      events::upgrade_auth&& auth, server_context& ctx);
void start_ws_session(boost::beast::ssl_stream<boost::beast::tcp_stream>&& stream,
                      http_request&& req, events::upgrade_auth&& auth, server_context& ctx);

}  // namespace eventcast::net

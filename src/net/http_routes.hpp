// The HTTP routes other than the WebSocket upgrade, as one table (net/http_router.hpp):
// POST /event, the chat routes, health, metrics and the web app. Each handler is an adapter:
// it turns the request into an api::event_api operation (or the chat service's call) and the
// answer into a response. Adding a route is one row in make_routes().
#pragma once

#include "net/http_router.hpp"
#include "net/server_context.hpp"

#include <memory>

namespace eventcast::net {

/// The server's route table. `ctx` must outlive it.
std::unique_ptr<router> make_routes(server_context& ctx);

/// --admin-listen's table: GET /metrics, /healthz and /readyz, nothing else.
std::unique_ptr<router> make_admin_routes(server_context& ctx);

}  // namespace eventcast::net

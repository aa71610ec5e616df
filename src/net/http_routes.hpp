// HTTP routes other than the WebSocket upgrade: POST /event, CORS preflight, health checks.
// Pure request -> response, so tests can call it without sockets.
#pragma once

#include "net/server_context.hpp"
#include "net/ws_session.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>

namespace eventcast::net {

using http_response = boost::beast::http::response<boost::beast::http::string_body>;

using http_responder = std::function<void(http_response)>;

/// Answers one HTTP request through `respond`, called exactly once: at once for most routes,
/// later (from another thread) for POST /chat, which answers when the provider has accepted.
/// Errors use the AppSync shape: status, x-amzn-ErrorType, and
/// {"errors":[{"errorType","message"}],"message"} (spec §10.4).
void handle_http(const http_request& req, server_context& ctx, http_responder respond);

/// An error response in the same shape, for failures found before routing (413, 431, 400).
http_response http_error(unsigned status, std::string_view error_type, std::string_view message,
                         unsigned version, bool keep_alive, const core::config& cfg,
                         std::string_view origin = {});

/// The events credentials for an HTTP request: every header, names lower-cased.
events::credentials request_credentials(const http_request& req);

}  // namespace eventcast::net

// How eventcast answers HTTP: the AppSync error shape (status, x-amzn-ErrorType and
// {"errors":[{"errorType","message"}],"message"}, spec §10.4), JSON replies, and the CORS
// headers every reply to a browser carries. Pure request -> response helpers, no sockets.
#pragma once

#include "core/config.hpp"
#include "core/stats.hpp"
#include "events/error.hpp"
#include "events/message.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace eventcast::net {

using http_request = boost::beast::http::request<boost::beast::http::string_body>;
using http_response = boost::beast::http::response<boost::beast::http::string_body>;

/// Takes the one response a request gets; may be called from another thread (POST /chat
/// answers when the provider has accepted), the HTTP session hops back onto its strand.
using http_responder = std::function<void(http_response)>;

/// What a response needs from its request, copied, so an answer that comes later (after an
/// asynchronous authorization) does not need the request any more.
struct reply_to {
    unsigned version = 11;
    bool keep_alive = true;
    std::string origin;  // the request's Origin header, for CORS
    static reply_to of(const http_request& req);
};

/// Adds the CORS headers for a request from `origin` (none when there is no Origin or it is
/// not allowed by --cors-origin; net/cors.hpp decides).
void add_cors(http_response& res, const core::config& cfg, std::string_view origin);

/// The answer to OPTIONS on a path whose routes accept `allow` ("POST, OPTIONS"): 204 with
/// `Allow`, plus, for a CORS preflight from an allowed origin, the route's methods and the
/// requested headers (net/cors.hpp: preflight_headers). A disallowed origin gets no CORS
/// headers, so the browser refuses the actual request.
http_response preflight_reply(const http_request& req, std::string_view allow,
                              const core::config& cfg);

/// A JSON reply, not cached, with CORS.
http_response json_reply(unsigned status, std::string body, const reply_to& to,
                         const core::config& cfg);

/// An error in the AppSync shape.
http_response http_error(unsigned status, std::string_view error_type, std::string_view message,
                         unsigned version, bool keep_alive, const core::config& cfg,
                         std::string_view origin = {});
http_response http_error(unsigned status, std::string_view error_type, std::string_view message,
                         const reply_to& to, const core::config& cfg);

/// A protocol error as its HTTP status and type, counted in `stats` when given.
http_response error_reply(const events::protocol_error& e, const reply_to& to,
                          const core::config& cfg, core::stats* stats = nullptr);

/// The events credentials for an HTTP request: every header, names lower-cased.
events::credentials request_credentials(const http_request& req);

}  // namespace eventcast::net

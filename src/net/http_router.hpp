// The HTTP route table: {method, path, handler} rows, from which dispatch, the 405's `Allow`,
// the CORS preflight's methods and the 404's list of routes all come, so adding a route is one
// row (net/http_routes.cpp) and nothing else can fall out of step with it. No sockets.
#pragma once

#include "core/config.hpp"
#include "net/http_reply.hpp"

#include <boost/beast/http/verb.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::net {

/// The path a request matched and the values of the pattern's {name} segments, in order.
struct route_args {
    std::string_view path;
    std::array<std::string_view, 4> params{};
    std::size_t param_count = 0;
    std::string_view param(std::size_t i) const noexcept { return params[i]; }
};

/// Answers a request through `respond`, exactly once (at once, or later from another thread).
using route_handler =
    std::function<void(const http_request& req, const route_args& args, http_responder respond)>;

struct route {
    route(boost::beast::http::verb m, std::string p, route_handler h, std::string n = {},
          bool l = true)
        : method(m), pattern(std::move(p)), handler(std::move(h)), note(std::move(n)), listed(l) {}
    boost::beast::http::verb method;
    /// "/chat/{streamId}/cancel": a {name} segment matches one non-empty segment; everything
    /// else matches itself.
    std::string pattern;
    route_handler handler;
    std::string note;    // after the route in the 404's list, e.g. "(WebSocket upgrade)"
    bool listed = true;  // the web app's files are served but not listed one by one
};

/// Answers an OPTIONS request for a path whose routes accept `allow` (e.g. "POST, OPTIONS").
using preflight_handler =
    std::function<http_response(const http_request& req, std::string_view allow)>;

/// Thread-safe after construction (read-only).
class router {
public:
    router(std::vector<route> routes, preflight_handler preflight, const core::config& cfg);

    /// Routes `req` whose path (query removed) is `path`: the route for its method, HEAD where
    /// the path has a GET route (the GET answer without its body), OPTIONS as a CORS preflight,
    /// 405 with `Allow` for a known path and another method, 404 with the list of routes.
    /// `matched` is set, before any answer, to the route the request is counted under (see
    /// count()): the row whose path matched, or no_route.
    void dispatch(const http_request& req, std::string_view path, http_responder respond,
                  std::size_t* matched = nullptr) const;

    /// What the HTTP session calls: dispatch() on the request target's path with runs of '/'
    /// collapsed (net/http_path.hpp), as API Gateway routes "//chat" to /chat.
    void dispatch(const http_request& req, http_responder respond,
                  std::size_t* matched = nullptr) const;

    /// Response counters by route and status, for eventcast_http_responses_total. Indices are
    /// rows of the table, or no_route() (404 for an unknown path) or unrouted() (answered
    /// before routing: malformed, too large, refused upgrades). Thread-safe, lock-free.
    std::size_t no_route() const noexcept { return routes_.size(); }
    std::size_t unrouted() const noexcept { return routes_.size() + 1; }
    void count(std::size_t route, unsigned status) const noexcept;
    /// One sample line per (route, status) seen, labelled listener="<listener>".
    void append_metrics(std::string& out, std::string_view listener) const;

    /// The methods the routes of `path` accept, as an `Allow` value ("GET, HEAD, OPTIONS");
    /// empty when no route has that path.
    std::string allow(std::string_view path) const;

    /// Every listed route, "POST /event, GET /event/realtime (WebSocket upgrade), ...".
    std::string listing() const;

    /// True when `path` matches `pattern` (see route::pattern), with the {name} values in args.
    static bool matches(std::string_view pattern, std::string_view path, route_args& args);

private:
    std::vector<route> routes_;
    preflight_handler preflight_;
    const core::config& cfg_;
    std::string listing_;
    static constexpr unsigned first_status = 100, statuses = 500;  // 100..599
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;         // (routes + 2) x statuses
};

}  // namespace eventcast::net

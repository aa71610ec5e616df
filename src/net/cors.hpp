// CORS decisions, without sockets or Beast: given the configured origins (--cors-origin) and what
// a request says (Origin, Access-Control-Request-Method/-Headers), which CORS headers to answer,
// and whether a browser's WebSocket upgrade may proceed. Unit-tested in
// tests/unit/net/cors_test.cpp; net/http_reply.cpp turns the answer into response headers.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventcast::net {

/// The configured origins, as given: "*" (any origin, the default, as the AWS sample's API
/// Gateway) or exact origins like "https://app.example.com". Entries are compared
/// case-insensitively and a trailing '/' in an entry is ignored (a common slip when copying a
/// URL). We never send Access-Control-Allow-Credentials: browsers send no cookies to us, and
/// every credential we take (x-api-key, Authorization) is a header the page sets itself.
class cors_policy {
public:
    explicit cors_policy(const std::vector<std::string>& origins);

    /// True when "*" is among the origins.
    bool any_origin() const noexcept { return any_; }
    /// True when a response to `origin` may carry CORS headers. An empty origin (not a
    /// cross-origin browser request) is never "allowed": it needs no CORS headers.
    bool allows(std::string_view origin) const;
    /// True when a WebSocket upgrade with this Origin header may proceed: always with "*",
    /// always without an Origin (not a browser: curl, Node, Amplify in Node), else only a
    /// configured origin. Browsers do not apply CORS to WebSockets, so this check is the only
    /// thing that keeps another site's page from using a visitor's network position.
    bool allows_websocket(std::string_view origin) const;

private:
    std::vector<std::string> origins_;  // normalised: lower case, no trailing '/'
    bool any_ = false;
};

/// The CORS headers of one response; `allow_origin` empty means send none at all.
struct cors_headers {
    std::string allow_origin;    // "*" or the request's Origin
    std::string vary;            // "Origin" (plus the request headers a preflight echoes)
    std::string allow_methods;   // preflight: the route's methods and OPTIONS
    std::string allow_headers;   // preflight: the requested headers, echoed
    std::string max_age;         // preflight: seconds the browser may cache the answer
    std::string expose_headers;  // responses: headers a page may read

    bool empty() const noexcept { return allow_origin.empty(); }
    /// (name, value) for every non-empty header, lower-case names, in a fixed order.
    std::vector<std::pair<std::string_view, std::string_view>> fields() const;
};

/// What a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered with.
/// `route_methods`: the methods the route has, e.g. {"POST"}; OPTIONS is added. The requested
/// headers are allowed as asked (each must be an HTTP token; a list with anything else is not
/// echoed, so the browser refuses): the AWS sample's page sends `Access-Control-Allow-Origin`,
/// `-Methods` and `-Headers` as *request* headers, which no fixed list would contain. Echoing
/// rather than answering "*" also covers `Authorization`, which the Fetch standard never lets
/// "*" match. Empty when the origin is not allowed.
cors_headers preflight_headers(const cors_policy& policy, std::string_view origin,
                               std::string_view request_headers,
                               std::span<const std::string_view> route_methods);

/// The CORS headers of an actual (non-preflight) response to `origin`. Empty when the origin is
/// empty or not allowed.
cors_headers response_headers(const cors_policy& policy, std::string_view origin);

/// `Access-Control-Request-Headers` parsed: lower-cased, trimmed, empty items skipped, joined
/// with ", ". Empty when the list is empty or has an item that is not an HTTP token
/// (RFC 9110 §5.6.2), or has more than 64 items (a browser sends a handful).
std::string requested_headers(std::string_view list);

}  // namespace eventcast::net

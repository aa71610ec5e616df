// Why the answers look as they do: see cors.hpp. What the headers are and when browsers read
// them: the Fetch standard, "CORS protocol".
#include "net/cors.hpp"

#include <algorithm>
#include <cctype>

namespace eventcast::net {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string normalise_origin(std::string_view s) {
    while (!s.empty() && s.back() == '/')
        s.remove_suffix(1);
    return lower(s);
}

bool token_char(unsigned char c) {
    if (std::isalnum(c))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Answers to preflights may be cached this long (seconds); Chromium caps it at 7200.
constexpr std::string_view preflight_max_age = "600";
// What a page may read of our answers: the AppSync error type and the request id.
constexpr std::string_view exposed = "x-amzn-ErrorType, x-amzn-RequestId";

}  // namespace

cors_policy::cors_policy(const std::vector<std::string>& origins) {
    for (const auto& o : origins) {
        if (o == "*")
            any_ = true;
        else if (!o.empty())
            origins_.push_back(normalise_origin(o));
    }
}

bool cors_policy::allows(std::string_view origin) const {
    if (origin.empty())
        return false;
    if (any_)
        return true;
    const auto o = normalise_origin(origin);
    return std::find(origins_.begin(), origins_.end(), o) != origins_.end();
}

bool cors_policy::allows_websocket(std::string_view origin) const {
    return origin.empty() || allows(origin);
}

std::vector<std::pair<std::string_view, std::string_view>> cors_headers::fields() const {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    if (empty())
        return out;
    out.emplace_back("access-control-allow-origin", allow_origin);
    for (const auto& [name, value] :
         {std::pair<std::string_view, const std::string*>{"access-control-allow-methods",
                                                          &allow_methods},
          {"access-control-allow-headers", &allow_headers},
          {"access-control-max-age", &max_age},
          {"access-control-expose-headers", &expose_headers},
          {"vary", &vary}}) {
        if (!value->empty())
            out.emplace_back(name, *value);
    }
    return out;
}

std::string requested_headers(std::string_view list) {
    std::string out;
    std::size_t items = 0;
    while (!list.empty()) {
        const auto comma = list.find(',');
        const auto item = trim(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (item.empty())
            continue;
        if (++items > 64 || !std::all_of(item.begin(), item.end(), [](char c) {
                return token_char(static_cast<unsigned char>(c));
            }))
            return {};
        if (!out.empty())
            out += ", ";
        out += lower(item);
    }
    return out;
}

cors_headers response_headers(const cors_policy& policy, std::string_view origin) {
    cors_headers h;
    if (!policy.allows(origin))
        return h;
    h.allow_origin = policy.any_origin() ? std::string("*") : std::string(origin);
    if (!policy.any_origin())
        h.vary = "Origin";  // the answer depends on who asks: caches must keep them apart
    h.expose_headers = exposed;
    return h;
}

cors_headers preflight_headers(const cors_policy& policy, std::string_view origin,
                               std::string_view request_headers,
                               std::span<const std::string_view> route_methods) {
    cors_headers h;
    if (!policy.allows(origin))
        return h;
    h.allow_origin = policy.any_origin() ? std::string("*") : std::string(origin);
    for (const auto m : route_methods) {
        if (m == "OPTIONS")
            continue;
        h.allow_methods += h.allow_methods.empty() ? "" : ", ";
        h.allow_methods += m;
    }
    h.allow_methods += h.allow_methods.empty() ? "OPTIONS" : ", OPTIONS";
    h.allow_headers = requested_headers(request_headers);
    h.max_age = preflight_max_age;
    // The answer echoes what was asked, so a cache must key it on the asking headers too.
    h.vary = policy.any_origin() ? "Access-Control-Request-Headers"
                                 : "Origin, Access-Control-Request-Headers";
    return h;
}

}  // namespace eventcast::net

// Dispatch over the route table. A table of a dozen rows is scanned in order: cheaper than
// any index at this size, and the order is the 404 listing's order.
#include "net/http_router.hpp"

#include "net/http_path.hpp"

#include <boost/beast/http/field.hpp>

namespace eventcast::net {

namespace http = boost::beast::http;

namespace {

std::string_view verb_name(http::verb v) {
    const auto s = http::to_string(v);
    return {s.data(), s.size()};
}

}  // namespace

router::router(std::vector<route> routes, preflight_handler preflight, const core::config& cfg)
    : routes_(std::move(routes)),
      preflight_(std::move(preflight)),
      cfg_(cfg),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>((routes_.size() + 2) * statuses)) {
    for (const auto& r : routes_) {
        if (!r.listed)
            continue;
        if (!listing_.empty())
            listing_ += ", ";
        listing_ += verb_name(r.method);
        listing_ += ' ';
        listing_ += r.pattern;
        if (!r.note.empty()) {
            listing_ += ' ';
            listing_ += r.note;
        }
    }
}

bool router::matches(std::string_view pattern, std::string_view path, route_args& args) {
    args.param_count = 0;
    args.path = path;
    while (!pattern.empty() || !path.empty()) {
        if (pattern.empty() || path.empty() || pattern[0] != '/' || path[0] != '/')
            return false;
        pattern.remove_prefix(1);
        path.remove_prefix(1);
        const auto pe = std::min(pattern.find('/'), pattern.size());
        const auto se = std::min(path.find('/'), path.size());
        const auto want = pattern.substr(0, pe);
        const auto got = path.substr(0, se);
        if (want.size() >= 2 && want.front() == '{' && want.back() == '}') {
            if (got.empty() || args.param_count == args.params.size())
                return false;
            args.params[args.param_count++] = got;
        } else if (want != got) {
            return false;
        }
        pattern.remove_prefix(pe);
        path.remove_prefix(se);
    }
    return true;
}

std::string router::allow(std::string_view path) const {
    std::string out;
    bool get = false;
    route_args args;
    for (const auto& r : routes_) {
        if (!matches(r.pattern, path, args))
            continue;
        const auto name = verb_name(r.method);
        if (out.find(name) != std::string::npos)
            continue;
        if (!out.empty())
            out += ", ";
        out += name;
        get = get || r.method == http::verb::get;
    }
    if (out.empty())
        return out;
    if (get)
        out += ", HEAD";
    out += ", OPTIONS";
    return out;
}

std::string router::listing() const {
    return listing_;
}

void router::count(std::size_t route, unsigned status) const noexcept {
    if (route > unrouted() || status < first_status || status >= first_status + statuses)
        return;
    counts_[route * statuses + (status - first_status)].fetch_add(1, std::memory_order_relaxed);
}

void router::append_metrics(std::string& out, std::string_view listener) const {
    for (std::size_t r = 0; r <= unrouted(); ++r) {
        const std::string_view label = r < routes_.size() ? std::string_view(routes_[r].pattern)
                                       : r == no_route()  ? "(no route)"
                                                          : "(before routing)";
        for (unsigned s = 0; s < statuses; ++s) {
            const auto n = counts_[r * statuses + s].load(std::memory_order_relaxed);
            if (n == 0)
                continue;
            out += "eventcast_http_responses_total{listener=\"";
            out += listener;
            out += "\",route=\"";
            out += label;
            out += "\",status=\"" + std::to_string(first_status + s) + "\"} " + std::to_string(n) +
                   '\n';
        }
    }
}

void router::dispatch(const http_request& req, http_responder respond, std::size_t* matched) const {
    const auto path =
        normalize_path(target_path(std::string_view(req.target().data(), req.target().size())));
    dispatch(req, path, std::move(respond), matched);
}

void router::dispatch(const http_request& req, std::string_view path, http_responder respond,
                      std::size_t* matched) const {
    const auto method = req.method();
    const bool head = method == http::verb::head;
    route_args args;
    const route* found = nullptr;
    bool known = false;
    std::size_t label = no_route();
    for (const auto& r : routes_) {
        if (!matches(r.pattern, path, args))
            continue;
        if (!known)
            label = static_cast<std::size_t>(&r - routes_.data());
        known = true;
        if (r.method == method || (head && r.method == http::verb::get)) {
            found = &r;
            label = static_cast<std::size_t>(&r - routes_.data());
            break;
        }
    }
    if (matched)
        *matched = label;
    const auto to = reply_to::of(req);
    if (!known)
        return respond(http_error(404, "NotFoundException",
                                  "no route for " + std::string(req.method_string()) + " " +
                                      std::string(path.substr(0, 100)) + "; routes: " + listing_,
                                  to, cfg_));
    if (method == http::verb::options && !found)
        return respond(preflight_(req, allow(path)));
    if (!found) {
        const auto allowed = allow(path);
        auto res = http_error(405, "BadRequestException",
                              std::string(req.method_string()) + " is not allowed on " +
                                  std::string(path.substr(0, 100)) + "; allowed: " + allowed,
                              to, cfg_);
        res.set(http::field::allow, allowed);
        return respond(std::move(res));
    }
    if (!head)
        return found->handler(req, args, std::move(respond));
    // HEAD: the GET answer's status and headers (Content-Length included), no body.
    found->handler(req, args, [respond = std::move(respond)](http_response res) {
        const auto length = res.body().size();
        res.body().clear();
        res.content_length(length);
        respond(std::move(res));
    });
}

}  // namespace eventcast::net

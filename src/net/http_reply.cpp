// Reply helpers shared by every route and by the HTTP session's early refusals.
#include "net/http_reply.hpp"

#include "net/cors.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include <vector>

namespace eventcast::net {

namespace http = boost::beast::http;

reply_to reply_to::of(const http_request& req) {
    return {req.version(), req.keep_alive(), std::string(req[http::field::origin])};
}

namespace {

void set_fields(http_response& res, const cors_headers& h) {
    for (const auto& [name, value] : h.fields())
        res.set(name, value);
}

}  // namespace

void add_cors(http_response& res, const core::config& cfg, std::string_view origin) {
    if (origin.empty())
        return;
    set_fields(res, response_headers(cors_policy(cfg.cors_origins), origin));
}

http_response preflight_reply(const http_request& req, std::string_view allow,
                              const core::config& cfg) {
    http_response res{http::status::no_content, req.version()};
    res.set(http::field::server, "eventcast");
    res.set(http::field::allow, allow);
    // The route's methods, as views into `allow` ("POST, OPTIONS").
    std::vector<std::string_view> methods;
    for (std::string_view rest = allow; !rest.empty();) {
        const auto comma = rest.find(',');
        auto item = rest.substr(0, comma);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        if (!item.empty())
            methods.push_back(item);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    const auto origin = req[http::field::origin];
    if (!origin.empty() && !req[http::field::access_control_request_method].empty())
        set_fields(res,
                   preflight_headers(cors_policy(cfg.cors_origins), origin,
                                     req[http::field::access_control_request_headers], methods));
    else
        add_cors(res, cfg, origin);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

http_response json_reply(unsigned status, std::string body, const reply_to& to,
                         const core::config& cfg) {
    http_response res{static_cast<http::status>(status), to.version};
    res.set(http::field::server, "eventcast");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    add_cors(res, cfg, to.origin);
    res.keep_alive(to.keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

http_response http_error(unsigned status, std::string_view error_type, std::string_view message,
                         unsigned version, bool keep_alive, const core::config& cfg,
                         std::string_view origin) {
    http_response res{static_cast<http::status>(status), version};
    res.set(http::field::server, "eventcast");
    res.set(http::field::content_type, "application/json");
    res.set("x-amzn-ErrorType", error_type);
    add_cors(res, cfg, origin);
    std::string body = R"({"errors":[{"errorType":")";
    body += error_type;
    body += '"';
    std::string msg_json;
    events::append_json_string(msg_json, message);
    if (!message.empty())
        body += R"(,"message":)" + msg_json;
    body += "}]";
    if (!message.empty())
        body += R"(,"message":)" + msg_json;
    body += '}';
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

http_response http_error(unsigned status, std::string_view error_type, std::string_view message,
                         const reply_to& to, const core::config& cfg) {
    return http_error(status, error_type, message, to.version, to.keep_alive, cfg, to.origin);
}

http_response error_reply(const events::protocol_error& e, const reply_to& to,
                          const core::config& cfg, core::stats* stats) {
    if (stats) {
        core::stats::add(stats->protocol_errors);
        core::stats::add(stats->errors_by_kind[static_cast<std::size_t>(e.kind)]);
    }
    return http_error(e.http_status(), e.http_error_type(), e.message, to, cfg);
}

events::credentials request_credentials(const http_request& req) {
    events::credentials creds;
    for (const auto& f : req)
        creds.add(f.name_string(), f.value());
    return creds;
}

}  // namespace eventcast::net

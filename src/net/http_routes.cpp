// The route table and its handlers. POST /event and the chat routes go through event_api's
// operations, which authorize first (possibly asynchronously), so an unauthenticated caller
// learns nothing about body rules or the server's namespaces.
#include "net/http_routes.hpp"

#include "core/strings.hpp"
#include "net/metrics.hpp"
#include "net/static_assets.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

namespace eventcast::net {

namespace http = boost::beast::http;

namespace {

// What AWS_IAM signs of an HTTP request: method, path, query, body. Views into `req`.
auth::http_view http_view_of(const http_request& req) {
    const auto target = std::string_view(req.target().data(), req.target().size());
    const auto q = target.find('?');
    return {std::string_view(req.method_string().data(), req.method_string().size()),
            target.substr(0, q),
            q == std::string_view::npos ? std::string_view{} : target.substr(q + 1), req.body()};
}

// Whether a Content-Type is JSON: the media type application/json in any case, with or without
// parameters ("application/json; charset=utf-8"), RFC 9110 §8.3.1. A prefix match would take
// application/jsonx. No Content-Type at all is taken as JSON, as AppSync does.
bool json_media_type(std::string_view content_type) {
    if (content_type.empty())
        return true;
    return core::iequals(core::trim_ows(content_type.substr(0, content_type.find(';'))),
                         "application/json");
}

// POST /event. Order: body shape (needed to know the namespace, whose modes apply), then
// authorization, then the errors of the body, then the namespace (event_api::publish).
void publish(server_context& ctx, const http_request& req, http_responder respond) {
    const auto view = http_view_of(req);
    const auto creds = request_credentials(req);
    api::publish_request p;
    const auto content_type = req[http::field::content_type];
    if (auto body = events::parse_http_publish(req.body(), ctx.cfg.lim)) {
        p.channel = std::move(body->channel);
        p.raw_channel = std::move(body->raw_channel);  // as sent: the Lambda authorizer sees it
        p.events = std::move(body->events);
    } else {
        p.invalid = std::move(body.error());
    }
    bool unsupported_type = false;
    if (!json_media_type(content_type)) {
        unsupported_type = true;
        p.invalid =
            events::protocol_error{events::error_kind::bad_request,
                                   "content-type '" + std::string(content_type.substr(0, 60)) +
                                       "' is not supported; send application/json"};
    }
    ctx.api.publish(
        std::move(p), api::caller{&creds, &view, nullptr},
        [&ctx, to = reply_to::of(req), unsupported_type,
         respond = std::move(respond)](api::publish_result r) {
            if (!r) {
                if (unsupported_type && r.error().kind == events::error_kind::bad_request)
                    return respond(
                        http_error(415, "BadRequestException", r.error().message, to, ctx.cfg));
                return respond(error_reply(r.error(), to, ctx.cfg, &ctx.api.stats()));
            }
            respond(json_reply(200, events::http_publish_answer(*r), to, ctx.cfg));
        });
}

http_response answer_to_response(const chat::http_answer& a, const reply_to& to,
                                 const core::config& cfg) {
    auto res = json_reply(a.status, a.body, to, cfg);
    if (!a.error_type.empty())
        res.set("x-amzn-ErrorType", a.error_type);
    for (const auto& [name, value] : a.headers)
        res.set(name, value);
    return res;
}

// Authorizes a chat route with --auth-chat's modes, then runs `then(user)` with the caller's
// identity (a token's claim or an IAM principal; empty for API keys and Lambda answers).
template <class Then>
void chat_authorized(server_context& ctx, const http_request& req, http_responder respond,
                     Then then) {
    if (!ctx.chat)
        return respond(http_error(404, "NotFoundException", "chat is not enabled on this server",
                                  reply_to::of(req), ctx.cfg));
    const auto view = http_view_of(req);
    const auto creds = request_credentials(req);
    ctx.api.authorize_chat(api::caller{&creds, &view, nullptr},
                           [&ctx, to = reply_to::of(req), respond = std::move(respond),
                            then = std::move(then)](auth::auth_result a) mutable {
                               if (!a)
                                   return respond(error_reply(a.error(), to, ctx.cfg));
                               then(a->user, to, std::move(respond));
                           });
}

// POST /chat.
void chat_start(server_context& ctx, const http_request& req, http_responder respond) {
    auto body = std::make_shared<std::string>(req.body());
    const auto content_type = std::string(req[http::field::content_type]);
    chat_authorized(
        ctx, req, std::move(respond),
        [&ctx, body, content_type](const std::string& user, const reply_to& to,
                                   http_responder reply) {
            if (!json_media_type(content_type))
                return reply(http_error(415, "BadRequestException",
                                        "content-type is not supported; send application/json", to,
                                        ctx.cfg));
            ctx.chat->start(
                *body,
                [reply = std::move(reply), to, &ctx](chat::http_answer a) {
                    reply(answer_to_response(a, to, ctx.cfg));
                },
                user);
        });
}

// The value of `name` in the target's query ("?userId=alice&x=1"), undecoded; empty if absent.
std::string_view query_param(const http_request& req, std::string_view name) {
    const std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    if (q == std::string_view::npos)
        return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (amp == std::string_view::npos)
            break;
        rest = rest.substr(amp + 1);
    }
    return {};
}

// GET /chat/usage: the caller's tokens and budget. A token names the caller; with an API key
// (no identity) the userId comes from ?userId=, as POST /chat takes it from the body.
void chat_usage(server_context& ctx, const http_request& req, http_responder respond) {
    const std::string asked(query_param(req, "userId"));
    chat_authorized(
        ctx, req, std::move(respond),
        [&ctx, asked](const std::string& user, const reply_to& to, http_responder reply) {
            if (!user.empty() && !asked.empty() && asked != user)
                return reply(http_error(403, "UnauthorizedException",
                                        "a caller reads only its own usage; leave "
                                        "out userId or give your own",
                                        to, ctx.cfg));
            reply(answer_to_response(ctx.chat->usage(user.empty() ? asked : user), to, ctx.cfg));
        });
}

// GET /chat/<id> and POST /chat/<id>/cancel. In cluster mode a stream this node does not run
// is asked for on the others (remote_chat); its owner answers.
void chat_lookup_route(server_context& ctx, const http_request& req, const route_args& args,
                       http_responder respond, bool cancel) {
    chat_authorized(ctx, req, std::move(respond),
                    [&ctx, id = std::string(args.param(0)), cancel](
                        const std::string& user, const reply_to& to, http_responder reply) {
                        auto a = cancel ? ctx.chat->cancel(id, user) : ctx.chat->status(id, user);
                        if (a.status != 404 || !ctx.chat_directory)
                            return reply(answer_to_response(a, to, ctx.cfg));
                        ctx.chat_directory->ask(
                            cancel ? "cancel" : "status", id, user, std::chrono::milliseconds(500),
                            [reply = std::move(reply), a = std::move(a), to,
                             &ctx](std::optional<chat::http_answer> remote) {
                                reply(answer_to_response(remote ? *remote : a, to, ctx.cfg));
                            });
                    });
}

// GET /healthz (liveness) and /readyz (readiness).
http_response health(server_context& ctx, const http_request& req, bool ready_check) {
    const auto to = reply_to::of(req);
    if (ready_check && ctx.stopping.load())
        return json_reply(503, R"({"status":"stopping"})", to, ctx.cfg);
    // In cluster mode a node without NATS is not ready (docs/CLUSTER.md): its clients would
    // miss everything published on the other nodes, so a load balancer should send new
    // clients elsewhere. /healthz (liveness) stays 200: restarting the node would not help.
    const bool cluster_down = ctx.cluster && !ctx.cluster->connected();
    auto& st = ctx.api.stats();
    std::string body = R"({"status":")";
    body += ready_check && cluster_down ? "cluster-disconnected" : "ok";
    body += R"(","connections":)" + std::to_string(st.connections_open.load()) +
            R"(,"subscriptions":)" + std::to_string(ctx.api.subscription_count()) +
            R"(,"slowConsumerCloses":)" + std::to_string(st.slow_consumer_closes.load());
    if (ctx.cluster)
        body += R"(,"cluster":")" + ctx.cluster->state() + '"';
    body += '}';
    return json_reply(ready_check && cluster_down ? 503 : 200, std::move(body), to, ctx.cfg);
}

http_response metrics(server_context& ctx, const http_request& req) {
    http_response res{http::status::ok, req.version()};
    res.set(http::field::server, "eventcast");
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    res.body() = render_metrics(ctx);
    res.prepare_payload();
    return res;
}

bool loopback_host(const std::string& host) {
    return host == "127.0.0.1" || host == "::1" || host == "localhost" ||
           host.rfind("127.", 0) == 0;
}

// /web-config.json: what the page needs to know about this server. The API key is offered
// only when the server listens on loopback, where anyone who can load the page could read the
// key from the terminal anyway.
http_response web_config(server_context& ctx, const http_request& req) {
    boost::json::object o{{"chatNamespace", ctx.cfg.chat.chat_namespace},
                          {"namespaces", boost::json::value_from(ctx.cfg.namespaces)},
                          {"chatProvider", ctx.chat ? ctx.chat->default_provider() : ""}};
    if (loopback_host(ctx.cfg.host) && !ctx.cfg.api_keys.empty())
        o["apiKey"] = ctx.cfg.api_keys.front().value;
    else
        o["apiKey"] = nullptr;
    http_response res{http::status::ok, req.version()};
    res.set(http::field::server, "eventcast");
    res.keep_alive(req.keep_alive());
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = boost::json::serialize(o);
    res.prepare_payload();
    return res;
}

// One of the web app's embedded files.
http_response web_file(const static_asset& a, const http_request& req) {
    http_response res{http::status::ok, req.version()};
    res.set(http::field::server, "eventcast");
    res.keep_alive(req.keep_alive());
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-cache");
    res.set("x-content-type-options", "nosniff");
    res.set("content-security-policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:");
    res.body() = std::string(a.body);
    res.prepare_payload();
    return res;
}

// A handler that answers at once from (ctx, req).
template <class Fn>
route_handler now(server_context& ctx, Fn fn) {
    return [&ctx, fn](const http_request& req, const route_args&, http_responder respond) {
        respond(fn(ctx, req));
    };
}

}  // namespace

std::unique_ptr<router> make_routes(server_context& ctx) {
    using http::verb;
    std::vector<route> routes{
        {verb::post, "/event",
         [&ctx](const http_request& req, const route_args&, http_responder respond) {
             publish(ctx, req, std::move(respond));
         }},
        {verb::get, "/event/realtime",
         [&ctx](const http_request& req, const route_args&, http_responder respond) {
             // Reached only without an upgrade: net/http_session.cpp hands upgrades over first.
             auto res = http_error(426, "BadRequestException",
                                   "/event/realtime is the WebSocket endpoint; send a WebSocket "
                                   "upgrade with subprotocol aws-appsync-event-ws",
                                   reply_to::of(req), ctx.cfg);
             res.set(http::field::upgrade, "websocket");
             res.set(http::field::connection, "Upgrade");
             respond(std::move(res));
         },
         "(WebSocket upgrade)"},
        {verb::post, "/chat",
         [&ctx](const http_request& req, const route_args&, http_responder respond) {
             chat_start(ctx, req, std::move(respond));
         }},
        {verb::get, "/chat/usage",  // before /chat/{streamId}: stream ids are s-<hex>
         [&ctx](const http_request& req, const route_args&, http_responder respond) {
             chat_usage(ctx, req, std::move(respond));
         }},
        {verb::get, "/chat/{streamId}",
         [&ctx](const http_request& req, const route_args& args, http_responder respond) {
             chat_lookup_route(ctx, req, args, std::move(respond), false);
         }},
        {verb::post, "/chat/{streamId}/cancel",
         [&ctx](const http_request& req, const route_args& args, http_responder respond) {
             chat_lookup_route(ctx, req, args, std::move(respond), true);
         }},
        {verb::get, "/healthz",
         now(ctx, [](server_context& c, const http_request& r) { return health(c, r, false); })},
        {verb::get, "/readyz",
         now(ctx, [](server_context& c, const http_request& r) { return health(c, r, true); })},
        {verb::get, "/web-config.json", now(ctx, web_config)},
    };
    // With --admin-listen, metrics are for the operator's port only.
    if (ctx.cfg.admin_listen.empty())
        routes.push_back({verb::get, "/metrics", now(ctx, metrics)});
    for (const auto& a : static_assets()) {
        auto serve = [a](const http_request& req, const route_args&, http_responder respond) {
            respond(web_file(a, req));
        };
        if (a.path == "/index.html")
            routes.push_back({verb::get, "/", serve, "(the demo web app)"});
        routes.push_back({verb::get, std::string(a.path), serve, {}, false});
    }
    return std::make_unique<router>(
        std::move(routes),
        [&ctx](const http_request& req, std::string_view allow) {
            return preflight_reply(req, allow, ctx.cfg);
        },
        ctx.cfg);
}

std::unique_ptr<router> make_admin_routes(server_context& ctx) {
    using http::verb;
    std::vector<route> routes{
        {verb::get, "/metrics", now(ctx, metrics)},
        {verb::get, "/healthz",
         now(ctx, [](server_context& c, const http_request& r) { return health(c, r, false); })},
        {verb::get, "/readyz",
         now(ctx, [](server_context& c, const http_request& r) { return health(c, r, true); })},
    };
    // No CORS on the operator's port: a preflight is answered like any other method.
    return std::make_unique<router>(
        std::move(routes),
        [&ctx](const http_request& req, std::string_view allow) {
            auto res = http_error(
                405, "BadRequestException",
                "the admin port answers no CORS preflight; allowed: " + std::string(allow),
                reply_to::of(req), ctx.cfg);
            res.set(http::field::allow, allow);
            return res;
        },
        ctx.cfg);
}

}  // namespace eventcast::net

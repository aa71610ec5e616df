// HTTP routes. POST /event and the chat routes are authorized first (possibly asynchronously),
// so an unauthenticated caller learns nothing about body rules or the server's namespaces.
#include "net/http_routes.hpp"

#include "chat/chat_service.hpp"
#include "cluster/chat_directory.hpp"
#include "cluster/nats_bridge.hpp"
#include "net/static_assets.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <optional>

namespace eventcast::net {

namespace http = boost::beast::http;

namespace {

std::string_view path_of(std::string_view target) {
    const auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

void add_cors(http_response& res, const core::config& cfg, std::string_view origin) {
    if (origin.empty())
        return;
    for (const auto& allowed : cfg.cors_origins) {
        if (allowed == "*" || allowed == origin) {
            res.set(http::field::access_control_allow_origin,
                    allowed == "*" ? std::string_view("*") : origin);
            if (allowed != "*")
                res.set(http::field::vary, "Origin");
            res.set(http::field::access_control_expose_headers, "x-amzn-ErrorType");
            return;
        }
    }
}

http_response json_response(unsigned status, std::string body, const http_request& req,
                            const core::config& cfg) {
    http_response res{static_cast<http::status>(status), req.version()};
    res.set(http::field::server, "eventcast");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    add_cors(res, cfg, req[http::field::origin]);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

http_response protocol_error_response(const events::protocol_error& e, const http_request& req,
                                      const core::config& cfg, core::stats* stats = nullptr) {
    if (stats) {
        core::stats::add(stats->protocol_errors);
        core::stats::add(stats->errors_by_kind[static_cast<std::size_t>(e.kind)]);
    }
    return http_error(e.http_status(), e.http_error_type(), e.message, req.version(),
                      req.keep_alive(), cfg, req[http::field::origin]);
}

// Where an answer goes once an asynchronous authorization is in: what the response needs from
// the request, copied, since the request may be gone by then.
struct reply_to {
    unsigned version;
    bool keep_alive;
    std::string origin;
};

http_response error_to(const events::protocol_error& e, const reply_to& to, const core::config& cfg,
                       core::stats* stats) {
    if (stats) {
        core::stats::add(stats->protocol_errors);
        core::stats::add(stats->errors_by_kind[static_cast<std::size_t>(e.kind)]);
    }
    return http_error(e.http_status(), e.http_error_type(), e.message, to.version, to.keep_alive,
                      cfg, to.origin);
}

// What AWS_IAM signs of an HTTP request: method, path, query, body. Views into `req`.
auth::http_view http_view_of(const http_request& req) {
    const auto target = std::string_view(req.target().data(), req.target().size());
    const auto q = target.find('?');
    return {std::string_view(req.method_string().data(), req.method_string().size()),
            target.substr(0, q),
            q == std::string_view::npos ? std::string_view{} : target.substr(q + 1), req.body()};
}

// Authorizes, then calls `then` with the decision: at once, or later from another thread when
// the decision needs I/O (JWKS refresh, Lambda webhook).
void authorize_then(server_context& ctx, const auth::auth_request& r,
                    std::function<void(auth::auth_result)> then) {
    if (auto res = ctx.api.auth().try_authorize(r))
        return then(std::move(*res));
    ctx.api.auth().authorize_async(r, std::move(then));
}

// POST /event. Order: body shape (needed to know the namespace, whose modes apply), then
// authorization, then the errors of the body, then the namespace, so an unauthenticated caller
// learns nothing about the body rules or the server's namespaces.
void publish(const http_request& req, server_context& ctx, http_responder& respond) {
    reply_to to{req.version(), req.keep_alive(), std::string(req[http::field::origin])};
    const auto view = http_view_of(req);
    const auto content_type = req[http::field::content_type];
    const bool json_type = content_type.empty() || content_type.substr(0, 16) == "application/json";
    auto body = std::make_shared<events::result<events::http_publish>>(
        events::parse_http_publish(req.body(), ctx.cfg.lim));
    const auto creds = request_credentials(req);
    auth::auth_request r;
    r.op = auth::operation::publish;
    r.creds = &creds;
    r.http = &view;
    if (*body) {
        r.ns = (*body)->channel.namespace_name();
        r.raw_channel = (*body)->raw_channel;  // as sent: the Lambda authorizer sees it so
        r.path = &(*body)->channel;
    }
    authorize_then(
        ctx, r,
        [&ctx, to = std::move(to), body, json_type,
         content_type = std::string(content_type.substr(0, 60)),
         respond = std::move(respond)](auth::auth_result a) {
            auto* stats = &ctx.api.stats();
            if (!a) {
                ctx.api.count_refusal();
                return respond(error_to(a.error(), to, ctx.cfg, stats));
            }
            if (!json_type)
                return respond(http_error(
                    415, "BadRequestException",
                    "content-type '" + content_type + "' is not supported; send application/json",
                    to.version, to.keep_alive, ctx.cfg, to.origin));
            if (!*body)
                return respond(error_to(body->error(), to, ctx.cfg, stats));
            if (auto ns = ctx.api.check_namespace((*body)->channel.namespace_name()); !ns)
                return respond(error_to(ns.error(), to, ctx.cfg, stats));
            auto outcome = ctx.api.publish((*body)->channel, (*body)->events);
            std::string out = R"({"failed":[],"successful":[)";
            for (std::size_t i = 0; i < outcome.identifiers.size(); ++i) {
                if (i)
                    out += ',';
                out += R"({"identifier":")" + outcome.identifiers[i] + R"(","index":)" +
                       std::to_string(i) + '}';
            }
            out += "]}";
            http_response res{http::status::ok, to.version};
            res.set(http::field::server, "eventcast");
            res.set(http::field::content_type, "application/json");
            res.set(http::field::cache_control, "no-store");
            add_cors(res, ctx.cfg, to.origin);
            res.keep_alive(to.keep_alive);
            res.body() = std::move(out);
            res.prepare_payload();
            respond(std::move(res));
        });
}

// Prometheus text format (version 0.0.4). Counters end in _total; no label has user input.
std::string render_metrics(server_context& ctx) {
    const auto& st = ctx.api.stats();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
               name + " " + std::to_string(value) + "\n";
    };
    metric("eventcast_connections", "gauge", "Open WebSocket connections.",
           st.connections_open.load());
    metric("eventcast_connections_total", "counter", "WebSocket connections accepted.",
           st.connections_total.load());
    metric("eventcast_subscriptions", "gauge", "Live subscriptions.",
           ctx.api.broker().subscription_count());
    metric("eventcast_http_requests_total", "counter", "HTTP requests answered (not upgrades).",
           st.http_requests.load());
    metric("eventcast_ws_messages_in_total", "counter", "WebSocket messages received.",
           st.ws_messages_in.load());
    metric("eventcast_events_in_total", "counter", "Events accepted for publish.",
           st.events_in.load());
    metric("eventcast_frames_out_total", "counter", "Data frames queued to subscribers.",
           st.frames_out.load());
    metric("eventcast_bytes_out_total", "counter", "WebSocket payload bytes written.",
           st.bytes_out.load());
    metric("eventcast_ws_writes_total", "counter", "WebSocket socket writes.",
           st.ws_frames_written.load());
    metric("eventcast_slow_consumer_closes_total", "counter",
           "Connections closed because their outbox passed --max-outbox-bytes.",
           st.slow_consumer_closes.load());
    metric("eventcast_auth_failures_total", "counter", "Refused credentials.",
           st.auth_failures.load());
    out +=
        "# HELP eventcast_rate_limited_total Refusals by rate limit.\n"
        "# TYPE eventcast_rate_limited_total counter\n"
        "eventcast_rate_limited_total{limit=\"connections_per_ip\"} " +
        std::to_string(st.rate_limited_connections.load()) +
        "\n"
        "eventcast_rate_limited_total{limit=\"ops_per_second\"} " +
        std::to_string(st.rate_limited_operations.load()) + "\n";
    const auto ac = ctx.api.auth().counters();
    metric("eventcast_jwks_refreshes_total", "counter",
           "JWKS refetches asked for by tokens with an unknown kid.", ac.jwks_refreshes);
    metric("eventcast_lambda_authorizer_calls_total", "counter",
           "Calls to the Lambda authorizer webhook (cache misses).", ac.lambda_calls);
    out +=
        "# HELP eventcast_errors_total Error replies by errorType.\n"
        "# TYPE eventcast_errors_total counter\n";
    using k = events::error_kind;
    for (auto kind :
         {k::invalid_input, k::bad_request, k::unauthorized, k::max_subscriptions, k::duplicate_id,
          k::unknown_operation, k::unsupported, k::limit_exceeded, k::resume_too_old}) {
        events::protocol_error e{kind, {}};
        out += std::string("eventcast_errors_total{errorType=\"") + e.ws_error_type() + "\"} " +
               std::to_string(st.errors_by_kind[static_cast<std::size_t>(kind)].load()) + "\n";
    }
    const auto hist = ctx.api.history().stats();
    metric("eventcast_history_events", "gauge", "Events retained for resume.", hist.events);
    metric("eventcast_history_bytes", "gauge", "Bytes counted against --history-max-bytes.",
           hist.bytes);
    metric("eventcast_history_evicted_total", "counter",
           "Events dropped from history by count, age or the byte cap.", hist.evicted);
    metric("eventcast_chat_streams_active", "gauge", "Chat streams running.",
           ctx.chat ? ctx.chat->active_streams() : 0);
    metric("eventcast_chat_streams_total", "counter", "Chat streams started.",
           st.chat_streams_total.load());
    metric("eventcast_chat_streams_failed_total", "counter",
           "Chat streams that ended with a provider error.", st.chat_streams_failed.load());
    if (const auto* cl = ctx.cluster) {
        const auto& cs = cl->stats();
        metric("eventcast_cluster_connected", "gauge", "1 while connected to NATS, else 0.",
               cl->connected() ? 1 : 0);
        metric("eventcast_cluster_disconnects_total", "counter", "NATS connections lost.",
               cs.disconnects.load());
        metric("eventcast_cluster_reconnects_total", "counter", "NATS reconnections.",
               cs.reconnects.load());
        metric("eventcast_cluster_namespaces", "gauge",
               "Namespaces this node subscribes to in NATS.", cs.namespaces.load());
        metric("eventcast_cluster_messages_out_total", "counter",
               "Publishes sent to NATS (one message per publish batch).", cs.messages_out.load());
        metric("eventcast_cluster_messages_in_total", "counter",
               "NATS messages handed to this node's broker (matched or not).",
               cs.messages_in.load());
        metric("eventcast_cluster_publish_failures_total", "counter",
               "Publishes NATS refused; delivered on this node only.", cs.publish_failures.load());
        metric("eventcast_cluster_local_only_total", "counter",
               "Publishes delivered on this node only because NATS was disconnected.",
               cs.local_only.load());
        metric("eventcast_cluster_bad_messages_total", "counter",
               "NATS messages dropped because their subject or payload did not decode.",
               cs.bad_messages.load());
        metric("eventcast_cluster_dropped_total", "counter",
               "NATS messages dropped because this node fell behind (slow consumer).",
               cs.dropped.load());
    }
    st.provider_first_chunk.render(out, "eventcast_provider_first_chunk_seconds",
                                   "Time from starting a provider request to its first text.");
    st.chunk_publish.render(out, "eventcast_chunk_publish_seconds",
                            "Time from provider text parsed to its delta handed to subscribers "
                            "(includes the --chat-coalesce-ms window).");
    return out;
}

bool loopback_host(const std::string& host) {
    return host == "127.0.0.1" || host == "::1" || host == "localhost" ||
           host.rfind("127.", 0) == 0;
}

// GET /, the web app's files, and /web-config.json: what the page needs to know about this
// server. The API key is offered only when the server listens on loopback, where anyone who can
// load the page could read the key from the terminal anyway.
std::optional<http_response> web_route(const http_request& req, std::string_view path,
                                       server_context& ctx) {
    if (req.method() != http::verb::get && req.method() != http::verb::head)
        return std::nullopt;
    http_response res{http::status::ok, req.version()};
    res.set(http::field::server, "eventcast");
    res.keep_alive(req.keep_alive());
    if (path == "/web-config.json") {
        boost::json::object o{{"chatNamespace", ctx.cfg.chat.chat_namespace},
                              {"namespaces", boost::json::value_from(ctx.cfg.namespaces)},
                              {"chatProvider", ctx.chat ? ctx.chat->default_provider() : ""}};
        if (loopback_host(ctx.cfg.host) && !ctx.cfg.api_keys.empty())
            o["apiKey"] = ctx.cfg.api_keys.front().value;
        else
            o["apiKey"] = nullptr;
        res.set(http::field::content_type, "application/json");
        res.set(http::field::cache_control, "no-store");
        res.body() = boost::json::serialize(o);
        res.prepare_payload();
        return res;
    }
    const std::string_view file = path == "/" ? std::string_view("/index.html") : path;
    for (const auto& a : static_assets()) {
        if (a.path != file)
            continue;
        res.set(http::field::content_type, a.content_type);
        res.set(http::field::cache_control, "no-cache");
        res.set("x-content-type-options", "nosniff");
        res.set("content-security-policy",
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:");
        res.body() = std::string(a.body);
        res.prepare_payload();
        if (req.method() == http::verb::head)
            res.body().clear();
        return res;
    }
    return std::nullopt;
}

http_response preflight(const http_request& req, const core::config& cfg) {
    http_response res{http::status::no_content, req.version()};
    res.set(http::field::server, "eventcast");
    add_cors(res, cfg, req[http::field::origin]);
    res.set(http::field::access_control_allow_methods, "POST, GET, OPTIONS");
    res.set(http::field::access_control_allow_headers,
            "content-type, x-api-key, authorization, x-amz-date, x-amz-security-token, "
            "x-amz-user-agent, x-amz-content-sha256");
    res.set(http::field::access_control_max_age, "600");
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

}  // namespace

events::credentials request_credentials(const http_request& req) {
    events::credentials creds;
    for (const auto& f : req)
        creds.add(f.name_string(), f.value());
    return creds;
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

namespace {

http_response answer_to_response(const chat::http_answer& a, unsigned version, bool keep_alive,
                                 const core::config& cfg, std::string_view origin) {
    http_response res{static_cast<http::status>(a.status), version};
    res.set(http::field::server, "eventcast");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    if (!a.error_type.empty())
        res.set("x-amzn-ErrorType", a.error_type);
    add_cors(res, cfg, origin);
    res.keep_alive(keep_alive);
    res.body() = a.body;
    res.prepare_payload();
    return res;
}

void chat_authorized(const http_request& req, std::string_view path, server_context& ctx,
                     http_responder& respond, const std::string& user);

void chat_authorized(const http_request& req, std::string_view path, server_context& ctx,
                     http_responder& respond, const std::string& user);

// POST /chat, GET /chat/<id>, POST /chat/<id>/cancel, authorized with --auth-chat's modes.
void chat_route(const http_request& req, std::string_view path, server_context& ctx,
                http_responder& respond) {
    const auto origin = req[http::field::origin];
    if (!ctx.chat)
        return respond(http_error(404, "NotFoundException", "chat is not enabled on this server",
                                  req.version(), req.keep_alive(), ctx.cfg, origin));
    const auto view = http_view_of(req);
    const auto creds = request_credentials(req);
    auth::auth_request r;
    r.op = auth::operation::chat;
    r.creds = &creds;
    r.ns = ctx.cfg.chat.chat_namespace;
    r.http = &view;
    // The continuation owns what it needs: the request may be gone when it runs.
    auto owned = std::make_shared<http_request>(req);
    authorize_then(ctx, r,
                   [&ctx, owned, path = std::string(path),
                    respond = std::move(respond)](auth::auth_result a) mutable {
                       if (!a) {
                           ctx.api.count_refusal();
                           return respond(protocol_error_response(a.error(), *owned, ctx.cfg));
                       }
                       chat_authorized(*owned, path, ctx, respond, a->user);
                   });
}

// The chat routes once the caller is authorized. `user`: the caller's identity (a token's claim
// or an IAM principal), which is then the userId; empty for API keys and Lambda answers.
void chat_authorized(const http_request& req, std::string_view path, server_context& ctx,
                     http_responder& respond, const std::string& user) {
    const auto origin = req[http::field::origin];
    const auto version = req.version();
    const bool keep_alive = req.keep_alive();
    if (path == "/chat") {
        if (req.method() != http::verb::post)
            return respond(http_error(405, "BadRequestException", "/chat accepts POST only",
                                      version, keep_alive, ctx.cfg, origin));
        const auto content_type = req[http::field::content_type];
        if (!content_type.empty() && content_type.substr(0, 16) != "application/json")
            return respond(http_error(415, "BadRequestException",
                                      "content-type is not supported; send application/json",
                                      version, keep_alive, ctx.cfg, origin));
        const core::config& cfg = ctx.cfg;
        ctx.chat->start(
            req.body(),
            [respond = std::move(respond), version, keep_alive, &cfg,
             origin = std::string(origin)](chat::http_answer a) {
                respond(answer_to_response(a, version, keep_alive, cfg, origin));
            },
            user);
        return;
    }
    auto rest = path.substr(6);  // after "/chat/"
    const auto slash = rest.find('/');
    const auto id = rest.substr(0, slash);
    const auto action = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    const bool get_status = action.empty() && req.method() == http::verb::get;
    if (get_status || (action == "/cancel" && req.method() == http::verb::post)) {
        auto a = get_status ? ctx.chat->status(id, user) : ctx.chat->cancel(id, user);
        if (a.status != 404 || !ctx.chat_directory)
            return respond(answer_to_response(a, version, keep_alive, ctx.cfg, origin));
        // Not here: in cluster mode the node that runs the stream answers (chat_directory).
        const core::config& cfg = ctx.cfg;
        ctx.chat_directory->ask(
            get_status ? "status" : "cancel", id, user, std::chrono::milliseconds(500),
            [respond = std::move(respond), a = std::move(a), version, keep_alive, &cfg,
             origin = std::string(origin)](std::optional<cluster::remote_answer> remote) {
                if (remote)
                    return respond(answer_to_response(
                        {remote->status, std::move(remote->body), std::move(remote->error_type)},
                        version, keep_alive, cfg, origin));
                respond(answer_to_response(a, version, keep_alive, cfg, origin));
            });
        return;
    }
    respond(
        http_error(404, "NotFoundException",
                   "chat routes: POST /chat, GET /chat/<streamId>, POST /chat/<streamId>/cancel",
                   version, keep_alive, ctx.cfg, origin));
}

http_response route(const http_request& req, server_context& ctx) {
    const auto path = path_of(std::string_view(req.target().data(), req.target().size()));
    const auto verb = req.method();
    if (verb == http::verb::options)
        return preflight(req, ctx.cfg);
    if (path == "/event") {
        return http_error(405, "BadRequestException", "/event accepts POST only (publish)",
                          req.version(), req.keep_alive(), ctx.cfg, req[http::field::origin]);
    }
    if (path == "/event/realtime")
        return http_error(426, "BadRequestException",
                          "/event/realtime is the WebSocket endpoint; send a WebSocket upgrade "
                          "with subprotocol aws-appsync-event-ws",
                          req.version(), req.keep_alive(), ctx.cfg, req[http::field::origin]);
    if (verb == http::verb::get && path == "/metrics") {
        http_response res{http::status::ok, req.version()};
        res.set(http::field::server, "eventcast");
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.set(http::field::cache_control, "no-store");
        res.keep_alive(req.keep_alive());
        res.body() = render_metrics(ctx);
        res.prepare_payload();
        return res;
    }
    if (verb == http::verb::get && (path == "/healthz" || path == "/readyz")) {
        if (path == "/readyz" && ctx.stopping.load())
            return json_response(503, R"({"status":"stopping"})", req, ctx.cfg);
        // In cluster mode a node without NATS is not ready (docs/CLUSTER.md): its clients would
        // miss everything published on the other nodes, so a load balancer should send new
        // clients elsewhere. /healthz (liveness) stays 200: restarting the node would not help.
        const bool cluster_down = ctx.cluster && !ctx.cluster->connected();
        auto& st = ctx.api.stats();
        std::string body = R"({"status":")";
        body += path == "/readyz" && cluster_down ? "cluster-disconnected" : "ok";
        body += R"(","connections":)" + std::to_string(st.connections_open.load()) +
                R"(,"subscriptions":)" + std::to_string(ctx.api.broker().subscription_count()) +
                R"(,"slowConsumerCloses":)" + std::to_string(st.slow_consumer_closes.load());
        if (ctx.cluster)
            body += R"(,"cluster":")" + ctx.cluster->state() + '"';
        body += '}';
        return json_response(path == "/readyz" && cluster_down ? 503 : 200, std::move(body), req,
                             ctx.cfg);
    }
    if (auto web = web_route(req, path, ctx))
        return std::move(*web);
    return http_error(404, "NotFoundException",
                      "no route for " + std::string(req.method_string()) + " " +
                          std::string(path.substr(0, 100)) +
                          "; routes: POST /event, GET /event/realtime (WebSocket), POST /chat, GET "
                          "/healthz, GET /metrics",
                      req.version(), req.keep_alive(), ctx.cfg, req[http::field::origin]);
}

}  // namespace

void handle_http(const http_request& req, server_context& ctx, http_responder respond) {
    core::stats::add(ctx.api.stats().http_requests);
    const auto target = std::string_view(req.target().data(), req.target().size());
    const auto path = path_of(target);
    if (req.method() != http::verb::options && (path == "/chat" || path.substr(0, 6) == "/chat/"))
        return chat_route(req, path, ctx, respond);
    if (req.method() == http::verb::post && path == "/event")
        return publish(req, ctx, respond);
    respond(route(req, ctx));
}

}  // namespace eventcast::net

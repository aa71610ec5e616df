// Outbound calls of data sources and direct Lambda integrations. Every call runs on the
// transport thread from credential lookup to answer, bounded by --data-source-timeout-ms; the
// answers are parsed here and never trusted for more than their documented shape.
#include "handlers/data_source.hpp"

#include "aws/sigv4.hpp"
#include "core/log.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <memory>

namespace eventcast::handlers {

namespace json = boost::json;

namespace {

// Lambda's synchronous payload limit is 6 MB; a data source answer larger than that is refused
// rather than buffered without bound.
constexpr std::size_t max_answer_bytes = 6 * 1024 * 1024;

std::string trim_slashes(std::string s) {
    while (!s.empty() && s.back() == '/')
        s.pop_back();
    return s;
}

// "scheme://host[:port]/path?query" -> host[:port], path ("/" when none), query.
struct split_url {
    std::string host, path, query;
};
split_url split(const std::string& url) {
    split_url out;
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    const auto slash = url.find_first_of("/?", start);
    out.host = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string rest = slash == std::string::npos ? "/" : url.substr(slash);
    const auto q = rest.find('?');
    if (q != std::string::npos) {
        out.query = rest.substr(q + 1);
        rest.resize(q);
    }
    out.path = rest.empty() ? "/" : rest;
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// ctx.error.type of a non-2xx AWS answer: the exception name in x-amzn-ErrorType (its part
// before ':'), else the status.
std::string error_type_of(long status,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
    for (const auto& [name, value] : headers)
        if (iequals(name, "x-amzn-ErrorType") && !value.empty())
            return value.substr(0, value.find(':'));
    return "HTTP " + std::to_string(status);
}

// Lambda and Bedrock error bodies: {"message"}, {"Message"} or {"errorMessage"}.
std::string error_message_of(std::string_view body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (!ec && v.is_object())
        for (const char* key : {"message", "Message", "errorMessage"})
            if (const auto* m = v.as_object().if_contains(key); m && m->is_string())
                return std::string(m->as_string());
    std::string shown(body.substr(0, 200));
    std::erase_if(shown, [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    return shown;
}

json::value parse_or_string(std::string_view body) {
    if (body.empty())
        return nullptr;
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec)
        return json::string(body);
    return v;
}

std::string text_of(const json::value& v) {
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
}

// RFC 3986 unreserved bytes stay; everything else is %XX (query names and values).
std::string query_encode(std::string_view s) {
    return aws::uri_encode(s);
}

bool status_ok(long status) {
    return status >= 200 && status <= 299;
}

void fail_soon(aws::transport& t, std::function<void(call_result)> done, std::string why) {
    t.post([done = std::move(done), why = std::move(why)] { done({why, nullptr}); });
}

}  // namespace

// ---- specs ----------------------------------------------------------------------------------

boost::system::result<std::pair<std::string, data_source>, std::string> parse_data_source(
    std::string_view spec) {
    const auto bad = [&](std::string why) {
        return boost::system::result<std::pair<std::string, data_source>, std::string>(
            boost::system::in_place_error,
            "namespace-data-source: '" + std::string(spec) + "' " + why);
    };
    const auto colon = spec.find(':');
    if (colon == std::string_view::npos || colon == 0)
        return bad("is not NS:lambda:FUNCTION, NS:http:BASE_URL or NS:bedrock[:MODEL_ID]");
    const auto ns = spec.substr(0, colon);
    const auto rest = spec.substr(colon + 1);
    const auto colon2 = rest.find(':');
    const auto kind = rest.substr(0, colon2);
    const auto target =
        colon2 == std::string_view::npos ? std::string_view{} : rest.substr(colon2 + 1);
    data_source ds;
    ds.target = std::string(target);
    if (kind == "lambda") {
        if (target.empty())
            return bad("names no function (NS:lambda:FUNCTION_NAME_OR_ARN)");
        ds.what = data_source::kind::lambda;
    } else if (kind == "http") {
        if (target.rfind("http://", 0) != 0 && target.rfind("https://", 0) != 0)
            return bad("has no http:// or https:// base URL (NS:http:BASE_URL)");
        ds.what = data_source::kind::http;
        ds.target = trim_slashes(ds.target);
    } else if (kind == "bedrock") {
        ds.what = data_source::kind::bedrock;
    } else {
        return bad("has kind '" + std::string(kind) + "'; allowed: lambda, http, bedrock");
    }
    return std::pair{std::string(ns), std::move(ds)};
}

boost::system::result<std::pair<std::string, direct_lambda>, std::string> parse_direct_lambda(
    std::string_view spec) {
    const auto bad = [&](std::string why) {
        return boost::system::result<std::pair<std::string, direct_lambda>, std::string>(
            boost::system::in_place_error,
            "namespace-direct-lambda: '" + std::string(spec) + "' " + why);
    };
    std::vector<std::string_view> parts;
    std::string_view rest = spec;
    for (int i = 0; i < 3; ++i) {
        const auto colon = rest.find(':');
        if (colon == std::string_view::npos)
            return bad("is not NS:OPERATIONS:INVOKE_TYPE:FUNCTION");
        parts.push_back(rest.substr(0, colon));
        rest = rest.substr(colon + 1);
    }
    if (parts[0].empty() || rest.empty())
        return bad("is not NS:OPERATIONS:INVOKE_TYPE:FUNCTION");
    direct_lambda d;
    d.function = std::string(rest);
    std::string_view ops = parts[1];
    while (!ops.empty()) {
        const auto plus = ops.find('+');
        const auto op = ops.substr(0, plus);
        if (op == "publish")
            d.publish = true;
        else if (op == "subscribe")
            d.subscribe = true;
        else
            return bad("has operation '" + std::string(op) + "'; allowed: publish, subscribe");
        ops = plus == std::string_view::npos ? std::string_view{} : ops.substr(plus + 1);
    }
    if (!d.publish && !d.subscribe)
        return bad("names no operation (publish, subscribe or publish+subscribe)");
    if (parts[2] == "EVENT")
        d.event = true;
    else if (parts[2] != "REQUEST_RESPONSE")
        return bad("has invoke type '" + std::string(parts[2]) +
                   "'; allowed: REQUEST_RESPONSE, EVENT");
    return std::pair{std::string(parts[0]), std::move(d)};
}

// ---- calls ----------------------------------------------------------------------------------

struct outbound::plain_call final : aws::http_handler {
    using finished_fn = std::function<void(long, std::vector<std::pair<std::string, std::string>>,
                                           std::string, std::string)>;
    explicit plain_call(finished_fn f) : finished(std::move(f)) {}
    void on_header(std::string_view name, std::string_view value) override {
        if (headers.size() < 100)
            headers.emplace_back(std::string(name), std::string(value));
    }
    bool on_body(long s, std::string_view bytes) override {
        status = s;
        body.append(bytes);
        return true;
    }
    void on_complete(const aws::transfer_result& r) override {
        std::string error;
        if (r.timed_out || r.cancelled)
            error = "did not answer in time";
        else if (r.too_large)
            error = "answered more than " + std::to_string(max_answer_bytes) + " bytes";
        else if (!r.error.empty())
            error = "could not be reached: " + (r.detail.empty() ? r.error : r.detail);
        finished(r.status ? r.status : status, std::move(headers), std::move(body),
                 std::move(error));
    }
    finished_fn finished;
    long status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

outbound::outbound(outbound_setup setup) : setup_(std::move(setup)) {
    if (setup_.lambda_endpoint.empty())
        setup_.lambda_endpoint = "https://lambda." + setup_.region + ".amazonaws.com";
    if (setup_.bedrock_endpoint.empty())
        setup_.bedrock_endpoint = "https://bedrock-runtime." + setup_.region + ".amazonaws.com";
    setup_.lambda_endpoint = trim_slashes(setup_.lambda_endpoint);
    setup_.bedrock_endpoint = trim_slashes(setup_.bedrock_endpoint);
}

void outbound::start(aws::http_call call, std::string what, bool sign, std::string_view service,
                     plain_call::finished_fn finished) {
    auto& t = *setup_.transport;
    call.total_timeout = setup_.timeout;
    call.idle_timeout = setup_.timeout;
    call.connect_timeout = std::min(setup_.timeout, std::chrono::milliseconds(10'000));
    call.max_body_bytes = max_answer_bytes;
    t.post([this, &t, call = std::move(call), what = std::move(what), sign,
            service = std::string(service), finished = std::move(finished)]() mutable {
        if (sign) {
            auto creds =
                setup_.chain
                    ? setup_.chain->get()
                    : boost::system::result<aws::resolved_credentials, std::string>(
                          boost::system::in_place_error, std::string("no credential chain"));
            if (!creds)
                return finished(0, {}, {}, what + ": no AWS credentials: " + creds.error());
            const auto parts = split(call.url);
            std::vector<aws::http_header> signed_headers{{"host", parts.host}};
            for (const auto& h : call.headers) {
                const auto colon = h.find(':');
                std::string name = h.substr(0, colon);
                std::transform(name.begin(), name.end(), name.begin(),
                               [](unsigned char c) { return std::tolower(c); });
                auto value = h.substr(colon + 1);
                while (!value.empty() && value.front() == ' ')
                    value.erase(0, 1);
                signed_headers.push_back({std::move(name), std::move(value)});
            }
            aws::sigv4_request req{call.method, parts.path, parts.query, signed_headers, call.body};
            auto sig =
                aws::sign_request(req, creds->credentials,
                                  {setup_.region, service, std::chrono::system_clock::now()});
            if (!sig)
                return finished(0, {}, {}, what + ": signing failed: " + sig.error().message);
            call.headers.push_back("Host: " + parts.host);
            for (const auto& h : sig->added_headers)
                call.headers.push_back(h.name + ": " + h.value);
            call.headers.push_back("Authorization: " + sig->authorization);
        }
        auto handler = std::make_shared<plain_call>(
            [what, finished = std::move(finished)](
                long status, std::vector<std::pair<std::string, std::string>> headers,
                std::string body, std::string error) {
                if (!error.empty())
                    return finished(status, {}, {}, what + " " + error);
                finished(status, std::move(headers), std::move(body), {});
            });
        t.start(std::move(call), std::move(handler));
    });
}

void outbound::invoke_lambda(const std::string& function, const char* invocation_type,
                             std::string payload, std::function<void(call_result)> done) {
    aws::http_call call;
    call.method = "POST";
    call.url = setup_.lambda_endpoint + "/2015-03-31/functions/" + aws::uri_encode(function) +
               "/invocations";
    call.headers = {"Content-Type: application/json",
                    std::string("X-Amz-Invocation-Type: ") + invocation_type};
    call.body = std::move(payload);
    const bool event = std::string_view(invocation_type) == "Event";
    start(std::move(call), "lambda function '" + function + "'", true, "lambda",
          [function, event, done = std::move(done)](
              long status, std::vector<std::pair<std::string, std::string>> headers,
              std::string body, std::string error) {
              if (!error.empty())
                  return done({std::move(error), nullptr});
              if (!status_ok(status))
                  return done({"lambda invoke of '" + function + "' answered HTTP " +
                                   std::to_string(status) + ": " + error_message_of(body),
                               nullptr, error_type_of(status, headers)});
              for (const auto& [name, value] : headers)
                  if (iequals(name, "X-Amz-Function-Error")) {
                      std::string type;
                      boost::system::error_code ec;
                      auto v = json::parse(body, ec);
                      if (!ec && v.is_object())
                          if (const auto* t = v.as_object().if_contains("errorType");
                              t && t->is_string())
                              type = std::string(t->as_string()) + ": ";
                      return done({"lambda function '" + function + "' failed (" + value +
                                       "): " + type + error_message_of(body),
                                   nullptr, "Lambda:" + value});
                  }
              if (event)
                  return done({{}, nullptr});
              boost::system::error_code ec;
              auto v = body.empty() ? json::value(nullptr) : json::parse(body, ec);
              if (ec)
                  return done({"lambda function '" + function + "' answered text that is not JSON",
                               nullptr});
              done({{}, std::move(v)});
          });
}

void outbound::call(const data_source& source, json::value request,
                    std::function<void(call_result)> done) {
    auto& t = *setup_.transport;
    const json::object* req = request.if_object();
    if (!req)
        return fail_soon(t, std::move(done),
                         "the request handler returned " +
                             std::string(request.is_null() ? "nothing"
                                                           : "a value that is not an "
                                                             "object") +
                             "; a data source needs an object");
    switch (source.what) {
        case data_source::kind::lambda: {
            const auto* op = req->if_contains("operation");
            if (op && !(op->is_string() && op->as_string() == "Invoke"))
                return fail_soon(t, std::move(done), "lambda request: operation must be 'Invoke'");
            const char* type = "RequestResponse";
            if (const auto* it = req->if_contains("invocationType")) {
                if (it->is_string() && it->as_string() == "Event")
                    type = "Event";
                else if (!(it->is_string() && it->as_string() == "RequestResponse"))
                    return fail_soon(t, std::move(done),
                                     "lambda request: invocationType must be 'RequestResponse' "
                                     "or 'Event'");
            }
            const auto* payload = req->if_contains("payload");
            return invoke_lambda(source.target, type,
                                 payload ? json::serialize(*payload) : std::string("null"),
                                 std::move(done));
        }
        case data_source::kind::http: {
            const auto* method = req->if_contains("method");
            const auto* path = req->if_contains("resourcePath");
            if (!method || !method->is_string() || !path || !path->is_string() ||
                (!path->as_string().empty() && path->as_string().front() != '/'))
                return fail_soon(t, std::move(done),
                                 "http request: needs a string 'method' and a 'resourcePath' "
                                 "starting with '/'");
            aws::http_call call;
            call.method = std::string(method->as_string());
            call.url = source.target + std::string(path->as_string());
            const json::object* params = nullptr;
            if (const auto* p = req->if_contains("params"))
                params = p->if_object();
            if (params) {
                if (const auto* q = params->if_contains("query"); q && q->is_object()) {
                    std::string query;
                    for (const auto& [k, v] : q->as_object()) {
                        query += query.empty() ? "" : "&";
                        query += query_encode(k) + "=" + query_encode(text_of(v));
                    }
                    if (!query.empty())
                        call.url += "?" + query;
                }
                if (const auto* h = params->if_contains("headers"); h && h->is_object())
                    for (const auto& [k, v] : h->as_object()) {
                        auto value = text_of(v);
                        std::erase_if(value, [](char c) { return c == '\r' || c == '\n'; });
                        call.headers.push_back(std::string(k) + ": " + value);
                    }
                if (const auto* b = params->if_contains("body"); b && !b->is_null())
                    call.body = text_of(*b);
            }
            return start(std::move(call), "http data source " + source.target, false, "",
                         [done = std::move(done)](
                             long status, std::vector<std::pair<std::string, std::string>> headers,
                             std::string body, std::string error) {
                             if (!error.empty())
                                 return done({std::move(error), nullptr});
                             json::object h;
                             for (auto& [name, value] : headers)
                                 h[name] = value;
                             done({{},
                                   json::object{{"statusCode", status},
                                                {"headers", std::move(h)},
                                                {"body", std::move(body)}}});
                         });
        }
        case data_source::kind::bedrock: {
            const auto* op = req->if_contains("operation");
            const bool converse = op && op->is_string() && op->as_string() == "Converse";
            if (!op || !op->is_string() || (!converse && op->as_string() != "InvokeModel"))
                return fail_soon(t, std::move(done),
                                 "bedrock request: operation must be 'InvokeModel' or 'Converse'");
            std::string model = source.target;
            if (const auto* m = req->if_contains("modelId"); m && m->is_string())
                model = std::string(m->as_string());
            if (model.empty())
                return fail_soon(t, std::move(done),
                                 "bedrock request: no modelId (and no NS:bedrock:MODEL_ID)");
            aws::http_call call;
            call.method = "POST";
            call.url = setup_.bedrock_endpoint + "/model/" + aws::uri_encode(model) +
                       (converse ? "/converse" : "/invoke");
            if (converse) {
                json::object body = *req;
                body.erase("operation");
                body.erase("modelId");
                call.body = json::serialize(body);
                call.headers = {"Content-Type: application/json"};
            } else {
                const auto* b = req->if_contains("body");
                call.body = b ? text_of(*b) : std::string("{}");
                auto header = [&](const char* key, const char* name) {
                    const auto* v = req->if_contains(key);
                    call.headers.push_back(std::string(name) + ": " +
                                           (v && v->is_string() ? std::string(v->as_string())
                                                                : std::string("application/json")));
                };
                header("contentType", "Content-Type");
                header("accept", "Accept");
            }
            return start(
                std::move(call), "bedrock model '" + model + "'", true, "bedrock",
                [model, done = std::move(done)](
                    long status, std::vector<std::pair<std::string, std::string>> headers,
                    std::string body, std::string error) {
                    if (!error.empty())
                        return done({std::move(error), nullptr});
                    if (!status_ok(status))
                        return done({"bedrock model '" + model + "' answered HTTP " +
                                         std::to_string(status) + ": " + error_message_of(body),
                                     nullptr, error_type_of(status, headers)});
                    done({{}, parse_or_string(body)});
                });
        }
    }
}

// ---- direct integration ---------------------------------------------------------------------

std::string direct_lambda_payload(std::string_view ctx_json) {
    boost::system::error_code ec;
    auto v = json::parse(ctx_json, ec);
    assert(!ec && v.is_object() && "build_context writes a JSON object");
    auto& o = v.as_object();
    o["result"] = nullptr;
    o["error"] = nullptr;
    o["prev"] = nullptr;
    o["outErrors"] = json::array();
    return json::serialize(v);
}

result<publish_decision> map_direct_publish(const json::value& answer,
                                            const std::vector<std::string>& incoming_ids) {
    if (answer.is_null())
        return publish_decision{};
    const auto* o = answer.if_object();
    if (!o)
        return failure{failure::kind::bad_result,
                       "the Lambda function's answer is not an object; expected {\"events\":[...]} "
                       "or {\"error\":\"message\"}",
                       {}};
    if (const auto* e = o->if_contains("error"); e && !e->is_null())
        return failure{failure::kind::error, text_of(*e), {}};
    const auto* events = o->if_contains("events");
    if (!events || events->is_null())
        return publish_decision{};
    if (!events->is_array())
        return failure{failure::kind::bad_result,
                       "the Lambda function's answer has 'events' that is not an array",
                       {}};
    return map_publish(json::serialize(json::object{{"ok", *events}}), incoming_ids);
}

std::optional<failure> map_direct_subscribe(const json::value& answer) {
    const auto* o = answer.if_object();
    if (!o)
        return std::nullopt;
    if (const auto* e = o->if_contains("error"); e && !e->is_null())
        return failure{failure::kind::error, text_of(*e), {}};
    return std::nullopt;
}

}  // namespace eventcast::handlers

// The decision for one operation: which mode the credentials use (spec §9.6), whether that mode
// is allowed for the operation and namespace, the mode's own check, then the per-user rule.
#include "auth/authorizer.hpp"

#include "auth/iam.hpp"
#include "auth/jwks_source.hpp"
#include "auth/jwt.hpp"
#include "auth/lambda_authorizer.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::auth {

namespace {

using events::protocol_error;

struct token_provider {
    mode m;
    jwt_policy policy;
    std::unique_ptr<jwks_source> source;
};

std::string_view strip_slash(std::string_view s) {
    if (!s.empty() && s.back() == '/')
        s.remove_suffix(1);
    return s;
}

using core::strip_bearer;

// What a client is told; the detailed reason goes to the debug log only.
std::string client_message(const jwt_error& e) {
    switch (e.kind) {
        case jwt_failure::malformed: return "the token is not a well-formed JWT";
        case jwt_failure::unsupported_algorithm:
            return "the token's algorithm is not accepted; allowed: RS256, ES256";
        case jwt_failure::unknown_key: return "the token's key id is not in the provider's keys";
        case jwt_failure::bad_signature: return "the token's signature does not verify";
        case jwt_failure::expired: return "the token has expired";
        case jwt_failure::not_yet_valid: return "the token is not valid yet";
        case jwt_failure::wrong_issuer: return "the token's issuer is not accepted";
        case jwt_failure::wrong_audience:
            return "the token's audience or client id is not accepted";
        case jwt_failure::wrong_token_use: return "the token's token_use must be access or id";
    }
    return "the token was refused";
}

// A copy of an auth_request that outlives the caller's buffers.
struct owned_request {
    operation op;
    std::optional<events::credentials> creds;
    std::string ns, raw_channel;
    std::optional<events::channel_pattern> pattern;
    std::optional<events::channel_path> path;
    std::optional<std::vector<std::string>> evs;
    std::optional<http_view> http;
    std::string http_method, http_path, http_query, http_body;

    explicit owned_request(const auth_request& r) : op(r.op), ns(r.ns), raw_channel(r.raw_channel) {
        if (r.creds)
            creds = *r.creds;
        if (r.pattern)
            pattern = *r.pattern;
        if (r.path)
            path = *r.path;
        if (r.events)
            evs = *r.events;
        if (r.http) {
            http_method = r.http->method;
            http_path = r.http->path;
            http_query = r.http->query;
            http_body = r.http->body;
            http = http_view{http_method, http_path, http_query, http_body};
        }
    }
    auth_request view() const {
        auth_request r;
        r.op = op;
        r.creds = creds ? &*creds : nullptr;
        r.ns = ns;
        r.raw_channel = raw_channel;
        r.pattern = pattern ? &*pattern : nullptr;
        r.path = path ? &*path : nullptr;
        r.events = evs ? &*evs : nullptr;
        r.http = http ? &*http : nullptr;
        return r;
    }
};

}  // namespace

struct authorizer::impl {
    api_key_store keys;
    std::optional<iam_key_store> iam;
    iam_policy iam_pol;
    std::vector<token_provider> tokens;
    std::unique_ptr<lambda_authorizer> lambda;
    mode_set connect_modes, publish_modes, subscribe_modes, chat_modes;
    // Looked up by string_view on every subscribe and publish: no allocation per operation.
    struct sv_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, mode_set, sv_hash, std::equal_to<>> ns_publish, ns_subscribe;
    std::unordered_set<std::string, sv_hash, std::equal_to<>> user_ns;
    std::string user_claim;
    mutable std::atomic<std::uint64_t> jwks_refreshes{0};

    explicit impl(const core::config& cfg) : keys(cfg.api_keys), user_claim(cfg.auth.user_claim) {}

    mode_set allowed(operation op, std::string_view ns) const {
        switch (op) {
            case operation::connect: return connect_modes;
            case operation::chat: return chat_modes;
            case operation::subscribe: {
                auto it = ns_subscribe.find(ns);
                return it == ns_subscribe.end() ? subscribe_modes : it->second;
            }
            case operation::publish: {
                auto it = ns_publish.find(ns);
                return it == ns_publish.end() ? publish_modes : it->second;
            }
        }
        return {};
    }

    std::string where(const auth_request& r) const {
        std::string s = operation_name(r.op);
        if (!r.ns.empty() && r.op != operation::connect)
            s += " on namespace '" + std::string(r.ns) + "'";
        return s;
    }

    // Step 1 (spec §9.6): the mode the credentials use, among the allowed ones.
    struct detected {
        std::optional<mode> m;
        const token_provider* provider = nullptr;
        std::string found;  // what the credentials looked like, for the refusal message
    };
    detected detect(const events::credentials& c, mode_set ok) const {
        detected d;
        const bool has_key = c.find("x-api-key") != nullptr;
        const std::string* authz = c.find("authorization");
        if (has_key) {
            d.found = "an x-api-key";
            if (ok.has(mode::api_key)) {
                d.m = mode::api_key;
                return d;
            }
        }
        if (!authz) {
            if (d.found.empty())
                d.found = "neither x-api-key nor authorization";
            return d;
        }
        if (authz->compare(0, 16, "AWS4-HMAC-SHA256") == 0) {
            d.found = "a SigV4 signature";
            if (ok.has(mode::iam))
                d.m = mode::iam;
            return d;
        }
        const auto iss = unverified_issuer(strip_bearer(*authz));
        if (!iss.empty()) {
            for (const auto& p : tokens)
                if (strip_slash(p.policy.issuer) == strip_slash(iss)) {
                    d.found = std::string("a token for ") + mode_name(p.m);
                    if (ok.has(p.m)) {
                        d.m = p.m;
                        d.provider = &p;
                        return d;
                    }
                }
            if (d.found.empty())
                d.found = "a token from an issuer that is not configured";
        } else if (d.found.empty()) {
            d.found = "an authorization token";
        }
        if (ok.has(mode::lambda) && lambda)
            d.m = mode::lambda;
        return d;
    }

    std::string identity_of(const verified_jwt& t) const {
        if (user_claim == "sub")
            return t.subject;
        if (user_claim == "username" || user_claim == "cognito:username")
            return t.username;
        if (const auto* v = t.claims.if_contains(user_claim); v && v->is_string())
            return std::string(v->as_string());
        return {};
    }

    // The per-user rule: /<ns>/<identity>/... only.
    events::result<void> check_user(const auth_request& r, const identity& who) const {
        if (r.op == operation::connect || !user_ns.contains(r.ns))
            return {};
        const std::string ns(r.ns);
        if (who.user.empty())
            return protocol_error::unauthorized(
                "namespace '" + ns + "' is per-user and " + mode_name(who.how) +
                " carries no user identity; use a Cognito or OIDC token or an IAM principal");
        if (r.op == operation::chat)
            return {};  // the chat route publishes to the caller's own channel
        const events::channel_path* p = r.pattern ? &r.pattern->prefix() : r.path;
        if (p && p->size() >= 2 && p->segment(1) == who.user)
            return {};
        return protocol_error::unauthorized(
            "namespace '" + ns + "' is per-user: " + operation_name(r.op) + " only under /" + ns +
            "/" + who.user + "; '" + std::string(r.raw_channel.substr(0, 300)) +
            "' reaches other users' channels");
    }

    auth_result finish(const auth_request& r, identity who) const {
        if (auto u = check_user(r, who); !u)
            return u.error();
        return who;
    }

    enum class need { nothing, jwks_refresh, lambda_call };
    struct step {
        std::optional<auth_result> result;
        need wait = need::nothing;
        const token_provider* provider = nullptr;
    };

    step evaluate(const auth_request& r, bool may_defer) const {
        const auto ok = allowed(r.op, r.ns);
        if (!r.creds)
            return {protocol_error::unauthorized(
                where(r) + " needs an 'authorization' object; allowed modes: " + ok.describe())};
        const auto d = detect(*r.creds, ok);
        if (!d.m)
            return {protocol_error::unauthorized(where(r) + " allows " + ok.describe() +
                                                 "; the request carried " + d.found)};
        const events::credentials& c = *r.creds;
        switch (*d.m) {
            case mode::api_key: {
                if (auto k = keys.check(c); !k)
                    return {k.error()};
                return {finish(r, identity{mode::api_key, {}, {}})};
            }
            case mode::iam: {
                if (!iam)
                    return {protocol_error::unauthorized("AWS_IAM has no keys configured")};
                // HTTP: the request itself is signed. WebSocket: a synthetic POST /event whose
                // body restates the operation (spec §9.3).
                std::string body;
                if (!r.http) {
                    if (r.op == operation::connect)
                        body = synthetic_body();
                    else if (r.events)
                        body = synthetic_body(r.raw_channel, *r.events);
                    else
                        body = synthetic_body(r.raw_channel);
                }
                const signed_request sr = r.http ? signed_request{r.http->method, r.http->path,
                                                                  r.http->query, c, r.http->body}
                                                 : signed_request{"POST", "/event", "", c, body};
                auto v = verify_sigv4(sr, *iam, iam_pol, std::chrono::system_clock::now());
                if (!v)
                    return {protocol_error::unauthorized("AWS_IAM: " + v.error())};
                return {finish(r, identity{mode::iam, v->principal, {}})};
            }
            case mode::cognito:
            case mode::oidc: {
                const auto token = strip_bearer(*c.find("authorization"));
                // Null until a URL source's first fetch succeeds: every kid is unknown then.
                static const jwks no_keys;
                const auto keyset = d.provider->source->current();
                auto v = verify_jwt(token, keyset ? *keyset : no_keys, d.provider->policy);
                // An unknown kid may be a rotated key: fetch again (the source rate-limits).
                if (!v && v.error().kind == jwt_failure::unknown_key && may_defer)
                    return {std::nullopt, need::jwks_refresh, d.provider};
                if (!v) {
                    log::debug("auth: {} token refused: {}", mode_name(*d.m), v.error().message);
                    return {protocol_error::unauthorized(std::string(mode_name(*d.m)) + ": " +
                                                         client_message(v.error()))};
                }
                identity who{*d.m, identity_of(*v), v->groups};
                if (who.user.empty() && user_ns.contains(r.ns))
                    return {protocol_error::unauthorized("the token has no '" + user_claim +
                                                         "' claim to use as the user identity")};
                return {finish(r, std::move(who))};
            }
            case mode::lambda: {
                auto req = lambda_request_of(r);
                if (auto a = lambda->cached(req))
                    return {lambda_result(r, *a)};
                if (!may_defer)
                    return {protocol_error::unauthorized("AWS_LAMBDA: no answer")};
                return {std::nullopt, need::lambda_call, nullptr};
            }
        }
        return {protocol_error::unauthorized()};
    }

    static lambda_request lambda_request_of(const auth_request& r) {
        lambda_request q;
        q.token = *r.creds->find("authorization");
        q.op = r.op;
        q.ns = r.ns;
        q.channel = r.raw_channel;
        q.headers = *r.creds;
        return q;
    }

    auth_result lambda_result(const auth_request& r, const lambda_answer& a) const {
        if (!a.allowed)
            return protocol_error::unauthorized("AWS_LAMBDA: " + a.reason);
        return finish(r, identity{mode::lambda, {}, {}});
    }
};

bool config_allows(const core::auth_config& a, mode m) {
    auto has = [m](const std::vector<std::string>& names) {
        return std::any_of(names.begin(), names.end(),
                           [m](const std::string& n) { return parse_mode(n) == m; });
    };
    if (has(a.connect_modes) || has(a.publish_modes) || has(a.subscribe_modes) || has(a.chat_modes))
        return true;
    return std::any_of(a.namespace_rules.begin(), a.namespace_rules.end(),
                       [&](const std::string& text) {
                           auto rule = split_namespace_rule(text);
                           return rule && has(rule->modes);
                       });
}

authorizer::authorizer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
authorizer::~authorizer() = default;

boost::system::result<std::unique_ptr<authorizer>, std::vector<std::string>> authorizer::create(
    const core::config& cfg, aws::transport* outbound) {
    const auto& a = cfg.auth;
    auto p = std::make_unique<impl>(cfg);
    std::vector<std::string> problems;
    auto parse_list = [&](const std::vector<std::string>& names, const char* flag) {
        mode_set s;
        for (const auto& n : names) {
            if (auto m = parse_mode(n))
                s.add(*m);
            else
                problems.push_back(std::string(flag) + ": '" + n +
                                   "' is not a mode; allowed: API_KEY, AWS_IAM, "
                                   "AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT, AWS_LAMBDA");
        }
        if (s.empty() && !names.empty())
            return s;
        if (s.empty())
            problems.push_back(std::string(flag) + ": name at least one mode");
        return s;
    };
    p->connect_modes = parse_list(a.connect_modes, "--auth-connect");
    p->publish_modes = parse_list(a.publish_modes, "--auth-publish");
    p->subscribe_modes = parse_list(a.subscribe_modes, "--auth-subscribe");
    p->chat_modes =
        a.chat_modes.empty() ? p->publish_modes : parse_list(a.chat_modes, "--auth-chat");
    mode_set used = p->connect_modes;
    auto merge = [&](mode_set s) {
        for (std::size_t i = 0; i < mode_count; ++i)
            if (s.has(static_cast<mode>(i)))
                used.add(static_cast<mode>(i));
    };
    merge(p->publish_modes);
    merge(p->subscribe_modes);
    merge(p->chat_modes);
    for (const auto& text : a.namespace_rules) {
        auto rule = split_namespace_rule(text);
        if (!rule) {
            problems.push_back("--namespace-auth: '" + text +
                               "' must be NS:publish=MODE|MODE or NS:subscribe=MODE|MODE");
            continue;
        }
        const auto& ns = rule->ns;
        const auto& op = rule->op;
        const auto s = parse_list(rule->modes, "--namespace-auth");
        merge(s);
        if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), ns) == cfg.namespaces.end())
            problems.push_back("--namespace-auth: namespace '" + ns + "' is not defined");
        if (op == "publish")
            p->ns_publish[ns] = s;
        else if (op == "subscribe")
            p->ns_subscribe[ns] = s;
        else
            problems.push_back("--namespace-auth: '" + op +
                               "' is not an operation; use publish or subscribe");
    }
    for (const auto& ns : a.user_namespaces) {
        if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), ns) == cfg.namespaces.end())
            problems.push_back("--user-namespace: namespace '" + ns + "' is not defined");
        p->user_ns.insert(ns);
    }

    // Providers: each mode in use needs its own, and a provider without a mode is a mistake
    // worth a warning (the operator configured something that never applies).
    if (used.has(mode::iam)) {
        if (a.iam_keys_file.empty()) {
            problems.push_back("AWS_IAM is allowed but --iam-keys-file is not set");
        } else if (auto store = iam_key_store::load(a.iam_keys_file); !store) {
            problems.push_back("--iam-keys-file: " + store.error());
        } else {
            p->iam = std::move(*store);
            p->iam_pol = {a.iam_region, a.iam_clock_skew};
        }
    }
    auto add_token_provider = [&](mode m, std::string issuer, std::vector<std::string> clients,
                                  std::string location) {
        jwt_policy policy;
        policy.issuer = std::move(issuer);
        policy.audiences = std::move(clients);
        policy.clock_skew = a.jwt_clock_skew;
        policy.cognito = m == mode::cognito;
        if (location.empty())
            location = std::string(strip_slash(policy.issuer)) + "/.well-known/jwks.json";
        jwks_source::options o;
        o.location = location;
        o.ca_file = a.jwks_ca_file;
        o.min_refresh_interval = a.jwks_min_refresh;
        auto src = jwks_source::start(std::move(o));
        if (!src) {
            problems.push_back(std::string(mode_name(m)) + ": " + src.error());
            return;
        }
        p->tokens.push_back({m, std::move(policy), std::move(*src)});
    };
    if (used.has(mode::cognito)) {
        if (a.cognito_user_pool_id.empty() && a.cognito_issuer.empty()) {
            problems.push_back(
                "AMAZON_COGNITO_USER_POOLS is allowed but --cognito-user-pool-id is not set");
        } else {
            std::string region = a.cognito_region;
            if (region.empty())
                region = a.cognito_user_pool_id.substr(0, a.cognito_user_pool_id.find('_'));
            std::string issuer = a.cognito_issuer;
            if (issuer.empty())
                issuer =
                    "https://cognito-idp." + region + ".amazonaws.com/" + a.cognito_user_pool_id;
            add_token_provider(mode::cognito, issuer, a.cognito_client_ids, a.cognito_jwks);
        }
    }
    if (used.has(mode::oidc)) {
        if (a.oidc_issuer.empty())
            problems.push_back("OPENID_CONNECT is allowed but --oidc-issuer is not set");
        else
            add_token_provider(mode::oidc, a.oidc_issuer, a.oidc_client_ids, a.oidc_jwks);
    }
    if (used.has(mode::lambda)) {
        if (a.lambda_url.empty())
            problems.push_back("AWS_LAMBDA is allowed but --lambda-authorizer-url is not set");
        else if (!outbound)
            problems.push_back("AWS_LAMBDA needs the outbound HTTP transport");
        else
            p->lambda = std::make_unique<lambda_authorizer>(
                lambda_authorizer::options{a.lambda_url, a.lambda_timeout, a.lambda_ttl, 100'000},
                *outbound);
    }
    if (used.has(mode::api_key) && cfg.api_keys.empty())
        problems.push_back("API_KEY is allowed but no API key is configured");
    if (!a.oidc_issuer.empty() && !used.has(mode::oidc))
        log::warn("auth: --oidc-issuer is set but no operation allows OPENID_CONNECT");
    if (!a.cognito_user_pool_id.empty() && !used.has(mode::cognito))
        log::warn(
            "auth: --cognito-user-pool-id is set but no operation allows "
            "AMAZON_COGNITO_USER_POOLS");
    if (!problems.empty())
        return problems;
    return std::unique_ptr<authorizer>(new authorizer(std::move(p)));
}

std::optional<auth_result> authorizer::try_authorize(const auth_request& req) const {
    return impl_->evaluate(req, true).result;
}

void authorizer::authorize_async(const auth_request& req, std::function<void(auth_result)> done) {
    auto step = impl_->evaluate(req, true);
    if (step.result)
        return done(std::move(*step.result));
    auto owned = std::make_shared<owned_request>(req);
    if (step.wait == impl::need::jwks_refresh) {
        impl_->jwks_refreshes.fetch_add(1, std::memory_order_relaxed);
        step.provider->source->refresh([this, owned, done = std::move(done)] {
            auto again = impl_->evaluate(owned->view(), false);
            done(std::move(*again.result));
        });
        return;
    }
    impl_->lambda->ask(impl::lambda_request_of(req),
                       [this, owned, done = std::move(done)](lambda_answer a) {
                           done(impl_->lambda_result(owned->view(), a));
                       });
}

bool authorizer::user_namespace(std::string_view ns) const {
    return impl_->user_ns.contains(ns);
}

mode_set authorizer::allowed(operation op, std::string_view ns) const {
    return impl_->allowed(op, ns);
}

auth_counters authorizer::counters() const {
    return {impl_->jwks_refreshes.load(), impl_->lambda ? impl_->lambda->calls() : 0};
}

}  // namespace eventcast::auth

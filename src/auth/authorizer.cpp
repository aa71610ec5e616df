// The decision for one operation: which verifier the credentials belong to (spec §9.6), whether
// its mode is allowed for the operation and namespace, the verifier's own check, then the
// per-user rule. What a mode checks lives in its verifier; this file knows no mode's details.
#include "auth/authorizer.hpp"

#include "auth/api_key_verifier.hpp"
#include "auth/iam_verifier.hpp"
#include "auth/jwt.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/lambda_verifier.hpp"
#include "core/strings.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::auth {

namespace {

using events::protocol_error;

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

    const namespace_policy* policy;  // lives in the authorizer

    explicit owned_request(const auth_request& r)
        : op(r.op), ns(r.ns), raw_channel(r.raw_channel), policy(r.policy) {
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
    owned_request(const owned_request&) = delete;  // view() points into this object
    owned_request& operator=(const owned_request&) = delete;

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
        r.policy = policy;
        return r;
    }
};

// What credentials no verifier recognized looked like, for the refusal message.
std::string unrecognized(const events::credentials& c) {
    const std::string* authz = c.find("authorization");
    if (!authz)
        return "neither x-api-key nor authorization";
    if (!unverified_issuer(core::strip_bearer(*authz)).empty())
        return "a token from an issuer that is not configured";
    return "an authorization token";
}

}  // namespace

struct authorizer::impl {
    // In the order credentials are matched (spec §9.6); see create().
    std::vector<std::unique_ptr<verifier>> verifiers;
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
    // One per configured namespace, built at the end of create(); `defaults` for any other.
    std::unordered_map<std::string, namespace_policy, sv_hash, std::equal_to<>> policies;
    namespace_policy defaults;

    const namespace_policy& policy_of(const auth_request& r) const {
        if (r.policy)
            return *r.policy;
        auto it = policies.find(r.ns);
        return it == policies.end() ? defaults : it->second;
    }

    mode_set allowed(const auth_request& r) const {
        switch (r.op) {
            case operation::connect: return connect_modes;
            case operation::chat: return chat_modes;
            case operation::subscribe: return policy_of(r).subscribe;
            case operation::publish: return policy_of(r).publish;
        }
        return {};
    }

    std::string where(const auth_request& r) const {
        std::string s = operation_name(r.op);
        if (!r.ns.empty() && r.op != operation::connect)
            s += " on namespace '" + std::string(r.ns) + "'";
        return s;
    }

    // Step 1 (spec §9.6): the first verifier, in registration order, that recognizes the
    // credentials and whose mode is allowed; else the refusal, saying what the credentials
    // looked like to the last verifier that recognized them.
    events::result<verifier*> choose(const auth_request& r) const {
        const auto ok = allowed(r);
        if (!r.creds)
            return protocol_error::unauthorized(
                where(r) + " needs an 'authorization' object; allowed modes: " + ok.describe());
        std::string_view found;
        for (const auto& v : verifiers) {
            if (!v->recognizes(*r.creds))
                continue;
            if (ok.has(v->which()))
                return v.get();
            if (!v->credentials_kind().empty())
                found = v->credentials_kind();
            if (v->claims_exclusively())
                break;
        }
        return protocol_error::unauthorized(
            where(r) + " allows " + ok.describe() + "; the request carried " +
            (found.empty() ? unrecognized(*r.creds) : std::string(found)));
    }

    // The per-user rule: /<ns>/<identity>/... only.
    auth_result finish(const auth_request& r, const verifier& v, auth_result verified) const {
        if (!verified || r.op == operation::connect || !policy_of(r).per_user)
            return verified;
        const identity& who = *verified;
        if (who.user.empty())
            return protocol_error::unauthorized(v.no_user_identity(r.ns));
        if (r.op == operation::chat)
            return verified;  // the chat route publishes to the caller's own channel
        const events::channel_path* p = r.pattern ? &r.pattern->prefix() : r.path;
        if (p && p->size() >= 2 && p->segment(1) == who.user)
            return verified;
        const std::string ns(r.ns);
        return protocol_error::unauthorized(
            "namespace '" + ns + "' is per-user: " + operation_name(r.op) + " only under /" + ns +
            "/" + who.user + "; '" + std::string(r.raw_channel.substr(0, 300)) +
            "' reaches other users' channels");
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
    auto p = std::make_unique<impl>();
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

    // The verifiers, one registration line per mode, in the order credentials are matched: an
    // x-api-key first, a SigV4 signature next (claimed by IAM alone), tokens by issuer, and
    // whatever Authorization is left to the Lambda webhook. Each factory reports its mode's
    // configuration problems and returns null when its mode is not in use.
    const verifier_setup setup{cfg, used, outbound, problems};
    for (auto make : {make_api_key_verifier, make_iam_verifier, make_cognito_verifier,
                      make_oidc_verifier, make_lambda_verifier})
        if (auto v = make(setup))
            p->verifiers.push_back(std::move(v));
    if (!problems.empty())
        return problems;
    p->defaults = {p->publish_modes, p->subscribe_modes, false};
    for (const auto& ns : cfg.namespaces) {
        namespace_policy np = p->defaults;
        if (auto it = p->ns_publish.find(ns); it != p->ns_publish.end())
            np.publish = it->second;
        if (auto it = p->ns_subscribe.find(ns); it != p->ns_subscribe.end())
            np.subscribe = it->second;
        np.per_user = p->user_ns.contains(ns);
        p->policies.emplace(ns, np);
    }
    return std::unique_ptr<authorizer>(new authorizer(std::move(p)));
}

std::optional<auth_result> authorizer::try_authorize(const auth_request& req) const {
    auto v = impl_->choose(req);
    if (!v)
        return auth_result(v.error());
    auto verified = (*v)->try_verify(req);
    if (!verified)
        return std::nullopt;
    return impl_->finish(req, **v, std::move(*verified));
}

void authorizer::authorize_async(const auth_request& req, std::function<void(auth_result)> done) {
    auto v = impl_->choose(req);
    if (!v)
        return done(v.error());
    auto owned = std::make_shared<owned_request>(req);
    verifier* chosen = *v;
    chosen->verify_async(owned->view(),
                         [this, owned, chosen, done = std::move(done)](auth_result verified) {
                             done(impl_->finish(owned->view(), *chosen, std::move(verified)));
                         });
}

bool authorizer::user_namespace(std::string_view ns) const {
    return policy_for(ns).per_user;
}

mode_set authorizer::allowed(operation op, std::string_view ns) const {
    auth_request r;
    r.op = op;
    r.ns = ns;
    return impl_->allowed(r);
}

const namespace_policy& authorizer::policy_for(std::string_view ns) const {
    auto it = impl_->policies.find(ns);
    return it == impl_->policies.end() ? impl_->defaults : it->second;
}

std::vector<std::string> authorizer::reload(const core::config& cfg) {
    std::vector<std::string> problems;
    for (auto& v : impl_->verifiers)
        if (auto p = v->reload(cfg); !p.empty())
            problems.push_back(std::move(p));
    return problems;
}

auth_counters authorizer::counters() const {
    auth_counters c;
    for (const auto& v : impl_->verifiers)
        v->add_counters(c);
    return c;
}

}  // namespace eventcast::auth

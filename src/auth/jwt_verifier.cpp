// A JWT mode: recognized by the token's (unverified) issuer, then verified against the key set.
// A token naming a kid the set lacks may carry a rotated key, so verify_async() refreshes the
// set once (rate-limited by the source) and verifies again.
#include "auth/jwt_verifier.hpp"

#include "auth/jwks_source.hpp"
#include "auth/jwt.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

#include <boost/json/serialize.hpp>

#include <atomic>

namespace eventcast::auth {

namespace {

using core::strip_bearer;
using events::protocol_error;

std::string_view strip_slash(std::string_view s) {
    if (!s.empty() && s.back() == '/')
        s.remove_suffix(1);
    return s;
}

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

class jwt_verifier final : public verifier {
public:
    jwt_verifier(mode m, jwt_policy policy, std::string user_claim,
                 std::unique_ptr<jwks_source> source)
        : mode_(m),
          kind_(std::string("a token for ") + mode_name(m)),
          policy_(std::move(policy)),
          user_claim_(std::move(user_claim)),
          source_(std::move(source)) {}

    mode which() const noexcept override { return mode_; }
    bool recognizes(const events::credentials& c) const override {
        const std::string* authz = c.find("authorization");
        if (!authz)
            return false;
        const auto iss = unverified_issuer(strip_bearer(*authz));
        return !iss.empty() && policy_.issuer == iss;  // exactly, as verify_jwt checks it
    }
    std::string_view credentials_kind() const override { return kind_; }

    std::optional<auth_result> try_verify(const auth_request& req) const override {
        return verify(req, true);
    }

    void verify_async(const auth_request& req, std::function<void(auth_result)> done) override {
        if (auto now = verify(req, true))
            return done(std::move(*now));
        refreshes_.fetch_add(1, std::memory_order_relaxed);
        // `this` outlives the callback: source_ is our last member, and destroying it drops
        // callbacks not yet run and waits for one that runs.
        source_->refresh([this, req, done = std::move(done)] { done(*verify(req, false)); });
    }

    std::string no_user_identity(std::string_view) const override {
        return "the token has no '" + user_claim_ + "' claim to use as the user identity";
    }

    void add_counters(auth_counters& c) const override {
        c.jwks_refreshes += refreshes_.load(std::memory_order_relaxed);
    }

private:
    // nullopt only when `may_refresh` and the token's kid is unknown.
    std::optional<auth_result> verify(const auth_request& r, bool may_refresh) const {
        const auto token = strip_bearer(*r.creds->find("authorization"));
        // Null until a URL source's first fetch succeeds: every kid is unknown then.
        static const jwks no_keys;
        const auto keyset = source_->current();
        auto v = verify_jwt(token, keyset ? *keyset : no_keys, policy_);
        // An unknown kid may be a rotated key: fetch again (the source rate-limits).
        if (!v && v.error().kind == jwt_failure::unknown_key && may_refresh)
            return std::nullopt;
        if (!v) {
            log::debug("auth: {} token refused: {}", mode_name(mode_), v.error().message);
            return auth_result(protocol_error::unauthorized(std::string(mode_name(mode_)) + ": " +
                                                            client_message(v.error())));
        }
        identity who;
        who.how = mode_;
        who.user = identity_of(*v);
        who.groups = v->groups;
        who.subject = v->subject;
        who.issuer = v->issuer;
        who.username = v->username;
        who.claims_json = boost::json::serialize(v->claims);
        return auth_result(std::move(who));
    }

    std::string identity_of(const verified_jwt& t) const {
        if (user_claim_ == "sub")
            return t.subject;
        if (user_claim_ == "username" || user_claim_ == "cognito:username")
            return t.username;
        if (const auto* v = t.claims.if_contains(user_claim_); v && v->is_string())
            return std::string(v->as_string());
        return {};
    }

    const mode mode_;
    const std::string kind_;
    const jwt_policy policy_;
    const std::string user_claim_;
    mutable std::atomic<std::uint64_t> refreshes_{0};
    std::unique_ptr<jwks_source> source_;  // last: see verify_async()
};

std::unique_ptr<verifier> make_jwt(const verifier_setup& setup, mode m, std::string issuer,
                                   std::vector<std::string> clients, std::string location) {
    const auto& a = setup.cfg.auth;
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
    auto src = jwks_source::start(std::move(o), setup.outbound);
    if (!src) {
        setup.problems.push_back(std::string(mode_name(m)) + ": " + src.error());
        return nullptr;
    }
    return std::make_unique<jwt_verifier>(m, std::move(policy), a.user_claim, std::move(*src));
}

}  // namespace

std::unique_ptr<verifier> make_cognito_verifier(const verifier_setup& setup) {
    const auto& a = setup.cfg.auth;
    if (!setup.used.has(mode::cognito)) {
        if (!a.cognito_user_pool_id.empty())
            log::warn(
                "auth: --cognito-user-pool-id is set but no operation allows "
                "AMAZON_COGNITO_USER_POOLS");
        return nullptr;
    }
    if (a.cognito_user_pool_id.empty() && a.cognito_issuer.empty()) {
        setup.problems.push_back(
            "AMAZON_COGNITO_USER_POOLS is allowed but --cognito-user-pool-id is not set");
        return nullptr;
    }
    std::string region = a.cognito_region;
    if (region.empty())
        region = a.cognito_user_pool_id.substr(0, a.cognito_user_pool_id.find('_'));
    std::string issuer = a.cognito_issuer;
    if (issuer.empty())
        issuer = "https://cognito-idp." + region + ".amazonaws.com/" + a.cognito_user_pool_id;
    return make_jwt(setup, mode::cognito, issuer, a.cognito_client_ids, a.cognito_jwks);
}

std::unique_ptr<verifier> make_oidc_verifier(const verifier_setup& setup) {
    const auto& a = setup.cfg.auth;
    if (!setup.used.has(mode::oidc)) {
        if (!a.oidc_issuer.empty())
            log::warn("auth: --oidc-issuer is set but no operation allows OPENID_CONNECT");
        return nullptr;
    }
    if (a.oidc_issuer.empty()) {
        setup.problems.push_back("OPENID_CONNECT is allowed but --oidc-issuer is not set");
        return nullptr;
    }
    return make_jwt(setup, mode::oidc, a.oidc_issuer, a.oidc_client_ids, a.oidc_jwks);
}

}  // namespace eventcast::auth

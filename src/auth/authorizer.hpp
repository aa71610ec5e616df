// Who may connect, subscribe, publish and chat: the AppSync auth modes per operation and per
// namespace (spec/appsync-events.md §9), per-user namespaces, and the providers behind each mode
// (API keys, SigV4 keys, Cognito/OIDC JWTs, a Lambda-style webhook), each a verifier
// (verifier.hpp) registered in create().
//
// Most requests are decided synchronously on the caller's thread (API key, IAM, JWT with a
// known key). Two need I/O: a JWT whose kid is not in the cached key set (the JWKS is fetched
// again) and a Lambda-authorized request without a cached answer. For those try_authorize()
// returns nullopt and the caller uses authorize_async(), whose callback runs on another thread.
#pragma once

#include "auth/modes.hpp"
#include "auth/verifier.hpp"
#include "core/config.hpp"

#include <boost/system/result.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace eventcast::auth {

/// True when some operation of `a` (defaults, chat, per-namespace rules) allows `m`, e.g. whether
/// an API key must exist. Names that are not modes are ignored (create() reports them).
bool config_allows(const core::auth_config& a, mode m);

/// Thread-safe after create().
class authorizer {
public:
    /// Builds the verifiers the config names. Fails with every problem (unknown mode, a mode
    /// without its provider, an unreadable key file, a JWKS that cannot be loaded). `outbound`
    /// (JWKS URLs, the Lambda webhook) may be null when no mode needs it; it must outlive the
    /// authorizer.
    static boost::system::result<std::unique_ptr<authorizer>, std::vector<std::string>> create(
        const core::config& cfg, aws::transport* outbound);
    ~authorizer();

    /// The decision when it needs no I/O; nullopt when authorize_async() must be used.
    std::optional<auth_result> try_authorize(const auth_request& req) const;

    /// Decides with I/O (JWKS refresh, Lambda webhook). `done` runs exactly once, on another
    /// thread (or on this one when no I/O turned out to be needed).
    void authorize_async(const auth_request& req, std::function<void(auth_result)> done);

    /// True when `ns` binds its first segment to the caller's identity.
    bool user_namespace(std::string_view ns) const;

    /// The policy of `ns` (a configured namespace's, or the defaults for any other); the
    /// reference stays valid for the authorizer's life.
    const namespace_policy& policy_for(std::string_view ns) const;

    /// The modes allowed for `op` on `ns` (connect ignores `ns`).
    mode_set allowed(operation op, std::string_view ns) const;

    auth_counters counters() const;

    /// SIGHUP: every verifier takes what it can change at run time (the API key list). Open
    /// connections keep what they were authorized for. Returns the problems (nothing changed
    /// for a verifier that reports one).
    std::vector<std::string> reload(const core::config& cfg);

private:
    struct impl;
    explicit authorizer(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace eventcast::auth

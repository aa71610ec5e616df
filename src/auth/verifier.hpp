// One auth mode's check, as the authorizer holds it: whether a request's credentials are this
// mode's, and whether they hold. The authorizer keeps what is common to every mode (the modes
// allowed per operation and namespace, choosing the verifier, the per-user namespace rule, the
// refusal messages); a verifier knows only its own credentials (spec/appsync-events.md §9).
// One file pair per mode: api_key_verifier, iam_verifier, jwt_verifier (Cognito and OIDC),
// lambda_verifier; authorizer.cpp's create() registers them.
#pragma once

#include "auth/modes.hpp"
#include "core/config.hpp"
#include "events/channel.hpp"
#include "events/error.hpp"
#include "events/message.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::aws {
class transport;
}

namespace eventcast::auth {

/// An HTTP request whose own SigV4 signature AWS_IAM checks (POST /event, /chat).
struct http_view {
    std::string_view method;
    std::string_view path;
    std::string_view query;
    std::string_view body;
};

/// What the authorizer decides per namespace, built once at start (authorizer::policy_for) and
/// kept in the namespace's api::namespace_state, so an operation finds it without a lookup.
struct namespace_policy {
    mode_set publish;       // --auth-publish, or this namespace's --namespace-auth override
    mode_set subscribe;     // --auth-subscribe, or the override
    bool per_user = false;  // --user-namespace: /<ns>/<identity>/... only
};

/// One operation to authorize. Views must outlive try_authorize(); authorize_async() copies.
struct auth_request {
    operation op = operation::connect;
    const events::credentials* creds = nullptr;        // null: the message had no authorization
    std::string_view ns;                               // empty for connect
    std::string_view raw_channel;                      // as sent (IAM signs it); empty for connect
    const events::channel_pattern* pattern = nullptr;  // subscribe
    const events::channel_path* path = nullptr;        // publish
    const std::vector<std::string>* events = nullptr;  // WebSocket publish (IAM signs them)
    const http_view* http = nullptr;                   // HTTP requests (IAM signs them)
    /// The namespace's policy when the caller has it (event_api does); null: looked up by `ns`.
    const namespace_policy* policy = nullptr;
};

using auth_result = events::result<identity>;

struct auth_counters {
    std::uint64_t jwks_refreshes = 0;
    std::uint64_t lambda_calls = 0;
};

/// Thread-safe after construction: any thread may call any member at once.
class verifier {
public:
    virtual ~verifier() = default;

    /// The mode this verifier decides; one verifier per mode, except that Cognito and OIDC
    /// share the JWT verifier's code.
    virtual mode which() const noexcept = 0;

    /// Whether `creds` look like this mode's (an x-api-key, a SigV4 Authorization, a token from
    /// this verifier's issuer, ...). Cheap; verifies nothing.
    virtual bool recognizes(const events::credentials& creds) const = 0;

    /// What recognized credentials are, for a refusal ("the request carried a SigV4
    /// signature"). Empty: says nothing more than the verifiers before it did.
    virtual std::string_view credentials_kind() const = 0;

    /// True when credentials this verifier recognizes go to no later verifier, even if its
    /// mode is not allowed (a SigV4 signature is never a Lambda authorizer's token).
    virtual bool claims_exclusively() const noexcept { return false; }

    /// The decision when it needs no I/O; nullopt when verify_async() must be used. `req.creds`
    /// is not null and recognizes(*req.creds) held. The identity is checked against the
    /// per-user rule by the authorizer afterwards.
    virtual std::optional<auth_result> try_verify(const auth_request& req) const = 0;

    /// Decides with I/O (a JWKS refresh, a webhook call); `done` runs exactly once, on the
    /// outbound transport's thread, or on this one when no I/O turned out to be needed. The
    /// views in `req` stay valid until `done` has run (the authorizer holds a copy).
    virtual void verify_async(const auth_request& req, std::function<void(auth_result)> done) = 0;

    /// The refusal when a per-user namespace needs a user identity and this mode's gave none.
    virtual std::string no_user_identity(std::string_view ns) const;

    /// Adds this mode's counters (JWKS refreshes, webhook calls) to `c`.
    virtual void add_counters(auth_counters& c) const { (void)c; }
    /// SIGHUP: takes what it can change at run time from `cfg` (API keys); thread-safe with
    /// verification. Returns a problem to report, empty when none.
    virtual std::string reload(const core::config& cfg) {
        (void)cfg;
        return {};
    }
};

/// What a verifier's factory is given. A factory returns null when its mode is not in use (or
/// not configured) and adds a line to `problems` for each configuration mistake it finds.
struct verifier_setup {
    const core::config& cfg;
    mode_set used;             // the modes some operation or namespace allows
    aws::transport* outbound;  // may be null (tests); modes that need I/O say so
    std::vector<std::string>& problems;
};

}  // namespace eventcast::auth

// JWT verification for the OPENID_CONNECT and AMAZON_COGNITO_USER_POOLS auth modes: a parsed key
// set (JWKS) and one call that checks a compact JWS token's signature and claims against a policy.
// RS256 and ES256 only; the key decides the algorithm (docs/decisions/003-jwt.md).
#pragma once

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>
#include <openssl/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::auth {

enum class jwt_failure {
    malformed,              // not a compact JWS, bad base64url/JSON, a claim of the wrong type
    unsupported_algorithm,  // "none", HS*, PS*, anything but RS256/ES256, or alg != key type
    unknown_key,            // no key for the token's kid (a refresh of the key set may help)
    bad_signature,
    expired,
    not_yet_valid,  // nbf, or iat in the future
    wrong_issuer,
    wrong_audience,
    wrong_token_use,  // Cognito: token_use is neither "access" nor "id"
};

/// Stable lower-case name of a failure ("bad_signature"), for logs and counters.
std::string_view to_string(jwt_failure kind) noexcept;

struct jwt_error {
    jwt_failure kind;
    /// Says what was wrong and what is allowed, e.g. "token alg 'HS256' is not accepted; allowed:
    /// RS256, ES256". Never contains the token or its signature; claim values it quotes (iss,
    /// kid, token_use) are cut to 64 bytes with non-printable bytes escaped. Meant for logs: the
    /// caller decides how much of it a client sees.
    std::string message;
};

struct verified_jwt {
    std::string subject;    // sub (always present and non-empty)
    std::string username;   // cognito:username, else username, else preferred_username; may be ""
    std::string issuer;     // iss
    std::string token_use;  // "access", "id", or "" when the token has none
    /// client_id claim if present; else (ID tokens and plain OIDC) azp, else aud when it names
    /// exactly one audience; else "".
    std::string client_id;
    std::vector<std::string> groups;                // cognito:groups
    std::chrono::system_clock::time_point expires;  // exp
    boost::json::object claims;                     // every claim, as sent
};

struct jwt_policy {
    /// Required. Compared exactly, except that one trailing '/' on either side is ignored
    /// ("https://idp.example/" matches "https://idp.example"). Empty: every token is refused.
    std::string issuer;
    /// Empty: not checked. Otherwise one of them must equal `aud` (a string, or any element of
    /// an array) or, for access tokens, the `client_id` claim. With `cognito`, access tokens are
    /// checked by client_id only and ID tokens by aud only, as Cognito issues them.
    std::vector<std::string> audiences;
    /// Tolerance for exp, nbf and iat in the future. Negative counts as 0 and more than
    /// max_clock_skew as max_clock_skew, so a config typo cannot make expired tokens live.
    std::chrono::seconds clock_skew{60};
    /// Cognito user pools: token_use must be "access" or "id".
    bool cognito = false;

    static constexpr std::chrono::seconds max_clock_skew{300};
};

/// A parsed JSON Web Key Set: the keys usable for RS256 (RSA, 2048..8192 bits) and ES256 (EC
/// P-256). Immutable once built and safe to share between threads; verify_jwt only reads it.
class jwks {
public:
    enum class key_type { rsa, ec_p256 };
    struct key {
        std::string kid;  // "" when the JWK has none
        bool has_kid = false;
        key_type type = key_type::rsa;
        std::shared_ptr<EVP_PKEY> pkey;  // public key, validated by OpenSSL
    };

    /// Limits on what parse_jwks accepts. Reasons: a real provider publishes a handful of keys
    /// (Cognito 2, Google 2-3); the byte limit bounds the JSON tree built from a fetched body.
    static constexpr std::size_t max_json_bytes = 1024 * 1024;
    static constexpr std::size_t max_keys = 64;

    jwks() = default;  // empty: every token is unknown_key

    const std::vector<key>& keys() const noexcept { return keys_; }
    std::size_t size() const noexcept { return keys_.size(); }
    bool empty() const noexcept { return keys_.empty(); }
    bool contains(std::string_view kid) const noexcept;
    /// Keys that were skipped (use "enc", unsupported kty/crv/alg, bad numbers, duplicate kid),
    /// one line each saying which and why, e.g. "key 2 (kid 'a1'): kty 'oct' is not supported;
    /// allowed: RSA, EC".
    const std::vector<std::string>& skipped() const noexcept { return skipped_; }

private:
    friend boost::system::result<jwks, std::string> parse_jwks(std::string_view json);
    std::vector<key> keys_;
    std::vector<std::string> skipped_;
};

/// Parses a JWKS document ({"keys":[...]}) from untrusted bytes. Keys it cannot use are skipped
/// and listed in skipped(); a document that is not a JWKS, or leaves no usable key, is an error
/// saying why (and listing the skipped keys).
boost::system::result<jwks, std::string> parse_jwks(std::string_view json);

/// The most bytes a token may have (after any "Bearer " prefix is counted in); checked before
/// any parsing. Cognito's largest tokens (many groups) stay well under 8 KiB.
inline constexpr std::size_t max_jwt_bytes = 16 * 1024;

/// Verifies a compact JWS token: header, key, signature, then claims, in that order, so no
/// payload is parsed before its signature holds. Strips an optional "Bearer " prefix
/// (case-insensitive; surrounding whitespace tolerated).
///
/// - alg must be RS256 or ES256 and must match the key's type (RSA key: RS256 only; EC P-256
///   key: ES256 only) and the JWK's own "alg" if it has one. A header with "crit" is refused.
///   jku, x5u, jwk and x5c headers are ignored: keys come only from `keys`.
/// - kid picks the key. A token without kid is accepted only when the set holds exactly one key
///   of the type its alg needs.
/// - Claims: exp is required, nbf and iat optional, all numbers (seconds since 1970); sub is a
///   required non-empty string; iss must match the policy; aud/client_id/token_use as the
///   policy says. Duplicate JSON members: the last one wins (RFC 7515 §4, RFC 7519 §4).
/// Thread-safe: any number of threads may verify against the same jwks at once.
boost::system::result<verified_jwt, jwt_error> verify_jwt(
    std::string_view token, const jwks& keys, const jwt_policy& policy,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

/// The unverified `iss` claim, for choosing between providers before verifying; "" when the
/// token is malformed or has no string iss. Never trust it for anything else.
std::string unverified_issuer(std::string_view token);

}  // namespace eventcast::auth

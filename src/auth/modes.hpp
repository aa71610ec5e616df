// The five AppSync auth modes, the operations they guard, and who a caller turned out to be.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::auth {

enum class mode : std::uint8_t { api_key, iam, cognito, oidc, lambda };
inline constexpr std::size_t mode_count = 5;

/// A set of modes (bit i = mode i).
class mode_set {
public:
    constexpr mode_set() = default;
    void add(mode m) noexcept { bits_ |= bit(m); }
    bool has(mode m) const noexcept { return (bits_ & bit(m)) != 0; }
    bool empty() const noexcept { return bits_ == 0; }
    /// "API_KEY, AWS_IAM" in the enum's order.
    std::string describe() const;

private:
    static constexpr std::uint8_t bit(mode m) noexcept {
        return static_cast<std::uint8_t>(1u << static_cast<unsigned>(m));
    }
    std::uint8_t bits_ = 0;
};

/// AWS's name: API_KEY, AWS_IAM, AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT, AWS_LAMBDA.
const char* mode_name(mode m) noexcept;

/// Accepts AWS's names and Amplify's (apiKey, iam, userPool, oidc, lambda), any case.
std::optional<mode> parse_mode(std::string_view text) noexcept;

/// A `--namespace-auth` rule, "NS:OP=MODE|MODE", split into its parts (names not yet checked);
/// nullopt when it lacks the ':' or the '='.
struct namespace_rule {
    std::string ns;
    std::string op;
    std::vector<std::string> modes;
};
std::optional<namespace_rule> split_namespace_rule(std::string_view text);

enum class operation : std::uint8_t { connect, subscribe, publish, chat };
const char* operation_name(operation op) noexcept;  // "connect", "subscribe", ...

/// Who made a request, once authorized.
struct identity {
    mode how = mode::api_key;
    /// The caller's identity for per-user namespaces: the configured claim of a token, the
    /// principal (or access key id) of an IAM key. Empty for API keys and Lambda answers.
    std::string user;
    std::vector<std::string> groups;  // cognito:groups, when present
    // What ctx.identity shows a namespace handler beyond the above (identity_json.hpp); empty
    // for modes that have none.
    std::string subject;          // JWT: sub
    std::string issuer;           // JWT: iss
    std::string username;         // JWT: cognito:username, else username, else preferred_username
    std::string claims_json;      // JWT: every claim, as one JSON object text
    std::string access_key_id;    // AWS_IAM: the key that signed
    std::string handler_context;  // AWS_LAMBDA: the authorizer's handlerContext, a JSON text
};

}  // namespace eventcast::auth

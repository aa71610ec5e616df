// AWS credential and region resolution for Bedrock (spec/model-providers.md §5): environment,
// shared credentials/config files with profiles, container credentials (ECS/EKS), EC2 IMDSv2,
// and the Bedrock API key (AWS_BEARER_TOKEN_BEDROCK). Secrets are never logged.
#pragma once

#include "aws/sigv4.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace eventcast::aws {

/// Where lookups read the environment; tests substitute their own.
struct environment {
    std::function<std::optional<std::string>(const char*)> get = [](const char* name) {
        const char* v = std::getenv(name);
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
    std::string var(const char* name) const { return get(name).value_or(""); }
};

struct resolved_credentials {
    aws_credentials credentials;
    std::optional<std::chrono::system_clock::time_point> expires;  // none: static
    std::string source;  // "environment", "shared-credentials-file", "container", "imds"
};

/// INI as the AWS CLI writes it: sections, `key = value`, '#'/';' comments, indented
/// sub-properties skipped. Section names are kept as written ("default", "profile dev").
using ini_file = std::map<std::string, std::map<std::string, std::string>>;
ini_file parse_ini(std::string_view text);

/// AWS_PROFILE or "default".
std::string profile_name(const environment& env);

std::optional<resolved_credentials> from_environment(const environment& env);
/// ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE), then ~/.aws/config (AWS_CONFIG_FILE), for
/// the profile; the credentials file wins.
std::optional<resolved_credentials> from_shared_files(const environment& env);
/// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI (+ authorization token).
std::optional<resolved_credentials> from_container(const environment& env);
/// EC2 IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true).
std::optional<resolved_credentials> from_imds(const environment& env);

/// The region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, then (if allowed) IMDS.
std::optional<std::string> resolve_region(const environment& env, bool allow_imds);

/// The first provider that yields credentials, in the standard order. Thread-safe; caches and
/// refreshes temporary credentials when less than 5 minutes remain. Network providers use
/// short timeouts (about 1 s) and run on the caller's thread.
class credential_chain {
public:
    explicit credential_chain(environment env = {}) : env_(std::move(env)) {}
    /// The credentials, or why none were found (names every place that was looked at).
    boost::system::result<resolved_credentials, std::string> get();
    /// True when env or shared files hold credentials (no network), for start-up decisions.
    bool has_local_credentials() const;

private:
    environment env_;
    std::mutex mutex_;
    std::optional<resolved_credentials> cached_;
};

/// A blocking HTTP exchange with a short timeout (metadata services only). Returns the status
/// and body, or nullopt when the endpoint could not be reached.
struct simple_response {
    long status = 0;
    std::string body;
};
std::optional<simple_response> simple_http(const std::string& method, const std::string& url,
                                           const std::vector<std::string>& headers,
                                           std::chrono::milliseconds timeout);

}  // namespace eventcast::aws

// AWS_IAM: SigV4 verification of HTTP publishes and of the synthetic requests that the WebSocket
// operations sign (spec/appsync-events.md §9.3, §9.4), against a store of access keys. The
// signature is recomputed with the same signer eventcast uses towards Bedrock (aws/sigv4) and
// compared in constant time.
#pragma once

#include "events/message.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace eventcast::auth {

/// The parts of `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/appsync/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=<64 hex>`.
struct sigv4_authorization {
    sigv4_authorization() = default;  // not an aggregate: result<T, std::string> stays unambiguous
    std::string access_key_id;
    std::string date;  // yyyymmdd
    std::string region;
    std::string service;
    std::vector<std::string> signed_headers;  // as listed (lower case)
    std::string signature;                    // 64 lower-case hex digits
};

/// Parses an Authorization header value. The error says which part is missing or malformed.
/// Parameters may come in any order, separated by commas with optional spaces.
boost::system::result<sigv4_authorization, std::string> parse_sigv4_authorization(
    std::string_view header);

struct iam_key {
    std::string secret_access_key;
    std::string principal;  // the caller's identity; the access key id when the file names none
};

/// Access keys eventcast accepts. Read-only after loading; thread-safe.
class iam_key_store {
public:
    /// Lines "ACCESS_KEY_ID SECRET_ACCESS_KEY [principal]"; '#' starts a comment. Errors name
    /// the line, never the secret.
    static boost::system::result<iam_key_store, std::string> parse(std::string_view text);
    static boost::system::result<iam_key_store, std::string> load(const std::string& path);

    const iam_key* find(std::string_view access_key_id) const;
    std::size_t size() const noexcept { return keys_.size(); }

private:
    std::unordered_map<std::string, iam_key> keys_;
};

/// The request whose signature is checked. For WebSocket operations: method POST, path
/// "/event", no query, headers = the authorization object, body = synthetic_body().
struct signed_request {
    std::string_view method;
    std::string_view path;   // as on the request line, without the query
    std::string_view query;  // without '?'
    const events::credentials& headers;
    std::string_view body;
};

struct iam_policy {
    std::string region;  // empty: any
    std::chrono::seconds clock_skew{300};
};

struct iam_caller {
    iam_caller() = default;  // not an aggregate: result<T, std::string> stays unambiguous
    std::string access_key_id;
    std::string principal;
};

/// Verifies `req`'s SigV4 signature. Fails with a message that says what did not match (never
/// a secret or the expected signature).
boost::system::result<iam_caller, std::string> verify_sigv4(
    const signed_request& req, const iam_key_store& keys, const iam_policy& policy,
    std::chrono::system_clock::time_point now);

/// The body a WebSocket client signs (spec §9.3 step 5): `{}` for connect,
/// `{"channel":C}` for subscribe, `{"channel":C,"events":[E...]}` for publish, with
/// JSON.stringify escaping. `channel` is the channel exactly as sent.
std::string synthetic_body();
std::string synthetic_body(std::string_view channel);
std::string synthetic_body(std::string_view channel, const std::vector<std::string>& events);

}  // namespace eventcast::auth

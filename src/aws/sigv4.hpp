// AWS Signature Version 4 (header signing) for requests we send, e.g. Bedrock's
// POST /model/{modelId}/converse-stream (spec/model-providers.md §4). Pure computation: no I/O,
// no clock (the caller passes the time), no credential lookup. HMAC-SHA256 and SHA-256 come
// from OpenSSL. Thread-safe: no shared state.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::aws {

/// Why signing failed (bad input or an OpenSSL failure); `message` names the problem.
struct sigv4_error {
    std::string message;
};

/// One HTTP header as it goes on the wire. Names are case-insensitive.
struct http_header {
    std::string name;
    std::string value;
};

/// Long-term (access key id + secret) or temporary (+ session token) AWS credentials.
/// Never log `secret_access_key` or `session_token`.
struct aws_credentials {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  // empty: none (long-term credentials)
};

/// The request to sign, exactly as it will be sent. Views must outlive the sign_request() call.
struct sigv4_request {
    std::string_view method;  // "POST"
    /// The path exactly as it goes on the request line: already percent-encoded, e.g.
    /// "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream". Empty means "/".
    std::string_view path;
    /// The query string without '?', as on the wire ("a=1&b=%E1%88%B4"), or empty. Each name and
    /// value is percent-decoded ('+' stays a plus) and re-encoded canonically.
    std::string_view query;
    /// Every header to sign, `host` included (required). All of them are signed, so pass only
    /// headers that will be sent with exactly these values (not user-agent, expect,
    /// transfer-encoding, connection, accept-encoding, which curl or a proxy may change).
    /// Must not contain the headers the signer adds (authorization, x-amz-date,
    /// x-amz-security-token, and x-amz-content-sha256 when add_content_sha256 is set).
    std::span<const http_header> headers;
    std::string_view body;  // exact body bytes (hashed with SHA-256)
};

struct sigv4_options {
    /// Remove "." and ".." segments and collapse repeated '/' before encoding (every service but
    /// S3).
    bool normalize_path = true;
    /// Percent-encode the (already encoded) wire path again, so "%3A" becomes "%253A" in the
    /// canonical request, as every service except S3 requires. When false, only bytes outside
    /// the unreserved set, '/' and '%' are encoded (existing escapes are kept, S3 style).
    bool double_encode_path = true;
    /// Add and sign `x-amz-content-sha256: <hex body hash>` (S3 needs it; Bedrock does not).
    bool add_content_sha256 = false;
    /// Send `X-Amz-Security-Token` but leave it out of the signature (a few services sign it
    /// after the fact; Bedrock accepts it signed, the default).
    bool omit_session_token = false;
};

/// Where and when: credential scope `<yyyymmdd>/<region>/<service>/aws4_request`.
struct sigv4_scope {
    std::string_view region;   // "us-east-1"
    std::string_view service;  // signing name: "bedrock" for bedrock-runtime (not the host label)
    std::chrono::system_clock::time_point time;  // UTC; whole seconds are used
};

/// What signing produced. Send every entry of `added_headers` and then
/// `Authorization: <authorization>` together with the request's own headers.
struct sigv4_signature {
    std::string canonical_request;  // for debugging: a 403 body shows the server's version
    std::string string_to_sign;
    std::string signature;       // 64 lower-case hex digits
    std::string signed_headers;  // "content-type;host;x-amz-date"
    std::string
        authorization;  // "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
    /// X-Amz-Date, then X-Amz-Security-Token (when there is a token), then x-amz-content-sha256
    /// (when asked). Authorization is not in this list.
    std::vector<http_header> added_headers;
};

/// Signs `request`. Fails (with a message naming the problem) on empty access key id or
/// secret, a region or service that is empty or contains '/' or whitespace, a header name that
/// is not an HTTP token, a missing `host` header, a header the signer adds itself, or an OpenSSL
/// failure. Never logs anything.
boost::system::result<sigv4_signature, sigv4_error> sign_request(const sigv4_request& request,
                                     const aws_credentials& credentials, const sigv4_scope& scope,
                                     const sigv4_options& options = {});

/// `YYYYMMDDTHHMMSSZ` (the X-Amz-Date format) for `time`, in UTC.
std::string amz_date(std::chrono::system_clock::time_point time);

/// The canonical URI for a wire path (spec §4.3), exposed for tests and 403 diagnostics.
std::string canonical_uri(std::string_view wire_path, const sigv4_options& options);

/// The canonical query string for a wire query (without '?').
std::string canonical_query(std::string_view wire_query);

/// Percent-encodes every byte outside A-Z a-z 0-9 - _ . ~ with upper-case hex. Use it to put a
/// Bedrock modelId into a path label: "anthropic.claude-v2:1" -> "anthropic.claude-v2%3A1",
/// and '/' in ARNs becomes %2F.
std::string uri_encode(std::string_view bytes);

}  // namespace eventcast::aws

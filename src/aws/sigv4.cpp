// SigV4 header signing. The canonicalisation rules follow aws-c-auth's test suite, which the
// unit tests run in full (tests/data/aws-sigv4/v4).
#include "aws/sigv4.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

namespace eventcast::aws {
namespace {

constexpr char hex_lower[] = "0123456789abcdef";
constexpr char hex_upper[] = "0123456789ABCDEF";
constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

using digest = std::array<unsigned char, 32>;

bool is_unreserved(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

bool is_token_char(unsigned char c) noexcept {
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           extra.find(static_cast<char>(c)) != std::string_view::npos;
}

// Whitespace that canonicalisation trims and collapses: CR and LF included, so an obs-folded
// value ("value1\r\n  value2") becomes "value1 value2" as in the suite's multiline case.
bool is_header_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void append_escape(std::string& out, unsigned char c) {
    out.push_back('%');
    out.push_back(hex_upper[c >> 4]);
    out.push_back(hex_upper[c & 0xF]);
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(hex_lower[bytes[i] >> 4]);
        out.push_back(hex_lower[bytes[i] & 0xF]);
    }
    return out;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

bool sha256(std::string_view bytes, digest& out) {
    unsigned int size = 0;
    return EVP_Digest(bytes.data(), bytes.size(), out.data(), &size, EVP_sha256(), nullptr) == 1 &&
           size == out.size();
}

bool hmac_sha256(std::string_view key, std::string_view data, digest& out) {
    unsigned int size = 0;
    const auto* data_bytes = reinterpret_cast<const unsigned char*>(data.data());
    return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data_bytes, data.size(),
                out.data(), &size) != nullptr &&
           size == out.size();
}

std::string_view as_view(const digest& d) {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Decodes %XX escapes; a '%' not followed by two hex digits is kept literally (it then gets
// encoded as %25, which is what a server that did the same would compute).
std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

// RFC 3986 remove_dot_segments plus collapsing of empty segments ("//"), on the wire form. A
// path that ended in '/' (or in a dot segment, which names a directory) keeps a trailing '/'.
std::string normalize_path(std::string_view path) {
    std::vector<std::string_view> segments;
    bool trailing_slash = false;
    std::size_t pos = 0;
    while (pos <= path.size()) {
        const std::size_t end = std::min(path.find('/', pos), path.size());
        const std::string_view segment = path.substr(pos, end - pos);
        const bool last = end == path.size();
        if (segment == "..") {
            if (!segments.empty())
                segments.pop_back();
            trailing_slash = last;
        } else if (segment == ".") {
            trailing_slash = last;
        } else if (segment.empty()) {
            trailing_slash = last && pos > 0;
        } else {
            segments.push_back(segment);
            trailing_slash = false;
        }
        pos = end + 1;
    }
    std::string out = "/";
    for (std::size_t i = 0; i < segments.size(); ++i) {
        if (i > 0)
            out.push_back('/');
        out.append(segments[i]);
    }
    if (trailing_slash && !segments.empty())
        out.push_back('/');
    return out;
}

std::string canonical_header_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    bool pending_space = false;
    for (const char c : value) {
        if (is_header_space(c)) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space)
            out.push_back(' ');
        pending_space = false;
        out.push_back(c);
    }
    return out;
}

bool valid_scope_part(std::string_view s) {
    return !s.empty() &&
           std::none_of(s.begin(), s.end(), [](char c) { return c == '/' || is_header_space(c); });
}

struct canonical_header {
    std::string name;  // lower case
    std::string value;
};

}  // namespace

std::string uri_encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (const char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c))
            out.push_back(ch);
        else
            append_escape(out, c);
    }
    return out;
}

std::string canonical_uri(std::string_view wire_path, const sigv4_options& options) {
    const std::string path = options.normalize_path
                                 ? normalize_path(wire_path)
                                 : std::string(wire_path.empty() ? "/" : wire_path);
    std::string out;
    out.reserve(path.size() + 16);
    for (const char ch : path) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c) || ch == '/' || (ch == '%' && !options.double_encode_path))
            out.push_back(ch);
        else
            append_escape(out, c);
    }
    if (out.empty() || out.front() != '/')
        out.insert(out.begin(), '/');
    return out;
}

std::string canonical_query(std::string_view wire_query) {
    std::vector<std::pair<std::string, std::string>> params;
    std::size_t pos = 0;
    while (pos <= wire_query.size()) {
        const std::size_t end = std::min(wire_query.find('&', pos), wire_query.size());
        const std::string_view param = wire_query.substr(pos, end - pos);
        pos = end + 1;
        if (param.empty())
            continue;
        const std::size_t eq = param.find('=');
        const std::string_view name = param.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
        params.emplace_back(uri_encode(percent_decode(name)), uri_encode(percent_decode(value)));
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [name, value] : params) {
        if (!out.empty())
            out.push_back('&');
        out.append(name).append("=").append(value);
    }
    return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(time);
    const auto day = floor<days>(secs);
    const year_month_day ymd{day};
    const hh_mm_ss hms{secs - day};
    char text[32];
    std::snprintf(text, sizeof text, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return text;
}

boost::system::result<sigv4_signature, sigv4_error> sign_request(const sigv4_request& request,
                                     const aws_credentials& credentials, const sigv4_scope& scope,
                                     const sigv4_options& options) {
    if (credentials.access_key_id.empty())
        return sigv4_error{"sigv4: the access key id is empty"};
    if (credentials.secret_access_key.empty())
        return sigv4_error{"sigv4: the secret access key is empty"};
    if (!valid_scope_part(scope.region))
        return sigv4_error{"sigv4: region '" + std::string(scope.region) +
                          "' is empty or contains '/' or whitespace"};
    if (!valid_scope_part(scope.service))
        return sigv4_error{"sigv4: service '" + std::string(scope.service) +
                          "' is empty or contains '/' or whitespace"};
    if (request.method.empty() ||
        !std::all_of(request.method.begin(), request.method.end(),
                     [](char c) { return is_token_char(static_cast<unsigned char>(c)); }))
        return sigv4_error{"sigv4: method '" + std::string(request.method) +
                          "' is not an HTTP token"};

    const bool sign_token = !credentials.session_token.empty() && !options.omit_session_token;
    std::vector<canonical_header> headers;
    headers.reserve(request.headers.size() + 3);
    bool has_host = false;
    for (const http_header& h : request.headers) {
        if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), [](char c) {
                return is_token_char(static_cast<unsigned char>(c));
            }))
            return sigv4_error{"sigv4: header name '" + h.name + "' is not an HTTP token"};
        std::string name = to_lower(h.name);
        if (name == "authorization" || name == "x-amz-date" ||
            (name == "x-amz-security-token" && !credentials.session_token.empty()) ||
            (name == "x-amz-content-sha256" && options.add_content_sha256))
            return sigv4_error{"sigv4: header '" + h.name +
                              "' is added by the signer; do not pass it in"};
        has_host = has_host || name == "host";
        headers.push_back({std::move(name), canonical_header_value(h.value)});
    }
    if (!has_host)
        return sigv4_error{"sigv4: the request has no host header; it must be signed"};

    digest body_digest{};
    if (!sha256(request.body, body_digest))
        return sigv4_error{"sigv4: OpenSSL SHA-256 failed"};
    const std::string body_hash = to_hex(body_digest.data(), body_digest.size());
    const std::string date_time = amz_date(scope.time);
    const std::string_view date = std::string_view(date_time).substr(0, 8);

    sigv4_signature out;
    out.added_headers.push_back({"X-Amz-Date", date_time});
    headers.push_back({"x-amz-date", date_time});
    if (!credentials.session_token.empty()) {
        out.added_headers.push_back({"X-Amz-Security-Token", credentials.session_token});
        if (sign_token)
            headers.push_back({"x-amz-security-token", credentials.session_token});
    }
    if (options.add_content_sha256) {
        out.added_headers.push_back(
            {"x-amz-content-sha256", body_hash});  // as aws-c-auth spells it
        headers.push_back({"x-amz-content-sha256", body_hash});
    }

    // Repeated names are joined with ',' in the order given, so the sort must be stable.
    std::stable_sort(
        headers.begin(), headers.end(),
        [](const canonical_header& a, const canonical_header& b) { return a.name < b.name; });
    std::string canonical_headers;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (i > 0 && headers[i].name == headers[i - 1].name) {
            canonical_headers.back() = ',';  // replaces the '\n' of the previous line
        } else {
            if (!out.signed_headers.empty())
                out.signed_headers.push_back(';');
            out.signed_headers.append(headers[i].name);
            canonical_headers.append(headers[i].name).push_back(':');
        }
        canonical_headers.append(headers[i].value).push_back('\n');
    }

    out.canonical_request.append(request.method).push_back('\n');
    out.canonical_request.append(canonical_uri(request.path, options)).push_back('\n');
    out.canonical_request.append(canonical_query(request.query)).push_back('\n');
    out.canonical_request.append(canonical_headers).push_back('\n');
    out.canonical_request.append(out.signed_headers).push_back('\n');
    out.canonical_request.append(body_hash);

    digest request_digest{};
    if (!sha256(out.canonical_request, request_digest))
        return sigv4_error{"sigv4: OpenSSL SHA-256 failed"};
    std::string credential_scope(date);
    credential_scope.append("/").append(scope.region).append("/").append(scope.service);
    credential_scope.append("/aws4_request");
    out.string_to_sign.append(algorithm).push_back('\n');
    out.string_to_sign.append(date_time).push_back('\n');
    out.string_to_sign.append(credential_scope).push_back('\n');
    out.string_to_sign.append(to_hex(request_digest.data(), request_digest.size()));

    digest k_date{}, k_region{}, k_service{}, k_signing{}, signature{};
    std::string secret_key = "AWS4" + credentials.secret_access_key;
    const bool signed_ok = hmac_sha256(secret_key, date, k_date) &&
                           hmac_sha256(as_view(k_date), scope.region, k_region) &&
                           hmac_sha256(as_view(k_region), scope.service, k_service) &&
                           hmac_sha256(as_view(k_service), "aws4_request", k_signing) &&
                           hmac_sha256(as_view(k_signing), out.string_to_sign, signature);
    // The derived keys are as good as the secret for a day; do not leave them in freed memory.
    OPENSSL_cleanse(secret_key.data(), secret_key.size());
    for (digest* key : {&k_date, &k_region, &k_service, &k_signing})
        OPENSSL_cleanse(key->data(), key->size());
    if (!signed_ok)
        return sigv4_error{"sigv4: OpenSSL HMAC-SHA256 failed"};
    out.signature = to_hex(signature.data(), signature.size());

    out.authorization.append(algorithm).append(" Credential=").append(credentials.access_key_id);
    out.authorization.append("/").append(credential_scope);
    out.authorization.append(", SignedHeaders=").append(out.signed_headers);
    out.authorization.append(", Signature=").append(out.signature);
    return out;
}

}  // namespace eventcast::aws

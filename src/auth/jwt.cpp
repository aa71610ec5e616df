// JWT verification with OpenSSL 3 EVP. Only the small parsing lives here; keys are built and
// signatures checked by OpenSSL. Why not a JWT library: docs/decisions/003-jwt.md.
#include "auth/jwt.hpp"

#include "core/base64.hpp"
#include "core/json_kind.hpp"
#include "core/strings.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

namespace eventcast::auth {

namespace {

namespace json = boost::json;
using jwt_result = boost::system::result<verified_jwt, jwt_error>;

struct bn_deleter {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct param_bld_deleter {
    void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); }
};
struct param_deleter {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct pkey_ctx_deleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct ecdsa_sig_deleter {
    void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};
struct openssl_free_deleter {
    void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); }
};
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_deleter>;

// OpenSSL reports failures on a per-thread error queue. Whatever a refused key or signature
// left there must not reach the next TLS call on the same thread, which reads that queue.
struct clear_openssl_errors {
    clear_openssl_errors() = default;
    clear_openssl_errors(const clear_openssl_errors&) = delete;
    clear_openssl_errors& operator=(const clear_openssl_errors&) = delete;
    ~clear_openssl_errors() { ERR_clear_error(); }
};

constexpr std::size_t max_quoted_bytes = 64;

// Quotes a value taken from outside input for an error message: bounded, printable ASCII only.
std::string quoted(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    const auto n = std::min(s.size(), max_quoted_bytes);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (s.size() > n)
        out += "...";
    out += "'";
    return out;
}

jwt_error fail(jwt_failure kind, std::string message) {
    return jwt_error{kind, std::move(message)};
}

struct segments {
    std::string_view header, payload, signature, signing_input;
};

boost::system::result<segments, jwt_error> split(std::string_view raw) {
    if (raw.size() > max_jwt_bytes)
        return fail(jwt_failure::malformed, "token is " + std::to_string(raw.size()) +
                                                " bytes; the limit is " +
                                                std::to_string(max_jwt_bytes));
    const auto token = core::strip_bearer(raw);
    if (token.empty())
        return fail(jwt_failure::malformed, "token is empty");
    const auto dots = static_cast<std::size_t>(std::count(token.begin(), token.end(), '.'));
    if (dots != 2)
        return fail(jwt_failure::malformed,
                    "token has " + std::to_string(dots) +
                        " dots; a signed JWT (JWS compact serialization) has 2, and encrypted "
                        "tokens (JWE) are not supported");
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    segments s;
    s.header = token.substr(0, first);
    s.payload = token.substr(first + 1, second - first - 1);
    s.signature = token.substr(second + 1);
    s.signing_input = token.substr(0, second);
    if (s.header.empty() || s.payload.empty())
        return fail(jwt_failure::malformed, "token has an empty header or payload segment");
    return s;
}

// Decodes one base64url segment and parses it as a JSON object.
boost::system::result<json::object, jwt_error> decode_object(std::string_view segment,
                                                             std::string_view what) {
    const auto bytes = core::base64url_decode(segment);
    if (!bytes)
        return fail(jwt_failure::malformed,
                    "token " + std::string(what) +
                        " is not base64url without padding (allowed: A-Z a-z 0-9 - _)");
    json::error_code ec;
    auto value = json::parse(*bytes, ec);
    if (ec)
        return fail(jwt_failure::malformed,
                    "token " + std::string(what) + " is not valid JSON: " + ec.message());
    auto* obj = value.if_object();
    if (!obj)
        return fail(jwt_failure::malformed, "token " + std::string(what) + " is " +
                                                core::json_kind_name(value) +
                                                "; it must be a JSON object");
    return std::move(*obj);
}

const char* type_name(jwks::key_type t) {
    return t == jwks::key_type::rsa ? "an RSA key, which allows only RS256"
                                    : "an EC P-256 key, which allows only ES256";
}

// ---- keys ----------------------------------------------------------------------------------

// Why a JWK is skipped. A type of its own: a std::string error would be ambiguous in
// result<jwks::key, ...> (an aggregate starting with a string).
struct reason {
    reason() = default;
    explicit reason(std::string t) : text(std::move(t)) {}
    std::string text;
};

std::shared_ptr<EVP_PKEY> make_shared_pkey(EVP_PKEY* p) {
    return std::shared_ptr<EVP_PKEY>(p, [](EVP_PKEY* k) { EVP_PKEY_free(k); });
}

// Builds a public key from OSSL_PARAMs and has OpenSSL validate it (RSA: n odd, e odd > 1;
// EC: the point is on the curve and not the identity).
std::shared_ptr<EVP_PKEY> key_from_params(const char* type, OSSL_PARAM* params) {
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1)
        return nullptr;
    auto key = make_shared_pkey(raw);
    pkey_ctx_ptr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1)
        return nullptr;
    return key;
}

boost::system::result<std::string, reason> member_bytes(const json::object& jwk,
                                                        std::string_view name) {
    const auto* v = jwk.if_contains(name);
    if (!v)
        return reason{"has no " + std::string(name)};
    const auto* s = v->if_string();
    if (!s)
        return reason{std::string(name) + " is " + core::json_kind_name(*v) +
                      "; it must be a string"};
    auto bytes = core::base64url_decode(*s);
    if (!bytes)
        return reason{std::string(name) + " is not base64url without padding"};
    return {boost::system::in_place_value, std::move(*bytes)};
}

// RSA keys from 2048 bits (smaller ones are breakable or nearly) to 8192 (larger ones only cost
// verification time); public exponent at most 8 bytes (everyone uses 65537).
boost::system::result<std::shared_ptr<EVP_PKEY>, reason> rsa_key(const json::object& jwk) {
    auto n = member_bytes(jwk, "n");
    if (!n)
        return n.error();
    auto e = member_bytes(jwk, "e");
    if (!e)
        return e.error();
    if (e->empty() || e->size() > 8)
        return reason{"e is " + std::to_string(e->size()) + " bytes; allowed: 1 to 8"};
    // 8192 bits is 1024 bytes; one more allows a (non-canonical) leading zero byte.
    if (n->size() > 1025)
        return reason{"n is " + std::to_string(n->size()) + " bytes; allowed: 2048 to 8192 bits"};
    bn_ptr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                          static_cast<int>(n->size()), nullptr));
    bn_ptr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                          static_cast<int>(e->size()), nullptr));
    if (!bn_n || !bn_e)
        return reason{("out of memory")};
    const int bits = BN_num_bits(bn_n.get());
    if (bits < 2048 || bits > 8192)
        return reason{"modulus has " + std::to_string(bits) + " bits; allowed: 2048 to 8192"};
    std::unique_ptr<OSSL_PARAM_BLD, param_bld_deleter> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
        return reason{("out of memory")};
    std::unique_ptr<OSSL_PARAM, param_deleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params)
        return reason{("out of memory")};
    auto key = key_from_params("RSA", params.get());
    if (!key)
        return reason{("OpenSSL refused n/e as an RSA public key")};
    return key;
}

boost::system::result<std::shared_ptr<EVP_PKEY>, reason> ec_key(const json::object& jwk) {
    const auto* crv = jwk.if_contains("crv");
    if (!crv || !crv->is_string())
        return reason{("crv is missing or not a string; allowed: P-256")};
    if (crv->get_string() != "P-256")
        return reason{"crv " + quoted(crv->get_string()) + " is not supported; allowed: P-256"};
    auto x = member_bytes(jwk, "x");
    if (!x)
        return x.error();
    auto y = member_bytes(jwk, "y");
    if (!y)
        return y.error();
    // RFC 7518 §6.2.1.2: coordinates are full length, 32 bytes for P-256.
    if (x->size() != 32 || y->size() != 32)
        return reason{"x and y are " + std::to_string(x->size()) + " and " +
                      std::to_string(y->size()) + " bytes; P-256 needs 32 each"};
    unsigned char point[65];
    point[0] = 0x04;  // uncompressed
    std::copy(x->begin(), x->end(), point + 1);
    std::copy(y->begin(), y->end(), point + 33);
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_construct_end()};
    auto key = key_from_params("EC", params);
    if (!key)
        return reason{("OpenSSL refused x/y as a P-256 point")};
    return key;
}

// One JWK: a key, or the reason it is skipped.
boost::system::result<jwks::key, reason> parse_key(const json::value& v) {
    const auto* jwk = v.if_object();
    if (!jwk)
        return reason{"is " + core::json_kind_name(v) + ", not an object"};
    jwks::key key;
    if (const auto* kid = jwk->if_contains("kid")) {
        if (!kid->is_string())
            return reason{"kid is " + core::json_kind_name(*kid) + "; it must be a string"};
        key.kid = std::string(kid->get_string());
        key.has_kid = true;
    }
    if (const auto* use = jwk->if_contains("use")) {
        if (!use->is_string() || use->get_string() != "sig")
            return reason{("use is not \"sig\" (an encryption key)")};
    }
    if (const auto* ops = jwk->if_contains("key_ops")) {
        const auto* arr = ops->if_array();
        const bool verify = arr && std::any_of(arr->begin(), arr->end(), [](const json::value& o) {
                                return o.is_string() && o.get_string() == "verify";
                            });
        if (!verify)
            return reason{("key_ops does not include \"verify\"")};
    }
    const auto* kty = jwk->if_contains("kty");
    if (!kty || !kty->is_string())
        return reason{("kty is missing or not a string; allowed: RSA, EC")};
    const std::string_view type = kty->get_string();
    const char* wanted_alg = nullptr;
    if (type == "RSA") {
        key.type = jwks::key_type::rsa;
        wanted_alg = "RS256";
    } else if (type == "EC") {
        key.type = jwks::key_type::ec_p256;
        wanted_alg = "ES256";
    } else {
        return reason{"kty " + quoted(type) + " is not supported; allowed: RSA, EC"};
    }
    // The JWK's alg pins the one algorithm its key may be used with.
    if (const auto* alg = jwk->if_contains("alg")) {
        if (!alg->is_string() || alg->get_string() != wanted_alg)
            return reason{
                "alg " + (alg->is_string() ? quoted(alg->get_string()) : std::string("?")) +
                " is not supported for kty " + std::string(type) + "; allowed: " + wanted_alg};
    }
    auto pkey = key.type == jwks::key_type::rsa ? rsa_key(*jwk) : ec_key(*jwk);
    if (!pkey)
        return pkey.error();
    key.pkey = std::move(*pkey);
    return key;
}

// ---- signatures ----------------------------------------------------------------------------

// JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4); OpenSSL verifies DER.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw) {
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
    std::unique_ptr<ECDSA_SIG, ecdsa_sig_deleter> sig(ECDSA_SIG_new());
    bn_ptr r(BN_bin2bn(p, 32, nullptr));
    bn_ptr s(BN_bin2bn(p + 32, 32, nullptr));
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1)
        return std::nullopt;
    (void)r.release();  // owned by sig now
    (void)s.release();
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig.get(), &der);
    std::unique_ptr<unsigned char, openssl_free_deleter> owned(der);
    if (len <= 0)
        return std::nullopt;
    return std::string(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
}

bool signature_holds(const jwks::key& key, std::string_view signing_input,
                     std::string_view signature) {
    std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> md(EVP_MD_CTX_new());
    if (!md || EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr,
                                       key.pkey.get(), nullptr) != 1)
        return false;
    return EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size()) == 1;
}

// ---- claims --------------------------------------------------------------------------------

// A NumericDate claim (seconds since 1970, RFC 7519 §2) if present.
boost::system::result<std::optional<double>, jwt_error> numeric_date(const json::object& claims,
                                                                     std::string_view name) {
    const auto* v = claims.if_contains(name);
    if (!v)
        return std::optional<double>();
    double seconds = 0;
    if (const auto* i = v->if_int64())
        seconds = static_cast<double>(*i);
    else if (const auto* u = v->if_uint64())
        seconds = static_cast<double>(*u);
    else if (const auto* d = v->if_double())
        seconds = *d;
    else
        return fail(jwt_failure::malformed, "claim " + std::string(name) + " is " +
                                                core::json_kind_name(*v) +
                                                "; it must be a number (seconds since 1970)");
    if (!std::isfinite(seconds))
        return fail(jwt_failure::malformed,
                    "claim " + std::string(name) + " is not a finite number of seconds");
    return std::optional<double>(seconds);
}

boost::system::result<std::string, jwt_error> optional_string(const json::object& claims,
                                                              std::string_view name) {
    const auto* v = claims.if_contains(name);
    if (!v)
        return std::string();
    const auto* s = v->if_string();
    if (!s)
        return fail(jwt_failure::malformed, "claim " + std::string(name) + " is " +
                                                core::json_kind_name(*v) + "; it must be a string");
    return std::string(*s);
}

boost::system::result<std::vector<std::string>, jwt_error> string_list(const json::object& claims,
                                                                       std::string_view name,
                                                                       bool allow_single_string) {
    std::vector<std::string> out;
    const auto* v = claims.if_contains(name);
    if (!v)
        return out;
    if (allow_single_string && v->is_string()) {
        out.emplace_back(v->get_string());
        return out;
    }
    const auto* arr = v->if_array();
    if (!arr)
        return fail(jwt_failure::malformed,
                    "claim " + std::string(name) + " is " + core::json_kind_name(*v) +
                        (allow_single_string ? "; it must be a string or an array of strings"
                                             : "; it must be an array of strings"));
    for (const auto& item : *arr) {
        if (!item.is_string())
            return fail(jwt_failure::malformed, "claim " + std::string(name) + " holds " +
                                                    core::json_kind_name(item) +
                                                    "; only strings are allowed");
        out.emplace_back(item.get_string());
    }
    return out;
}

std::string_view without_trailing_slash(std::string_view s) {
    if (!s.empty() && s.back() == '/')
        s.remove_suffix(1);
    return s;
}

std::string quoted_list(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty())
            out += ", ";
        out += quoted(item);
        if (out.size() > 512) {
            out += ", ...";
            break;
        }
    }
    return out.empty() ? "none" : out;
}

std::chrono::system_clock::time_point to_time_point(double seconds) {
    using clock = std::chrono::system_clock;
    // Beyond what the clock's 64-bit count can hold (year 2262 with nanoseconds): clamp.
    const double limit = std::chrono::duration<double>(clock::duration::max()).count() / 2;
    if (seconds >= limit)
        return clock::time_point::max();
    if (seconds <= -limit)
        return clock::time_point::min();
    return clock::time_point(
        std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds)));
}

// Whole seconds for a message. Claims may hold any double (1e300), which no integer holds.
std::string seconds_text(double seconds) {
    return std::to_string(static_cast<long long>(std::clamp(seconds, -1e15, 1e15)));
}

jwt_result check_claims(json::object claims, const jwt_policy& policy,
                        std::chrono::system_clock::time_point now) {
    auto skew = std::clamp(policy.clock_skew, std::chrono::seconds(0), jwt_policy::max_clock_skew);
    const double skew_s = static_cast<double>(skew.count());
    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();

    auto exp = numeric_date(claims, "exp");
    if (!exp)
        return exp.error();
    auto nbf = numeric_date(claims, "nbf");
    if (!nbf)
        return nbf.error();
    auto iat = numeric_date(claims, "iat");
    if (!iat)
        return iat.error();
    if (!*exp)
        return fail(jwt_failure::malformed, "token has no exp claim; it is required");
    if (now_s >= **exp + skew_s)
        return fail(jwt_failure::expired, "token expired " + seconds_text(now_s - **exp) +
                                              " s ago; allowed clock skew is " +
                                              std::to_string(skew.count()) + " s");
    if (*nbf && now_s + skew_s < **nbf)
        return fail(jwt_failure::not_yet_valid,
                    "token is not valid for another " + seconds_text(**nbf - now_s) +
                        " s (nbf); allowed clock skew is " + std::to_string(skew.count()) + " s");
    if (*iat && now_s + skew_s < **iat)
        return fail(jwt_failure::not_yet_valid,
                    "token was issued " + seconds_text(**iat - now_s) +
                        " s in the future (iat); allowed clock skew is " +
                        std::to_string(skew.count()) + " s");

    verified_jwt out;
    out.expires = to_time_point(**exp);

    auto iss = optional_string(claims, "iss");
    if (!iss)
        return iss.error();
    if (policy.issuer.empty())
        return fail(jwt_failure::wrong_issuer, "no issuer is configured; every token is refused");
    if (iss->empty() || without_trailing_slash(*iss) != without_trailing_slash(policy.issuer))
        return fail(
            jwt_failure::wrong_issuer,
            "token iss " + quoted(*iss) + " is not the configured issuer " + quoted(policy.issuer));
    out.issuer = std::move(*iss);

    auto sub = optional_string(claims, "sub");
    if (!sub)
        return sub.error();
    if (sub->empty())
        return fail(jwt_failure::malformed, "token has no sub claim or an empty one; required");
    out.subject = std::move(*sub);

    auto token_use = optional_string(claims, "token_use");
    if (!token_use)
        return token_use.error();
    out.token_use = std::move(*token_use);
    if (policy.cognito && out.token_use != "access" && out.token_use != "id")
        return fail(jwt_failure::wrong_token_use,
                    "token_use " + quoted(out.token_use) + " is not allowed; allowed: access, id");

    auto aud = string_list(claims, "aud", true);
    if (!aud)
        return aud.error();
    auto client_id = optional_string(claims, "client_id");
    if (!client_id)
        return client_id.error();
    auto azp = optional_string(claims, "azp");
    if (!azp)
        return azp.error();

    if (!policy.audiences.empty()) {
        const auto allowed = [&](const std::string& a) {
            return std::find(policy.audiences.begin(), policy.audiences.end(), a) !=
                   policy.audiences.end();
        };
        const bool is_access = out.token_use == "access";
        const bool check_aud = !policy.cognito || out.token_use == "id";
        const bool check_client_id = is_access && !client_id->empty();
        const bool match = (check_aud && std::any_of(aud->begin(), aud->end(), allowed)) ||
                           (check_client_id && allowed(*client_id));
        if (!match) {
            std::string what = policy.cognito && is_access ? "client_id " + quoted(*client_id)
                                                           : "aud " + quoted_list(*aud);
            if (!policy.cognito && check_client_id)
                what += " and client_id " + quoted(*client_id);
            return fail(jwt_failure::wrong_audience, "token " + what +
                                                         " names no allowed audience; allowed: " +
                                                         quoted_list(policy.audiences));
        }
    }
    if (!client_id->empty())
        out.client_id = std::move(*client_id);
    else if (!azp->empty())
        out.client_id = std::move(*azp);
    else if (aud->size() == 1)
        out.client_id = aud->front();

    for (std::string_view name : {"cognito:username", "username", "preferred_username"}) {
        auto u = optional_string(claims, name);
        if (!u)
            return u.error();
        if (out.username.empty())
            out.username = std::move(*u);
    }
    auto groups = string_list(claims, "cognito:groups", false);
    if (!groups)
        return groups.error();
    out.groups = std::move(*groups);
    out.claims = std::move(claims);
    return out;
}

}  // namespace

std::string_view to_string(jwt_failure kind) noexcept {
    switch (kind) {
        case jwt_failure::malformed: return "malformed";
        case jwt_failure::unsupported_algorithm: return "unsupported_algorithm";
        case jwt_failure::unknown_key: return "unknown_key";
        case jwt_failure::bad_signature: return "bad_signature";
        case jwt_failure::expired: return "expired";
        case jwt_failure::not_yet_valid: return "not_yet_valid";
        case jwt_failure::wrong_issuer: return "wrong_issuer";
        case jwt_failure::wrong_audience: return "wrong_audience";
        case jwt_failure::wrong_token_use: return "wrong_token_use";
    }
    return "unknown";
}

bool jwks::contains(std::string_view kid) const noexcept {
    return std::any_of(keys_.begin(), keys_.end(),
                       [&](const key& k) { return k.has_kid && k.kid == kid; });
}

boost::system::result<jwks, std::string> parse_jwks(std::string_view text) {
    clear_openssl_errors guard;
    if (text.size() > jwks::max_json_bytes)
        return "key set is " + std::to_string(text.size()) + " bytes; the limit is " +
               std::to_string(jwks::max_json_bytes);
    json::error_code ec;
    const auto doc = json::parse(text, ec);
    if (ec)
        return "key set is not valid JSON: " + ec.message();
    const auto* obj = doc.if_object();
    if (!obj)
        return "key set is " + core::json_kind_name(doc) + "; it must be an object with \"keys\"";
    const auto* keys = obj->if_contains("keys");
    if (!keys || !keys->is_array())
        return std::string("key set has no \"keys\" array");

    jwks set;
    std::size_t index = 0;
    for (const auto& v : keys->get_array()) {
        std::string label = "key " + std::to_string(index++);
        if (const auto* o = v.if_object())
            if (const auto* kid = o->if_contains("kid"); kid && kid->is_string())
                label += " (kid " + quoted(kid->get_string()) + ")";
        if (set.keys_.size() == jwks::max_keys) {
            set.skipped_.push_back(label + ": more than " + std::to_string(jwks::max_keys) +
                                   " usable keys");
            continue;
        }
        auto key = parse_key(v);
        if (!key) {
            set.skipped_.push_back(label + ": " + key.error().text);
            continue;
        }
        // Two keys under one kid would make the choice depend on order; keep the first.
        if (key->has_kid && set.contains(key->kid)) {
            set.skipped_.push_back(label + ": duplicate kid");
            continue;
        }
        set.keys_.push_back(std::move(*key));
    }
    if (set.keys_.empty()) {
        std::string why = "key set has no usable key (RSA 2048..8192 bits or EC P-256, use sig)";
        for (const auto& s : set.skipped_) {
            why += "; " + s;
            if (why.size() > 1024) {
                why += "; ...";
                break;
            }
        }
        return why;
    }
    return set;
}

boost::system::result<verified_jwt, jwt_error> verify_jwt(
    std::string_view token, const jwks& keys, const jwt_policy& policy,
    std::chrono::system_clock::time_point now) {
    clear_openssl_errors guard;
    auto parts = split(token);
    if (!parts)
        return parts.error();
    auto header = decode_object(parts->header, "header");
    if (!header)
        return header.error();

    const auto* alg_value = header->if_contains("alg");
    if (!alg_value)
        return fail(jwt_failure::malformed, "token header has no alg");
    if (!alg_value->is_string())
        return fail(
            jwt_failure::malformed,
            "token header alg is " + core::json_kind_name(*alg_value) + "; it must be a string");
    const std::string_view alg = alg_value->get_string();
    if (alg != "RS256" && alg != "ES256")
        return fail(jwt_failure::unsupported_algorithm,
                    "token alg " + quoted(alg) + " is not accepted; allowed: RS256, ES256");
    if (header->contains("crit"))
        return fail(jwt_failure::malformed,
                    "token header has crit; no JWS extensions are supported");
    const auto needed = alg == "RS256" ? jwks::key_type::rsa : jwks::key_type::ec_p256;

    const jwks::key* key = nullptr;
    if (const auto* kid_value = header->if_contains("kid")) {
        if (!kid_value->is_string())
            return fail(jwt_failure::malformed, "token header kid is " +
                                                    core::json_kind_name(*kid_value) +
                                                    "; it must be a string");
        const std::string_view kid = kid_value->get_string();
        const auto& all = keys.keys();
        const auto it = std::find_if(all.begin(), all.end(),
                                     [&](const jwks::key& k) { return k.has_kid && k.kid == kid; });
        if (it == all.end())
            return fail(jwt_failure::unknown_key, "no key with kid " + quoted(kid) +
                                                      " in the key set (" +
                                                      std::to_string(keys.size()) + " keys)");
        key = &*it;
    } else {
        std::size_t count = 0;
        for (const auto& k : keys.keys()) {
            if (k.type == needed) {
                key = &k;
                ++count;
            }
        }
        if (count != 1)
            return fail(jwt_failure::unknown_key,
                        "token has no kid and the key set has " + std::to_string(count) + " " +
                            (needed == jwks::key_type::rsa ? "RSA" : "EC P-256") +
                            " keys; without a kid exactly one is needed");
    }
    // The key, not the header, decides the algorithm.
    if (key->type != needed)
        return fail(jwt_failure::unsupported_algorithm,
                    "token alg " + quoted(alg) + " does not fit key " + quoted(key->kid) + ", " +
                        type_name(key->type));

    if (parts->signature.empty())
        return fail(jwt_failure::malformed, "token has no signature; unsigned tokens are refused");
    auto signature = core::base64url_decode(parts->signature);
    if (!signature)
        return fail(jwt_failure::malformed,
                    "token signature is not base64url without padding (allowed: A-Z a-z 0-9 - _)");
    if (key->type == jwks::key_type::ec_p256) {
        if (signature->size() != 64)
            return fail(jwt_failure::bad_signature, "ES256 signature is " +
                                                        std::to_string(signature->size()) +
                                                        " bytes; it must be 64 (r || s)");
        auto der = ecdsa_raw_to_der(*signature);
        if (!der)
            return fail(jwt_failure::bad_signature, "ES256 signature could not be decoded");
        signature = std::move(der);
    } else {
        const auto expected = static_cast<std::size_t>(EVP_PKEY_get_size(key->pkey.get()));
        if (signature->size() != expected)
            return fail(jwt_failure::bad_signature,
                        "RS256 signature is " + std::to_string(signature->size()) +
                            " bytes; the key's modulus needs " + std::to_string(expected));
    }
    if (!signature_holds(*key, parts->signing_input, *signature))
        return fail(jwt_failure::bad_signature,
                    "signature does not verify with key " + quoted(key->kid));

    auto claims = decode_object(parts->payload, "payload");
    if (!claims)
        return claims.error();
    return check_claims(std::move(*claims), policy, now);
}

std::string unverified_issuer(std::string_view token) {
    auto parts = split(token);
    if (!parts)
        return {};
    auto claims = decode_object(parts->payload, "payload");
    if (!claims)
        return {};
    const auto* iss = claims->if_contains("iss");
    if (!iss || !iss->is_string())
        return {};
    return std::string(iss->get_string());
}

}  // namespace eventcast::auth

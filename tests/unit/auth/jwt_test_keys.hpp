// Test-only key generation, JWKS building and token signing with OpenSSL EVP, shared by the JWT
// unit tests and the fuzz target. Never used by the server.
#pragma once

#include "core/base64.hpp"

#include <boost/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace eventcast::auth::testing {

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

inline pkey_ptr make_rsa_key(std::size_t bits = 2048) {
    pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
    if (!key)
        throw std::runtime_error("RSA key generation failed");
    return key;
}

inline pkey_ptr make_ec_key() {
    pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key)
        throw std::runtime_error("EC key generation failed");
    return key;
}

inline bool is_rsa(const EVP_PKEY* key) {
    return EVP_PKEY_is_a(key, "RSA") == 1;
}

inline std::string bn_param(const EVP_PKEY* key, const char* name, int pad = 0) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        throw std::runtime_error(std::string("no key parameter ") + name);
    const int len = pad > 0 ? pad : BN_num_bytes(bn);
    std::string out(static_cast<std::size_t>(len), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
    BN_free(bn);
    return out;
}

/// The public JWK of `key` (RSA or EC P-256) with `kid` ("" leaves kid out).
inline boost::json::object jwk_of(const EVP_PKEY* key, std::string_view kid) {
    boost::json::object jwk;
    if (!kid.empty())
        jwk["kid"] = kid;
    if (is_rsa(key)) {
        jwk["kty"] = "RSA";
        jwk["n"] = core::base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_N));
        jwk["e"] = core::base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_E));
    } else {
        jwk["kty"] = "EC";
        jwk["crv"] = "P-256";
        jwk["x"] = core::base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32));
        jwk["y"] = core::base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
    }
    return jwk;
}

inline std::string jwks_json(std::initializer_list<boost::json::object> keys) {
    boost::json::array arr;
    for (const auto& k : keys)
        arr.push_back(k);
    return boost::json::serialize(boost::json::object{{"keys", std::move(arr)}});
}

/// The public key as PEM (SubjectPublicKeyInfo), e.g. for the HS256 key-confusion attack.
inline std::string public_pem(const EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PUBKEY(bio.get(), key);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

/// A raw JWS signature over `input`: RSASSA-PKCS1-v1_5 SHA-256 for RSA keys, r || s (64 bytes)
/// ECDSA P-256 SHA-256 for EC keys. `der` leaves an ECDSA signature DER-encoded (wrong for JWS).
inline std::string sign(EVP_PKEY* key, std::string_view input, bool der = false) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &len, in, input.size()) != 1)
        throw std::runtime_error("signing failed");
    std::string sig(len, '\0');
    if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                       input.size()) != 1)
        throw std::runtime_error("signing failed");
    sig.resize(len);
    if (is_rsa(key) || der)
        return sig;
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(ecdsa);
    return raw;
}

inline std::string hmac_sha256(std::string_view secret, std::string_view input) {
    unsigned char out[32];
    unsigned int len = sizeof out;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
}

/// "b64(header).b64(payload)": the JWS signing input.
inline std::string signing_input(std::string_view header_json, std::string_view payload_json) {
    return core::base64url_encode(header_json) + "." + core::base64url_encode(payload_json);
}

/// A compact JWS of the given header and payload JSON text, signed with `key`.
inline std::string sign_token(EVP_PKEY* key, std::string_view header_json,
                              std::string_view payload_json) {
    const auto input = signing_input(header_json, payload_json);
    return input + "." + core::base64url_encode(sign(key, input));
}

/// Same, with header {"alg": RS256 or ES256 by key type, "typ": "JWT", "kid": kid}.
inline std::string sign_token(EVP_PKEY* key, std::string_view kid,
                              const boost::json::object& claims) {
    boost::json::object header{{"alg", is_rsa(key) ? "RS256" : "ES256"}, {"typ", "JWT"}};
    if (!kid.empty())
        header["kid"] = kid;
    return sign_token(key, boost::json::serialize(header), boost::json::serialize(claims));
}

}  // namespace eventcast::auth::testing

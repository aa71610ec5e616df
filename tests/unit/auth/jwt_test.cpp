// Tests src/auth/jwt.cpp: JWKS parsing and JWT verification with keys generated here and tokens
// signed here (RS256, ES256), including the classic attacks (alg none, HS256 with the RSA public
// key, algorithm swap, tampering) and malformed input.
#include "auth/jwt.hpp"

#include "auth/jwt_test_keys.hpp"
#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace eventcast::auth {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using testing::jwk_of;
using testing::jwks_json;
using testing::sign_token;

constexpr std::int64_t now_s = 1'700'000'000;
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(now_s));
constexpr std::string_view issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool";

class JwtTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa_ = testing::make_rsa_key().release();
        rsa_other_ = testing::make_rsa_key().release();
        ec_ = testing::make_ec_key().release();
        ec_other_ = testing::make_ec_key().release();
    }
    static void TearDownTestSuite() {
        for (auto* k : {rsa_, rsa_other_, ec_, ec_other_})
            EVP_PKEY_free(k);
    }

    static jwks keys_of(std::initializer_list<json::object> list) {
        auto parsed = parse_jwks(jwks_json(list));
        EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error());
        return parsed ? std::move(*parsed) : jwks();
    }

    /// The usual set: one RSA key "rsa1" and one EC key "ec1".
    static jwks default_keys() { return keys_of({jwk_of(rsa_, "rsa1"), jwk_of(ec_, "ec1")}); }

    static json::object claims() {
        return json::object{{"iss", issuer},           {"sub", "user-1"},
                            {"aud", "client-a"},       {"exp", now_s + 3600},
                            {"iat", now_s - 10},       {"cognito:username", "alice"},
                            {"email", "a@example.com"}};
    }

    static jwt_policy policy() {
        jwt_policy p;
        p.issuer = std::string(issuer);
        p.audiences = {"client-a"};
        return p;
    }

    static boost::system::result<verified_jwt, jwt_error> verify(std::string_view token,
                                                                 const jwt_policy& p = policy()) {
        return verify_jwt(token, default_keys(), p, now);
    }

    static jwt_failure failure_of(std::string_view token, const jwt_policy& p = policy()) {
        auto r = verify(token, p);
        EXPECT_FALSE(r) << "accepted: " << token;
        return r ? jwt_failure::malformed : r.error().kind;
    }

    static inline EVP_PKEY* rsa_ = nullptr;
    static inline EVP_PKEY* rsa_other_ = nullptr;
    static inline EVP_PKEY* ec_ = nullptr;
    static inline EVP_PKEY* ec_other_ = nullptr;
};

std::string header_json(std::string_view alg, std::string_view kid) {
    return json::serialize(json::object{{"alg", alg}, {"kid", kid}});
}

// ---- valid tokens ----------------------------------------------------------------------------

TEST_F(JwtTest, AcceptsValidRs256Token) {
    auto r = verify(sign_token(rsa_, "rsa1", claims()));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->subject, "user-1");
    EXPECT_EQ(r->issuer, issuer);
    EXPECT_EQ(r->username, "alice");
    EXPECT_EQ(r->client_id, "client-a");
    EXPECT_EQ(r->token_use, "");
    EXPECT_EQ(r->expires, now + 3600s);
    EXPECT_EQ(r->claims.at("email"), "a@example.com");
}

TEST_F(JwtTest, AcceptsValidEs256Token) {
    auto r = verify(sign_token(ec_, "ec1", claims()));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->subject, "user-1");
}

TEST_F(JwtTest, AcceptsBearerPrefixAndSurroundingWhitespace) {
    const auto token = sign_token(rsa_, "rsa1", claims());
    for (const std::string& given : {"Bearer " + token, "bearer " + token, "BEARER\t" + token,
                                     "  Bearer   " + token + " \r\n", "\t" + token + " "}) {
        auto r = verify(given);
        EXPECT_TRUE(r) << given.substr(0, 12) << ": " << r.error().message;
    }
    EXPECT_EQ(failure_of("Bearer"), jwt_failure::malformed);
    EXPECT_EQ(failure_of("Bearer" + token), jwt_failure::malformed);  // no space after it
    EXPECT_EQ(failure_of("Basic " + token), jwt_failure::malformed);
}

// ---- time ------------------------------------------------------------------------------------

TEST_F(JwtTest, RefusesExpiredToken) {
    auto c = claims();
    c["exp"] = now_s - 61;
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::expired);
    EXPECT_NE(r.error().message.find("expired"), std::string::npos) << r.error().message;
}

TEST_F(JwtTest, AcceptsExpiryAndNotBeforeWithinClockSkew) {
    auto c = claims();
    c["exp"] = now_s - 59;
    c["nbf"] = now_s + 59;
    c["iat"] = now_s + 59;
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c)));
    auto strict = policy();
    strict.clock_skew = 0s;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c), strict), jwt_failure::expired);
    c["exp"] = now_s + 1;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c), strict), jwt_failure::not_yet_valid);
}

TEST_F(JwtTest, ExpiresExactlyAtExpPlusSkew) {
    auto strict = policy();
    strict.clock_skew = 0s;
    auto c = claims();
    c["exp"] = now_s;
    EXPECT_EQ(failure_of(sign_token(ec_, "ec1", c), strict), jwt_failure::expired);
    c["exp"] = now_s + 1;
    EXPECT_TRUE(verify(sign_token(ec_, "ec1", c), strict));
}

TEST_F(JwtTest, RefusesTokenNotYetValid) {
    auto c = claims();
    c["nbf"] = now_s + 120;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::not_yet_valid);
}

TEST_F(JwtTest, RefusesTokenIssuedInTheFuture) {
    auto c = claims();
    c["iat"] = now_s + 120;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::not_yet_valid);
}

TEST_F(JwtTest, ClockSkewIsCappedAtFiveMinutes) {
    auto lax = policy();
    lax.clock_skew = 24h;
    auto c = claims();
    c["exp"] = now_s - 299;
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c), lax));
    c["exp"] = now_s - 301;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c), lax), jwt_failure::expired);
    lax.clock_skew = -100s;  // counts as 0
    c["exp"] = now_s;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c), lax), jwt_failure::expired);
}

TEST_F(JwtTest, AcceptsFractionalAndFarFutureExp) {
    auto c = claims();
    c["exp"] = static_cast<double>(now_s) + 0.5;
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c)));
    c["exp"] = 1e300;  // beyond the clock: expires is clamped, no overflow
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->expires, std::chrono::system_clock::time_point::max());
}

TEST_F(JwtTest, HugeTimesGiveAnErrorNotAnOverflow) {
    // Found by fuzz_jwt: the seconds in the message overflowed a long long.
    auto c = claims();
    c["nbf"] = 7.7e77;
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::not_yet_valid);
    // g++'s -fsanitize=undefined leaves float-cast-overflow out; on x86 the cast gave INT64_MIN.
    EXPECT_EQ(
        r.error().message,
        "token is not valid for another 1000000000000000 s (nbf); allowed clock skew is 60 s");
    c = claims();
    c["exp"] = -1e300;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::expired);
    c = claims();
    c["iat"] = 1e300;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::not_yet_valid);
}

TEST_F(JwtTest, RefusesMissingOrNonNumericTimes) {
    auto c = claims();
    c["exp"] = std::to_string(now_s + 3600);
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::malformed);
    EXPECT_EQ(r.error().message, "claim exp is a string; it must be a number (seconds since 1970)");
    c.erase("exp");
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
    c = claims();
    c["nbf"] = nullptr;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
    c = claims();
    c["iat"] = json::array{1};
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
}

// ---- issuer, audience, token_use ----------------------------------------------------------

TEST_F(JwtTest, RefusesWrongIssuer) {
    for (std::string_view iss : {"https://evil.example.com",
                                 "https://cognito-idp.eu-west-1."
                                 "amazonaws.com/eu-west-1_PoolX",
                                 ""}) {
        auto c = claims();
        c["iss"] = iss;
        EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::wrong_issuer) << iss;
    }
    auto c = claims();
    c.erase("iss");
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::wrong_issuer);
    auto nobody = policy();
    nobody.issuer.clear();
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", claims()), nobody), jwt_failure::wrong_issuer);
}

TEST_F(JwtTest, RequiresTheIssuerExactly) {
    // OIDC Core §3.1.3.7: iss must exactly match; a trailing slash is another issuer.
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", claims())));
    auto c = claims();
    for (const std::string& iss : {std::string(issuer) + "/", std::string(issuer) + "//",
                                  " " + std::string(issuer)}) {
        c["iss"] = iss;
        EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::wrong_issuer) << iss;
    }
    auto p = policy();
    p.issuer += "/";
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", claims()), p), jwt_failure::wrong_issuer);
}

TEST_F(JwtTest, RefusesWrongAudience) {
    auto c = claims();
    c["aud"] = "client-b";
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::wrong_audience);
    EXPECT_EQ(r.error().message,
              "token aud 'client-b' names no allowed audience; allowed: 'client-a'");
    c.erase("aud");
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::wrong_audience);
    c["aud"] = 42;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
}

TEST_F(JwtTest, AcceptsAnyAllowedAudienceInAnArray) {
    auto c = claims();
    c["aud"] = json::array{"other", "client-a"};
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c)));
    c["aud"] = json::array{"other", "more"};
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::wrong_audience);
    auto open = policy();
    open.audiences.clear();
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c), open));
}

TEST_F(JwtTest, AcceptsCognitoAccessTokenByClientIdAndIdTokenByAud) {
    auto p = policy();
    p.cognito = true;
    // Cognito access tokens carry client_id and no aud.
    json::object access{{"iss", issuer},
                        {"sub", "user-1"},
                        {"client_id", "client-a"},
                        {"token_use", "access"},
                        {"exp", now_s + 3600},
                        {"username", "alice"},
                        {"cognito:groups", json::array{"admins", "writers"}}};
    auto r = verify(sign_token(rsa_, "rsa1", access), p);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->token_use, "access");
    EXPECT_EQ(r->client_id, "client-a");
    EXPECT_EQ(r->username, "alice");
    EXPECT_EQ(r->groups, (std::vector<std::string>{"admins", "writers"}));

    auto id = claims();
    id["token_use"] = "id";
    r = verify(sign_token(rsa_, "rsa1", id), p);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->token_use, "id");
    EXPECT_EQ(r->client_id, "client-a");
}

TEST_F(JwtTest, CognitoChecksAccessTokensByClientIdOnly) {
    auto p = policy();
    p.cognito = true;
    json::object access{{"iss", issuer},     {"sub", "user-1"},         {"token_use", "access"},
                        {"aud", "client-a"}, {"client_id", "client-b"}, {"exp", now_s + 3600}};
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", access), p), jwt_failure::wrong_audience);
    // An ID token's client_id claim does not stand in for aud either.
    auto id = claims();
    id["token_use"] = "id";
    id["aud"] = "client-b";
    id["client_id"] = "client-a";
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", id), p), jwt_failure::wrong_audience);
}

TEST_F(JwtTest, RefusesWrongTokenUseForCognito) {
    auto p = policy();
    p.cognito = true;
    auto c = claims();
    c["token_use"] = "refresh";
    auto r = verify(sign_token(rsa_, "rsa1", c), p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::wrong_token_use);
    EXPECT_EQ(r.error().message, "token_use 'refresh' is not allowed; allowed: access, id");
    c.erase("token_use");
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c), p), jwt_failure::wrong_token_use);
    // Without the Cognito flag token_use is informational.
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c)));
}

TEST_F(JwtTest, RefusesMissingSubAndBadClaimTypes) {
    auto c = claims();
    c.erase("sub");
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
    c = claims();
    c["sub"] = 7;
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
    c = claims();
    c["cognito:groups"] = json::array{"a", 1};
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
    c = claims();
    c["cognito:groups"] = "admins";
    EXPECT_EQ(failure_of(sign_token(rsa_, "rsa1", c)), jwt_failure::malformed);
}

// ---- keys and signatures -------------------------------------------------------------------

TEST_F(JwtTest, RefusesSignatureFromAnotherKeyWithTheSameKid) {
    EXPECT_EQ(failure_of(sign_token(rsa_other_, "rsa1", claims())), jwt_failure::bad_signature);
    EXPECT_EQ(failure_of(sign_token(ec_other_, "ec1", claims())), jwt_failure::bad_signature);
}

TEST_F(JwtTest, ReportsUnknownKid) {
    auto r = verify(sign_token(rsa_, "rotated", claims()));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::unknown_key);
    EXPECT_EQ(r.error().message, "no key with kid 'rotated' in the key set (2 keys)");
    EXPECT_EQ(verify_jwt(sign_token(rsa_, "rsa1", claims()), jwks(), policy(), now).error().kind,
              jwt_failure::unknown_key);
}

TEST_F(JwtTest, TokenWithoutKidNeedsExactlyOneKeyOfItsType) {
    const auto token = sign_token(rsa_, "", claims());
    // One RSA key (and an EC key, which does not count): chosen.
    EXPECT_TRUE(verify_jwt(token, default_keys(), policy(), now));
    // Two RSA keys: ambiguous.
    const auto two = keys_of({jwk_of(rsa_, "rsa1"), jwk_of(rsa_other_, "rsa2")});
    EXPECT_EQ(verify_jwt(token, two, policy(), now).error().kind, jwt_failure::unknown_key);
    // No EC key at all.
    const auto rsa_only = keys_of({jwk_of(rsa_, "")});
    EXPECT_TRUE(verify_jwt(token, rsa_only, policy(), now));
    EXPECT_EQ(verify_jwt(sign_token(ec_, "", claims()), rsa_only, policy(), now).error().kind,
              jwt_failure::unknown_key);
}

TEST_F(JwtTest, RefusesAlgNone) {
    const auto payload = json::serialize(claims());
    for (std::string_view alg : {"none", "None", "NONE"}) {
        const auto header = json::serialize(json::object{{"alg", alg}, {"kid", "rsa1"}});
        const auto unsigned_token = testing::signing_input(header, payload) + ".";
        auto r = verify(unsigned_token);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().kind, jwt_failure::unsupported_algorithm) << alg;
        // With a real signature appended it is still refused.
        EXPECT_EQ(failure_of(testing::sign_token(rsa_, header, payload)),
                  jwt_failure::unsupported_algorithm);
    }
    const auto no_alg = testing::sign_token(rsa_, R"({"kid":"rsa1"})", payload);
    EXPECT_EQ(failure_of(no_alg), jwt_failure::malformed);
}

TEST_F(JwtTest, RefusesHs256KeyedWithTheRsaPublicKey) {
    // The classic confusion: HMAC keyed with bytes the attacker knows (the public key).
    const auto payload = json::serialize(claims());
    for (const std::string& secret :
         {testing::public_pem(rsa_), testing::bn_param(rsa_, OSSL_PKEY_PARAM_RSA_N),
          json::serialize(jwk_of(rsa_, "rsa1"))}) {
        for (std::string_view alg : {"HS256", "HS384", "HS512"}) {
            const auto input = testing::signing_input(header_json(alg, "rsa1"), payload);
            const auto token =
                input + "." + core::base64url_encode(testing::hmac_sha256(secret, input));
            auto r = verify(token);
            ASSERT_FALSE(r);
            EXPECT_EQ(r.error().kind, jwt_failure::unsupported_algorithm);
            EXPECT_EQ(r.error().message, "token alg '" + std::string(alg) +
                                             "' is not accepted; allowed: RS256, ES256");
        }
    }
}

TEST_F(JwtTest, KeyTypeDecidesTheAlgorithm) {
    const auto payload = json::serialize(claims());
    // ES256 header naming the RSA key, and RS256 naming the EC key.
    auto r = verify(testing::sign_token(ec_, header_json("ES256", "rsa1"), payload));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::unsupported_algorithm);
    EXPECT_EQ(r.error().message,
              "token alg 'ES256' does not fit key 'rsa1', an RSA key, which allows only RS256");
    EXPECT_EQ(failure_of(testing::sign_token(rsa_, header_json("RS256", "ec1"), payload)),
              jwt_failure::unsupported_algorithm);
    for (std::string_view alg : {"PS256", "RS384", "ES384", "EdDSA", "rs256"})
        EXPECT_EQ(failure_of(testing::sign_token(rsa_, header_json(alg, "rsa1"), payload)),
                  jwt_failure::unsupported_algorithm)
            << alg;
}

TEST_F(JwtTest, JwkAlgPinsTheAlgorithm) {
    auto pinned = jwk_of(rsa_, "rsa1");
    pinned["alg"] = "RS256";
    auto set = keys_of({pinned});
    EXPECT_TRUE(verify_jwt(sign_token(rsa_, "rsa1", claims()), set, policy(), now));
    pinned["alg"] = "PS256";  // a key meant for another algorithm is not used at all
    auto parsed = parse_jwks(jwks_json({pinned}));
    ASSERT_FALSE(parsed);
    EXPECT_NE(parsed.error().find("alg 'PS256' is not supported for kty RSA; allowed: RS256"),
              std::string::npos)
        << parsed.error();
}

TEST_F(JwtTest, RefusesTamperedPayloadAndHeader) {
    const auto token = sign_token(rsa_, "rsa1", claims());
    const auto dot1 = token.find('.');
    const auto dot2 = token.find('.', dot1 + 1);
    const auto signature = token.substr(dot2 + 1);

    auto forged = claims();
    forged["sub"] = "admin";
    const auto forged_payload = core::base64url_encode(json::serialize(forged));
    EXPECT_EQ(failure_of(token.substr(0, dot1 + 1) + forged_payload + "." + signature),
              jwt_failure::bad_signature);

    const auto forged_header =
        core::base64url_encode(R"({"alg":"RS256","kid":"rsa1","typ":"at+jwt"})");
    EXPECT_EQ(failure_of(forged_header + token.substr(dot1)), jwt_failure::bad_signature);

    // One flipped bit anywhere in the signature.
    auto sig_bytes = *core::base64url_decode(signature);
    for (std::size_t i = 0; i < sig_bytes.size(); i += 37) {
        auto flipped = sig_bytes;
        flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
        EXPECT_EQ(failure_of(token.substr(0, dot2 + 1) + core::base64url_encode(flipped)),
                  jwt_failure::bad_signature)
            << "byte " << i;
    }
}

TEST_F(JwtTest, RefusesSignaturesOfTheWrongLength) {
    const auto payload = json::serialize(claims());
    const auto input = testing::signing_input(header_json("ES256", "ec1"), payload);
    // A DER-encoded ECDSA signature (what OpenSSL produces) is not a JWS signature.
    const auto der = input + "." + core::base64url_encode(testing::sign(ec_, input, true));
    auto r = verify(der);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::bad_signature);
    const auto raw = testing::sign(ec_, input);
    EXPECT_EQ(failure_of(input + "." + core::base64url_encode(raw + '\0')),
              jwt_failure::bad_signature);
    EXPECT_EQ(failure_of(input + "." + core::base64url_encode(raw.substr(1))),
              jwt_failure::bad_signature);
    EXPECT_EQ(failure_of(input + "." + core::base64url_encode(std::string(64, '\0'))),
              jwt_failure::bad_signature);

    const auto rsa_input = testing::signing_input(header_json("RS256", "rsa1"), payload);
    const auto rsa_sig = testing::sign(rsa_, rsa_input);
    EXPECT_EQ(failure_of(rsa_input + "." + core::base64url_encode('\0' + rsa_sig)),
              jwt_failure::bad_signature);
    EXPECT_EQ(failure_of(rsa_input + "." + core::base64url_encode(rsa_sig.substr(0, 128))),
              jwt_failure::bad_signature);
}

TEST_F(JwtTest, RefusesCritHeader) {
    const auto header = R"({"alg":"RS256","kid":"rsa1","crit":["exp"],"exp":1})";
    auto r = verify(testing::sign_token(rsa_, header, json::serialize(claims())));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::malformed);
    EXPECT_EQ(r.error().message, "token header has crit; no JWS extensions are supported");
}

// ---- malformed input -----------------------------------------------------------------------

TEST_F(JwtTest, RefusesGarbage) {
    const auto good = sign_token(rsa_, "rsa1", claims());
    const auto sig = good.substr(good.rfind('.') + 1);
    const auto b64 = [](std::string_view s) { return core::base64url_encode(s); };
    const auto payload = b64(json::serialize(claims()));
    const std::vector<std::string> inputs = {
        "",
        "   ",
        "garbage",
        "a.b",
        ".",
        "..",
        "...",
        good + "." + sig,
        good + ".x.y",
        "." + payload + "." + sig,
        b64(R"({"alg":"RS256"})") + ".." + sig,
        "e30=." + payload + "." + sig,                   // padding
        "eyJhbGciOiJSUzI1NiJ9+." + payload + "." + sig,  // standard alphabet
        "!!!." + payload + "." + sig,
        b64("[1,2]") + "." + payload + "." + sig,
        b64("null") + "." + payload + "." + sig,
        b64("\"RS256\"") + "." + payload + "." + sig,
        b64("{\"alg\":") + "." + payload + "." + sig,
        b64(R"({"alg":"RS256","kid":"rsa1"} x)") + "." + payload + "." + sig,
        b64(R"({"alg":256,"kid":"rsa1"})") + "." + payload + "." + sig,
        b64(R"({"alg":"RS256","kid":1})") + "." + payload + "." + sig,
        std::string(good).replace(good.find('.'), 1, " "),
        std::string("\0\0\0", 3),
    };
    for (const auto& input : inputs) {
        auto r = verify(input);
        ASSERT_FALSE(r) << input;
        EXPECT_EQ(r.error().kind, jwt_failure::malformed) << input << ": " << r.error().message;
        EXPECT_FALSE(r.error().message.empty());
    }
}

TEST_F(JwtTest, RefusesBadBase64InTheSignature) {
    const auto good = sign_token(rsa_, "rsa1", claims());
    EXPECT_EQ(failure_of(good + "="), jwt_failure::malformed);
    EXPECT_EQ(failure_of(good.substr(0, good.size() - 1) + "+"), jwt_failure::malformed);
    EXPECT_EQ(failure_of(good.substr(0, good.rfind('.') + 1) + "A"), jwt_failure::malformed);
}

TEST_F(JwtTest, RefusesNonObjectPayloadEvenWhenSigned) {
    for (std::string_view payload : {"[]", "\"text\"", "42", "null", "{", ""}) {
        auto r = verify(testing::sign_token(rsa_, header_json("RS256", "rsa1"), payload));
        ASSERT_FALSE(r) << payload;
        EXPECT_EQ(r.error().kind, jwt_failure::malformed) << payload;
    }
}

TEST_F(JwtTest, TruncatedTokensAreNeverAccepted) {
    const auto token = sign_token(ec_, "ec1", claims());
    for (std::size_t len = 0; len < token.size(); ++len) {
        auto r = verify(std::string_view(token).substr(0, len));
        ASSERT_FALSE(r) << "prefix of " << len << " bytes was accepted";
    }
}

TEST_F(JwtTest, RefusesHugeTokenBeforeParsing) {
    auto c = claims();
    c["padding"] = std::string(20'000, 'x');
    const auto token = sign_token(rsa_, "rsa1", c);
    auto r = verify(token);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, jwt_failure::malformed);
    EXPECT_EQ(r.error().message,
              "token is " + std::to_string(token.size()) + " bytes; the limit is 16384");
    // Just under the limit is fine.
    c["padding"] = std::string(10'000, 'x');
    EXPECT_TRUE(verify(sign_token(rsa_, "rsa1", c)));
}

TEST_F(JwtTest, ErrorMessagesNeverContainTheTokenOrSignature) {
    const auto good = sign_token(rsa_, "rsa1", claims());
    const auto sig = good.substr(good.rfind('.') + 1);
    const auto payload = good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1);
    auto c = claims();
    c["exp"] = now_s - 1000;
    const std::vector<std::string> bad = {
        sign_token(rsa_other_, "rsa1", claims()), sign_token(rsa_, "rsa1", c), good + "x",
        good.substr(0, good.rfind('.') + 1) + sig.substr(1), "Bearer " + good + "." + sig};
    for (const auto& token : bad) {
        auto r = verify(token);
        ASSERT_FALSE(r);
        const auto& m = r.error().message;
        EXPECT_EQ(m.find(sig.substr(0, 16)), std::string::npos) << m;
        EXPECT_EQ(m.find(payload.substr(0, 16)), std::string::npos) << m;
        EXPECT_LT(m.size(), 300u) << m;
    }
}

TEST_F(JwtTest, QuotedClaimValuesAreBoundedAndPrintable) {
    auto c = claims();
    c["iss"] = std::string("evil\n\x1b[31m") + std::string(500, 'a');
    auto r = verify(sign_token(rsa_, "rsa1", c));
    ASSERT_FALSE(r);
    const auto& m = r.error().message;
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_EQ(m.find('\x1b'), std::string::npos);
    EXPECT_NE(m.find("'evil\\x0a\\x1b[31m"), std::string::npos) << m;
    EXPECT_LT(m.size(), 250u) << m;
}

TEST_F(JwtTest, UnverifiedIssuerPeeksAtIss) {
    EXPECT_EQ(unverified_issuer(sign_token(rsa_other_, "whatever", claims())), issuer);
    EXPECT_EQ(unverified_issuer("Bearer " + sign_token(ec_, "ec1", claims())), issuer);
    auto c = claims();
    c["iss"] = 5;
    EXPECT_EQ(unverified_issuer(sign_token(rsa_, "rsa1", c)), "");
    EXPECT_EQ(unverified_issuer("a.b.c"), "");
    EXPECT_EQ(unverified_issuer(""), "");
}

TEST_F(JwtTest, ManyThreadsVerifyAgainstOneKeySet) {
    const auto keys = default_keys();
    const auto rs = sign_token(rsa_, "rsa1", claims());
    const auto es = sign_token(ec_, "ec1", claims());
    const auto forged = sign_token(rsa_other_, "rsa1", claims());
    std::atomic<int> accepted{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 25; ++i) {
                for (const auto* token : {&rs, &es, &forged}) {
                    auto r = verify_jwt(*token, keys, policy(), now);
                    (r ? accepted : refused)++;
                }
            }
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(accepted, 4 * 25 * 2);
    EXPECT_EQ(refused, 4 * 25);
}

TEST(JwtFailureTest, NamesEveryFailure) {
    EXPECT_EQ(to_string(jwt_failure::malformed), "malformed");
    EXPECT_EQ(to_string(jwt_failure::unsupported_algorithm), "unsupported_algorithm");
    EXPECT_EQ(to_string(jwt_failure::wrong_token_use), "wrong_token_use");
}

// ---- JWKS parsing --------------------------------------------------------------------------

class JwksParseTest : public JwtTest {};

TEST_F(JwksParseTest, ParsesRsaAndEcKeys) {
    auto set = parse_jwks(jwks_json({jwk_of(rsa_, "rsa1"), jwk_of(ec_, "ec1")}));
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->size(), 2u);
    EXPECT_TRUE(set->skipped().empty());
    EXPECT_TRUE(set->contains("rsa1"));
    EXPECT_TRUE(set->contains("ec1"));
    EXPECT_FALSE(set->contains("ec2"));
    EXPECT_EQ(set->keys()[0].type, jwks::key_type::rsa);
    EXPECT_EQ(set->keys()[1].type, jwks::key_type::ec_p256);
}

TEST_F(JwksParseTest, SkipsKeysItCannotUseAndSaysWhy) {
    auto enc = jwk_of(rsa_other_, "enc1");
    enc["use"] = "enc";
    json::object oct{{"kty", "oct"}, {"kid", "hmac"}, {"k", "c2VjcmV0"}};
    auto p384 = jwk_of(ec_other_, "p384");
    p384["crv"] = "P-384";
    auto small = jwk_of(testing::make_rsa_key(1024).get(), "small");
    auto wrap = jwk_of(ec_other_, "wrap");
    wrap["key_ops"] = json::array{"wrapKey"};
    auto bad_point = jwk_of(ec_other_, "offcurve");
    bad_point["y"] = bad_point["x"];
    auto short_x = jwk_of(ec_other_, "shortx");
    short_x["x"] = core::base64url_encode(std::string(31, '\x01'));
    auto dup = jwk_of(rsa_other_, "rsa1");
    auto bad_b64 = jwk_of(rsa_other_, "b64");
    bad_b64["n"] = "AQAB=";

    auto set = parse_jwks(jwks_json({jwk_of(rsa_, "rsa1"), enc, oct, p384, small, wrap, bad_point,
                                     short_x, dup, bad_b64, json::object{{"kty", 1}}}));
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->size(), 1u);
    const std::vector<std::string> expected = {
        "key 1 (kid 'enc1'): use is not \"sig\" (an encryption key)",
        "key 2 (kid 'hmac'): kty 'oct' is not supported; allowed: RSA, EC",
        "key 3 (kid 'p384'): crv 'P-384' is not supported; allowed: P-256",
        "key 4 (kid 'small'): modulus has 1024 bits; allowed: 2048 to 8192",
        "key 5 (kid 'wrap'): key_ops does not include \"verify\"",
        "key 6 (kid 'offcurve'): OpenSSL refused x/y as a P-256 point",
        "key 7 (kid 'shortx'): x and y are 31 and 32 bytes; P-256 needs 32 each",
        "key 8 (kid 'rsa1'): duplicate kid",
        "key 9 (kid 'b64'): n is not base64url without padding",
        "key 10: kty is missing or not a string; allowed: RSA, EC",
    };
    EXPECT_EQ(set->skipped(), expected);
    // The duplicate kid did not replace the first key.
    EXPECT_TRUE(verify_jwt(sign_token(rsa_, "rsa1", claims()), *set, policy(), now));
}

TEST_F(JwksParseTest, RefusesDocumentsThatAreNotKeySets) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "key set is not valid JSON: "},
        {"[]", "key set is an array; it must be an object with \"keys\""},
        {"{}", "key set has no \"keys\" array"},
        {R"({"keys":{}})", "key set has no \"keys\" array"},
        {R"({"keys":[]})", "key set has no usable key"},
        {R"({"keys":[{"kty":"oct","k":"AA"}]})", "key set has no usable key"},
    };
    for (const auto& [text, prefix] : cases) {
        auto set = parse_jwks(text);
        ASSERT_FALSE(set) << text;
        EXPECT_EQ(set.error().substr(0, prefix.size()), prefix) << set.error();
    }
    auto huge = parse_jwks(std::string(jwks::max_json_bytes + 1, ' '));
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error(), "key set is 1048577 bytes; the limit is 1048576");
}

TEST_F(JwksParseTest, RefusesRsaExponentsAndModuliOutsideTheLimits) {
    auto even = jwk_of(rsa_, "even");
    even["e"] = core::base64url_encode("\x01\x00\x00");
    auto long_e = jwk_of(rsa_, "long");
    long_e["e"] = core::base64url_encode(std::string(9, '\x01'));
    auto set = parse_jwks(jwks_json({jwk_of(ec_, "ec1"), even, long_e}));
    ASSERT_TRUE(set) << set.error();
    ASSERT_EQ(set->skipped().size(), 2u);
    EXPECT_EQ(set->skipped()[0], "key 1 (kid 'even'): OpenSSL refused n/e as an RSA public key");
    EXPECT_EQ(set->skipped()[1], "key 2 (kid 'long'): e is 9 bytes; allowed: 1 to 8");
}

}  // namespace
}  // namespace eventcast::auth

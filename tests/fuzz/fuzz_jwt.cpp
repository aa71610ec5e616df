// libFuzzer target: JWT verification (auth::verify_jwt, unverified_issuer) and JWKS parsing
// (auth::parse_jwks). The first byte picks what the rest is:
//   0 a whole token, verified against a fixed key set generated at start (RSA and EC P-256);
//   1 a payload (claims JSON), signed here with the fixed EC key, so claim checks are reached;
//   2 a header (JSON), with fixed claims, signed here with the fixed EC key;
//   3 a JWKS document; a fixed signed token is then verified against what it yields.
// Invariants: a token we did not sign never verifies; an accepted token holds the policy
// (issuer, non-empty sub, not expired); every error message is non-empty, bounded, printable.
#include "../unit/auth/jwt_test_keys.hpp"
#include "auth/jwt.hpp"
#include "core/base64.hpp"
#include "fuzz_check.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace eventcast;
using fuzz::check;

constexpr std::int64_t now_s = 1'700'000'000;
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(now_s));
constexpr std::string_view issuer = "https://idp.example.com";

struct fixture {
    auth::testing::pkey_ptr rsa = auth::testing::make_rsa_key();
    auth::testing::pkey_ptr ec = auth::testing::make_ec_key();
    auth::jwks keys;
    auth::jwt_policy policy;
    auth::jwt_policy cognito;
    std::string valid_ec_token;

    fixture() {
        auto parsed = auth::parse_jwks(auth::testing::jwks_json(
            {auth::testing::jwk_of(rsa.get(), "rsa1"), auth::testing::jwk_of(ec.get(), "ec1")}));
        check(parsed.has_value(), "the fixed key set parses");
        keys = std::move(*parsed);
        policy.issuer = std::string(issuer);
        policy.audiences = {"client-a"};
        cognito = policy;
        cognito.cognito = true;
        valid_ec_token = auth::testing::sign_token(
            ec.get(), "ec1",
            boost::json::object{
                {"iss", issuer}, {"sub", "u"}, {"aud", "client-a"}, {"exp", now_s + 60}});
    }
};

const fixture& fixed() {
    static const fixture f;
    return f;
}

void check_message(const std::string& m) {
    check(!m.empty(), "error messages are not empty");
    check(m.size() < 2048, "error messages are bounded");
    for (char c : m)
        check(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f,
              "error messages are printable ASCII");
}

// Returns whether the token was accepted, after checking the invariants of either outcome.
bool verify(std::string_view token, const auth::jwt_policy& policy) {
    auto r = auth::verify_jwt(token, fixed().keys, policy, now);
    if (!r) {
        check_message(r.error().message);
        check(!to_string(r.error().kind).empty(), "every failure has a name");
        return false;
    }
    check(!r->subject.empty(), "an accepted token has a subject");
    check(r->issuer == issuer || r->issuer == std::string(issuer) + "/",
          "an accepted token has the configured issuer");
    check(r->expires > now - auth::jwt_policy::max_clock_skew, "an accepted token has not expired");
    if (policy.cognito)
        check(r->token_use == "access" || r->token_use == "id",
              "Cognito tokens are access or id tokens");
    return true;
}

std::string sign_with_ec(std::string_view header, std::string_view payload) {
    return auth::testing::sign_token(fixed().ec.get(), header, payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0: {
            check(!verify(rest, fixed().policy), "a token we did not sign never verifies");
            check(!verify(rest, fixed().cognito), "a token we did not sign never verifies");
            (void)auth::unverified_issuer(rest);
            break;
        }
        case 1: {
            if (rest.size() > auth::max_jwt_bytes)
                return 0;
            const auto token = sign_with_ec(R"({"alg":"ES256","kid":"ec1"})", rest);
            verify(token, fixed().policy);
            verify(token, fixed().cognito);
            (void)auth::unverified_issuer(token);
            break;
        }
        case 2: {
            if (rest.size() > auth::max_jwt_bytes)
                return 0;
            const auto token = sign_with_ec(
                rest, R"({"iss":"https://idp.example.com","sub":"u","exp":1700000060})");
            // No audience check here: the claims have no aud.
            auto open = fixed().policy;
            open.audiences.clear();
            verify(token, open);
            break;
        }
        case 3: {
            auto set = auth::parse_jwks(rest);
            if (!set) {
                check(!set.error().empty(), "a refused key set says why");
                break;
            }
            check(!set->empty() && set->size() <= auth::jwks::max_keys,
                  "a parsed key set holds 1..max_keys keys");
            for (const auto& key : set->keys())
                check(key.pkey != nullptr, "every key has an OpenSSL key");
            auto r = auth::verify_jwt(fixed().valid_ec_token, *set, fixed().policy, now);
            if (!r)
                check_message(r.error().message);
            break;
        }
    }
    return 0;
}

// libFuzzer target: the parsers of authorization input other than JWTs (fuzz_jwt has those):
// the SigV4 Authorization header, a full AWS_IAM check of an authorization object built from
// the input (header values split on '\n'), the IAM keys file, and the Lambda webhook's answer.
// Invariants: never crash; an accepted header has 64 hex digits of signature and a 5-part
// credential; a forged signature is never accepted; messages never echo the secret.
#include "auth/iam.hpp"
#include "auth/lambda_authorizer.hpp"
#include "fuzz_check.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

using namespace eventcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    if (auto a = auth::parse_sigv4_authorization(in)) {
        fuzz::check(a->signature.size() == 64, "accepted a signature that is not 64 digits");
        fuzz::check(a->date.size() == 8 && !a->access_key_id.empty() && !a->region.empty() &&
                        !a->service.empty(),
                    "accepted a credential scope with an empty part");
        fuzz::check(!a->signed_headers.empty(), "accepted an empty SignedHeaders");
    } else {
        fuzz::check(!a.error().empty(), "refused without saying why");
    }

    // An authorization object: lines "name: value"; the signature is whatever the input says,
    // so it can only verify by forging HMAC-SHA256, which must never happen.
    static const auto keys = *auth::iam_key_store::parse("AKIDFUZZ fuzz-secret-0123 fuzzer\n");
    events::credentials creds;
    std::size_t start = 0;
    while (start < in.size()) {
        auto nl = in.find('\n', start);
        if (nl == std::string_view::npos)
            nl = in.size();
        const auto line = in.substr(start, nl - start);
        if (const auto colon = line.find(':'); colon != std::string_view::npos)
            creds.add(line.substr(0, colon), line.substr(colon + 1));
        start = nl + 1;
    }
    const auth::signed_request req{"POST", "/event", "", creds, in};
    auto v = auth::verify_sigv4(req, keys, {}, std::chrono::system_clock::now());
    fuzz::check(!v.has_value(), "a signature from the input verified (forgery)");
    // (Unless the input itself holds it: messages may quote what the client sent.)
    if (in.find("fuzz-secret-0123") == std::string_view::npos)
        fuzz::check(v.error().find("fuzz-secret-0123") == std::string::npos,
                    "a refusal message contains the secret");

    (void)auth::iam_key_store::parse(in);
    auto [answer, ttl] = auth::lambda_authorizer::parse_answer(200, in, std::chrono::seconds(5));
    fuzz::check(ttl.count() >= 0 && ttl.count() <= 3600, "ttl outside 0..3600");
    fuzz::check(answer.allowed || !answer.reason.empty(), "a refusal without a reason");
    return 0;
}

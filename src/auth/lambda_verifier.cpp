// AWS_LAMBDA: the webhook's answer, cached per (token, operation, channel) by lambda_authorizer.
#include "auth/lambda_verifier.hpp"

#include "auth/lambda_authorizer.hpp"

namespace eventcast::auth {

namespace {

using events::protocol_error;

lambda_request request_of(const auth_request& r) {
    lambda_request q;
    q.token = *r.creds->find("authorization");
    q.op = r.op;
    q.ns = r.ns;
    q.channel = r.raw_channel;
    q.headers = *r.creds;
    return q;
}

auth_result result_of(const lambda_answer& a) {
    if (!a.allowed)
        return protocol_error::unauthorized("AWS_LAMBDA: " + a.reason);
    identity who;
    who.how = mode::lambda;
    who.handler_context = a.handler_context;
    return who;
}

class lambda_verifier final : public verifier {
public:
    lambda_verifier(lambda_authorizer::options opts, aws::transport& outbound)
        : webhook_(std::move(opts), outbound) {}

    mode which() const noexcept override { return mode::lambda; }
    bool recognizes(const events::credentials& c) const override {
        return c.find("authorization") != nullptr;
    }
    // A Lambda token has no shape of its own: the refusal says what earlier verifiers saw.
    std::string_view credentials_kind() const override { return {}; }

    std::optional<auth_result> try_verify(const auth_request& req) const override {
        if (auto a = webhook_.cached(request_of(req)))
            return result_of(*a);
        return std::nullopt;
    }
    void verify_async(const auth_request& req, std::function<void(auth_result)> done) override {
        auto q = request_of(req);
        if (auto a = webhook_.cached(q))
            return done(result_of(*a));
        webhook_.ask(std::move(q),
                     [done = std::move(done)](lambda_answer a) { done(result_of(a)); });
    }

    void add_counters(auth_counters& c) const override { c.lambda_calls += webhook_.calls(); }

private:
    lambda_authorizer webhook_;
};

}  // namespace

std::unique_ptr<verifier> make_lambda_verifier(const verifier_setup& setup) {
    const auto& a = setup.cfg.auth;
    if (!setup.used.has(mode::lambda))
        return nullptr;
    if (a.lambda_url.empty()) {
        setup.problems.push_back("AWS_LAMBDA is allowed but --lambda-authorizer-url is not set");
        return nullptr;
    }
    if (!setup.outbound) {
        setup.problems.push_back("AWS_LAMBDA needs the outbound HTTP transport");
        return nullptr;
    }
    return std::make_unique<lambda_verifier>(
        lambda_authorizer::options{a.lambda_url, a.lambda_timeout, a.lambda_ttl, 100'000},
        *setup.outbound);
}

}  // namespace eventcast::auth

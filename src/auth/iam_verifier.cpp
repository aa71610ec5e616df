// AWS_IAM: recognized by an Authorization that starts with the SigV4 algorithm name.
#include "auth/iam_verifier.hpp"

#include "auth/iam.hpp"

namespace eventcast::auth {

namespace {

using events::protocol_error;

class iam_verifier final : public verifier {
public:
    iam_verifier(std::optional<iam_key_store> keys, iam_policy policy)
        : keys_(std::move(keys)), policy_(std::move(policy)) {}

    mode which() const noexcept override { return mode::iam; }
    bool recognizes(const events::credentials& c) const override {
        const std::string* authz = c.find("authorization");
        return authz && authz->compare(0, 16, "AWS4-HMAC-SHA256") == 0;
    }
    std::string_view credentials_kind() const override { return "a SigV4 signature"; }
    bool claims_exclusively() const noexcept override { return true; }

    std::optional<auth_result> try_verify(const auth_request& r) const override {
        if (!keys_)
            return auth_result(protocol_error::unauthorized("AWS_IAM has no keys configured"));
        // HTTP: the request itself is signed. WebSocket: a synthetic POST /event whose body
        // restates the operation (spec §9.3).
        std::string body;
        if (!r.http) {
            if (r.op == operation::connect)
                body = synthetic_body();
            else if (r.events)
                body = synthetic_body(r.raw_channel, *r.events);
            else
                body = synthetic_body(r.raw_channel);
        }
        const events::credentials& c = *r.creds;
        const signed_request sr =
            r.http ? signed_request{r.http->method, r.http->path, r.http->query, c, r.http->body}
                   : signed_request{"POST", "/event", "", c, body};
        auto v = verify_sigv4(sr, *keys_, policy_, std::chrono::system_clock::now());
        if (!v)
            return auth_result(protocol_error::unauthorized("AWS_IAM: " + v.error()));
        identity who;
        who.how = mode::iam;
        who.user = v->principal;
        who.access_key_id = v->access_key_id;
        return auth_result(std::move(who));
    }
    void verify_async(const auth_request& req, std::function<void(auth_result)> done) override {
        done(*try_verify(req));
    }

private:
    std::optional<iam_key_store> keys_;
    iam_policy policy_;
};

}  // namespace

std::unique_ptr<verifier> make_iam_verifier(const verifier_setup& setup) {
    const auto& a = setup.cfg.auth;
    std::optional<iam_key_store> keys;
    iam_policy policy;
    if (setup.used.has(mode::iam)) {
        if (a.iam_keys_file.empty()) {
            setup.problems.push_back("AWS_IAM is allowed but --iam-keys-file is not set");
        } else if (auto store = iam_key_store::load(a.iam_keys_file); !store) {
            setup.problems.push_back("--iam-keys-file: " + store.error());
        } else {
            keys = std::move(*store);
            policy = {a.iam_region, a.iam_clock_skew};
        }
    }
    return std::make_unique<iam_verifier>(std::move(keys), std::move(policy));
}

}  // namespace eventcast::auth

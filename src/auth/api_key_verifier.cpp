// API_KEY: recognized by an x-api-key entry; the key store does the constant-time comparison.
#include "auth/api_key_verifier.hpp"

#include "auth/api_keys.hpp"

namespace eventcast::auth {

namespace {

class api_key_verifier final : public verifier {
public:
    explicit api_key_verifier(std::vector<core::api_key> keys) : keys_(std::move(keys)) {}

    mode which() const noexcept override { return mode::api_key; }
    bool recognizes(const events::credentials& c) const override {
        return c.find("x-api-key") != nullptr;
    }
    std::string_view credentials_kind() const override { return "an x-api-key"; }

    std::optional<auth_result> try_verify(const auth_request& req) const override {
        if (auto k = keys_.check(*req.creds); !k)
            return auth_result(k.error());
        return auth_result(identity{});
    }
    void verify_async(const auth_request& req, std::function<void(auth_result)> done) override {
        done(*try_verify(req));
    }
    std::string reload(const core::config& cfg) override {
        if (cfg.api_keys.empty())
            return "the reloaded configuration has no API key; the running keys are kept";
        keys_.replace(cfg.api_keys);
        return {};
    }

private:
    api_key_store keys_;
};

}  // namespace

std::unique_ptr<verifier> make_api_key_verifier(const verifier_setup& setup) {
    if (setup.used.has(mode::api_key) && setup.cfg.api_keys.empty())
        setup.problems.push_back("API_KEY is allowed but no API key is configured");
    return std::make_unique<api_key_verifier>(setup.cfg.api_keys);
}

}  // namespace eventcast::auth

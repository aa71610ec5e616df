// The network providers: Amazon Bedrock ConverseStream (SigV4 or Bedrock API key) and any
// OpenAI-compatible /v1/chat/completions server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio).
// Both run their transfers on the llm transport; the wire parsing is in
// bedrock_stream/openai_stream.
#pragma once

#include "core/config.hpp"
#include "aws/aws_credentials.hpp"
#include "llm/provider.hpp"
#include "aws/transport.hpp"

namespace eventcast::llm {

struct bedrock_settings {
    std::string region;
    std::string endpoint;  // scheme://host[:port], no trailing slash
    std::string default_model;
    std::string bearer_token;  // AWS_BEARER_TOKEN_BEDROCK; empty: SigV4
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds idle_timeout{120'000};
};

/// Resolves region, endpoint and auth from config and the AWS environment (spec §2.1, §5).
/// Returns why Bedrock cannot be used (no region, no credentials) as an error line.
boost::system::result<bedrock_settings, std::string> bedrock_settings_from(
    const core::chat_config& cfg, const aws::environment& env, aws::credential_chain& chain,
    bool allow_imds);

class bedrock_provider final : public provider {
public:
    bedrock_provider(aws::transport& t, bedrock_settings settings, aws::credential_chain& chain)
        : transport_(t), settings_(std::move(settings)), chain_(chain) {}
    std::string_view name() const override { return "bedrock"; }
    std::string_view default_model() const override { return settings_.default_model; }
    std::shared_ptr<completion> start(completion_request request,
                                      std::shared_ptr<completion_sink> sink) override;

    /// The ConverseStream request body for `request` (exposed for tests).
    static std::string request_body(const completion_request& request);

private:
    aws::transport& transport_;
    bedrock_settings settings_;
    aws::credential_chain& chain_;
};

struct openai_settings {
    std::string base_url;  // e.g. http://127.0.0.1:11434 or https://api.openai.com/v1
    std::string api_key;   // may be empty (local servers)
    std::string default_model;
    std::string max_tokens_field = "max_tokens";
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds idle_timeout{120'000};
};

class openai_provider final : public provider {
public:
    openai_provider(aws::transport& t, openai_settings settings)
        : transport_(t), settings_(std::move(settings)) {}
    std::string_view name() const override { return "openai"; }
    std::string_view default_model() const override { return settings_.default_model; }
    std::shared_ptr<completion> start(completion_request request,
                                      std::shared_ptr<completion_sink> sink) override;

    static std::string request_body(const completion_request& request,
                                    const std::string& max_tokens_field);
    /// base_url + "/v1/chat/completions" (or "/chat/completions" when base ends in /v1).
    static std::string completions_url(std::string base_url);

private:
    aws::transport& transport_;
    openai_settings settings_;
};

}  // namespace eventcast::llm

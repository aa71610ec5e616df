// The offline demo model: no network, no credentials. It streams a deterministic answer built
// from the prompt at a configurable pace, so the whole chat path can be tried and tested
// anywhere. Every answer says it comes from the demo model.
#pragma once

#include "llm/provider.hpp"
#include "aws/transport.hpp"

#include <chrono>

namespace eventcast::llm {

class demo_provider final : public provider {
public:
    /// `pace`: time between chunks; `words_per_chunk`: chunk size.
    demo_provider(aws::transport& t, std::chrono::milliseconds pace, std::size_t words_per_chunk = 1)
        : transport_(t), pace_(pace), words_per_chunk_(words_per_chunk) {}

    std::string_view name() const override { return "demo"; }
    std::string_view default_model() const override { return "eventcast-demo-1"; }
    std::shared_ptr<completion> start(completion_request request,
                                      std::shared_ptr<completion_sink> sink) override;

    /// The full answer the demo model gives to `request` (what the concatenated deltas equal).
    static std::string answer_for(const completion_request& request);
    /// The pieces the answer is streamed in.
    static std::vector<std::string> chunks_for(const completion_request& request,
                                               std::size_t words_per_chunk);

private:
    aws::transport& transport_;
    std::chrono::milliseconds pace_;
    std::size_t words_per_chunk_;
};

}  // namespace eventcast::llm

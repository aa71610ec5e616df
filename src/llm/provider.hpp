// What a model provider is to the rest of eventcast: start a completion, get its text in
// pieces, a stop reason and usage, or a typed error; cancel it at any time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::llm {

struct chat_turn {
    std::string role;  // "user" or "assistant"
    std::string text;
};

struct completion_request {
    std::string model;                // empty: the provider's default
    std::string system;               // empty: none
    std::vector<chat_turn> messages;  // ends with the user's prompt
    std::optional<std::int64_t> max_tokens;
    std::optional<double> temperature;
};

struct token_usage {
    std::int64_t input_tokens = -1;  // -1: unknown (e.g. cancelled before the provider said)
    std::int64_t output_tokens = -1;
};

struct provider_error {
    std::string type;          // e.g. ThrottlingException, ValidationException, ProviderUnavailable
    std::string message;       // for humans; never contains credentials
    unsigned http_status = 0;  // the provider's HTTP status when it answered with an error
    bool before_stream = false;  // true: the provider never accepted the request
};

/// Receives one completion's progress. Called on the llm thread, in order: on_accepted once,
/// on_text any number of times, then exactly one of on_finished / on_failed (on_failed may come
/// without on_accepted). Must not block.
class completion_sink {
public:
    virtual ~completion_sink() = default;
    virtual void on_accepted() = 0;
    virtual void on_text(std::string_view text) = 0;
    /// stop_reason: the provider's (end_turn, max_tokens, stop, length, ...) or "cancelled".
    virtual void on_finished(std::string stop_reason, token_usage usage) = 0;
    virtual void on_failed(provider_error error) = 0;
};

/// A running completion. Thread-safe.
class completion {
public:
    virtual ~completion() = default;
    /// Aborts the transfer; the sink then gets on_finished("cancelled", ...) unless the
    /// completion had already ended.
    virtual void cancel() = 0;
};

/// Thread-safe.
class provider {
public:
    virtual ~provider() = default;
    virtual std::string_view name() const = 0;
    virtual std::string_view default_model() const = 0;
    /// Starts a completion; progress goes to `sink` on the llm thread.
    virtual std::shared_ptr<completion> start(completion_request request,
                                              std::shared_ptr<completion_sink> sink) = 0;
};

}  // namespace eventcast::llm

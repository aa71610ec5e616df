// Bedrock Runtime responses as typed values: ConverseStream event-stream messages become
// stream events (spec/model-providers.md §2.5-2.6), a non-2xx response becomes a typed error
// (§2.7), and an InvokeModelWithResponseStream `chunk` yields its inner JSON (§2.8). No I/O;
// not thread-safe per parser object (one per response).
#pragma once

#include "llm/event_stream.hpp"
#include "llm/wire_error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace eventcast::llm::bedrock {

/// An error Bedrock reported: an in-stream `exception` or `error` message, or a non-2xx response.
struct bedrock_error {
    enum class origin {
        exception,  // `:message-type` exception; type = `:exception-type` (throttlingException,
                    // ...)
        error,      // `:message-type` error; type = `:error-code`, message = `:error-message`
        http,       // non-2xx before streaming; type from x-amzn-ErrorType / code / __type
    };
    origin from = origin::exception;
    std::string type;     // as sent (case varies: "throttlingException", "ThrottlingException")
    std::string message;  // may be empty
    unsigned http_status = 0;  // origin::http only
    std::optional<std::int64_t>
        original_status_code;      // modelStreamErrorException, ModelErrorException
    std::string original_message;  // modelStreamErrorException

    /// Worth retrying with backoff (throttling, not ready, timeouts, 500/503), compared
    /// case-insensitively on `type`; for an HTTP error with an unknown type, 429 and 5xx.
    bool retryable() const noexcept;
};

struct message_start {
    std::string role;  // "assistant"
};
struct text_delta {
    std::uint32_t content_block_index = 0;
    std::string text;
};
struct content_block_stop {
    std::uint32_t content_block_index = 0;
};
struct message_stop {
    std::string stop_reason;  // end_turn, max_tokens, ...; unknown values are passed through
};
struct metadata {
    std::optional<std::uint64_t> input_tokens;
    std::optional<std::uint64_t> output_tokens;
    std::optional<std::uint64_t> total_tokens;
    std::optional<std::uint64_t> latency_ms;
};

/// What a ConverseStream message means to a text-only client. A bedrock_error ends the stream.
using stream_event = std::variant<message_start, text_delta, content_block_stop, message_stop,
                                  metadata, bedrock_error>;

/// Maps one decoded ConverseStream message.
/// - `event` messages: messageStart, contentBlockDelta with `delta.text`, contentBlockStop,
///   messageStop and metadata map to their event; unknown `:event-type`s and non-text deltas
///   (toolUse, reasoningContent, citation, ...), contentBlockStart, are skipped (nullopt).
///   Unknown JSON members (e.g. the `p` padding) are ignored.
/// - `exception` and `error` messages map to bedrock_error.
/// - Errors: a missing or unknown `:message-type`, an event without `:event-type`, or a payload
///   that is not the JSON object the event type needs (e.g. `delta.text` not a string).
result<std::optional<stream_event>> map_converse_stream_message(const event_stream_message& msg);

/// One Anthropic streaming event JSON (message_start, content_block_delta, message_stop, ...)
/// carried by an InvokeModelWithResponseStream `chunk` event, base64-decoded from `bytes`.
struct invoke_chunk {
    std::string json;
};
using invoke_event = std::variant<invoke_chunk, bedrock_error>;

/// Maps one decoded InvokeModelWithResponseStream message: a `chunk` event yields its decoded
/// `bytes`; exception/error messages map as in map_converse_stream_message; other event types
/// are skipped (nullopt). Errors: as above, plus a chunk whose `bytes` is missing or not base64.
result<std::optional<invoke_event>> map_invoke_stream_message(const event_stream_message& msg);

/// The bedrock_error carried by an `exception` or `error` message, or nullopt for any other
/// message (use it on a frame the mappers rejected, to log what Bedrock meant).
std::optional<bedrock_error> exception_from_message(const event_stream_message& msg);

/// Builds the error for a non-2xx response before streaming (§2.7). `error_type_header` is the
/// x-amzn-ErrorType value (may be empty; anything from the first ':' is dropped); the name then
/// falls back to the body's `code`, then `__type` (after '#'). The message is the body's
/// `message` or `Message`; a body that is not JSON is used as the message (first 512 bytes).
bedrock_error parse_http_error(unsigned http_status, std::string_view error_type_header,
                               std::string_view body);

/// Decoder + mapper for one ConverseStream response body, with truncation detection.
class converse_stream_parser {
public:
    converse_stream_parser() = default;
    explicit converse_stream_parser(event_stream_limits limits) : decoder_(limits) {}

    /// Consumes body bytes (split anywhere) and returns the events they complete. On a decode or
    /// mapping error, returns the events before it and sets error() (sticky).
    std::vector<stream_event> feed(std::string_view bytes);

    /// Call at the end of the body. Fails if a message was cut off, or if the stream ended
    /// without messageStop and without a bedrock_error event (truncated), or if error() is set.
    result<void> finish() const;

    const std::optional<wire_error>& error() const noexcept { return error_; }
    bool saw_message_stop() const noexcept { return saw_message_stop_; }
    bool saw_metadata() const noexcept { return saw_metadata_; }
    bool saw_error() const noexcept { return saw_error_; }

private:
    event_stream_decoder decoder_;
    std::optional<wire_error> error_;
    bool saw_message_stop_ = false;
    bool saw_metadata_ = false;
    bool saw_error_ = false;
};

}  // namespace eventcast::llm::bedrock

// OpenAI-compatible Chat Completions streaming (OpenAI, Ollama /v1, vLLM, llama.cpp server,
// LM Studio): the JSON of one `chat.completion.chunk` SSE data event as a typed value, error
// bodies and in-stream errors as a typed error, and a stream parser (SSE + chunks) that knows
// when a stream ended properly (spec/model-providers.md §6.2-6.5). No I/O; one parser per
// response, used by one thread.
#pragma once

#include "llm/sse.hpp"
#include "llm/wire_error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace eventcast::llm::openai {

struct usage {
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::uint64_t total_tokens = 0;  // prompt + completion when the server leaves it out
};

/// One chat.completion.chunk, reduced to what a text client needs. Only the choice with
/// `index` 0 is read (n > 1 is not used); a chunk with `"choices": []` (the include_usage
/// chunk) has no choice fields set.
struct chunk {
    std::string content;    // delta.content; empty when "" or null or absent (role-only chunk)
    std::string reasoning;  // non-standard delta.reasoning_content (vLLM, llama.cpp, DeepSeek)
                            // or delta.reasoning (Ollama); empty when absent
    std::optional<std::string> role;           // delta.role, usually on the first chunk only
    std::optional<std::string> finish_reason;  // stop, length, tool_calls, content_filter, ...
    std::optional<openai::usage> usage;        // when `usage` is an object (not null)
    std::string model;                         // as reported; may be empty
};

/// An error the server reported: a non-2xx body, or an error object inside the stream.
struct api_error {
    unsigned http_status = 0;  // 0 for an in-stream error
    std::string type;          // error.type ("invalid_request_error", ...); may be empty
    std::string code;          // error.code as text: "model_not_found", "400"; empty for null
    std::string message;       // error.message (or the raw body when it is not JSON)
};

/// `data: [DONE]`: the server finished the stream.
struct done {};

using stream_item = std::variant<chunk, api_error, done>;

/// Parses the data of one SSE event: "[DONE]", a chunk, or an error object — `{"error":{...}}`
/// (OpenAI, vLLM, new llama.cpp), `{"error":"text"}` (Ollama native), or the flat
/// `{"object":"error","message":...}` of older vLLM. Unknown members (obfuscation,
/// system_fingerprint, timings, logprobs, tool_calls, ...) are ignored. Fails when the data is
/// not a JSON object or a known member has the wrong type (choices not an array, content a
/// number, ...).
result<stream_item> parse_stream_data(std::string_view data);

/// Builds the error for a non-2xx response from its body, accepting every shape above.
api_error parse_error_body(unsigned http_status, std::string_view body);

/// SSE parsing plus chunk parsing for one streaming response body.
///
/// An event named `error`, and the non-standard `error:` field of old llama.cpp, become
/// api_error items. Events after `[DONE]` are ignored.
class chat_stream_parser {
public:
    chat_stream_parser() = default;
    explicit chat_stream_parser(sse_limits limits) : sse_(limits) {}

    /// Consumes body bytes (split anywhere); returns the items they complete. On an SSE or JSON
    /// error, returns the items before it and sets error() (sticky).
    std::vector<stream_item> feed(std::string_view bytes);

    /// End of body: returns the items of a final event left without its blank line (e.g. a bare
    /// `data: [DONE]`). Sets error() if the stream ended without `[DONE]`, without a
    /// finish_reason and without an api_error, which is how a failed Ollama stream looks (§6.4).
    std::vector<stream_item> finish();

    const std::optional<wire_error>& error() const noexcept { return error_; }
    bool saw_done() const noexcept { return saw_done_; }
    bool saw_finish_reason() const noexcept { return saw_finish_reason_; }
    bool saw_error() const noexcept { return saw_error_; }

private:
    void take(const std::vector<sse_event>& events, std::vector<stream_item>& out);

    sse_parser sse_;
    std::optional<wire_error> error_;
    bool saw_done_ = false;
    bool saw_finish_reason_ = false;
    bool saw_error_ = false;
};

}  // namespace eventcast::llm::openai

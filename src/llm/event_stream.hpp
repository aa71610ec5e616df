// Incremental decoder of AWS event-stream framing (application/vnd.amazon.eventstream), the
// body of Bedrock's ConverseStream and InvokeModelWithResponseStream responses
// (spec/model-providers.md §3). Bytes go in as they arrive, split anywhere; whole, CRC-checked
// messages come out. Not thread-safe: one decoder per response, used by one thread.
#pragma once

#include "llm/wire_error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::llm {

/// The header value type byte (§3.3).
enum class header_type : std::uint8_t {
    bool_true = 0,
    bool_false = 1,
    byte = 2,
    int16 = 3,
    int32 = 4,
    int64 = 5,
    byte_array = 6,
    string = 7,
    timestamp = 8,  // milliseconds since the Unix epoch
    uuid = 9,
};

/// One decoded header. Which value member is meaningful depends on `type`:
/// bool_true/bool_false: none (see boolean()); byte, int16, int32, int64, timestamp: `integer`
/// (sign-extended); byte_array, string: `bytes` (raw, not validated as UTF-8); uuid: `bytes`
/// (the 16 raw bytes).
struct event_stream_header {
    std::string name;
    header_type type = header_type::string;
    std::int64_t integer = 0;
    std::string bytes;

    bool boolean() const noexcept { return type == header_type::bool_true; }
};

/// One complete message. The lengths and CRCs are kept for diagnostics and tests.
struct event_stream_message {
    std::vector<event_stream_header> headers;  // in wire order
    std::string payload;
    std::uint32_t total_length = 0;
    std::uint32_t headers_length = 0;
    std::uint32_t prelude_crc = 0;
    std::uint32_t message_crc = 0;

    /// The first header named `name` (exact, case-sensitive match), or null.
    const event_stream_header* find_header(std::string_view name) const noexcept;
    /// The value of the first header named `name` if it is a string header; nullopt otherwise.
    std::optional<std::string_view> string_header(std::string_view name) const noexcept;
};

struct event_stream_limits {
    /// Largest total_length accepted. aws-sdk-go caps at 16 MiB; a Bedrock chunk is at most
    /// ~1.33 MB of base64, so this is ample and bounds the buffer of a partial message.
    std::size_t max_message_bytes = 16 * 1024 * 1024;
    /// Largest headers_length accepted (aws-sdk-go and aws-c-event-stream: 128 KiB).
    std::size_t max_headers_bytes = 128 * 1024;
};

/// Decodes a byte stream of event-stream messages.
///
/// Errors are sticky: a prelude or message CRC mismatch ("Prelude checksum mismatch: ...",
/// "Message checksum mismatch: ..."), a total_length below 16 or above the limit, a
/// headers_length above its limit or past the message, or a malformed header (name length 0,
/// unknown value type, a value running past the headers section) stops the decoder, because the
/// stream cannot be resynchronised. Memory held between calls is at most one partial message
/// (≤ max_message_bytes); a complete message is never copied into the buffer.
class event_stream_decoder {
public:
    /// The smallest possible message: prelude (12) + message CRC (4).
    static constexpr std::size_t min_message_bytes = 16;

    event_stream_decoder() = default;
    explicit event_stream_decoder(event_stream_limits limits) : limits_(limits) {}

    /// Consumes `bytes` (any length, including 0) and returns the messages completed by them, in
    /// order. If an error occurs, the messages completed before it are returned and error() is
    /// set; every later call returns nothing.
    std::vector<event_stream_message> feed(std::string_view bytes);

    /// The sticky error, if any.
    const std::optional<wire_error>& error() const noexcept { return error_; }
    bool failed() const noexcept { return error_.has_value(); }

    /// True when no partial message is buffered: the stream may end here cleanly.
    bool at_message_boundary() const noexcept { return buffer_.empty(); }
    /// Bytes of a partial message held.
    std::size_t buffered_bytes() const noexcept { return buffer_.size(); }
    /// Bytes consumed so far (complete messages plus the partial one).
    std::uint64_t stream_offset() const noexcept { return consumed_; }

private:
    // Decodes the message that starts `frame` (exactly total_length bytes, CRCs unchecked).
    std::optional<event_stream_message> decode_message(std::string_view frame);
    // Checks the prelude at the start of `bytes` (≥ 12 bytes); returns total_length or sets
    // error_.
    std::optional<std::uint32_t> check_prelude(std::string_view bytes);
    void fail(std::string message);

    event_stream_limits limits_;
    std::string buffer_;          // a partial message: its first bytes, never more than one
    std::uint32_t expected_ = 0;  // total_length of the buffered message once its prelude passed
    std::uint64_t consumed_ = 0;  // stream offset of the end of what was fed
    std::uint64_t message_start_ = 0;  // stream offset of the message being decoded
    std::optional<wire_error> error_;
};

}  // namespace eventcast::llm

// Bedrock stream mapping. Structural problems in a payload (not JSON, text that is not a string)
// are protocol errors; optional numbers in `metadata` of an unexpected type are dropped instead,
// so an odd usage report never costs the user an answer that already arrived.
#include "llm/bedrock_stream.hpp"

#include "core/base64.hpp"
#include "core/json_kind.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <limits>

namespace eventcast::llm::bedrock {
namespace {

namespace json = boost::json;

constexpr std::size_t max_quoted_body = 512;  // of a non-JSON error body, into a message

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) {
                   return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
               };
               return lower(x) == lower(y);
           });
}

wire_error payload_error(std::string_view event_type, std::string what) {
    return wire_error{"bedrock " + std::string(event_type) + " payload: " + std::move(what)};
}

result<json::object> parse_object(std::string_view event_type, std::string_view payload) {
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec)
        return payload_error(event_type, "not JSON (" + ec.message() + ")");
    if (!v.is_object())
        return payload_error(event_type,
                             "is " + std::string(core::json_kind_name(v)) + "; expected an object");
    return std::move(v.as_object());
}

std::optional<std::uint64_t> as_count(const json::value* v) noexcept {
    if (v == nullptr)
        return std::nullopt;
    if (v->is_uint64())
        return v->get_uint64();
    if (v->is_int64() && v->get_int64() >= 0)
        return static_cast<std::uint64_t>(v->get_int64());
    return std::nullopt;
}

// contentBlockIndex: absent means 0 (text answers have a single block).
result<std::uint32_t> block_index(std::string_view event_type, const json::object& o) {
    const json::value* v = o.if_contains("contentBlockIndex");
    if (v == nullptr)
        return 0u;
    const std::optional<std::uint64_t> n = as_count(v);
    if (!n || *n > std::numeric_limits<std::uint32_t>::max())
        return payload_error(event_type, "contentBlockIndex is " +
                                             std::string(core::json_kind_name(*v)) +
                                             "; expected an integer 0..4294967295");
    return static_cast<std::uint32_t>(*n);
}

result<std::string> required_string(std::string_view event_type, const json::object& o,
                                    std::string_view key) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr)
        return payload_error(event_type, std::string(key) + " is missing");
    if (!v->is_string())
        return payload_error(event_type, std::string(key) + " is " +
                                             std::string(core::json_kind_name(*v)) +
                                             "; expected a string");
    // wire_error is constructible from a string too, so say which side this is.
    return result<std::string>(boost::system::in_place_value, v->get_string());
}

std::string string_member(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

result<std::optional<stream_event>> map_event(std::string_view event_type,
                                              std::string_view payload) {
    if (event_type == "messageStart") {
        auto o = parse_object(event_type, payload);
        if (!o)
            return o.error();
        auto role = required_string(event_type, *o, "role");
        if (!role)
            return role.error();
        return stream_event{message_start{std::move(*role)}};
    }
    if (event_type == "contentBlockDelta") {
        auto o = parse_object(event_type, payload);
        if (!o)
            return o.error();
        auto index = block_index(event_type, *o);
        if (!index)
            return index.error();
        const json::value* delta = o->if_contains("delta");
        if (delta == nullptr || !delta->is_object())
            return payload_error(event_type,
                                 "delta is " +
                                     std::string(delta ? core::json_kind_name(*delta) : "missing") +
                                     "; expected an object");
        const json::value* text = delta->get_object().if_contains("text");
        if (text == nullptr)
            return std::optional<stream_event>{};  // toolUse, reasoningContent, citation, ...
        if (!text->is_string())
            return payload_error(event_type, "delta.text is " +
                                                 std::string(core::json_kind_name(*text)) +
                                                 "; expected a string");
        return stream_event{text_delta{*index, std::string(text->get_string())}};
    }
    if (event_type == "contentBlockStop") {
        auto o = parse_object(event_type, payload);
        if (!o)
            return o.error();
        auto index = block_index(event_type, *o);
        if (!index)
            return index.error();
        return stream_event{content_block_stop{*index}};
    }
    if (event_type == "messageStop") {
        auto o = parse_object(event_type, payload);
        if (!o)
            return o.error();
        auto reason = required_string(event_type, *o, "stopReason");
        if (!reason)
            return reason.error();
        return stream_event{message_stop{std::move(*reason)}};
    }
    if (event_type == "metadata") {
        auto o = parse_object(event_type, payload);
        if (!o)
            return o.error();
        metadata m;
        if (const json::value* usage = o->if_contains("usage"); usage && usage->is_object()) {
            const json::object& u = usage->get_object();
            m.input_tokens = as_count(u.if_contains("inputTokens"));
            m.output_tokens = as_count(u.if_contains("outputTokens"));
            m.total_tokens = as_count(u.if_contains("totalTokens"));
        }
        if (const json::value* metrics = o->if_contains("metrics"); metrics && metrics->is_object())
            m.latency_ms = as_count(metrics->get_object().if_contains("latencyMs"));
        return stream_event{m};
    }
    return std::optional<stream_event>{};  // contentBlockStart and types added later
}

// Shared by both stream kinds: nullopt for an `event` message (the caller maps it), the error
// for exception/error messages, a wire_error for a missing or unknown `:message-type`.
result<std::optional<bedrock_error>> classify(const event_stream_message& msg) {
    const std::optional<std::string_view> type = msg.string_header(":message-type");
    if (!type)
        return wire_error{"bedrock event-stream message has no string :message-type header"};
    if (*type == "event")
        return std::optional<bedrock_error>{};
    if (std::optional<bedrock_error> e = exception_from_message(msg))
        return e;
    return wire_error{"bedrock event-stream message has :message-type '" +
                      std::string(type->substr(0, 64)) + "'; expected event, exception or error"};
}

}  // namespace

bool bedrock_error::retryable() const noexcept {
    static constexpr std::array<std::string_view, 7> transient = {
        "ThrottlingException",     "ModelNotReadyException",      "ModelTimeoutException",
        "InternalServerException", "ServiceUnavailableException", "InternalFailure",
        "ServiceUnavailable",
    };
    for (std::string_view t : transient) {
        if (iequals(type, t))
            return true;
    }
    // The model's own failure: worth a retry only when the model said so (429 overloaded, 5xx).
    if (iequals(type, "ModelStreamErrorException") || iequals(type, "ModelErrorException"))
        return original_status_code &&
               (*original_status_code == 429 || *original_status_code >= 500);
    if (from == origin::http && type.empty())
        return http_status == 429 || http_status >= 500;
    return false;
}

std::optional<bedrock_error> exception_from_message(const event_stream_message& msg) {
    const std::optional<std::string_view> type = msg.string_header(":message-type");
    if (type == "error") {
        bedrock_error e;
        e.from = bedrock_error::origin::error;
        e.type = std::string(msg.string_header(":error-code").value_or(""));
        e.message = std::string(msg.string_header(":error-message").value_or(""));
        if (e.message.empty())
            e.message = msg.payload.substr(0, max_quoted_body);
        return e;
    }
    if (type != "exception")
        return std::nullopt;
    bedrock_error e;
    e.from = bedrock_error::origin::exception;
    e.type = std::string(msg.string_header(":exception-type").value_or(""));
    boost::system::error_code ec;
    const json::value v = json::parse(msg.payload, ec);
    if (ec || !v.is_object()) {
        e.message = msg.payload.substr(0, max_quoted_body);
        return e;
    }
    const json::object& o = v.get_object();
    e.message = string_member(o, "message");
    if (e.message.empty())
        e.message = string_member(o, "Message");
    if (const json::value* code = o.if_contains("originalStatusCode"); code && code->is_int64())
        e.original_status_code = code->get_int64();
    else if (code && code->is_uint64())
        e.original_status_code = static_cast<std::int64_t>(
            std::min<std::uint64_t>(code->get_uint64(), std::numeric_limits<std::int64_t>::max()));
    e.original_message = string_member(o, "originalMessage");
    return e;
}

result<std::optional<stream_event>> map_converse_stream_message(const event_stream_message& msg) {
    auto error = classify(msg);
    if (!error)
        return error.error();
    if (*error)
        return stream_event{std::move(**error)};
    const std::optional<std::string_view> event_type = msg.string_header(":event-type");
    if (!event_type)
        return wire_error{"bedrock event message has no string :event-type header"};
    return map_event(*event_type, msg.payload);
}

result<std::optional<invoke_event>> map_invoke_stream_message(const event_stream_message& msg) {
    auto error = classify(msg);
    if (!error)
        return error.error();
    if (*error)
        return invoke_event{std::move(**error)};
    const std::optional<std::string_view> event_type = msg.string_header(":event-type");
    if (!event_type)
        return wire_error{"bedrock event message has no string :event-type header"};
    if (*event_type != "chunk")
        return std::optional<invoke_event>{};
    auto o = parse_object("chunk", msg.payload);
    if (!o)
        return o.error();
    auto bytes = required_string("chunk", *o, "bytes");
    if (!bytes)
        return bytes.error();
    std::optional<std::string> decoded = core::base64_decode_any(*bytes);
    if (!decoded)
        return payload_error("chunk", "bytes is not base64");
    return invoke_event{invoke_chunk{std::move(*decoded)}};
}

bedrock_error parse_http_error(unsigned http_status, std::string_view error_type_header,
                               std::string_view body) {
    bedrock_error e;
    e.from = bedrock_error::origin::http;
    e.http_status = http_status;
    e.type = std::string(error_type_header.substr(0, error_type_header.find(':')));
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) {
        e.message = std::string(body.substr(0, max_quoted_body));
        return e;
    }
    const json::object& o = v.get_object();
    if (e.type.empty())
        e.type = string_member(o, "code");
    if (e.type.empty()) {
        const std::string t = string_member(o, "__type");
        const std::size_t hash = t.find('#');
        e.type = hash == std::string::npos ? t : t.substr(hash + 1);
    }
    e.message = string_member(o, "message");
    if (e.message.empty())
        e.message = string_member(o, "Message");
    if (const json::value* code = o.if_contains("originalStatusCode"); code && code->is_int64())
        e.original_status_code = code->get_int64();
    return e;
}

std::vector<stream_event> converse_stream_parser::feed(std::string_view bytes) {
    std::vector<stream_event> out;
    if (error_)
        return out;
    std::vector<event_stream_message> messages = decoder_.feed(bytes);
    for (const event_stream_message& msg : messages) {
        auto event = map_converse_stream_message(msg);
        if (!event) {
            error_ = event.error();
            return out;
        }
        if (!*event)
            continue;
        saw_message_stop_ = saw_message_stop_ || std::holds_alternative<message_stop>(**event);
        saw_metadata_ = saw_metadata_ || std::holds_alternative<metadata>(**event);
        saw_error_ = saw_error_ || std::holds_alternative<bedrock_error>(**event);
        out.push_back(std::move(**event));
    }
    if (decoder_.error())
        error_ = decoder_.error();
    return out;
}

result<void> converse_stream_parser::finish() const {
    if (error_)
        return *error_;
    if (!decoder_.at_message_boundary())
        return wire_error{"bedrock stream ended inside a message (" +
                          std::to_string(decoder_.buffered_bytes()) + " bytes of it received)"};
    if (!saw_message_stop_ && !saw_error_)
        return wire_error{"bedrock stream ended before messageStop (truncated)"};
    return {};
}

}  // namespace eventcast::llm::bedrock

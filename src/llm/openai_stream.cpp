// OpenAI-compatible chunk parsing. Servers disagree on details (null vs absent content, integer
// vs string error codes, where errors go), so types are checked per member and every member we
// do not use is ignored; only a chunk we cannot read at all is a protocol error.
#include "llm/openai_stream.hpp"

#include "core/json_kind.hpp"
#include "core/strings.hpp"

#include <boost/json.hpp>

#include <utility>

namespace eventcast::llm::openai {
namespace {

namespace json = boost::json;

constexpr std::size_t max_quoted_body = 512;  // of a non-JSON error body, into a message

wire_error chunk_error(std::string what) {
    return wire_error{"openai stream chunk: " + std::move(what)};
}

using core::trim;

std::string string_member(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
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

// error.code is a string (OpenAI), an integer (vLLM, llama.cpp) or null (Ollama).
std::string code_text(const json::value* v) {
    if (v == nullptr)
        return {};
    if (v->is_string())
        return std::string(v->get_string());
    if (v->is_int64())
        return std::to_string(v->get_int64());
    if (v->is_uint64())
        return std::to_string(v->get_uint64());
    return {};
}

api_error error_from_object(const json::object& o, unsigned http_status) {
    api_error out;
    out.http_status = http_status;
    out.message = string_member(o, "message");
    out.type = string_member(o, "type");
    out.code = code_text(o.if_contains("code"));
    return out;
}

// From the value of an `error` member: an object {message, type, code} or a plain string.
api_error error_from(const json::value& e, unsigned http_status) {
    if (e.is_object())
        return error_from_object(e.get_object(), http_status);
    api_error out;
    out.http_status = http_status;
    if (e.is_string())
        out.message = std::string(e.get_string());
    return out;
}

// An error in any of the shapes servers use, or nullopt when `o` is not an error.
std::optional<api_error> error_in(const json::object& o, unsigned http_status) {
    if (const json::value* e = o.if_contains("error"); e && !e->is_null())
        return error_from(*e, http_status);
    if (string_member(o, "object") == "error")  // older vLLM: flat {"object":"error",...}
        return error_from_object(o, http_status);
    return std::nullopt;
}

result<chunk> parse_chunk(const json::object& o) {
    chunk out;
    out.model = string_member(o, "model");
    if (const json::value* u = o.if_contains("usage"); u && u->is_object()) {
        const json::object& uo = u->get_object();
        openai::usage n;
        n.prompt_tokens = as_count(uo.if_contains("prompt_tokens")).value_or(0);
        n.completion_tokens = as_count(uo.if_contains("completion_tokens")).value_or(0);
        n.total_tokens = as_count(uo.if_contains("total_tokens"))
                             .value_or(n.prompt_tokens + n.completion_tokens);
        out.usage = n;
    }

    const json::value* choices = o.if_contains("choices");
    if (choices == nullptr || choices->is_null())
        return out;
    if (!choices->is_array())
        return chunk_error("choices is " + std::string(core::json_kind_name(*choices)) +
                           "; expected an array");
    const json::object* choice = nullptr;
    const json::array& list = choices->get_array();
    for (std::size_t i = 0; i < list.size() && choice == nullptr; ++i) {
        if (!list[i].is_object())
            return chunk_error("choices[" + std::to_string(i) + "] is " +
                               std::string(core::json_kind_name(list[i])) + "; expected an object");
        const json::object& c = list[i].get_object();
        const json::value* index = c.if_contains("index");
        const bool first = index == nullptr ? i == 0 : as_count(index) == std::uint64_t{0};
        if (first)
            choice = &c;
    }
    if (choice == nullptr)
        return out;

    if (const json::value* reason = choice->if_contains("finish_reason");
        reason && reason->is_string())
        out.finish_reason = std::string(reason->get_string());
    const json::value* delta = choice->if_contains("delta");
    if (delta == nullptr || delta->is_null())
        return out;
    if (!delta->is_object())
        return chunk_error("choices[0].delta is " + std::string(core::json_kind_name(*delta)) +
                           "; expected an object");
    const json::object& d = delta->get_object();
    if (const json::value* content = d.if_contains("content"); content && !content->is_null()) {
        if (!content->is_string())
            return chunk_error("choices[0].delta.content is " +
                               std::string(core::json_kind_name(*content)) +
                               "; expected a string or null");
        out.content = std::string(content->get_string());
    }
    if (const json::value* role = d.if_contains("role"); role && role->is_string())
        out.role = std::string(role->get_string());
    out.reasoning = string_member(d, "reasoning_content");
    if (out.reasoning.empty())
        out.reasoning = string_member(d, "reasoning");
    return out;
}

}  // namespace

result<stream_item> parse_stream_data(std::string_view data) {
    if (trim(data) == "[DONE]")
        return stream_item{done{}};
    boost::system::error_code ec;
    const json::value v = json::parse(data, ec);
    if (ec)
        return chunk_error("not JSON (" + ec.message() + ")");
    if (!v.is_object())
        return chunk_error("is " + std::string(core::json_kind_name(v)) + "; expected an object");
    const json::object& o = v.get_object();
    if (std::optional<api_error> e = error_in(o, 0))
        return stream_item{std::move(*e)};
    auto c = parse_chunk(o);
    if (!c)
        return c.error();
    return stream_item{std::move(*c)};
}

api_error parse_error_body(unsigned http_status, std::string_view body) {
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    if (!ec && v.is_object()) {
        const json::object& o = v.get_object();
        if (std::optional<api_error> e = error_in(o, http_status))
            return std::move(*e);
        api_error out = error_from_object(o, http_status);  // a bare {"message": ...}
        if (!out.message.empty())
            return out;
    }
    api_error out;
    out.http_status = http_status;
    out.message = std::string(trim(body.substr(0, max_quoted_body)));
    return out;
}

void chat_stream_parser::take(const std::vector<sse_event>& events, std::vector<stream_item>& out) {
    for (const sse_event& event : events) {
        if (saw_done_ || error_)
            return;
        if (!event.error.empty()) {  // old llama.cpp: `error: {...}` instead of `data:`
            out.push_back(parse_error_body(0, event.error));
            saw_error_ = true;
        }
        if (trim(event.data).empty())
            continue;  // an empty data event carries nothing (some proxies send them)
        if (event.event == "error") {
            out.push_back(parse_error_body(0, event.data));
            saw_error_ = true;
            continue;
        }
        auto item = parse_stream_data(event.data);
        if (!item) {
            error_ = item.error();
            return;
        }
        if (std::holds_alternative<done>(*item))
            saw_done_ = true;
        else if (const chunk* c = std::get_if<chunk>(&*item); c && c->finish_reason)
            saw_finish_reason_ = true;
        else if (std::holds_alternative<api_error>(*item))
            saw_error_ = true;
        out.push_back(std::move(*item));
    }
}

std::vector<stream_item> chat_stream_parser::feed(std::string_view bytes) {
    std::vector<stream_item> out;
    if (error_)
        return out;
    take(sse_.feed(bytes), out);
    if (!error_ && sse_.error())
        error_ = sse_.error();
    return out;
}

std::vector<stream_item> chat_stream_parser::finish() {
    std::vector<stream_item> out;
    if (error_)
        return out;
    take(sse_.finish(), out);
    if (!error_ && sse_.error())
        error_ = sse_.error();
    if (!error_ && !saw_done_ && !saw_finish_reason_ && !saw_error_)
        error_ = wire_error{
            "openai stream ended without [DONE] or a finish_reason (truncated; a failed Ollama "
            "stream ends this way)"};
    return out;
}

}  // namespace eventcast::llm::openai

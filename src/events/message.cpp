// Message parsing and building. Parsing uses Boost.JSON into a monotonic arena (one frame's
// allocations are freed together); event texts are validated with an allocation-free SAX pass.
#include "events/message.hpp"

#include "core/json_kind.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

namespace eventcast::events {

namespace json = boost::json;

// ---- credentials ------------------------------------------------------------------------------

void credentials::add(std::string_view name, std::string_view value) {
    std::string lower(name);
    for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    entries_.emplace_back(std::move(lower), std::string(value));
}

const std::string* credentials::find(std::string_view lower_name) const noexcept {
    for (const auto& [name, value] : entries_)
        if (name == lower_name)
            return &value;
    return nullptr;
}

// ---- validation helpers -----------------------------------------------------------------------

bool valid_id(std::string_view id, std::size_t max_chars) noexcept {
    if (id.empty() || id.size() > max_chars)
        return false;
    for (char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

namespace {

// SAX handler that accepts everything: basic_parser alone checks the grammar and UTF-8.
struct null_handler {
    static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) { return true; }
    bool on_object_end(std::size_t, json::error_code&) { return true; }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t, json::error_code&) { return true; }
    bool on_key_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_key(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
    bool on_double(double, json::string_view, json::error_code&) { return true; }
    bool on_bool(bool, json::error_code&) { return true; }
    bool on_null(json::error_code&) { return true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Whether "\u" + text[at..at+1] starts a surrogate's escape: D8..DF, either case.
bool surrogate_start(std::string_view text, std::size_t at) {
    if (at + 1 >= text.size() || (text[at] != 'd' && text[at] != 'D'))
        return false;
    const char c = text[at + 1];
    return c == '8' || c == '9' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A copy of `text` where every \uXXXX escape of a UTF-16 surrogate (D800-DFFF) becomes
// \u0041, same length, so a lone surrogate no longer fails Boost.JSON's check (1.81 has no
// allow_invalid_utf16). Only the copy is changed; the event goes out as the client sent it.
std::string without_surrogate_escapes(std::string_view text) {
    std::string out(text);
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    for (std::size_t i = 0; i + 1 < out.size(); ++i) {
        if (out[i] != '\\')
            continue;
        if (out[i + 1] == 'u' && i + 5 < out.size() && hex(out[i + 2]) && hex(out[i + 3]) &&
            hex(out[i + 4]) && hex(out[i + 5]) && surrogate_start(out, i + 2))
            out.replace(i + 2, 4, "0041");
        ++i;  // the escaped character is never the start of another escape
    }
    return out;
}

bool contains_surrogate_escape(std::string_view text) {
    for (auto at = text.find("\\u"); at != std::string_view::npos; at = text.find("\\u", at + 1))
        if (surrogate_start(text, at + 2))
            return true;
    return false;
}

json::error_code json_text_error(std::string_view text, std::size_t max_depth, std::size_t& n) {
    json::parse_options opt;
    opt.max_depth = max_depth;
    json::basic_parser<null_handler> parser(opt);
    json::error_code ec;
    n = parser.write_some(false, text.data(), text.size(), ec);
    if (!ec && n != text.size())
        ec = json::error::extra_data;
    return ec;
}

std::string id_rule() {
    return "1 to 128 characters of A-Z a-z 0-9 _ + -";
}

}  // namespace

bool is_json_text(std::string_view text, std::string* why, std::size_t max_depth) {
    std::size_t n = 0;
    auto ec = json_text_error(text, max_depth, n);
    // A lone surrogate escape ("\ud800", what JSON.stringify gives for half a pair) is valid
    // JSON grammar (RFC 8259 §8.2) and JavaScript parses it, so it is accepted
    // (docs/protocol.md, "Events"). Checked again only when the first pass failed.
    if (ec && contains_surrogate_escape(text)) {
        std::size_t n2 = 0;
        if (!json_text_error(without_surrogate_escapes(text), max_depth, n2))
            return true;
    }
    if (ec && why)
        *why = ec.message() + " at offset " + std::to_string(n);
    return !ec;
}

result<std::vector<std::string>> parse_events(const json::value* value,
                                              const core::limits& limits) {
    const std::string allowed = "1 to " + std::to_string(limits.max_events_per_publish) +
                                " strings, each holding one JSON text";
    if (!value)
        return protocol_error::invalid("'events' is missing; expected an array of " + allowed);
    const auto* arr = value->if_array();
    if (!arr)
        return protocol_error::invalid(std::string("'events' is ") + core::json_kind_name(*value) +
                                       "; expected an array of " + allowed);
    if (arr->empty())
        return protocol_error::invalid("'events' is empty; expected " + allowed);
    if (arr->size() > limits.max_events_per_publish)
        // AWS's own wording (spec §6.2), so clients that match on it keep working.
        return protocol_error::invalid(
            "input exceeded " + std::to_string(limits.max_events_per_publish) + " event limit");
    std::vector<std::string> events;
    events.reserve(arr->size());
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto* s = (*arr)[i].if_string();
        const auto where = "event " + std::to_string(i);
        if (!s)
            return protocol_error::invalid(where + " is " + core::json_kind_name((*arr)[i]) +
                                           "; each event must be a string holding JSON text, "
                                           "e.g. \"{\\\"a\\\":1}\"");
        if (s->size() > limits.max_event_bytes)
            return protocol_error::invalid(where + " is " + std::to_string(s->size()) +
                                           " bytes; the limit is " +
                                           std::to_string(limits.max_event_bytes));
        std::string why;
        if (!is_json_text(*s, &why, limits.max_json_depth))
            return protocol_error::invalid(where + " is not valid JSON text (" + why +
                                           "); send JSON.stringify(value)");
        events.emplace_back(s->data(), s->size());
    }
    return events;
}

result<credentials> parse_credentials_json(std::string_view text) {
    json::error_code ec;
    json::parse_options opt;
    opt.max_depth = 8;
    auto v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opt);
    if (ec)
        return protocol_error::invalid("authorization header is not JSON: " + ec.message());
    const auto* obj = v.if_object();
    if (!obj)
        return protocol_error::invalid(std::string("authorization header is ") +
                                       core::json_kind_name(v) + "; expected a JSON object");
    credentials c;
    for (const auto& kv : *obj)
        if (const auto* s = kv.value().if_string())
            c.add(std::string_view(kv.key().data(), kv.key().size()),
                  std::string_view(s->data(), s->size()));
    return c;
}

namespace {

// Reads the optional `authorization` field. A present but non-object value is an error.
result<std::optional<credentials>> read_authorization(const json::object& obj) {
    const auto* v = obj.if_contains("authorization");
    if (!v || v->is_null())
        return std::optional<credentials>{};
    const auto* o = v->if_object();
    if (!o)
        return protocol_error::invalid(std::string("'authorization' is ") +
                                       core::json_kind_name(*v) +
                                       "; expected an object like {\"x-api-key\":\"...\"}");
    credentials c;
    for (const auto& kv : *o)
        if (const auto* s = kv.value().if_string())
            c.add(std::string_view(kv.key().data(), kv.key().size()),
                  std::string_view(s->data(), s->size()));
    return std::optional<credentials>(std::move(c));
}

result<std::string> read_channel_text(const json::object& obj) {
    const auto* v = obj.if_contains("channel");
    if (!v)
        return protocol_error::invalid(
            "'channel' is missing; expected a string like "
            "\"/namespace/channel\"");
    const auto* s = v->if_string();
    if (!s)
        return protocol_error::invalid(std::string("'channel' is ") + core::json_kind_name(*v) +
                                       "; expected a string like \"/namespace/channel\"");
    return std::string(s->data(), s->size());
}

// Reads the optional `resume` extension: {"after":"<position>"}. null counts as absent.
result<std::optional<position>> read_resume(const json::object& obj) {
    const auto* v = obj.if_contains("resume");
    if (!v || v->is_null())
        return std::optional<position>{};
    static constexpr const char* shape =
        R"({"after":"<the position of the last data frame seen>"})";
    const auto* o = v->if_object();
    if (!o)
        return protocol_error::invalid(std::string("'resume' is ") + core::json_kind_name(*v) +
                                       "; expected an object like " + shape);
    const auto* after = o->if_contains("after");
    if (!after)
        return protocol_error::invalid(std::string("'resume.after' is missing; expected ") + shape);
    const auto* s = after->if_string();
    if (!s)
        return protocol_error::invalid(std::string("'resume.after' is ") +
                                       core::json_kind_name(*after) +
                                       "; expected a position string like \"5f3a0c1e-42\"");
    auto p = parse_position(std::string_view(s->data(), s->size()));
    if (!p)
        return protocol_error{p.error().kind, "'resume.after': " + p.error().message};
    return std::optional<position>(*p);
}

}  // namespace

boost::system::result<client_message, message_error> parse_client_message(
    std::string_view text, const core::limits& limits) {
    std::array<unsigned char, 4096> stack_buf;
    json::monotonic_resource arena(stack_buf.data(), stack_buf.size());
    json::parse_options opt;
    opt.max_depth = limits.max_json_depth;
    json::error_code ec;
    auto root = json::parse(json::string_view(text.data(), text.size()), ec, &arena, opt);
    if (ec)
        return message_error{protocol_error::invalid("message is not valid JSON: " + ec.message() +
                                                     "; send one JSON object per text frame"),
                             {},
                             {}};
    const auto* obj = root.if_object();
    if (!obj)
        return message_error{
            protocol_error::invalid(std::string("message is ") + core::json_kind_name(root) +
                                    "; expected a JSON object with a 'type'"),
            {},
            {}};

    // The id, when valid, lets the error reach the right promise on the client (§6.2).
    std::string id;
    const json::value* id_value = obj->if_contains("id");
    if (id_value) {
        if (const auto* s = id_value->if_string(); s && valid_id(*s, limits.max_id_chars))
            id.assign(s->data(), s->size());
    }

    const auto* type_value = obj->if_contains("type");
    if (!type_value || !type_value->is_string())
        return message_error{
            protocol_error::invalid(
                type_value
                    ? std::string("'type' is ") + core::json_kind_name(*type_value) +
                          "; expected one of connection_init, subscribe, unsubscribe, publish"
                    : "'type' is missing; expected one of connection_init, subscribe, "
                      "unsubscribe, publish"),
            {},
            id};
    const auto type =
        std::string_view(type_value->get_string().data(), type_value->get_string().size());

    if (type == "connection_init")
        return client_message{connection_init_msg{}};

    const bool known = type == "subscribe" || type == "unsubscribe" || type == "publish";
    if (!known) {
        // Capped at a character boundary: the reply is a text frame and must stay valid UTF-8.
        std::size_t cut = std::min<std::size_t>(type.size(), 40);
        while (cut > 0 && cut < type.size() &&
               (static_cast<unsigned char>(type[cut]) & 0xC0) == 0x80)
            --cut;
        std::string shown(type.substr(0, cut));
        for (auto& c : shown)
            if (static_cast<unsigned char>(c) < 0x20)
                c = '?';
        return message_error{
            {error_kind::unsupported, "message type '" + shown +
                                          "' is not supported; expected one of connection_init, "
                                          "subscribe, unsubscribe, publish"},
            {},
            id};
    }
    const std::string type_str(type);
    auto fail = [&](protocol_error e) { return message_error{std::move(e), type_str, id}; };
    if (id.empty()) {
        if (!id_value)
            return message_error{
                protocol_error::invalid(type_str + " needs an 'id': " + id_rule()), {}, {}};
        return message_error{
            protocol_error::invalid(type_str + " 'id' is " +
                                    (id_value->is_string()
                                         ? std::string("not valid")
                                         : std::string(core::json_kind_name(*id_value))) +
                                    "; expected " + id_rule()),
            {},
            {}};
    }

    if (type == "unsubscribe")
        return client_message{unsubscribe_msg{std::move(id)}};

    auto channel_text = read_channel_text(*obj);
    if (!channel_text)
        return fail(channel_text.error());
    auto auth = read_authorization(*obj);
    if (!auth)
        return fail(auth.error());

    if (type == "subscribe") {
        auto pattern = channel_pattern::parse(*channel_text);
        if (!pattern)
            return fail(pattern.error());
        auto resume = read_resume(*obj);
        if (!resume)
            return fail(resume.error());
        return client_message{subscribe_msg{std::move(id), std::move(*pattern),
                                            std::move(*channel_text), std::move(*auth), *resume}};
    }

    auto path = channel_path::parse(*channel_text);
    if (!path)
        return fail(path.error());
    auto events = parse_events(obj->if_contains("events"), limits);
    if (!events)
        return fail(events.error());
    return client_message{publish_msg{std::move(id), std::move(*path), std::move(*channel_text),
                                      std::move(*events), std::move(*auth)}};
}

result<http_publish> parse_http_publish(std::string_view body, const core::limits& limits) {
    json::monotonic_resource arena;
    json::parse_options opt;
    opt.max_depth = limits.max_json_depth;
    json::error_code ec;
    auto root = json::parse(json::string_view(body.data(), body.size()), ec, &arena, opt);
    if (ec)
        return protocol_error::invalid(
            "request body is not valid JSON: " + ec.message() +
            R"(; expected {"channel":"/namespace/name","events":["{...}"]})");
    const auto* obj = root.if_object();
    if (!obj)
        return protocol_error::invalid(
            std::string("request body is ") + core::json_kind_name(root) +
            R"(; expected {"channel":"/namespace/name","events":["{...}"]})");
    auto channel_text = read_channel_text(*obj);
    if (!channel_text)
        return channel_text.error();
    auto path = channel_path::parse(*channel_text);
    if (!path)
        return path.error();
    auto events = parse_events(obj->if_contains("events"), limits);
    if (!events)
        return events.error();
    return http_publish{std::move(*path), std::move(*channel_text), std::move(*events)};
}

// ---- building ---------------------------------------------------------------------------------

namespace {
// How many bytes each byte adds when escaped: 0 (as is), 1 (\" \\ \b \f \n \r \t) or 5 (\u00XX).
constexpr std::array<std::uint8_t, 256> escape_extra = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 0x20; ++c)
        t[static_cast<std::size_t>(c)] = 5;
    for (const unsigned char c : {'"', '\\', '\b', '\f', '\n', '\r', '\t'})
        t[c] = 1;
    return t;
}();
}  // namespace

// Hot path (every published event): one pass to size the result, then one resize and a copy,
// or a byte loop only when something needs escaping.
void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::size_t extra = 0;
    for (const char ch : s)
        extra += escape_extra[static_cast<unsigned char>(ch)];
    const std::size_t at = out.size();
    out.resize(at + s.size() + extra + 2);
    char* p = out.data() + at;
    *p++ = '"';
    if (extra == 0) {
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    } else {
        const char* src = s.data();
        const char* const end = src + s.size();
        while (src < end) {
            const char* run = src;
            while (src < end && escape_extra[static_cast<unsigned char>(*src)] == 0)
                ++src;
            std::memcpy(p, run, static_cast<std::size_t>(src - run));
            p += src - run;
            if (src == end)
                break;
            const auto c = static_cast<unsigned char>(*src++);
            *p++ = '\\';
            switch (c) {
                case '"': *p++ = '"'; break;
                case '\\': *p++ = '\\'; break;
                case '\b': *p++ = 'b'; break;
                case '\f': *p++ = 'f'; break;
                case '\n': *p++ = 'n'; break;
                case '\r': *p++ = 'r'; break;
                case '\t': *p++ = 't'; break;
                default:
                    *p++ = 'u';
                    *p++ = '0';
                    *p++ = '0';
                    *p++ = hex[c >> 4];
                    *p++ = hex[c & 0xF];
            }
        }
    }
    *p = '"';
}

namespace {

void append_errors(std::string& out, const protocol_error& e) {
    out += R"("errors":[{"errorType":")";
    out += e.ws_error_type();
    out += '"';
    if (!e.message.empty()) {
        out += R"(,"message":)";
        append_json_string(out, e.message);
    }
    out += "}]";
}

std::string simple(std::string_view type, std::string_view id) {
    std::string out = R"({"type":")";
    out += type;
    out += R"(","id":")";
    out += id;  // ids are validated to [A-Za-z0-9_+-]: nothing to escape
    out += "\"}";
    return out;
}

}  // namespace

std::string connection_ack(std::int64_t connection_timeout_ms) {
    return R"({"type":"connection_ack","connectionTimeoutMs":)" +
           std::to_string(connection_timeout_ms) + "}";
}

std::string ka() {
    return R"({"type":"ka"})";
}

std::string connection_error(const protocol_error& e) {
    std::string out = R"({"type":"connection_error",)";
    append_errors(out, e);
    out += '}';
    return out;
}

std::string subscribe_success(std::string_view id) {
    return simple("subscribe_success", id);
}
std::string unsubscribe_success(std::string_view id) {
    return simple("unsubscribe_success", id);
}

std::string error_reply(const message_error& e) {
    std::string type = "error";
    if (!e.id.empty() && !e.type.empty())
        type = e.type + "_error";
    std::string out = R"({"type":")" + type + '"';
    if (!e.id.empty()) {
        out += R"(,"id":")";
        out += e.id;
        out += '"';
    }
    out += ',';
    append_errors(out, e.error);
    out += '}';
    return out;
}

namespace {
// `"successful":[...]` and `"failed":[...]` lists; an event a handler failed is only in the second.
void append_publish_lists(std::string& out, const publish_outcome& outcome, bool failed_first) {
    auto successful = [&] {
        out += R"("successful":[)";
        bool first = true;
        std::size_t f = 0;
        for (std::size_t i = 0; i < outcome.identifiers.size(); ++i) {
            while (f < outcome.failed.size() && outcome.failed[f].index < i)
                ++f;
            if (f < outcome.failed.size() && outcome.failed[f].index == i)
                continue;
            if (!first)
                out += ',';
            first = false;
            out += R"({"identifier":")";
            out += outcome.identifiers[i];
            out += R"(","index":)";
            out += std::to_string(i);
            out += '}';
        }
        out += ']';
    };
    auto failed = [&] {
        out += R"("failed":[)";
        for (std::size_t i = 0; i < outcome.failed.size(); ++i) {
            const auto& e = outcome.failed[i];
            if (i)
                out += ',';
            out += R"({"identifier":")";
            out += e.index < outcome.identifiers.size() ? outcome.identifiers[e.index] : "";
            out += R"(","index":)";
            out += std::to_string(e.index);
            out += R"(,"message":)";
            append_json_string(out, e.message);
            out += '}';
        }
        out += ']';
    };
    if (failed_first) {
        failed();
        out += ',';
        successful();
    } else {
        successful();
        out += ',';
        failed();
    }
}
}  // namespace

std::string publish_success(std::string_view id, const publish_outcome& outcome) {
    std::string out;
    out.reserve(64 + id.size() + outcome.identifiers.size() * 72);
    out += R"({"type":"publish_success","id":")";
    out += id;
    out += R"(",)";
    append_publish_lists(out, outcome, false);
    out += '}';
    return out;
}

std::string http_publish_answer(const publish_outcome& outcome) {
    std::string out;
    out.reserve(32 + outcome.identifiers.size() * 72);
    out += '{';
    append_publish_lists(out, outcome, true);
    out += '}';
    return out;
}

std::string data_prefix(std::string_view subscription_id) {
    std::string out = R"({"type":"data","id":")";
    out += subscription_id;
    out += R"(","event":)";
    return out;
}

std::string data_body_open(std::string_view event_json_text) {
    std::string out;
    // Room for the escaping of a typical event and the position suffix: one allocation.
    out.reserve(event_json_text.size() + event_json_text.size() / 4 + 64);
    append_json_string(out, event_json_text);
    return out;
}

void data_body_close(std::string& body, const position& pos) {
    body += R"(,"position":")";
    append_position(body, pos);
    body += "\"}";
}

std::string data_body(std::string_view event_json_text, const position& pos) {
    auto out = data_body_open(event_json_text);
    data_body_close(out, pos);
    return out;
}

}  // namespace eventcast::events

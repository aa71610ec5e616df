// libFuzzer target: events::parse_client_message (every WebSocket text frame a client sends) and
// parse_http_publish (every POST /event body) on arbitrary bytes, and parse_position (a subscribe's
// "resume":{"after":...}) on the same bytes. Whatever parses is rebuilt into
// the frames the server would send, which must be valid JSON that gives back the client's text;
// whatever fails must produce a well-formed error reply.
#include "events/message.hpp"
#include "fuzz_check.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

using namespace eventcast;
using fuzz::check;
namespace json = boost::json;

json::object parse_frame(const std::string& frame) {
    json::error_code ec;
    auto v = json::parse(frame, ec);
    check(!ec, "every server frame is valid JSON (and UTF-8)");
    check(v.is_object(), "every server frame is a JSON object");
    return std::move(v.as_object());
}

bool string_is(const json::value* v, std::string_view expected) {
    return v && v->is_string() &&
           std::string_view(v->get_string().data(), v->get_string().size()) == expected;
}

// One data frame per event; `event` must give back the published text byte for byte (§5.3).
void check_data_frames(std::string_view id, const std::vector<std::string>& events) {
    const auto prefix = events::data_prefix(id);
    for (const auto& e : events) {
        const events::position pos{0x5f3a0c1e, 42};
        const auto obj = parse_frame(prefix + events::data_body(e, pos));
        check(obj.size() == 4, "data frame has type, id, event, position");
        check(string_is(obj.if_contains("position"), "5f3a0c1e-42"), "data frame position");
        check(string_is(obj.if_contains("type"), "data"), "data frame type");
        check(string_is(obj.if_contains("id"), id), "data frame id");
        check(string_is(obj.if_contains("event"), e), "data frame event round-trips");
    }
}

void check_events(const std::vector<std::string>& events, const core::limits& limits) {
    check(!events.empty() && events.size() <= limits.max_events_per_publish, "1..max events");
    for (const auto& e : events) {
        check(e.size() <= limits.max_event_bytes, "event within the size limit");
        check(events::is_json_text(e), "event is one JSON text");
    }
}

void check_message(const events::client_message& msg, const core::limits& limits) {
    std::visit(
        [&](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, events::connection_init_msg>) {
                parse_frame(events::connection_ack(300000));
            } else if constexpr (std::is_same_v<T, events::unsubscribe_msg>) {
                check(events::valid_id(m.id, limits.max_id_chars), "unsubscribe id is valid");
                const auto obj = parse_frame(events::unsubscribe_success(m.id));
                check(string_is(obj.if_contains("id"), m.id), "unsubscribe_success echoes id");
            } else if constexpr (std::is_same_v<T, events::subscribe_msg>) {
                check(events::valid_id(m.id, limits.max_id_chars), "subscribe id is valid");
                const auto obj = parse_frame(events::subscribe_success(m.id));
                check(string_is(obj.if_contains("id"), m.id), "subscribe_success echoes id");
                auto again = events::channel_pattern::parse(m.channel.str());
                check(again && again->str() == m.channel.str(), "pattern normalizes stably");
                check_data_frames(m.id, {R"({"a":1})"});
                if (m.resume_after) {
                    // A position has one spelling: what parsed formats back to a text that
                    // parses to the same position.
                    const auto text = events::format_position(*m.resume_after);
                    auto reparsed = events::parse_position(text);
                    check(reparsed && *reparsed == *m.resume_after, "position round-trips");
                }
            } else {
                check(events::valid_id(m.id, limits.max_id_chars), "publish id is valid");
                check_events(m.events, limits);
                check_data_frames(m.id, m.events);
                events::publish_outcome outcome;
                for (std::size_t i = 0; i < m.events.size(); ++i)
                    outcome.identifiers.push_back("00000000-0000-4000-8000-00000000000" +
                                                  std::to_string(i));
                const auto obj = parse_frame(events::publish_success(m.id, outcome));
                const auto* ok = obj.if_contains("successful");
                check(ok && ok->is_array() && ok->get_array().size() == m.events.size(),
                      "publish_success lists one identifier per event");
                auto again = events::channel_path::parse(m.channel.str());
                check(again && again->str() == m.channel.str(), "path normalizes stably");
            }
        },
        msg);
}

void check_refusal(const events::message_error& e, const core::limits& limits) {
    check(e.id.empty() || events::valid_id(e.id, limits.max_id_chars), "only a valid id is echoed");
    check(e.type.empty() || e.type == "subscribe" || e.type == "unsubscribe" || e.type == "publish",
          "refusal type is an operation or empty");
    const auto obj = parse_frame(events::error_reply(e));
    const bool specific = !e.id.empty() && !e.type.empty();
    check(string_is(obj.if_contains("type"), specific ? e.type + "_error" : "error"),
          "reply frame type follows id and type");
    if (!e.id.empty())
        check(string_is(obj.if_contains("id"), e.id), "reply echoes the id");
    const auto* errors = obj.if_contains("errors");
    check(errors && errors->is_array() && errors->get_array().size() == 1, "one error item");
    const auto& item = errors->get_array()[0].as_object();
    check(string_is(item.if_contains("errorType"), e.error.ws_error_type()), "errorType");
    check(!e.error.message.empty(), "refusals say what is wrong");
    check(string_is(item.if_contains("message"), e.error.message), "message round-trips");
}

core::limits tight_limits() {
    core::limits l;
    l.max_events_per_publish = 2;
    l.max_event_bytes = 16;
    l.max_id_chars = 8;
    return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    static const core::limits default_limits{};
    static const core::limits small_limits = tight_limits();

    for (const auto* limits : {&default_limits, &small_limits}) {
        auto parsed = events::parse_client_message(text, *limits);
        if (parsed)
            check_message(*parsed, *limits);
        else
            check_refusal(parsed.error(), *limits);
    }

    // The position parser on its own (a resume's "after"): one spelling per position, and a
    // refusal whose message can go into a JSON text frame.
    if (auto pos = events::parse_position(text))
        check(events::format_position(*pos) == text, "an accepted position is its only spelling");
    else
        check(fuzz::valid_utf8(pos.error().message) && !pos.error().message.empty(),
              "position refusals say what is wrong in valid UTF-8");

    auto http = events::parse_http_publish(text, default_limits);
    if (http) {
        check_events(http->events, default_limits);
        check_data_frames("h", http->events);
        auto again = events::channel_path::parse(http->raw_channel);
        check(again && again->str() == http->channel.str(), "raw channel gives the same path");
    } else {
        check(http.error().http_status() == 400, "bad publish bodies are 400");
        check(!http.error().message.empty(), "HTTP refusals say what is wrong");
        check(fuzz::valid_utf8(http.error().message) || !fuzz::valid_utf8(text),
              "HTTP error message stays valid UTF-8");
    }
    return 0;
}

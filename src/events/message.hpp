// AppSync Events WebSocket messages as values: parse what clients send, build what the server
// sends (spec/appsync-events.md §3-§8). Pure functions; no sockets, no configuration beyond the
// limits passed in. Unknown fields are ignored, as Amplify adds GraphQL-era ones (§10.2).
#pragma once

#include "core/config.hpp"
#include "events/channel.hpp"
#include "events/error.hpp"
#include "events/position.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace boost::json {
class value;
}

namespace eventcast::events {

/// An authorization object or a set of HTTP headers: names lower-cased, values as sent.
/// Names are matched case-insensitively (§9.2), so they are folded once here.
class credentials {
public:
    void add(std::string_view name, std::string_view value);
    /// The value of the first entry named `lower_name` (which must be lower case), or null.
    const std::string* find(std::string_view lower_name) const noexcept;
    bool empty() const noexcept { return entries_.empty(); }
    /// Every entry in order, names lower-cased.
    const std::vector<std::pair<std::string, std::string>>& entries() const noexcept {
        return entries_;
    }

private:
    std::vector<std::pair<std::string, std::string>> entries_;
};

struct connection_init_msg {};
struct subscribe_msg {
    std::string id;
    channel_pattern channel;
    std::string raw_channel;  // as sent: IAM signatures cover the unnormalized text (§9.3)
    std::optional<credentials> authorization;
    // Extension: "resume":{"after":"<position>"} asks for the retained events after it first.
    std::optional<position> resume_after;
};
struct unsubscribe_msg {
    std::string id;
};
struct publish_msg {
    std::string id;
    channel_path channel;
    std::string raw_channel;
    std::vector<std::string> events;  // each a complete JSON text, as sent
    std::optional<credentials> authorization;
};
using client_message =
    std::variant<connection_init_msg, subscribe_msg, unsubscribe_msg, publish_msg>;

/// Why a client message was refused, with what is needed to answer in the right frame:
/// a known `type` with a valid `id` gets subscribe_error/publish_error/unsubscribe_error,
/// anything else the generic `error` frame.
struct message_error {
    protocol_error error;
    std::string type;  // "subscribe", "publish", "unsubscribe", or empty
    std::string id;    // empty when absent or not a valid id
};

/// Parses one WebSocket text frame. Never throws; every failure says what was wrong.
boost::system::result<client_message, message_error> parse_client_message(
    std::string_view text, const core::limits& limits);

/// Checks a publish's `events` array entries (shared by WebSocket and HTTP publish): count
/// within 1..max, each a string of at most max_event_bytes holding one complete JSON text.
/// `value` is the `events` field, or null when it is missing.
result<std::vector<std::string>> parse_events(const boost::json::value* value,
                                              const core::limits& limits);

/// The body of HTTP `POST /event`: `{"channel":"/ns/a","events":["<json>",...]}` (§10.1).
struct http_publish {
    channel_path channel;
    std::string raw_channel;
    std::vector<std::string> events;
};
result<http_publish> parse_http_publish(std::string_view body, const core::limits& limits);

/// True for 1..max_chars of [A-Za-z0-9_+-] (§3).
bool valid_id(std::string_view id, std::size_t max_chars = 128) noexcept;

/// True when `text` is exactly one JSON text (RFC 8259, UTF-8 checked) nested at most
/// `max_depth` deep. Escapes of lone UTF-16 surrogates ("\ud800") are accepted. Sets `why`
/// otherwise.
bool is_json_text(std::string_view text, std::string* why = nullptr, std::size_t max_depth = 64);

/// Parses a JSON object (the decoded `header-` subprotocol) into credentials: string values
/// only, other values ignored. Fails when the text is not a JSON object.
result<credentials> parse_credentials_json(std::string_view text);

/// Appends `s` as a JSON string literal with JSON.stringify-compatible escaping.
void append_json_string(std::string& out, std::string_view s);

// ---- server -> client -------------------------------------------------------------------------

std::string connection_ack(std::int64_t connection_timeout_ms);
std::string ka();
std::string connection_error(const protocol_error& e);
std::string subscribe_success(std::string_view id);
std::string unsubscribe_success(std::string_view id);
/// subscribe_error / unsubscribe_error / publish_error / error, picked by `type`.
std::string error_reply(const message_error& e);

/// An event a namespace handler marked failed ({id, error}): the publisher sees it in `failed`.
struct failed_event {
    std::size_t index = 0;
    std::string message;
};
struct publish_outcome {
    std::vector<std::string> identifiers;  // one per event, index order
    position first;                        // of the first event; the others follow it
    std::vector<failed_event> failed;      // index order; these are not in `successful`
};
std::string publish_success(std::string_view id, const publish_outcome& outcome);
/// POST /event's answer: {"failed":[{"identifier","index","message"}],"successful":[...]}.
std::string http_publish_answer(const publish_outcome& outcome);

/// Data frames are built in two parts so fan-out encodes each event once (DESIGN.md §2):
/// a per-subscription prefix `{"type":"data","id":"<id>","event":` made at subscribe time, and a
/// per-event body `"<event as a JSON string>","position":"<position>"}` shared by every
/// subscriber. `position` is an extension field; AWS clients read only id, type and event.
std::string data_prefix(std::string_view subscription_id);
std::string data_body(std::string_view event_json_text, const position& pos);
/// data_body in two steps, for a caller that encodes outside a lock and learns the position
/// inside it: data_body_open gives `"<event as a JSON string>"`, data_body_close appends the rest.
std::string data_body_open(std::string_view event_json_text);
void data_body_close(std::string& body, const position& pos);

}  // namespace eventcast::events

// The WebSocket upgrade as AppSync Events clients send it (spec/appsync-events.md §2.1):
// subprotocol selection and where the connect credentials come from.
#pragma once

#include "events/error.hpp"
#include "events/message.hpp"

#include <string_view>
#include <vector>

namespace eventcast::events {

inline constexpr std::string_view appsync_subprotocol = "aws-appsync-event-ws";

struct upgrade_auth {
    bool offered_subprotocols = false;    // the client sent Sec-WebSocket-Protocol
    bool offered_appsync = false;         // ... and it included aws-appsync-event-ws
    credentials creds;                    // from header-<b64url>, ?header=, or the request headers
    std::optional<protocol_error> error;  // malformed header- value (BadRequestException)
};

/// Whether `key` is a Sec-WebSocket-Key as RFC 6455 §4.2.1 defines it: the base64 of 16 bytes,
/// so exactly 22 base64 characters and "==". Anything else is refused with 400 before the
/// accept hash is computed (Beast's make_sec_ws_accept asserts a key of at most 24 bytes).
bool valid_websocket_key(std::string_view key) noexcept;

/// `protocol_values`: every Sec-WebSocket-Protocol header value (comma-separated lists).
/// `query`: the request target's query string without '?', possibly empty.
/// `headers`: all request headers. Credentials come from the first of: a `header-` subprotocol,
/// a `header=` query parameter (AppSync GraphQL style), the request headers themselves.
upgrade_auth parse_upgrade(const std::vector<std::string_view>& protocol_values,
                           std::string_view query, const credentials& headers);

}  // namespace eventcast::events

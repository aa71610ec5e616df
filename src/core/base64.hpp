// Tolerant base64 decoding for the WebSocket `header-` subprotocol: accepts base64url and the
// standard alphabet, with or without padding (spec/appsync-events.md §2.1).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace eventcast::core {

/// Decodes base64 or base64url text, padding optional. Returns nullopt on a character outside
/// both alphabets, padding in the middle, or an impossible length (1 mod 4).
std::optional<std::string> base64_decode_any(std::string_view text);

/// Encodes with the base64url alphabet and no padding (what Amplify sends).
std::string base64url_encode(std::string_view bytes);

}  // namespace eventcast::core

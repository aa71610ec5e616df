// base64 codecs: tolerant decoding for the WebSocket `header-` subprotocol (base64url and the
// standard alphabet, with or without padding, spec/appsync-events.md §2.1), and strict base64url
// for JWS segments (RFC 7515 §2).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace eventcast::core {

/// Decodes base64 or base64url text, padding optional. Returns nullopt on a character outside
/// both alphabets, padding in the middle, or an impossible length (1 mod 4).
std::optional<std::string> base64_decode_any(std::string_view text);

/// Decodes base64url without padding, strictly, as RFC 7515 §2 requires of JWS segments: only
/// A-Z a-z 0-9 - _, no '=', length not 1 mod 4, and the unused low bits of the last character
/// zero, so every byte string has exactly one accepted encoding. Returns nullopt otherwise.
std::optional<std::string> base64url_decode(std::string_view text);

/// Encodes with the base64url alphabet and no padding (what Amplify sends).
std::string base64url_encode(std::string_view bytes);

}  // namespace eventcast::core

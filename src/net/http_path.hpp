// Request paths as API Gateway treats them: runs of '/' collapse to one, nothing else changes.
// Pure; unit-tested (tests/unit/net/http_path_test.cpp) and fuzzed (tests/fuzz/fuzz_http_path.cpp).
#pragma once

#include <string>
#include <string_view>

namespace eventcast::net {

/// The path part of a request target: everything before the first '?' (the query is left to
/// whoever reads it, e.g. the WebSocket upgrade's `header=`).
std::string_view target_path(std::string_view target) noexcept;

/// `path` with every run of '/' collapsed to one: "//chat" -> "/chat", "/chat//s-1/cancel" ->
/// "/chat/s-1/cancel", "/event//realtime" -> "/event/realtime". Clients build URLs by joining
/// a base that ends in '/' with a path that starts with one (the AWS sample posts to
/// `new URL(url).toString() + '/chat'`), and API Gateway serves those, so we do too.
/// Nothing else is rewritten: no "." or ".." resolution, no percent-decoding, no case folding,
/// a trailing '/' stays. Any bytes are accepted; the result is never longer than `path`.
std::string normalize_path(std::string_view path);

}  // namespace eventcast::net

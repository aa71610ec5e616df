// Invariant checks for the fuzz targets: a violation prints what broke and aborts, which
// libFuzzer reports as a crash and saves the input.
#pragma once

#include "events/message.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace eventcast::fuzz {

[[noreturn]] inline void violated(const char* what) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
}

inline void check(bool ok, const char* what) {
    if (!ok)
        violated(what);
}

/// True when `s` is well-formed UTF-8: quoted as a JSON string it passes the validating parser.
inline bool valid_utf8(std::string_view s) {
    std::string quoted;
    events::append_json_string(quoted, s);
    return events::is_json_text(quoted);
}

}  // namespace eventcast::fuzz

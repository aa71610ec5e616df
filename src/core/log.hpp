// Logging facade: one line per event, "level area [conn] text key=value". Never log payloads,
// Authorization headers or keys.
#pragma once

#include <spdlog/spdlog.h>

#include <cstddef>
#include <string_view>

namespace eventcast::log {

enum class level { debug, info, warn, error };

/// Sets the minimum level and the output format. Call once from main before threads start.
void init(level min_level, bool json);

/// Changes the minimum level at run time (reload); thread-safe.
void set_level(level min_level);

/// Parses "debug", "info", "warn", "error"; returns false on anything else.
bool parse_level(std::string_view text, level& out);

/// One HTTP request as the access log records it. Never a body, a key or a header value.
struct access_entry {
    std::string_view method;  // "-" when the request could not be parsed
    std::string_view path;    // as sent, without the query (which may hold a header= credential)
    unsigned status = 0;
    std::size_t bytes = 0;   // response body bytes
    double duration_ms = 0;  // request read -> response handed to the socket
    std::string_view request_id;
};

/// Logs one access line at info: "http POST /chat 200 bytes=57 ms=1.3 rid=<uuid>", or with
/// --log-json one object {"ts","level","msg":"http","method","path","status","bytes",
/// "durationMs","requestId"}. The path is escaped (JSON) or has control bytes replaced (text),
/// and cut at 200 bytes. Thread-safe.
void access(const access_entry& e);

template <class... Args>
void debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    spdlog::debug(fmt, std::forward<Args>(args)...);
}
template <class... Args>
void info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    spdlog::info(fmt, std::forward<Args>(args)...);
}
template <class... Args>
void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    spdlog::warn(fmt, std::forward<Args>(args)...);
}
template <class... Args>
void error(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    spdlog::error(fmt, std::forward<Args>(args)...);
}

}  // namespace eventcast::log

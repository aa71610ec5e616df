// Logging facade: one line per event, "level area [conn] text key=value". Never log payloads,
// Authorization headers or keys.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace eventcast::log {

enum class level { debug, info, warn, error };

/// Sets the minimum level and the output format. Call once from main before threads start.
void init(level min_level, bool json);

/// Changes the minimum level at run time (reload); thread-safe.
void set_level(level min_level);

/// Parses "debug", "info", "warn", "error"; returns false on anything else.
bool parse_level(std::string_view text, level& out);

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

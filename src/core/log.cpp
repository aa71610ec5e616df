// Logging facade over spdlog: stderr, one line per event.
#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace eventcast::log {

void init(level min_level, bool json) {
    auto logger = spdlog::stderr_logger_mt("eventcast");
    if (json)
        logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%v"})",
                            spdlog::pattern_time_type::utc);
    else
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
    set_level(min_level);
}

void set_level(level min_level) {
    auto logger = spdlog::default_logger();  // spdlog keeps a logger's level atomically
    switch (min_level) {
        case level::debug: logger->set_level(spdlog::level::debug); break;
        case level::info: logger->set_level(spdlog::level::info); break;
        case level::warn: logger->set_level(spdlog::level::warn); break;
        case level::error: logger->set_level(spdlog::level::err); break;
    }
}

bool parse_level(std::string_view text, level& out) {
    if (text == "debug")
        out = level::debug;
    else if (text == "info")
        out = level::info;
    else if (text == "warn")
        out = level::warn;
    else if (text == "error")
        out = level::error;
    else
        return false;
    return true;
}

}  // namespace eventcast::log

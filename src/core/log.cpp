// Logging facade over spdlog: stderr, one line per event.
#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

namespace eventcast::log {

namespace {

// The access log is its own logger so that with --log-json its fields are members of the line's
// object rather than text inside "msg". Its own stderr sink: a sink has one format, and spdlog's
// console sinks share one process-wide mutex, so lines of the two loggers never interleave.
std::shared_ptr<spdlog::logger> access_logger;  // set once by init(), before threads start
std::atomic<bool> access_json{false};

constexpr std::size_t max_logged_path = 200;

void append_json_escaped(std::string& out, std::string_view s) {
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c >= 0x7f) {
            // Bytes past ASCII too: a path need not be UTF-8, and the line must stay valid JSON.
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
}

std::string printable(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f)
            ch = '?';  // a CR or LF in a path must not start a forged log line
    }
    return out;
}

}  // namespace

void access(const access_entry& e) {
    auto logger = access_logger ? access_logger : spdlog::default_logger();
    const auto path = e.path.substr(0, max_logged_path);
    if (!access_json.load(std::memory_order_relaxed) || !access_logger) {
        logger->info("http {} {} {} bytes={} ms={:.1f} rid={}", printable(e.method.substr(0, 20)),
                     printable(path), e.status, e.bytes, e.duration_ms, e.request_id);
        return;
    }
    std::string fields = R"("msg":"http","method":")";
    append_json_escaped(fields, e.method.substr(0, 20));
    fields += R"(","path":")";
    append_json_escaped(fields, path);
    fields += R"(","status":)" + std::to_string(e.status) + R"(,"bytes":)" +
              std::to_string(e.bytes) + R"(,"durationMs":)";
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.3f", e.duration_ms);
    fields += ms;
    fields += R"(,"requestId":")";
    append_json_escaped(fields, e.request_id);
    fields += '"';
    logger->info("{}", fields);
}

void init(level min_level, bool json) {
    auto logger = spdlog::stderr_logger_mt("eventcast");
    if (json)
        logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%v"})",
                            spdlog::pattern_time_type::utc);
    else
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
    logger->flush_on(spdlog::level::info);
    access_logger = std::make_shared<spdlog::logger>(
        "eventcast-access", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (json)
        access_logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                                   spdlog::pattern_time_type::utc);
    else
        access_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
    access_logger->flush_on(spdlog::level::info);
    access_json = json;
    spdlog::set_default_logger(std::move(logger));
    set_level(min_level);
}

void set_level(level min_level) {
    // spdlog keeps a logger's level atomically; access_logger is set once, by init().
    spdlog::level::level_enum l = spdlog::level::info;
    switch (min_level) {
        case level::debug: l = spdlog::level::debug; break;
        case level::info: l = spdlog::level::info; break;
        case level::warn: l = spdlog::level::warn; break;
        case level::error: l = spdlog::level::err; break;
    }
    spdlog::default_logger()->set_level(l);
    if (access_logger)
        access_logger->set_level(l);
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

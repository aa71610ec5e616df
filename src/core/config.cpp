// Command line, environment and config file for `eventcast serve`, through CLI11, which reads
// the TOML subset we need (flat `key = value` and arrays), so no second parser is involved. Our
// precedence is flag > EVENTCAST_<NAME> > config file > default; CLI11 alone would put the file
// above the environment, see with_environment().
#include "core/config.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

namespace eventcast::core {

boost::system::result<api_key, std::string> parse_api_key(std::string_view text) {
    api_key key;
    const auto at = text.rfind('@');
    key.value = std::string(text.substr(0, at));
    if (key.value.empty())
        return {boost::system::in_place_error,
                "api key is empty; give --api-key KEY or KEY@EXPIRY"};
    if (at == std::string_view::npos)
        return key;
    const auto expiry = text.substr(at + 1);
    long long seconds = 0;
    auto [ptr, ec] = std::from_chars(expiry.data(), expiry.data() + expiry.size(), seconds);
    if (ec == std::errc() && ptr == expiry.data() + expiry.size()) {
        key.expires = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
        return key;
    }
    std::tm tm{};
    std::istringstream in{std::string(expiry)};
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    char z = 0;
    in >> z;
    if (in.fail() || (z != 'Z' && z != 'z') || in.peek() != EOF)
        return {boost::system::in_place_error,
                "api key expiry '" + std::string(expiry) +
                    "' is neither seconds since the epoch nor an RFC 3339 UTC time like "
                    "2026-12-31T00:00:00Z"};
    key.expires = std::chrono::system_clock::from_time_t(timegm(&tm));
    return key;
}

const history_limits& history_config::for_namespace(std::string_view ns) const noexcept {
    for (const auto& [name, lim] : per_namespace)
        if (name == ns)
            return lim;
    return defaults;
}

boost::system::result<std::chrono::milliseconds, std::string> parse_duration(
    std::string_view text) {
    auto bad = [&] {
        return boost::system::result<std::chrono::milliseconds, std::string>(
            boost::system::in_place_error,
            "'" + std::string(text.substr(0, 40)) +
                "' is not a duration; expected a number and a unit (ms, s, m, h) like 10m, or 0");
    };
    if (text == "0")
        return std::chrono::milliseconds(0);
    std::int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr == text.data() || n < 0)
        return bad();
    const std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::int64_t scale = 0;
    if (unit == "ms")
        scale = 1;
    else if (unit == "s")
        scale = 1000;
    else if (unit == "m")
        scale = 60'000;
    else if (unit == "h")
        scale = 3'600'000;
    else
        return bad();
    if (n > std::numeric_limits<std::int64_t>::max() / scale)
        return bad();
    return std::chrono::milliseconds(n * scale);
}

bool split_host_port(std::string_view text, std::string& host, std::uint16_t& port) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return false;
    auto h = text.substr(0, colon);
    if (h.front() == '[') {
        if (h.size() < 3 || h.back() != ']')
            return false;
        h = h.substr(1, h.size() - 2);
    } else if (h.find(':') != std::string_view::npos) {
        return false;  // an IPv6 address needs brackets
    }
    const auto p = text.substr(colon + 1);
    unsigned n = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (ec != std::errc() || ptr != p.data() + p.size() || p.empty() || n == 0 || n > 65535)
        return false;
    const std::string address(h);
    unsigned char raw[16];
    if (::inet_pton(AF_INET, address.c_str(), raw) != 1 &&
        ::inet_pton(AF_INET6, address.c_str(), raw) != 1)
        return false;
    host = std::string(h);
    port = static_cast<std::uint16_t>(n);
    return true;
}

std::string format_duration(std::chrono::milliseconds d) {
    const auto ms = d.count();
    if (ms == 0)
        return "0";
    if (ms % 3'600'000 == 0)
        return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0)
        return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0)
        return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

boost::system::result<std::pair<std::string, history_limits>, std::string> parse_namespace_history(
    std::string_view text) {
    using r = boost::system::result<std::pair<std::string, history_limits>, std::string>;
    const auto a = text.find(':');
    const auto b = a == std::string_view::npos ? a : text.find(':', a + 1);
    if (b == std::string_view::npos || text.find(':', b + 1) != std::string_view::npos)
        return r(boost::system::in_place_error,
                 "'" + std::string(text) +
                     "' is not NAMESPACE:COUNT:AGE, e.g. BedrockChat:1000:1h (0 turns it off)");
    std::pair<std::string, history_limits> out;
    out.first = std::string(text.substr(0, a));
    const auto count = text.substr(a + 1, b - a - 1);
    auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), out.second.count);
    if (ec != std::errc() || ptr != count.data() + count.size() || count.empty())
        return r(boost::system::in_place_error, "'" + std::string(text) + "': COUNT '" +
                                                    std::string(count) +
                                                    "' is not a whole number of events");
    auto age = parse_duration(text.substr(b + 1));
    if (!age)
        return r(boost::system::in_place_error, "'" + std::string(text) + "': AGE " + age.error());
    out.second.age = *age;
    return out;
}

namespace {

bool valid_namespace_name(std::string_view s) {
    if (s.empty() || s.size() > 50)
        return false;
    auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    for (char c : s)
        if (!alnum(c) && c != '-')
            return false;
    return alnum(s.front()) && alnum(s.back());
}

// The NATS subject prefix: tokens of [A-Za-z0-9_-] separated by single dots (no wildcards,
// whitespace or empty tokens). cluster::valid_subject_prefix says the same; core cannot use it.
bool valid_subject_prefix(std::string_view s) {
    if (s.empty() || s.size() > 200 || s.front() == '.' || s.back() == '.' ||
        s.find("..") != std::string_view::npos)
        return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

// ---- typed option kinds -------------------------------------------------------------------------
// A kind knows how to turn the text of one option (a flag, EVENTCAST_<NAME> or a TOML value, all
// read as text by CLI11) into a field of `config`, and how to show the field's default. Each
// returns the problem as a line without its source; load_config adds "--name: ", "EVENTCAST_X: "
// or "file:line: name: ".

using problem = std::optional<std::string>;

enum class shape { one, many, flag };  // one value, a repeatable comma-separated list, a bool

struct kind {
    shape form = shape::one;
    std::function<problem(config&, const std::vector<std::string>&)> set;
    std::function<std::string(config&)> show;  // the default, for --help and the README
};

// Where a field lives: at(&config::port) or at(&config::lim, &limits::max_event_bytes).
template <class M>
auto at(M config::*member) {
    return [member](config& c) -> M& { return c.*member; };
}
template <class S, class M>
auto at(S config::*part, M S::*member) {
    return [part, member](config& c) -> M& { return (c.*part).*member; };
}

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text.substr(0, 80)) + "'";
}

template <class T>
boost::system::result<T, std::string> whole_number(std::string_view text, std::uint64_t min,
                                                   std::uint64_t max) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
        return {boost::system::in_place_error, in_quotes(text) + " is not a whole number"};
    if (n < min || n > max)
        return {boost::system::in_place_error, in_quotes(text) + " is out of range " +
                                                   std::to_string(min) + ".." +
                                                   std::to_string(max)};
    return static_cast<T>(n);
}

kind text(std::function<std::string&(config&)> field) {
    return {shape::one,
            [field](config& c, const std::vector<std::string>& v) -> problem {
                field(c) = v.back();
                return std::nullopt;
            },
            [field](config& c) { return field(c); }};
}

kind choice(std::function<std::string&(config&)> field, std::vector<std::string> allowed) {
    return {shape::one,
            [field, allowed](config& c, const std::vector<std::string>& v) -> problem {
                if (std::find(allowed.begin(), allowed.end(), v.back()) == allowed.end()) {
                    std::string list;
                    for (const auto& a : allowed)
                        list += (list.empty() ? "" : ", ") + a;
                    return in_quotes(v.back()) + " is not one of " + list;
                }
                field(c) = v.back();
                return std::nullopt;
            },
            [field](config& c) { return field(c); }};
}

template <class T>
kind number(std::function<T&(config&)> field, std::uint64_t min = 0,
            std::uint64_t max = std::numeric_limits<T>::max()) {
    return {shape::one,
            [field, min, max](config& c, const std::vector<std::string>& v) -> problem {
                auto n = whole_number<T>(v.back(), min, max);
                if (!n)
                    return n.error();
                field(c) = *n;
                return std::nullopt;
            },
            [field](config& c) { return std::to_string(field(c)); }};
}
kind size(std::function<std::size_t&(config&)> field, std::uint64_t min = 0) {
    return number<std::size_t>(std::move(field), min);
}

// A whole number of the duration's unit, as the *-ms and *-s flags take it.
template <class Duration>
kind count_of(std::function<Duration&(config&)> field, std::uint64_t min,
              std::uint64_t max = std::numeric_limits<std::int64_t>::max()) {
    return {shape::one,
            [field, min, max](config& c, const std::vector<std::string>& v) -> problem {
                auto n = whole_number<std::int64_t>(v.back(), min, max);
                if (!n)
                    return n.error();
                field(c) = Duration(*n);
                return std::nullopt;
            },
            [field](config& c) { return std::to_string(field(c).count()); }};
}
kind millis(std::function<std::chrono::milliseconds&(config&)> field, std::uint64_t min) {
    return count_of<std::chrono::milliseconds>(std::move(field), min);
}
kind secs(std::function<std::chrono::seconds&(config&)> field, std::uint64_t min,
          std::uint64_t max = std::numeric_limits<std::int64_t>::max()) {
    return count_of<std::chrono::seconds>(std::move(field), min, max);
}

kind rate(std::function<double&(config&)> field) {  // a non-negative decimal number
    return {shape::one,
            [field](config& c, const std::vector<std::string>& v) -> problem {
                const std::string& s = v.back();
                char* end = nullptr;
                const double d = std::strtod(s.c_str(), &end);
                if (s.empty() || end != s.c_str() + s.size() || !(d >= 0) || d > 1e12)
                    return in_quotes(s) + " is not a number of at least 0";
                field(c) = d;
                return std::nullopt;
            },
            [field](config& c) {
                std::ostringstream out;
                out << field(c);
                return out.str();
            }};
}

// "500ms", "10m" (parse_duration).
kind duration(std::function<std::chrono::milliseconds&(config&)> field) {
    return {shape::one,
            [field](config& c, const std::vector<std::string>& v) -> problem {
                auto d = parse_duration(v.back());
                if (!d)
                    return d.error();
                field(c) = *d;
                return std::nullopt;
            },
            [field](config& c) { return format_duration(field(c)); }};
}

kind positive_duration(std::function<std::chrono::milliseconds&(config&)> field) {
    auto k = duration(field);
    k.set = [field](config& c, const std::vector<std::string>& v) -> problem {
        auto d = parse_duration(v.back());
        if (!d)
            return d.error();
        if (d->count() == 0)
            return in_quotes(v.back()) + " is not a duration above 0";
        field(c) = *d;
        return std::nullopt;
    };
    return k;
}

// "127.0.0.1:9090", "[::1]:9090": an IP address and a port (1..65535). A name would need a
// resolver at start-up; the listener binds an address.
kind host_port(std::function<std::string&(config&)> field) {
    auto k = text(field);
    k.set = [field](config& c, const std::vector<std::string>& v) -> problem {
        std::string host;
        std::uint16_t port = 0;
        if (!split_host_port(v.back(), host, port))
            return in_quotes(v.back()) +
                   " is not HOST:PORT; give an IP address and a port like 127.0.0.1:9090 or "
                   "[::1]:9090";
        field(c) = v.back();
        return std::nullopt;
    };
    return k;
}

kind flag(std::function<bool&(config&)> field) {
    return {shape::flag,
            [field](config& c, const std::vector<std::string>& v) -> problem {
                field(c) = v.back() == "true";
                return std::nullopt;
            },
            [field](config& c) { return std::string(field(c) ? "true" : "false"); }};
}

// Repeatable and comma-separated; given at all, it replaces the default. `check` says what is
// wrong with one item, if anything.
kind list(std::function<std::vector<std::string>&(config&)> field,
          std::function<problem(const std::string&)> check = {}) {
    return {shape::many,
            [field, check](config& c, const std::vector<std::string>& v) -> problem {
                std::string errors;  // every bad item, each on its own line
                if (check)
                    for (const auto& item : v)
                        if (auto p = check(item))
                            errors += (errors.empty() ? "" : "\n") + *p;
                if (!errors.empty())
                    return errors;
                field(c) = v;
                return std::nullopt;
            },
            [field](config& c) {
                std::string out;
                for (const auto& item : field(c))
                    out += (out.empty() ? "" : ",") + item;
                return out;
            }};
}

kind api_keys() {
    return {shape::many,
            [](config& c, const std::vector<std::string>& v) -> problem {
                std::string errors;  // every bad key, each on its own line
                for (const auto& text : v) {
                    auto key = parse_api_key(text);
                    if (key)
                        c.api_keys.push_back(std::move(*key));
                    else
                        errors += (errors.empty() ? "" : "\n") + key.error();
                }
                return errors.empty() ? problem() : problem(errors);
            },
            [](config&) { return std::string(); }};
}

kind namespace_histories() {
    return {shape::many,
            [](config& c, const std::vector<std::string>& v) -> problem {
                std::string errors;
                for (const auto& text : v) {
                    auto entry = parse_namespace_history(text);
                    if (entry)
                        c.history.per_namespace.push_back(std::move(*entry));
                    else
                        errors += (errors.empty() ? "" : "\n") + entry.error();
                }
                return errors.empty() ? problem() : problem(errors);
            },
            [](config&) { return std::string(); }};
}

problem namespace_name(const std::string& ns) {
    if (valid_namespace_name(ns))
        return std::nullopt;
    return in_quotes(ns) +
           " is not a namespace name; allowed: 1..50 of A-Z a-z 0-9 -, starting and ending with a "
           "letter or digit";
}

// "*" or an origin as a browser sends it, scheme included: "app.example.com" would never match.
problem cors_origin(const std::string& origin) {
    if (origin == "*" || origin.rfind("http://", 0) == 0 || origin.rfind("https://", 0) == 0)
        return std::nullopt;
    return in_quotes(origin) +
           " is not an origin; give * or scheme://host[:port] like https://app.example.com";
}

problem nats_url(const std::string& url) {
    const bool scheme = url.rfind("nats://", 0) == 0 || url.rfind("tls://", 0) == 0;
    const auto rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
    if (scheme && !rest.empty() && rest.find_first_of(" \t/") == std::string::npos)
        return std::nullopt;
    return in_quotes(url) + " is not a NATS URL; expected nats://host:port or tls://host:port";
}

kind subject_prefix(std::function<std::string&(config&)> field) {
    auto k = text(field);
    k.set = [field](config& c, const std::vector<std::string>& v) -> problem {
        if (!valid_subject_prefix(v.back()))
            return in_quotes(v.back()) +
                   " is not a subject prefix; allowed: tokens of A-Z a-z 0-9 _ - separated by "
                   "single dots, like eventcast or acme.events";
        field(c) = v.back();
        return std::nullopt;
    };
    return k;
}

struct option {
    const char* name;  // the flag without "--", also the TOML key; environment EVENTCAST_<NAME>
    kind parse;
    std::string help;
    std::string default_text = {};  // shown instead of the field's default when set
};

const std::string modes_help =
    " (API_KEY, AWS_IAM, AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT, AWS_LAMBDA; comma-separated)";

// Every option of `eventcast serve`, one entry each. Adding an option: add its field (with its
// default and unit) to core::config in config.hpp, one entry here, and a test in
// tests/unit/core/config_test.cpp; the flag, EVENTCAST_<NAME>, the TOML key, --help and the
// README table (scripts/options-table) all follow from the entry. Rules across options go in
// cross_checks() below.
const std::vector<option>& options() {
    using c = config;
    static const std::vector<option> table = {
        {"host", text(at(&c::host)), "address to listen on"},
        {"port", number<std::uint16_t>(at(&c::port)),
         "port for HTTP, HTTPS, ws and wss (0: any free port)"},
        {"api-key", api_keys(),
         "API key, KEY or KEY@EXPIRY (epoch seconds or 2026-12-31T00:00:00Z); repeatable",
         "none: one is generated and printed"},
        {"namespace", list(at(&c::namespaces), namespace_name),
         "channel namespace; repeatable; the chat namespace is always added"},
        {"namespace-code", list(at(&c::handlers, &handlers_config::namespace_code)),
         "namespace handlers NS:FILE, an ES module exporting onPublish/onSubscribe; repeatable",
         "none"},
        {"handler-time-limit-ms", millis(at(&c::handlers, &handlers_config::time_limit), 1),
         "longest a handler invocation may run; past it the operation fails"},
        {"handler-memory-limit-mb",
         number<std::size_t>(at(&c::handlers, &handlers_config::memory_limit_mb), 8, 4096),
         "handler memory per engine context (one per thread)"},
        {"namespace-data-source", list(at(&c::handlers, &handlers_config::data_sources)),
         "data source of a namespace's request/response handlers: NS:lambda:FUNCTION, "
         "NS:http:BASE_URL or NS:bedrock[:MODEL_ID]; repeatable",
         "none"},
        {"namespace-direct-lambda", list(at(&c::handlers, &handlers_config::direct_lambdas)),
         "direct Lambda integration, no code: NS:OPERATIONS:INVOKE_TYPE:FUNCTION with OPERATIONS "
         "publish, subscribe or publish+subscribe and INVOKE_TYPE REQUEST_RESPONSE or EVENT; "
         "repeatable",
         "none"},
        {"lambda-endpoint", text(at(&c::handlers, &handlers_config::lambda_endpoint)),
         "Lambda Invoke API URL for data sources and direct integrations (empty: "
         "https://lambda.<region>.amazonaws.com; region as --bedrock-region)"},
        {"data-source-timeout-ms",
         millis(at(&c::handlers, &handlers_config::data_source_timeout), 1),
         "longest one data source call (Lambda, HTTP, Bedrock) may take; past it the operation "
         "fails"},
        {"tls-cert", text(at(&c::tls_cert_file)), "PEM certificate chain",
         "none: self-signed at start-up"},
        {"tls-key", text(at(&c::tls_key_file)), "PEM private key"},
        {"tls-self-signed-out", text(at(&c::tls_self_signed_out)),
         "write the generated self-signed certificate (PEM) here, to trust it"},
        {"port-file", text(at(&c::port_file)), "write the bound port here once listening"},
        {"admin-listen", host_port(at(&c::admin_listen)),
         "HOST:PORT of a second listener serving only /metrics, /healthz and /readyz; when set, "
         "the client port does not serve /metrics",
         "none"},
        {"drain-delay-ms", millis(at(&c::drain_delay), 0),
         "on SIGTERM, /readyz answers 503 and connections keep being served this long"},
        {"drain-spread-ms", millis(at(&c::drain_spread), 0),
         "after the drain delay, WebSockets are closed (1001) spread over this long"},
        {"shutdown-timeout-ms", millis(at(&c::shutdown_timeout), 1),
         "from SIGTERM to exit at the latest; a second SIGTERM exits at once"},
        {"threads", number<unsigned>(at(&c::threads)), "I/O threads (0: one per core)"},
        {"log-level", choice(at(&c::log_level), {"debug", "info", "warn", "error"}),
         "debug, info, warn or error"},
        {"log-json", flag(at(&c::log_json)), "log one JSON object per line"},
        {"cors-origin", list(at(&c::cors_origins), cors_origin),
         "allowed CORS origin, or * for any; repeatable; when not *, also the Origins a browser "
         "WebSocket may come from"},
        // limits (spec §13)
        {"max-event-bytes", size(at(&c::lim, &limits::max_event_bytes), 1),
         "largest event JSON text"},
        {"max-events-per-publish", size(at(&c::lim, &limits::max_events_per_publish), 1),
         "events per publish"},
        {"max-subscriptions", size(at(&c::lim, &limits::max_subscriptions), 1),
         "subscriptions per connection"},
        {"max-header-bytes", size(at(&c::lim, &limits::max_header_bytes), 1),
         "HTTP request header bytes"},
        {"max-frame-bytes", size(at(&c::lim, &limits::max_frame_bytes), 1),
         "WebSocket message bytes"},
        {"max-body-bytes", size(at(&c::lim, &limits::max_body_bytes), 1),
         "HTTP request body bytes"},
        {"max-outbox-bytes", size(at(&c::lim, &limits::max_outbox_bytes), 1),
         "unsent bytes per connection before it is closed as a slow consumer"},
        {"max-buffered-bytes", size(at(&c::lim, &limits::max_buffered_bytes), 1),
         "bytes of incomplete WebSocket messages and HTTP bodies held server-wide; past it: "
         "close 1013 / HTTP 503"},
        {"message-timeout-ms", millis(at(&c::lim, &limits::message_timeout), 1),
         "a WebSocket message must be complete this long after its first byte (else 1008)"},
        {"max-json-depth", number<std::size_t>(at(&c::lim, &limits::max_json_depth), 1, 10000),
         "nesting depth of a message, request body or event JSON text"},
        {"connection-lifetime-ms", millis(at(&c::lim, &limits::connection_lifetime), 1),
         "WebSocket connection lifetime"},
        {"keepalive-ms", millis(at(&c::lim, &limits::keepalive_interval), 1),
         "interval between ka messages"},
        {"connection-timeout-ms", millis(at(&c::lim, &limits::connection_timeout), 1),
         "connectionTimeoutMs advertised in connection_ack"},
        {"handshake-timeout-ms", millis(at(&c::lim, &limits::handshake_timeout), 1),
         "TLS and HTTP upgrade deadline"},
        // history and resume (docs/protocol.md)
        {"history-count", size([](c& x) -> std::size_t& { return x.history.defaults.count; }),
         "events kept per channel for resume (0: no history)"},
        {"history-age", duration([](c & x) -> auto& { return x.history.defaults.age; }),
         "how long events are kept for resume: 500ms, 30s, 10m, 1h (0: no history)"},
        {"history-max-bytes", size(at(&c::history, &history_config::max_bytes)),
         "history memory cap over all channels; the oldest events go first"},
        {"namespace-history", namespace_histories(),
         "per-namespace history NAMESPACE:COUNT:AGE, e.g. BedrockChat:1000:1h; repeatable",
         "chat namespace: 1000"},
        // POST /chat and the model providers (spec/model-providers.md)
        {"chat-namespace", text(at(&c::chat, &chat_config::chat_namespace)),
         "namespace of chat channels /<ns>/<userId>"},
        {"chat-provider", text(at(&c::chat, &chat_config::provider)),
         "default model provider: demo, openai or bedrock (empty: openai or bedrock when "
         "configured, else demo)"},
        {"chat-coalesce-ms", millis(at(&c::chat, &chat_config::coalesce), 0),
         "deltas within this window go out as one event"},
        {"chat-event-format", choice(at(&c::chat, &chat_config::event_format), {"typed", "sample"}),
         "chat events: typed (start, delta, end/error with seq) or sample (only {\"data\":chunk} "
         "per delta, as the AWS sample); a POST /chat body's eventFormat overrides it"},
        {"chat-max-streams", size(at(&c::chat, &chat_config::max_streams), 1),
         "concurrent chat streams"},
        {"chat-max-streams-per-user", size(at(&c::chat, &chat_config::max_streams_per_user), 1),
         "concurrent chat streams per userId"},
        {"chat-max-prompt-bytes", size(at(&c::chat, &chat_config::max_prompt_bytes), 1),
         "prompt + messages + system"},
        {"chat-max-tokens-per-user",
         number<std::uint64_t>(at(&c::chat, &chat_config::max_tokens_per_user)),
         "input + output tokens a userId may use per --chat-budget-window (0: no budget); past "
         "it POST /chat answers 429 with the reset time"},
        {"chat-budget-window", positive_duration(at(&c::chat, &chat_config::budget_window)),
         "the budget's window, as 3600s, 90m or 24h; windows start at start-up"},
        {"chat-retention-s", secs(at(&c::chat, &chat_config::retention), 0),
         "finished streams stay readable this long"},
        {"chat-connect-timeout-ms", millis(at(&c::chat, &chat_config::connect_timeout), 1),
         "provider connect timeout"},
        {"chat-idle-timeout-ms", millis(at(&c::chat, &chat_config::idle_timeout), 1),
         "no byte from the provider this long: error"},
        {"demo-pace-ms", millis(at(&c::chat, &chat_config::demo_pace), 0),
         "demo model: delay between chunks"},
        {"demo-words-per-chunk", size(at(&c::chat, &chat_config::demo_words_per_chunk), 1),
         "demo model: words per chunk"},
        {"bedrock-region", text(at(&c::chat, &chat_config::bedrock_region)),
         "AWS region (empty: AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS)"},
        {"bedrock-model", text(at(&c::chat, &chat_config::bedrock_model)), "Bedrock model id"},
        {"bedrock-endpoint", text(at(&c::chat, &chat_config::bedrock_endpoint)),
         "Bedrock runtime URL (empty: https://bedrock-runtime.<region>.amazonaws.com)"},
        {"openai-base-url", text(at(&c::chat, &chat_config::openai_base_url)),
         "OpenAI-compatible server, e.g. http://127.0.0.1:11434 (Ollama); the key comes from "
         "EVENTCAST_OPENAI_API_KEY or OPENAI_API_KEY only"},
        {"openai-model", text(at(&c::chat, &chat_config::openai_model)),
         "model name for the OpenAI-compatible server"},
        {"openai-max-tokens-field", text(at(&c::chat, &chat_config::openai_max_tokens_field)),
         "max_tokens, or max_completion_tokens for OpenAI proper"},
        // authorization (spec §9): modes per operation, providers, per-user namespaces, rate limits
        {"auth-connect", list(at(&c::auth, &auth_config::connect_modes)),
         "modes allowed to open a WebSocket" + modes_help},
        {"auth-publish", list(at(&c::auth, &auth_config::publish_modes)),
         "default modes for HTTP and WebSocket publish" + modes_help},
        {"auth-subscribe", list(at(&c::auth, &auth_config::subscribe_modes)),
         "default modes for subscribe" + modes_help},
        {"auth-chat", list(at(&c::auth, &auth_config::chat_modes)),
         "modes for POST /chat and its routes" + modes_help, "the publish modes"},
        {"namespace-auth", list(at(&c::auth, &auth_config::namespace_rules)),
         "per-namespace override NS:publish=MODE|MODE or NS:subscribe=MODE|MODE; repeatable"},
        {"user-namespace", list(at(&c::auth, &auth_config::user_namespaces)),
         "namespace whose first channel segment must be the caller's identity "
         "(/<ns>/<identity>/...); repeatable"},
        {"user-claim", text(at(&c::auth, &auth_config::user_claim)),
         "token claim that is the caller's identity"},
        {"oidc-issuer", text(at(&c::auth, &auth_config::oidc_issuer)),
         "OPENID_CONNECT: the tokens' iss"},
        {"oidc-client-id", list(at(&c::auth, &auth_config::oidc_client_ids)),
         "OPENID_CONNECT: accepted aud/client_id; repeatable (none: not checked)"},
        {"oidc-jwks", text(at(&c::auth, &auth_config::oidc_jwks)),
         "OPENID_CONNECT: JWKS file or https:// URL (default: <issuer>/.well-known/jwks.json)"},
        {"cognito-user-pool-id", text(at(&c::auth, &auth_config::cognito_user_pool_id)),
         "AMAZON_COGNITO_USER_POOLS: pool id, e.g. us-east-1_AbCdEf123"},
        {"cognito-region", text(at(&c::auth, &auth_config::cognito_region)),
         "AMAZON_COGNITO_USER_POOLS: region (default: the pool id's prefix)"},
        {"cognito-client-id", list(at(&c::auth, &auth_config::cognito_client_ids)),
         "AMAZON_COGNITO_USER_POOLS: app client ids; repeatable (none: not checked)"},
        {"cognito-jwks", text(at(&c::auth, &auth_config::cognito_jwks)),
         "AMAZON_COGNITO_USER_POOLS: JWKS file or URL (default: <issuer>/.well-known/jwks.json)"},
        {"cognito-issuer", text(at(&c::auth, &auth_config::cognito_issuer)),
         "AMAZON_COGNITO_USER_POOLS: issuer (default: "
         "https://cognito-idp.<region>.amazonaws.com/<pool>; set it for emulators)"},
        {"jwks-ca-file", text(at(&c::auth, &auth_config::jwks_ca_file)), "CA bundle for JWKS URLs",
         "the system's"},
        {"jwt-clock-skew-s", secs(at(&c::auth, &auth_config::jwt_clock_skew), 0, 300),
         "tolerance on exp/nbf (at most 300)"},
        {"jwks-min-refresh-s", secs(at(&c::auth, &auth_config::jwks_min_refresh), 1, 3600),
         "a token with an unknown kid refetches the JWKS at most this often"},
        {"iam-keys-file", text(at(&c::auth, &auth_config::iam_keys_file)),
         "AWS_IAM: file of lines 'ACCESS_KEY_ID SECRET_ACCESS_KEY [principal]'"},
        {"iam-region", text(at(&c::auth, &auth_config::iam_region)),
         "AWS_IAM: the only region accepted in signatures (default: any)"},
        {"iam-clock-skew-s", secs(at(&c::auth, &auth_config::iam_clock_skew), 1, 900),
         "AWS_IAM: tolerance on x-amz-date"},
        {"lambda-authorizer-url", text(at(&c::auth, &auth_config::lambda_url)),
         "AWS_LAMBDA: webhook that receives the Lambda authorizer request"},
        {"lambda-authorizer-timeout-ms", millis(at(&c::auth, &auth_config::lambda_timeout), 1),
         "AWS_LAMBDA: webhook deadline; past it the request is refused"},
        {"lambda-authorizer-ttl-s", secs(at(&c::auth, &auth_config::lambda_ttl), 0, 3600),
         "AWS_LAMBDA: cache time of an answer without ttlOverride (0: no cache)"},
        {"max-connections-per-ip", size(at(&c::auth, &auth_config::max_connections_per_ip)),
         "WebSocket connections per source address (0: no limit)"},
        {"max-ops-per-second", rate(at(&c::auth, &auth_config::max_ops_per_second)),
         "subscribe/unsubscribe/publish per WebSocket connection per second, burst of the same "
         "size (0: no limit)"},
        // cluster mode (docs/CLUSTER.md)
        {"cluster", list(at(&c::cluster, &cluster_config::urls), nats_url),
         "NATS server URL (nats://host:port); repeatable or comma-separated", "none: single node"},
        {"cluster-subject-prefix", subject_prefix(at(&c::cluster, &cluster_config::subject_prefix)),
         "NATS subject prefix: channel /ns/a is <prefix>.ns.a"},
        {"cluster-reconnect-wait-ms", millis(at(&c::cluster, &cluster_config::reconnect_wait), 1),
         "first delay before reconnecting to NATS; doubles up to the maximum"},
        {"cluster-reconnect-max-ms", millis(at(&c::cluster, &cluster_config::reconnect_max), 1),
         "longest delay between NATS reconnect rounds"},
        {"cluster-subscribe-timeout-ms",
         millis(at(&c::cluster, &cluster_config::subscribe_timeout), 1),
         "how long a node's first subscription in a namespace waits for NATS"},
        {"cluster-ping-interval-ms", millis(at(&c::cluster, &cluster_config::ping_interval), 100),
         "NATS ping interval; a silent link is dropped after (max pings out + 1) intervals"},
        {"cluster-max-pings-out",
         number<unsigned>(at(&c::cluster, &cluster_config::max_pings_out), 1, 100),
         "unanswered NATS pings before the link is considered dead"},
        {"cluster-echo-timeout-ms", millis(at(&c::cluster, &cluster_config::echo_timeout), 1),
         "a publish NATS has not echoed back within this is delivered to local subscribers"},
        {"cluster-tls-ca", text(at(&c::cluster, &cluster_config::tls_ca_file)),
         "PEM CA bundle to verify NATS servers with; turns TLS on", "none: the system's"},
        {"cluster-tls-cert", text(at(&c::cluster, &cluster_config::tls_cert_file)),
         "PEM client certificate for NATS servers that verify clients"},
        {"cluster-tls-key", text(at(&c::cluster, &cluster_config::tls_key_file)),
         "PEM private key of --cluster-tls-cert"},
        {"cluster-user", text(at(&c::cluster, &cluster_config::user)), "NATS user name"},
        {"cluster-password", text(at(&c::cluster, &cluster_config::password)),
         "NATS password (prefer EVENTCAST_CLUSTER_PASSWORD to a flag); never logged"},
        {"cluster-creds", text(at(&c::cluster, &cluster_config::creds_file)),
         "NATS .creds file (user JWT and NKey seed, as nsc writes it)"},
    };
    return table;
}

std::string env_name(std::string_view name) {
    std::string out = "EVENTCAST_";
    for (char ch : name)
        out += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return out;
}

// Rules that span options; each problem names the flags involved.
void cross_checks(config& cfg, std::vector<std::string>& problems) {
    if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
        problems.push_back("--tls-cert and --tls-key go together; give both or neither");
    if (cfg.threads == 0)
        cfg.threads = std::max(1u, std::thread::hardware_concurrency());
    auto& c = cfg.chat;
    if (!valid_namespace_name(c.chat_namespace))
        problems.push_back("--chat-namespace: '" + c.chat_namespace + "' is not a namespace name");
    else if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), c.chat_namespace) ==
             cfg.namespaces.end())
        // POST /chat publishes there, so it must exist; `--namespace foo` alone should not
        // turn chat off or stop the server from starting.
        cfg.namespaces.push_back(c.chat_namespace);
    auto& h = cfg.history;
    std::erase_if(h.per_namespace, [&](const auto& entry) {
        if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), entry.first) !=
            cfg.namespaces.end())
            return false;
        problems.push_back("--namespace-history: '" + entry.first +
                           "' is not a configured namespace (see --namespace)");
        return true;
    });
    // A chat answer is one event per delta: the chat namespace keeps at least 1000 unless told
    // otherwise, so a client that reconnects late in a long answer can still recover it.
    if (h.defaults.count > 0 && h.defaults.count < 1000 &&
        &h.for_namespace(c.chat_namespace) == &h.defaults)
        h.per_namespace.emplace_back(c.chat_namespace, history_limits{1000, h.defaults.age});
    if (c.provider == "openai" && c.openai_base_url.empty())
        problems.push_back("--chat-provider openai needs --openai-base-url");
    const auto& cl = cfg.cluster;
    if (cl.reconnect_max < cl.reconnect_wait)
        problems.push_back(
            "--cluster-reconnect-max-ms must not be below --cluster-reconnect-wait-ms");
    if (cl.tls_cert_file.empty() != cl.tls_key_file.empty())
        problems.push_back(
            "--cluster-tls-cert and --cluster-tls-key go together; give both or neither");
    if (cl.user.empty() != cl.password.empty())
        problems.push_back(
            "--cluster-user and --cluster-password go together; give both or "
            "neither");
    if (!cl.creds_file.empty() && !cl.user.empty())
        problems.push_back(
            "--cluster-creds and --cluster-user are two ways to log in to NATS; "
            "give one");
    if (cl.urls.empty() && (!cl.tls_ca_file.empty() || !cl.tls_cert_file.empty() ||
                            !cl.user.empty() || !cl.creds_file.empty()))
        problems.push_back("--cluster-tls-*, --cluster-user and --cluster-creds need --cluster");
    if (cfg.lim.max_events_per_publish > 255 && !cl.urls.empty())
        problems.push_back("--max-events-per-publish above 255 is not supported with --cluster");
    if (cfg.lim.max_event_bytes > cfg.lim.max_frame_bytes)
        problems.push_back("--max-event-bytes must not exceed --max-frame-bytes");
}

// A config file format that yields nothing, for the first pass of with_environment().
class no_config_file : public CLI::Config {
public:
    std::string to_config(const CLI::App*, bool, bool, std::string) const override { return {}; }
    std::vector<CLI::ConfigItem> from_config(std::istream&) const override { return {}; }
};

// CLI11 2.1 reads the config file first and lets EVENTCAST_<NAME> fill only the options still
// unset, which would put the file above the environment. Our order is flag > environment > file,
// so the environment goes in as `--name=value` arguments, which beat the file, for each option
// the command line leaves unset. A first parse of `app` with no environment and no file tells
// which those are (returned in `from_flags`); the real parse clears it. Returns the arguments
// for the real parse.
std::vector<std::string> with_environment(CLI::App& app, int argc, const char* const* argv,
                                          std::vector<std::string>& from_flags) {
    std::vector<std::string> args(argv, argv + argc);
    std::vector<std::pair<CLI::Option*, std::string>> env_options;
    for (auto* opt : app.get_options()) {
        if (opt->get_envname().empty())
            continue;
        env_options.emplace_back(opt, opt->get_envname());
        opt->envname("");
    }
    const auto file_format = app.get_config_formatter();
    app.config_formatter(std::make_shared<no_config_file>());
    bool parsed = true;
    try {
        app.parse(argc, argv);
    } catch (const CLI::Error&) {
        parsed = false;  // --help or a bad command line: the real parse reports it
    }
    app.config_formatter(file_format);
    for (const auto& [opt, name] : env_options) {
        opt->envname(name);
        if (parsed && opt->count() > 0)
            from_flags.push_back(opt->get_name());
        const char* value = std::getenv(name.c_str());
        if (parsed && !args.empty() && opt->count() == 0 && value && *value)
            args.insert(args.begin() + 1, opt->get_name() + "=" + value);
    }
    return args;
}

// "eventcast.toml:7: port" for a key set in the config file, so the problem points at the line.
std::string file_source(const std::string& path, std::string_view key) {
    std::ifstream in(path);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const auto start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line.compare(start, key.size(), key) != 0)
            continue;
        const auto after = line.find_first_not_of(" \t", start + key.size());
        if (after != std::string::npos && line[after] == '=')
            return path + ":" + std::to_string(number) + ": " + std::string(key);
    }
    return path + ": " + std::string(key);
}

std::string markdown_cell(std::string text) {
    std::string out;
    for (char ch : text)
        out += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return out;
}

// The README's options table (scripts/options-table puts it between the markers).
std::string options_markdown() {
    config defaults;
    std::string out =
        "| flag | environment | default | what |\n"
        "| --- | --- | --- | --- |\n"
        "| `--config FILE` | | | TOML file; keys are the flag names without `--` |\n";
    for (const auto& opt : options()) {
        std::string shown = opt.default_text.empty() ? opt.parse.show(defaults) : opt.default_text;
        shown = shown.empty() ? "" : "`" + shown + "`";
        if (!opt.default_text.empty())
            shown = opt.default_text;
        out += "| `--" + std::string(opt.name) + "` | `" + env_name(opt.name) + "` | " +
               markdown_cell(shown) + " | " + markdown_cell(opt.help) + " |\n";
    }
    return out;
}

}  // namespace

std::vector<std::string> changed_options(const config& a, const config& b) {
    auto same_keys = [](const std::vector<api_key>& x, const std::vector<api_key>& y) {
        return std::equal(x.begin(), x.end(), y.begin(), y.end(),
                          [](const api_key& k, const api_key& l) {
                              return k.value == l.value && k.expires == l.expires;
                          });
    };
    auto same_histories = [](const history_config& x, const history_config& y) {
        return std::equal(x.per_namespace.begin(), x.per_namespace.end(), y.per_namespace.begin(),
                          y.per_namespace.end(), [](const auto& m, const auto& n) {
                              return m.first == n.first && m.second.count == n.second.count &&
                                     m.second.age == n.second.age;
                          });
    };
    std::vector<std::string> out;
    auto& ca = const_cast<config&>(a);  // show() only reads
    auto& cb = const_cast<config&>(b);
    for (const auto& opt : options()) {
        const std::string_view name = opt.name;
        bool differs = false;
        if (name == "api-key")
            differs = !same_keys(a.api_keys, b.api_keys);
        else if (name == "namespace-history")
            differs = !same_histories(a.history, b.history);
        else
            differs = opt.parse.show(ca) != opt.parse.show(cb);
        if (differs)
            out.emplace_back(name);
    }
    return out;
}

boost::system::result<config, std::vector<std::string>> load_config(int argc,
                                                                    const char* const* argv) {
    config cfg;
    CLI::App app{"eventcast serve: an AWS AppSync Events compatible real-time server", "serve"};
    app.set_config("--config", "", "TOML config file (keys are the long option names)");
    bool markdown = false;
    app.add_flag("--help-markdown", markdown, "print the options as a Markdown table")->group("");
    // CLI11 reads every option as text; the table's kinds parse it, so that every problem is
    // reported, each with where it came from.
    struct raw {
        const option* opt;
        CLI::Option* cli;
        std::vector<std::string> values;
        bool on = false;
    };
    std::vector<raw> raws;
    raws.reserve(options().size());
    config defaults;
    for (const auto& opt : options()) {
        auto& r = raws.emplace_back(raw{&opt, nullptr, {}, false});
        const std::string flag = std::string("--") + opt.name;
        if (opt.parse.form == shape::flag)
            r.cli = app.add_flag(flag, r.on, opt.help);
        else if (opt.parse.form == shape::many)
            r.cli = app.add_option(flag, r.values, opt.help)->delimiter(',');
        else
            r.cli = app.add_option(flag, r.values, opt.help)
                        ->expected(1)
                        ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
        r.cli->envname(env_name(opt.name));
        const auto shown = opt.default_text.empty() ? opt.parse.show(defaults) : opt.default_text;
        if (!shown.empty() && opt.parse.form != shape::flag)
            r.cli->default_str(shown);
    }

    std::vector<std::string> from_flags;
    const auto args = with_environment(app, argc, argv, from_flags);
    std::vector<const char*> arg_ptrs;
    for (const auto& a : args)
        arg_ptrs.push_back(a.c_str());
    try {
        app.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
    } catch (const CLI::CallForHelp&) {
        return std::vector<std::string>{"help:" + app.help()};
    } catch (const CLI::ParseError& e) {
        return std::vector<std::string>{e.what()};
    }
    if (markdown)
        return std::vector<std::string>{"help:" + options_markdown()};

    std::vector<std::string> problems;
    const auto config_file = app.get_option("--config")->as<std::string>();
    for (auto& r : raws) {
        if (r.cli->count() == 0)
            continue;
        if (r.opt->parse.form == shape::flag)
            r.values = {r.on ? "true" : "false"};
        auto problem = r.opt->parse.set(cfg, r.values);
        if (!problem)
            continue;
        const auto& name = r.cli->get_name();
        const char* env = std::getenv(r.cli->get_envname().c_str());
        const std::string source =
            std::find(from_flags.begin(), from_flags.end(), name) != from_flags.end() ? name
            : env && *env ? r.cli->get_envname() + " (" + name + ")"
                          : file_source(config_file, r.opt->name);
        std::istringstream lines(*problem);
        for (std::string line; std::getline(lines, line);)
            problems.push_back(source + ": " + line);
    }
    // Secrets come from the environment only, so they never sit in a file or a process list.
    if (const char* key = std::getenv("EVENTCAST_OPENAI_API_KEY"))
        cfg.chat.openai_api_key = key;
    else if (const char* key2 = std::getenv("OPENAI_API_KEY"))
        cfg.chat.openai_api_key = key2;
    cross_checks(cfg, problems);
    if (!problems.empty())
        return problems;
    return cfg;
}

}  // namespace eventcast::core

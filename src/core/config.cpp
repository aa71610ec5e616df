// Command line, environment and config file for `eventcast serve`, through CLI11, which reads
// the TOML subset we need (flat `key = value` and arrays), so no second parser is involved. Our
// precedence is flag > EVENTCAST_<NAME> > config file > default; CLI11 alone would put the file
// above the environment, see with_environment().
#include "core/config.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <limits>
#include <memory>
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
// which those are; the real parse clears it. Returns the arguments for the real parse.
std::vector<std::string> with_environment(CLI::App& app, int argc, const char* const* argv) {
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
        const char* value = std::getenv(name.c_str());
        if (parsed && !args.empty() && opt->count() == 0 && value && *value)
            args.insert(args.begin() + 1, opt->get_name() + "=" + value);
    }
    return args;
}

}  // namespace

boost::system::result<config, std::vector<std::string>> load_config(int argc,
                                                                    const char* const* argv) {
    config cfg;
    std::vector<std::string> api_key_texts;
    std::vector<std::string> namespaces;
    std::int64_t lifetime_ms = cfg.lim.connection_lifetime.count();
    std::int64_t keepalive_ms = cfg.lim.keepalive_interval.count();
    std::int64_t conn_timeout_ms = cfg.lim.connection_timeout.count();
    std::int64_t handshake_ms = cfg.lim.handshake_timeout.count();

    CLI::App app{"eventcast serve: an AWS AppSync Events compatible real-time server", "serve"};
    app.set_config("--config", "", "TOML config file (keys are the long option names)");
    auto env = [](const char* name) { return std::string("EVENTCAST_") + name; };
    app.add_option("--host", cfg.host, "address to listen on")
        ->envname(env("HOST"))
        ->capture_default_str();
    app.add_option("--port", cfg.port, "port for HTTP, HTTPS, ws and wss (0: any free port)")
        ->envname(env("PORT"))
        ->capture_default_str();
    app.add_option("--api-key", api_key_texts,
                   "API key, KEY or KEY@EXPIRY (epoch seconds or 2026-12-31T00:00:00Z); "
                   "repeatable; none: one is generated and printed")
        ->envname(env("API_KEY"))
        ->delimiter(',');
    app.add_option("--namespace", namespaces,
                   "channel namespace; repeatable (default: default, "
                   "BedrockChat)")
        ->envname(env("NAMESPACE"))
        ->delimiter(',');
    app.add_option("--tls-cert", cfg.tls_cert_file, "PEM certificate chain")
        ->envname(env("TLS_CERT"));
    app.add_option("--tls-key", cfg.tls_key_file, "PEM private key")->envname(env("TLS_KEY"));
    app.add_option("--tls-self-signed-out", cfg.tls_self_signed_out,
                   "write the generated self-signed certificate (PEM) here, to trust it")
        ->envname(env("TLS_SELF_SIGNED_OUT"));
    app.add_option("--port-file", cfg.port_file, "write the bound port here once listening")
        ->envname(env("PORT_FILE"));
    app.add_option("--threads", cfg.threads, "I/O threads (0: one per core)")
        ->envname(env("THREADS"))
        ->capture_default_str();
    app.add_option("--log-level", cfg.log_level, "debug, info, warn or error")
        ->envname(env("LOG_LEVEL"))
        ->capture_default_str()
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    app.add_flag("--log-json", cfg.log_json, "log one JSON object per line")
        ->envname(env("LOG_JSON"));
    app.add_option("--cors-origin", cfg.cors_origins, "allowed CORS origin; repeatable")
        ->envname(env("CORS_ORIGIN"))
        ->delimiter(',')
        ->capture_default_str();

    auto& l = cfg.lim;
    app.add_option("--max-event-bytes", l.max_event_bytes, "largest event JSON text")
        ->envname(env("MAX_EVENT_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-events-per-publish", l.max_events_per_publish, "events per publish")
        ->envname(env("MAX_EVENTS_PER_PUBLISH"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-subscriptions", l.max_subscriptions, "subscriptions per connection")
        ->envname(env("MAX_SUBSCRIPTIONS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-header-bytes", l.max_header_bytes, "HTTP request header bytes")
        ->envname(env("MAX_HEADER_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-frame-bytes", l.max_frame_bytes, "WebSocket message bytes")
        ->envname(env("MAX_FRAME_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-body-bytes", l.max_body_bytes, "HTTP request body bytes")
        ->envname(env("MAX_BODY_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-outbox-bytes", l.max_outbox_bytes,
                   "unsent bytes per connection before it is closed as a slow consumer")
        ->envname(env("MAX_OUTBOX_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-json-depth", l.max_json_depth,
                   "nesting depth of a message, request body or event JSON text")
        ->envname(env("MAX_JSON_DEPTH"))
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
    app.add_option("--connection-lifetime-ms", lifetime_ms, "WebSocket connection lifetime")
        ->envname(env("CONNECTION_LIFETIME_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--keepalive-ms", keepalive_ms, "interval between ka messages")
        ->envname(env("KEEPALIVE_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--connection-timeout-ms", conn_timeout_ms,
                   "connectionTimeoutMs advertised in connection_ack")
        ->envname(env("CONNECTION_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--handshake-timeout-ms", handshake_ms, "TLS and HTTP upgrade deadline")
        ->envname(env("HANDSHAKE_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);

    // History and resume (docs/protocol.md).
    auto& h = cfg.history;
    std::string history_age = format_duration(h.defaults.age);
    std::vector<std::string> namespace_history;
    app.add_option("--history-count", h.defaults.count,
                   "events kept per channel for resume (0: no history)")
        ->envname(env("HISTORY_COUNT"))
        ->capture_default_str();
    app.add_option("--history-age", history_age,
                   "how long events are kept for resume: 500ms, 30s, 10m, 1h (0: no history)")
        ->envname(env("HISTORY_AGE"))
        ->capture_default_str();
    app.add_option("--history-max-bytes", h.max_bytes,
                   "history memory cap over all channels; the oldest events go first")
        ->envname(env("HISTORY_MAX_BYTES"))
        ->capture_default_str();
    app.add_option("--namespace-history", namespace_history,
                   "per-namespace history NAMESPACE:COUNT:AGE, e.g. BedrockChat:1000:1h; "
                   "repeatable")
        ->envname(env("NAMESPACE_HISTORY"))
        ->delimiter(',');

    // POST /chat and the model providers (spec/model-providers.md).
    auto& c = cfg.chat;
    std::int64_t coalesce_ms = c.coalesce.count();
    std::int64_t retention_s = c.retention.count();
    std::int64_t connect_ms = c.connect_timeout.count();
    std::int64_t idle_ms = c.idle_timeout.count();
    std::int64_t pace_ms = c.demo_pace.count();
    app.add_option("--chat-namespace", c.chat_namespace,
                   "namespace of chat channels /<ns>/<userId>")
        ->envname(env("CHAT_NAMESPACE"))
        ->capture_default_str();
    app.add_option("--chat-provider", c.provider,
                   "default model provider: demo, openai or bedrock (empty: openai or bedrock "
                   "when configured, else demo)")
        ->envname(env("CHAT_PROVIDER"));
    app.add_option("--chat-coalesce-ms", coalesce_ms,
                   "deltas within this window go out as one event")
        ->envname(env("CHAT_COALESCE_MS"))
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--chat-max-streams", c.max_streams, "concurrent chat streams")
        ->envname(env("CHAT_MAX_STREAMS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--chat-max-streams-per-user", c.max_streams_per_user,
                   "concurrent chat streams per userId")
        ->envname(env("CHAT_MAX_STREAMS_PER_USER"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--chat-max-prompt-bytes", c.max_prompt_bytes, "prompt + messages + system")
        ->envname(env("CHAT_MAX_PROMPT_BYTES"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--chat-retention-s", retention_s, "finished streams stay readable this long")
        ->envname(env("CHAT_RETENTION_S"))
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--chat-connect-timeout-ms", connect_ms, "provider connect timeout")
        ->envname(env("CHAT_CONNECT_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--chat-idle-timeout-ms", idle_ms, "no byte from the provider this long: error")
        ->envname(env("CHAT_IDLE_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--demo-pace-ms", pace_ms, "demo model: delay between chunks")
        ->envname(env("DEMO_PACE_MS"))
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--demo-words-per-chunk", c.demo_words_per_chunk, "demo model: words per chunk")
        ->envname(env("DEMO_WORDS_PER_CHUNK"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--bedrock-region", c.bedrock_region,
                   "AWS region (empty: AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS)")
        ->envname(env("BEDROCK_REGION"));
    app.add_option("--bedrock-model", c.bedrock_model, "Bedrock model id")
        ->envname(env("BEDROCK_MODEL"))
        ->capture_default_str();
    app.add_option("--bedrock-endpoint", c.bedrock_endpoint,
                   "Bedrock runtime URL (empty: https://bedrock-runtime.<region>.amazonaws.com)")
        ->envname(env("BEDROCK_ENDPOINT"));
    app.add_option("--openai-base-url", c.openai_base_url,
                   "OpenAI-compatible server, e.g. http://127.0.0.1:11434 (Ollama)")
        ->envname(env("OPENAI_BASE_URL"));
    app.add_option("--openai-model", c.openai_model, "model name for the OpenAI-compatible server")
        ->envname(env("OPENAI_MODEL"));
    app.add_option("--openai-max-tokens-field", c.openai_max_tokens_field,
                   "max_tokens, or max_completion_tokens for OpenAI proper")
        ->envname(env("OPENAI_MAX_TOKENS_FIELD"))
        ->capture_default_str();

    // Authorization (spec §9): modes per operation, providers, per-user namespaces, rate limits.
    auto& au = cfg.auth;
    std::int64_t jwt_skew_s = au.jwt_clock_skew.count();
    std::int64_t jwks_refresh_s = au.jwks_min_refresh.count();
    std::int64_t iam_skew_s = au.iam_clock_skew.count();
    std::int64_t lambda_timeout_ms = au.lambda_timeout.count();
    std::int64_t lambda_ttl_s = au.lambda_ttl.count();
    const char* modes_help =
        " (API_KEY, AWS_IAM, AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT, AWS_LAMBDA; "
        "comma-separated)";
    app.add_option("--auth-connect", au.connect_modes,
                   std::string("modes allowed to open a WebSocket") + modes_help)
        ->envname(env("AUTH_CONNECT"))
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--auth-publish", au.publish_modes,
                   std::string("default modes for HTTP and WebSocket publish") + modes_help)
        ->envname(env("AUTH_PUBLISH"))
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--auth-subscribe", au.subscribe_modes,
                   std::string("default modes for subscribe") + modes_help)
        ->envname(env("AUTH_SUBSCRIBE"))
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--auth-chat", au.chat_modes,
                   std::string("modes for POST /chat and its routes (default: the publish "
                               "modes)") +
                       modes_help)
        ->envname(env("AUTH_CHAT"))
        ->delimiter(',');
    app.add_option("--namespace-auth", au.namespace_rules,
                   "per-namespace override NS:publish=MODE|MODE or NS:subscribe=MODE|MODE; "
                   "repeatable")
        ->envname(env("NAMESPACE_AUTH"))
        ->delimiter(',');
    app.add_option("--user-namespace", au.user_namespaces,
                   "namespace whose first channel segment must be the caller's identity "
                   "(/<ns>/<identity>/...); repeatable")
        ->envname(env("USER_NAMESPACE"))
        ->delimiter(',');
    app.add_option("--user-claim", au.user_claim, "token claim that is the caller's identity")
        ->envname(env("USER_CLAIM"))
        ->capture_default_str();
    app.add_option("--oidc-issuer", au.oidc_issuer, "OPENID_CONNECT: the tokens' iss")
        ->envname(env("OIDC_ISSUER"));
    app.add_option("--oidc-client-id", au.oidc_client_ids,
                   "OPENID_CONNECT: accepted aud/client_id; repeatable (none: not checked)")
        ->envname(env("OIDC_CLIENT_ID"))
        ->delimiter(',');
    app.add_option("--oidc-jwks", au.oidc_jwks,
                   "OPENID_CONNECT: JWKS file or https:// URL (default: "
                   "<issuer>/.well-known/jwks.json)")
        ->envname(env("OIDC_JWKS"));
    app.add_option("--cognito-user-pool-id", au.cognito_user_pool_id,
                   "AMAZON_COGNITO_USER_POOLS: pool id, e.g. us-east-1_AbCdEf123")
        ->envname(env("COGNITO_USER_POOL_ID"));
    app.add_option("--cognito-region", au.cognito_region,
                   "AMAZON_COGNITO_USER_POOLS: region (default: the pool id's prefix)")
        ->envname(env("COGNITO_REGION"));
    app.add_option("--cognito-client-id", au.cognito_client_ids,
                   "AMAZON_COGNITO_USER_POOLS: app client ids; repeatable (none: not checked)")
        ->envname(env("COGNITO_CLIENT_ID"))
        ->delimiter(',');
    app.add_option("--cognito-jwks", au.cognito_jwks,
                   "AMAZON_COGNITO_USER_POOLS: JWKS file or URL (default: "
                   "<issuer>/.well-known/jwks.json)")
        ->envname(env("COGNITO_JWKS"));
    app.add_option("--cognito-issuer", au.cognito_issuer,
                   "AMAZON_COGNITO_USER_POOLS: issuer (default: "
                   "https://cognito-idp.<region>.amazonaws.com/<pool>; set it for emulators)")
        ->envname(env("COGNITO_ISSUER"));
    app.add_option("--jwks-ca-file", au.jwks_ca_file, "CA bundle for JWKS URLs")
        ->envname(env("JWKS_CA_FILE"));
    app.add_option("--jwt-clock-skew-s", jwt_skew_s, "tolerance on exp/nbf (at most 300)")
        ->envname(env("JWT_CLOCK_SKEW_S"))
        ->capture_default_str()
        ->check(CLI::Range(0, 300));
    app.add_option("--jwks-min-refresh-s", jwks_refresh_s,
                   "a token with an unknown kid refetches the JWKS at most this often")
        ->envname(env("JWKS_MIN_REFRESH_S"))
        ->capture_default_str()
        ->check(CLI::Range(1, 3600));
    app.add_option("--iam-keys-file", au.iam_keys_file,
                   "AWS_IAM: file of lines 'ACCESS_KEY_ID SECRET_ACCESS_KEY [principal]'")
        ->envname(env("IAM_KEYS_FILE"));
    app.add_option("--iam-region", au.iam_region,
                   "AWS_IAM: the only region accepted in signatures (default: any)")
        ->envname(env("IAM_REGION"));
    app.add_option("--iam-clock-skew-s", iam_skew_s, "AWS_IAM: tolerance on x-amz-date")
        ->envname(env("IAM_CLOCK_SKEW_S"))
        ->capture_default_str()
        ->check(CLI::Range(1, 900));
    app.add_option("--lambda-authorizer-url", au.lambda_url,
                   "AWS_LAMBDA: webhook that receives the Lambda authorizer request")
        ->envname(env("LAMBDA_AUTHORIZER_URL"));
    app.add_option("--lambda-authorizer-timeout-ms", lambda_timeout_ms,
                   "AWS_LAMBDA: webhook deadline; past it the request is refused")
        ->envname(env("LAMBDA_AUTHORIZER_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--lambda-authorizer-ttl-s", lambda_ttl_s,
                   "AWS_LAMBDA: cache time of an answer without ttlOverride (0: no cache)")
        ->envname(env("LAMBDA_AUTHORIZER_TTL_S"))
        ->capture_default_str()
        ->check(CLI::Range(0, 3600));
    app.add_option("--max-connections-per-ip", au.max_connections_per_ip,
                   "WebSocket connections per source address (0: no limit)")
        ->envname(env("MAX_CONNECTIONS_PER_IP"))
        ->capture_default_str();
    app.add_option("--max-ops-per-second", au.max_ops_per_second,
                   "subscribe/unsubscribe/publish per WebSocket connection per second, burst of "
                   "the same size (0: no limit)")
        ->envname(env("MAX_OPS_PER_SECOND"))
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    // Cluster mode (docs/CLUSTER.md).
    auto& cl = cfg.cluster;
    std::int64_t reconnect_wait_ms = cl.reconnect_wait.count();
    std::int64_t reconnect_max_ms = cl.reconnect_max.count();
    std::int64_t subscribe_timeout_ms = cl.subscribe_timeout.count();
    app.add_option("--cluster", cl.urls,
                   "NATS server URL (nats://host:port); repeatable or comma-separated; "
                   "none: single node")
        ->envname(env("CLUSTER"))
        ->delimiter(',');
    app.add_option("--cluster-subject-prefix", cl.subject_prefix,
                   "NATS subject prefix: channel /ns/a is <prefix>.ns.a")
        ->envname(env("CLUSTER_SUBJECT_PREFIX"))
        ->capture_default_str();
    app.add_option("--cluster-reconnect-wait-ms", reconnect_wait_ms,
                   "first delay before reconnecting to NATS; doubles up to the maximum")
        ->envname(env("CLUSTER_RECONNECT_WAIT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--cluster-reconnect-max-ms", reconnect_max_ms,
                   "longest delay between NATS reconnect rounds")
        ->envname(env("CLUSTER_RECONNECT_MAX_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--cluster-subscribe-timeout-ms", subscribe_timeout_ms,
                   "how long a node's first subscription in a namespace waits for NATS")
        ->envname(env("CLUSTER_SUBSCRIBE_TIMEOUT_MS"))
        ->capture_default_str()
        ->check(CLI::PositiveNumber);

    const auto args = with_environment(app, argc, argv);
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

    std::vector<std::string> problems;
    for (const auto& text : api_key_texts) {
        auto key = parse_api_key(text);
        if (!key)
            problems.push_back("--api-key: " + key.error());
        else
            cfg.api_keys.push_back(std::move(*key));
    }
    if (!namespaces.empty())
        cfg.namespaces = std::move(namespaces);
    for (const auto& ns : cfg.namespaces)
        if (!valid_namespace_name(ns))
            problems.push_back("--namespace: '" + ns +
                               "' is not a namespace name; allowed: 1..50 of A-Z a-z 0-9 -, "
                               "starting and ending with a letter or digit");
    if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
        problems.push_back("--tls-cert and --tls-key go together; give both or neither");
    if (cfg.threads == 0)
        cfg.threads = std::max(1u, std::thread::hardware_concurrency());
    l.connection_lifetime = std::chrono::milliseconds(lifetime_ms);
    l.keepalive_interval = std::chrono::milliseconds(keepalive_ms);
    l.connection_timeout = std::chrono::milliseconds(conn_timeout_ms);
    l.handshake_timeout = std::chrono::milliseconds(handshake_ms);
    c.coalesce = std::chrono::milliseconds(coalesce_ms);
    c.retention = std::chrono::seconds(retention_s);
    c.connect_timeout = std::chrono::milliseconds(connect_ms);
    c.idle_timeout = std::chrono::milliseconds(idle_ms);
    c.demo_pace = std::chrono::milliseconds(pace_ms);
    au.jwt_clock_skew = std::chrono::seconds(jwt_skew_s);
    au.jwks_min_refresh = std::chrono::seconds(jwks_refresh_s);
    au.iam_clock_skew = std::chrono::seconds(iam_skew_s);
    au.lambda_timeout = std::chrono::milliseconds(lambda_timeout_ms);
    au.lambda_ttl = std::chrono::seconds(lambda_ttl_s);
    // Secrets come from the environment only, so they never sit in a file or a process list.
    if (const char* key = std::getenv("EVENTCAST_OPENAI_API_KEY"))
        c.openai_api_key = key;
    else if (const char* key2 = std::getenv("OPENAI_API_KEY"))
        c.openai_api_key = key2;
    if (!valid_namespace_name(c.chat_namespace))
        problems.push_back("--chat-namespace: '" + c.chat_namespace + "' is not a namespace name");
    else if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), c.chat_namespace) ==
             cfg.namespaces.end())
        // POST /chat publishes there, so it must exist; `--namespace foo` alone should not
        // turn chat off or stop the server from starting.
        cfg.namespaces.push_back(c.chat_namespace);
    if (auto age = parse_duration(history_age); !age)
        problems.push_back("--history-age: " + age.error());
    else
        h.defaults.age = *age;
    for (const auto& text : namespace_history) {
        auto entry = parse_namespace_history(text);
        if (!entry)
            problems.push_back("--namespace-history: " + entry.error());
        else if (std::find(cfg.namespaces.begin(), cfg.namespaces.end(), entry->first) ==
                 cfg.namespaces.end())
            problems.push_back("--namespace-history: '" + entry->first +
                               "' is not a configured namespace (see --namespace)");
        else
            h.per_namespace.push_back(std::move(*entry));
    }
    // A chat answer is one event per delta: the chat namespace keeps at least 1000 unless told
    // otherwise, so a client that reconnects late in a long answer can still recover it.
    if (h.defaults.count > 0 && h.defaults.count < 1000 &&
        &h.for_namespace(c.chat_namespace) == &h.defaults)
        h.per_namespace.emplace_back(c.chat_namespace, history_limits{1000, h.defaults.age});
    if (c.provider == "openai" && c.openai_base_url.empty())
        problems.push_back("--chat-provider openai needs --openai-base-url");
    cl.reconnect_wait = std::chrono::milliseconds(reconnect_wait_ms);
    cl.reconnect_max = std::chrono::milliseconds(reconnect_max_ms);
    cl.subscribe_timeout = std::chrono::milliseconds(subscribe_timeout_ms);
    for (const auto& url : cl.urls) {
        const bool scheme = url.rfind("nats://", 0) == 0 || url.rfind("tls://", 0) == 0;
        const auto rest =
            url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
        if (!scheme || rest.empty() || rest.find_first_of(" \t/") != std::string::npos)
            problems.push_back("--cluster: '" + url +
                               "' is not a NATS URL; expected nats://host:port or tls://host:port");
    }
    if (!valid_subject_prefix(cl.subject_prefix))
        problems.push_back("--cluster-subject-prefix: '" + cl.subject_prefix +
                           "' is not a subject prefix; allowed: tokens of A-Z a-z 0-9 _ - "
                           "separated by single dots, like eventcast or acme.events");
    if (cl.reconnect_max < cl.reconnect_wait)
        problems.push_back(
            "--cluster-reconnect-max-ms must not be below --cluster-reconnect-wait-ms");
    if (l.max_events_per_publish > 255 && !cl.urls.empty())
        problems.push_back("--max-events-per-publish above 255 is not supported with --cluster");
    if (l.max_event_bytes > l.max_frame_bytes)
        problems.push_back("--max-event-bytes must not exceed --max-frame-bytes");
    if (!problems.empty())
        return problems;
    return cfg;
}

}  // namespace eventcast::core

// Every knob of the server, its default and its unit, in one place. Loaded once in main
// (defaults <- config file <- environment EVENTCAST_<NAME> <- flags) and passed down as const&.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace eventcast::core {

/// AWS AppSync Events limits (spec/appsync-events.md §13); all protocol-visible ones default to
/// the AWS values.
struct limits {
    std::size_t max_event_bytes = 240 * 1024;        // one event's JSON text (AWS: 240 KB)
    std::size_t max_events_per_publish = 5;          // AWS: 5 on HTTP and WebSocket
    std::size_t max_subscriptions = 200;             // per connection; the 201st fails (AWS)
    std::size_t max_id_chars = 128;                  // subscription/publish id (AWS)
    std::size_t max_header_bytes = 16 * 1024;        // an IAM header- subprotocol is 3-5 KB
    std::size_t max_frame_bytes = 4 * 1024 * 1024;   // 5 events of 240 KB, JSON-escaped twice over
    std::size_t max_body_bytes = 4 * 1024 * 1024;    // HTTP POST /event, same reasoning
    std::size_t max_outbox_bytes = 8 * 1024 * 1024;  // per connection; past it: slow consumer
    // Bytes held server-wide for messages and request bodies still arriving (WebSocket frames
    // and fragments not yet complete, HTTP bodies by their Content-Length): past it a
    // WebSocket is closed with 1013 and an HTTP request gets 503.
    std::size_t max_buffered_bytes = 256 * 1024 * 1024;
    // A WebSocket message whose first byte is in must be complete within this (1008).
    std::chrono::milliseconds message_timeout{30 * 1000};
    std::size_t max_json_depth = 64;  // nesting of a message or event; deeper is not a real event
    std::chrono::milliseconds connection_lifetime{24 * 60 * 60 * 1000};  // AWS: 24 h
    std::chrono::milliseconds keepalive_interval{60 * 1000};             // AWS sends ka every 60 s
    std::chrono::milliseconds connection_timeout{300 * 1000};  // advertised connectionTimeoutMs
    std::chrono::milliseconds handshake_timeout{15 * 1000};    // TLS + HTTP upgrade must finish
    std::chrono::milliseconds http_idle_timeout{60 * 1000};    // keep-alive HTTP connections
};

struct api_key {
    std::string value;
    std::optional<std::chrono::system_clock::time_point> expires;  // none: never
};

/// POST /chat and the model providers (spec/model-providers.md).
struct chat_config {
    std::string chat_namespace = "BedrockChat";  // events go to /<chat_namespace>/<userId>
    std::string provider;  // default provider: "" picks openai/bedrock when configured, else demo
    std::chrono::milliseconds coalesce{20};  // deltas within this window go out as one event
    /// What a stream publishes: "typed" (start, delta..., end or error, each with type, streamId
    /// and seq) or "sample" (only {"data":"<chunk>"} per delta, as the AWS sample's Lambda).
    /// A POST /chat body's "eventFormat" overrides it for that stream.
    std::string event_format = "typed";
    std::size_t max_streams = 1000;            // concurrent streams; past it: 429
    std::size_t max_streams_per_user = 4;      // concurrent streams per userId; past it: 429
    std::size_t max_prompt_bytes = 64 * 1024;  // prompt + messages + system
    std::uint64_t max_tokens_per_user = 0;     // input + output tokens per budget window; 0: none
    std::chrono::milliseconds budget_window{24 * 60 * 60 * 1000};  // fixed windows from start-up
    std::chrono::seconds retention{600};  // finished streams stay readable this long
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds idle_timeout{120'000};  // no byte from the provider this long: error
    // demo: the offline model
    std::chrono::milliseconds demo_pace{30};
    std::size_t demo_words_per_chunk = 1;
    // bedrock
    std::string bedrock_region;  // empty: AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS
    std::string bedrock_model = "anthropic.claude-3-haiku-20240307-v1:0";
    std::string bedrock_endpoint;  // empty: https://bedrock-runtime.<region>.amazonaws.com
    // openai-compatible
    std::string openai_base_url;  // e.g. http://127.0.0.1:11434 (Ollama); empty: not configured
    std::string openai_model;
    std::string openai_api_key;  // from EVENTCAST_OPENAI_API_KEY only; never logged
    std::string openai_max_tokens_field = "max_tokens";  // OpenAI proper: max_completion_tokens
};

/// Who may connect, subscribe, publish and chat (spec/appsync-events.md §9; README "Auth").
/// Mode names are AWS's (API_KEY, AWS_IAM, AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT,
/// AWS_LAMBDA) or Amplify's (apiKey, iam, userPool, oidc, lambda); src/auth parses them.
struct auth_config {
    std::vector<std::string> connect_modes{"API_KEY"};
    std::vector<std::string> publish_modes{"API_KEY"};  // HTTP and WebSocket publish
    std::vector<std::string> subscribe_modes{"API_KEY"};
    std::vector<std::string> chat_modes;  // POST /chat and its routes; empty: the publish modes
    /// Per-namespace overrides, "NS:publish=MODE|MODE" or "NS:subscribe=MODE|MODE".
    std::vector<std::string> namespace_rules;
    /// Namespaces whose first channel segment is the caller's identity: /<ns>/<identity>/...
    std::vector<std::string> user_namespaces;
    std::string user_claim = "sub";  // which token claim is the identity (sub, username, ...)
    // OPENID_CONNECT
    std::string oidc_issuer;
    std::vector<std::string> oidc_client_ids;  // aud or client_id; empty: not checked
    std::string oidc_jwks;  // file or https:// URL; empty: <issuer>/.well-known/jwks.json
    // AMAZON_COGNITO_USER_POOLS
    std::string cognito_user_pool_id;  // us-east-1_AbCdEf
    std::string cognito_region;        // empty: the pool id's prefix
    std::vector<std::string> cognito_client_ids;
    std::string cognito_jwks;    // empty: <issuer>/.well-known/jwks.json
    std::string cognito_issuer;  // empty: https://cognito-idp.<region>.amazonaws.com/<pool>
    std::string jwks_ca_file;    // CA bundle for JWKS URLs; empty: the system's
    std::chrono::seconds jwt_clock_skew{60};
    std::chrono::seconds jwks_min_refresh{30};  // unknown kids refetch at most this often
    // AWS_IAM
    std::string iam_keys_file;  // lines "ACCESS_KEY_ID SECRET_ACCESS_KEY [principal]"
    std::string iam_region;     // empty: any region in the credential scope
    std::chrono::seconds iam_clock_skew{300};
    // AWS_LAMBDA (an HTTP webhook with the Lambda authorizer's request and response)
    std::string lambda_url;
    std::chrono::milliseconds lambda_timeout{5000};
    std::chrono::seconds lambda_ttl{300};  // cache time when the answer has no ttlOverride
    // rate limits (0: none)
    std::size_t max_connections_per_ip = 0;
    double max_ops_per_second = 0;  // per WebSocket connection: subscribe/unsubscribe/publish
};

/// Cluster mode (docs/CLUSTER.md): nodes share events through NATS. Off when `urls` is empty.
struct cluster_config {
    std::vector<std::string> urls;  // nats://host:port or tls://host:port; several: one cluster
    std::string subject_prefix = "eventcast";  // channel /ns/a -> subject <prefix>.ns.a
    // Reconnect delay: starts at reconnect_wait, doubles per failed round over the URLs up to
    // reconnect_max, plus up to 50% jitter so restarted nodes do not reconnect in step.
    std::chrono::milliseconds reconnect_wait{250};
    std::chrono::milliseconds reconnect_max{5000};
    // A node's first subscription in a namespace waits this long at most for NATS to confirm
    // the node's interest before subscribe_success, so what other nodes publish after the
    // acknowledgement arrives (spec §11.2). Past it the subscription is acknowledged anyway.
    std::chrono::milliseconds subscribe_timeout{1000};
    // A link that goes silent without closing is noticed after ping_interval * (max_pings_out
    // + 1) at most (about 3 s by default): nats.c pings every interval and gives the connection
    // up when more than max_pings_out pings are unanswered.
    std::chrono::milliseconds ping_interval{1000};
    unsigned max_pings_out = 2;
    // A publish handed to NATS reaches this node's own subscribers when NATS echoes it back;
    // past this it is delivered here anyway (docs/decisions/006-cluster-local-delivery.md).
    std::chrono::milliseconds echo_timeout{1000};
    // TLS to NATS, on for tls:// URLs and whenever one of these is set: the CA bundle (PEM) the
    // servers' certificates are checked against (empty: the system's), and a client
    // certificate and key for servers that verify clients.
    std::string tls_ca_file;
    std::string tls_cert_file;
    std::string tls_key_file;
    // Credentials: user and password, or a .creds file (user JWT and NKey seed, from nsc); a
    // URL's user:password@ takes precedence for that server. Never logged.
    std::string user;
    std::string password;
    std::string creds_file;
};

/// How much history one namespace keeps per channel (docs/protocol.md, "History and resume").
/// Either bound at 0 turns history off for the namespace.
struct history_limits {
    std::size_t count = 100;                     // newest events kept per channel
    std::chrono::milliseconds age{10 * 60'000};  // events older than this are dropped
};

struct history_config {
    history_limits defaults;
    std::vector<std::pair<std::string, history_limits>> per_namespace;  // --namespace-history
    std::size_t max_bytes = 64 * 1024 * 1024;  // all namespaces together; oldest evicted first
    /// The override for `ns`, else the defaults.
    const history_limits& for_namespace(std::string_view ns) const noexcept;
};

/// Namespace handlers (src/handlers/, issue #16).
struct handlers_config {
    std::vector<std::string> namespace_code;     // NS:FILE, an ES module per namespace
    std::chrono::milliseconds time_limit{1000};  // per invocation; past it the operation fails
    std::size_t memory_limit_mb = 64;            // per engine context (one per thread)
    /// NS:lambda:FUNCTION, NS:http:BASE_URL or NS:bedrock[:MODEL_ID]: what a handler's
    /// request(ctx)/response(ctx) pair talks to (one per namespace)
    std::vector<std::string> data_sources;
    /// NS:OPERATIONS:INVOKE_TYPE:FUNCTION, e.g. chat:publish+subscribe:REQUEST_RESPONSE:fn:
    /// AppSync's direct Lambda integration (no code)
    std::vector<std::string> direct_lambdas;
    std::string lambda_endpoint;  // empty: https://lambda.<region>.amazonaws.com
    // one data source call, connect included
    std::chrono::milliseconds data_source_timeout{10'000};
};

struct config {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::vector<api_key> api_keys;  // empty after load: one is generated and printed
    bool api_key_generated = false;
    std::vector<std::string> namespaces{"default", "BedrockChat"};
    std::string tls_cert_file;  // PEM; empty: a self-signed one is made at start-up
    std::string tls_key_file;
    std::string tls_self_signed_out;  // where to write the generated certificate (PEM)
    std::string port_file;            // written with the bound port once listening
    std::string admin_listen;         // HOST:PORT for /metrics, /healthz, /readyz; empty: none
    std::chrono::milliseconds drain_delay{0};   // SIGTERM: /readyz 503, keep serving this long
    std::chrono::milliseconds drain_spread{0};  // then close WebSockets (1001) over this long
    std::chrono::milliseconds shutdown_timeout{5'000};  // from SIGTERM to exit, at the latest
    unsigned threads = 0;                               // 0: one per core
    std::string log_level = "info";
    bool log_json = false;
    std::vector<std::string> cors_origins{"*"};
    limits lim;
    chat_config chat;
    auth_config auth;
    cluster_config cluster;
    history_config history;
    handlers_config handlers;
};

/// Parses the command line of `eventcast serve`: argv[0] is "serve" (main passes argv + 1), the
/// options follow. Precedence: flag > EVENTCAST_<NAME> environment > --config file > default.
/// On failure returns every problem, one line each. `--help` is reported as the single line
/// "help:<text>" so main can print it and exit 0.
boost::system::result<config, std::vector<std::string>> load_config(int argc,
                                                                    const char* const* argv);

/// The options (names without "--", in the table's order) whose values differ between `a` and
/// `b`: what a reload (SIGHUP) compares. Values are never returned, so keys stay out of logs.
std::vector<std::string> changed_options(const config& a, const config& b);

/// Parses a duration: a number with a unit, ms, s, m or h ("500ms", "10m"); "0" alone is zero.
boost::system::result<std::chrono::milliseconds, std::string> parse_duration(std::string_view text);
/// The shortest exact form parse_duration reads back: "10m", "90s", "1500ms".
std::string format_duration(std::chrono::milliseconds d);

/// "127.0.0.1:9090" or "[::1]:9090" into an IP address (brackets removed) and a port 1..65535.
bool split_host_port(std::string_view text, std::string& host, std::uint16_t& port);

/// Parses a --namespace-history entry "NAMESPACE:COUNT:AGE", e.g. "BedrockChat:1000:1h".
boost::system::result<std::pair<std::string, history_limits>, std::string> parse_namespace_history(
    std::string_view text);

/// Parses "KEY" or "KEY@EXPIRY" where EXPIRY is seconds since the epoch or an RFC 3339 UTC time
/// (2026-12-31T00:00:00Z). Returns an error line on a bad expiry or an empty key.
boost::system::result<api_key, std::string> parse_api_key(std::string_view text);

}  // namespace eventcast::core

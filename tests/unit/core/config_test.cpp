// Tests src/core/config.cpp: defaults, flags, EVENTCAST_* environment and the TOML config file,
// with precedence flag > environment > config file > default, and every-problem reporting.
#include "core/config.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

namespace eventcast::core {
namespace {

namespace fs = std::filesystem;

// Every variable load_config reads; cleared around each test so the caller's shell cannot leak in.
constexpr const char* env_names[] = {
    "EVENTCAST_HOST",
    "EVENTCAST_PORT",
    "EVENTCAST_API_KEY",
    "EVENTCAST_NAMESPACE",
    "EVENTCAST_TLS_CERT",
    "EVENTCAST_TLS_KEY",
    "EVENTCAST_TLS_SELF_SIGNED_OUT",
    "EVENTCAST_PORT_FILE",
    "EVENTCAST_THREADS",
    "EVENTCAST_LOG_LEVEL",
    "EVENTCAST_LOG_JSON",
    "EVENTCAST_CORS_ORIGIN",
    "EVENTCAST_MAX_EVENT_BYTES",
    "EVENTCAST_MAX_EVENTS_PER_PUBLISH",
    "EVENTCAST_MAX_SUBSCRIPTIONS",
    "EVENTCAST_MAX_HEADER_BYTES",
    "EVENTCAST_MAX_FRAME_BYTES",
    "EVENTCAST_MAX_BODY_BYTES",
    "EVENTCAST_MAX_OUTBOX_BYTES",
    "EVENTCAST_CONNECTION_LIFETIME_MS",
    "EVENTCAST_KEEPALIVE_MS",
    "EVENTCAST_CONNECTION_TIMEOUT_MS",
    "EVENTCAST_HANDSHAKE_TIMEOUT_MS",
    "EVENTCAST_CLUSTER",
    "EVENTCAST_CLUSTER_SUBJECT_PREFIX",
    "EVENTCAST_CLUSTER_RECONNECT_WAIT_MS",
    "EVENTCAST_CLUSTER_RECONNECT_MAX_MS",
    "EVENTCAST_CLUSTER_SUBSCRIBE_TIMEOUT_MS",
    "EVENTCAST_CLUSTER_PASSWORD",
};

class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* name : env_names) {
            if (const char* v = std::getenv(name))
                saved_.emplace_back(name, v);
            ::unsetenv(name);
        }
        dir_ = fs::temp_directory_path() /
               ("eventcast-config-test-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override {
        for (const char* name : env_names)
            ::unsetenv(name);
        for (const auto& [name, value] : saved_)
            ::setenv(name.c_str(), value.c_str(), 1);
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    static void set_env(const char* name, const char* value) { ::setenv(name, value, 1); }

    // Writes a config file in this test's temp dir and returns its path.
    std::string write_file(const std::string& name, const std::string& text) {
        const auto path = dir_ / name;
        std::ofstream(path) << text;
        return path.string();
    }

    // load_config as main calls it: argv[0] is "serve".
    static boost::system::result<config, std::vector<std::string>> load(
        std::vector<std::string> args) {
        args.insert(args.begin(), "serve");
        std::vector<const char*> argv;
        for (const auto& a : args)
            argv.push_back(a.c_str());
        return load_config(static_cast<int>(argv.size()), argv.data());
    }

    static config loaded(std::vector<std::string> args) {
        auto r = load(std::move(args));
        std::string problems;
        if (!r)
            for (const auto& p : r.error())
                problems += p + "\n";
        EXPECT_TRUE(r.has_value()) << problems;
        return r ? *r : config{};
    }

    static std::vector<std::string> problems(std::vector<std::string> args) {
        auto r = load(std::move(args));
        EXPECT_FALSE(r.has_value()) << "expected load_config to fail";
        return r ? std::vector<std::string>{} : r.error();
    }

    static std::vector<std::string> key_values(const config& cfg) {
        std::vector<std::string> out;
        for (const auto& k : cfg.api_keys)
            out.push_back(k.value);
        return out;
    }

    fs::path dir_;
    std::vector<std::pair<std::string, std::string>> saved_;
};

bool any_contains(const std::vector<std::string>& lines, std::string_view needle) {
    for (const auto& l : lines)
        if (l.find(needle) != std::string::npos)
            return true;
    return false;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

// The chat namespace (--chat-namespace, default BedrockChat) is always among the namespaces:
// it is added when --namespace leaves it out.

// ---- defaults and flags -------------------------------------------------------------------------

TEST_F(ConfigTest, AddsTheChatNamespaceWhenNamespacesLeaveItOut) {
    EXPECT_EQ(loaded({"--namespace", "foo"}).namespaces,
              (std::vector<std::string>{"foo", "BedrockChat"}));
    EXPECT_EQ(loaded({"--namespace", "foo", "--chat-namespace", "talk"}).namespaces,
              (std::vector<std::string>{"foo", "talk"}));
}

TEST_F(ConfigTest, NamespaceCodeIsRepeatableWithItsLimits) {
    const auto d = loaded({});
    EXPECT_TRUE(d.handlers.namespace_code.empty());
    EXPECT_EQ(d.handlers.time_limit, std::chrono::milliseconds(1000));
    EXPECT_EQ(d.handlers.memory_limit_mb, 64u);
    const auto cfg = loaded({"--namespace-code", "default:a.js", "--namespace-code", "x:b.js",
                             "--handler-time-limit-ms", "50", "--handler-memory-limit-mb", "16"});
    EXPECT_EQ(cfg.handlers.namespace_code, (std::vector<std::string>{"default:a.js", "x:b.js"}));
    EXPECT_EQ(cfg.handlers.time_limit, std::chrono::milliseconds(50));
    EXPECT_EQ(cfg.handlers.memory_limit_mb, 16u);
}

TEST_F(ConfigTest, DataSourcesAndDirectLambdaAreRepeatable) {
    const auto d = loaded({});
    EXPECT_TRUE(d.handlers.data_sources.empty());
    EXPECT_TRUE(d.handlers.direct_lambdas.empty());
    EXPECT_EQ(d.handlers.lambda_endpoint, "");
    EXPECT_EQ(d.handlers.data_source_timeout, std::chrono::milliseconds(10'000));
    const auto cfg =
        loaded({"--namespace-data-source", "a:lambda:fn", "--namespace-data-source",
                "b:http:http://127.0.0.1:9/x", "--namespace-direct-lambda", "c:publish:EVENT:fn",
                "--lambda-endpoint", "http://127.0.0.1:1", "--data-source-timeout-ms", "250"});
    EXPECT_EQ(cfg.handlers.data_sources,
              (std::vector<std::string>{"a:lambda:fn", "b:http:http://127.0.0.1:9/x"}));
    EXPECT_EQ(cfg.handlers.direct_lambdas, (std::vector<std::string>{"c:publish:EVENT:fn"}));
    EXPECT_EQ(cfg.handlers.lambda_endpoint, "http://127.0.0.1:1");
    EXPECT_EQ(cfg.handlers.data_source_timeout, std::chrono::milliseconds(250));
}

TEST_F(ConfigTest, DefaultsAreSafeAndMatchAws) {
    const auto cfg = loaded({});
    EXPECT_EQ(cfg.host, "127.0.0.1");
    EXPECT_EQ(cfg.port, 8080);
    EXPECT_TRUE(cfg.api_keys.empty());
    EXPECT_FALSE(cfg.api_key_generated);
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"default", "BedrockChat"}));
    EXPECT_TRUE(cfg.tls_cert_file.empty());
    EXPECT_TRUE(cfg.tls_key_file.empty());
    EXPECT_GE(cfg.threads, 1u) << "0 becomes one per core";
    EXPECT_EQ(cfg.log_level, "info");
    EXPECT_FALSE(cfg.log_json);
    EXPECT_EQ(cfg.cors_origins, (std::vector<std::string>{"*"}));
    EXPECT_EQ(cfg.lim.max_event_bytes, 240u * 1024);
    EXPECT_EQ(cfg.lim.max_events_per_publish, 5u);
    EXPECT_EQ(cfg.lim.max_subscriptions, 200u);
    EXPECT_EQ(cfg.lim.max_id_chars, 128u);
    EXPECT_EQ(cfg.lim.connection_lifetime, milliseconds(24 * 60 * 60 * 1000));
    EXPECT_EQ(cfg.lim.keepalive_interval, milliseconds(60000));
    EXPECT_EQ(cfg.lim.connection_timeout, milliseconds(300000));
    EXPECT_EQ(cfg.lim.handshake_timeout, milliseconds(15000));
}

TEST_F(ConfigTest, FlagsSetEveryKnob) {
    const auto cfg = loaded({"--host",
                             "0.0.0.0",
                             "--port",
                             "9000",
                             "--threads",
                             "3",
                             "--log-level",
                             "debug",
                             "--log-json",
                             "--tls-cert",
                             "c.pem",
                             "--tls-key",
                             "k.pem",
                             "--port-file",
                             "p.txt",
                             "--cors-origin",
                             "https://a.example",
                             "--max-event-bytes",
                             "1000",
                             "--max-events-per-publish",
                             "7",
                             "--max-subscriptions",
                             "10",
                             "--max-frame-bytes",
                             "5000",
                             "--max-body-bytes",
                             "6000",
                             "--max-outbox-bytes",
                             "7000",
                             "--max-header-bytes",
                             "8000",
                             "--connection-lifetime-ms",
                             "1000",
                             "--keepalive-ms",
                             "2000",
                             "--connection-timeout-ms",
                             "3000",
                             "--handshake-timeout-ms",
                             "4000"});
    EXPECT_EQ(cfg.host, "0.0.0.0");
    EXPECT_EQ(cfg.port, 9000);
    EXPECT_EQ(cfg.threads, 3u);
    EXPECT_EQ(cfg.log_level, "debug");
    EXPECT_TRUE(cfg.log_json);
    EXPECT_EQ(cfg.tls_cert_file, "c.pem");
    EXPECT_EQ(cfg.tls_key_file, "k.pem");
    EXPECT_EQ(cfg.port_file, "p.txt");
    EXPECT_EQ(cfg.cors_origins, (std::vector<std::string>{"https://a.example"}));
    EXPECT_EQ(cfg.lim.max_event_bytes, 1000u);
    EXPECT_EQ(cfg.lim.max_events_per_publish, 7u);
    EXPECT_EQ(cfg.lim.max_subscriptions, 10u);
    EXPECT_EQ(cfg.lim.max_frame_bytes, 5000u);
    EXPECT_EQ(cfg.lim.max_body_bytes, 6000u);
    EXPECT_EQ(cfg.lim.max_outbox_bytes, 7000u);
    EXPECT_EQ(cfg.lim.max_header_bytes, 8000u);
    EXPECT_EQ(cfg.lim.connection_lifetime, milliseconds(1000));
    EXPECT_EQ(cfg.lim.keepalive_interval, milliseconds(2000));
    EXPECT_EQ(cfg.lim.connection_timeout, milliseconds(3000));
    EXPECT_EQ(cfg.lim.handshake_timeout, milliseconds(4000));
}

TEST_F(ConfigTest, FlagsAcceptTheEqualsForm) {
    const auto cfg = loaded({"--port=9100", "--namespace=chat", "--namespace=BedrockChat"});
    EXPECT_EQ(cfg.port, 9100);
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"chat", "BedrockChat"}));
}

TEST_F(ConfigTest, PortZeroMeansAnyFreePort) {
    EXPECT_EQ(loaded({"--port", "0"}).port, 0);
}

TEST_F(ConfigTest, ServiceOptionsParseAndRefuseWhatCannotWork) {
    const auto cfg =
        loaded({"--admin-listen", "[::1]:9090", "--drain-delay-ms", "5000", "--drain-spread-ms",
                "2000", "--shutdown-timeout-ms", "9000", "--chat-max-tokens-per-user", "100000",
                "--chat-budget-window", "24h"});
    EXPECT_EQ(cfg.admin_listen, "[::1]:9090");
    EXPECT_EQ(cfg.drain_delay, milliseconds(5000));
    EXPECT_EQ(cfg.drain_spread, milliseconds(2000));
    EXPECT_EQ(cfg.shutdown_timeout, milliseconds(9000));
    EXPECT_EQ(cfg.chat.max_tokens_per_user, 100000u);
    EXPECT_EQ(cfg.chat.budget_window, milliseconds(24 * 3600 * 1000));
    const config defaults;
    EXPECT_TRUE(defaults.admin_listen.empty());
    EXPECT_EQ(defaults.drain_delay, milliseconds(0));
    EXPECT_EQ(defaults.shutdown_timeout, milliseconds(5000));
    EXPECT_EQ(defaults.chat.max_tokens_per_user, 0u);
    for (const char* bad :
         {"9090", "localhost:9090", "127.0.0.1:0", "127.0.0.1:70000", "::1:9090", "127.0.0.1:"})
        EXPECT_TRUE(any_contains(problems({"--admin-listen", bad}), "is not HOST:PORT")) << bad;
    EXPECT_TRUE(any_contains(problems({"--chat-budget-window", "0"}), "not a duration above 0"));
    EXPECT_TRUE(any_contains(problems({"--shutdown-timeout-ms", "0"}), "out of range"));
}

TEST_F(ConfigTest, ApiKeyIsRepeatable) {
    const auto cfg = loaded({"--api-key", "k1", "--api-key", "k2@1700000000", "--api-key", "k3"});
    EXPECT_EQ(key_values(cfg), (std::vector<std::string>{"k1", "k2", "k3"}));
    EXPECT_FALSE(cfg.api_keys[0].expires.has_value());
    ASSERT_TRUE(cfg.api_keys[1].expires.has_value());
    EXPECT_EQ(*cfg.api_keys[1].expires, system_clock::time_point(seconds(1700000000)));
}

TEST_F(ConfigTest, ApiKeyAcceptsACommaSeparatedList) {
    EXPECT_EQ(key_values(loaded({"--api-key", "a,b"})), (std::vector<std::string>{"a", "b"}));
}

TEST_F(ConfigTest, NamespaceIsRepeatableAndReplacesTheDefaults) {
    const auto cfg =
        loaded({"--namespace", "chat", "--namespace", "game-1", "--namespace", "BedrockChat"});
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"chat", "game-1", "BedrockChat"}));
}

TEST_F(ConfigTest, CorsOriginIsRepeatable) {
    const auto cfg = loaded({"--cors-origin", "https://a", "--cors-origin", "https://b"});
    EXPECT_EQ(cfg.cors_origins, (std::vector<std::string>{"https://a", "https://b"}));
}

TEST_F(ConfigTest, CorsOriginMustBeStarOrAnOriginWithScheme) {
    EXPECT_EQ(loaded({}).cors_origins, (std::vector<std::string>{"*"}));
    const auto lines = problems({"--cors-origin", "app.example.com"});
    EXPECT_TRUE(any_contains(lines, "cors-origin")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "https://")) << joined(lines);
}

TEST_F(ConfigTest, ChatEventFormatIsTypedByDefaultOrSample) {
    EXPECT_EQ(loaded({}).chat.event_format, "typed");
    EXPECT_EQ(loaded({"--chat-event-format", "sample"}).chat.event_format, "sample");
    const auto lines = problems({"--chat-event-format", "raw"});
    EXPECT_TRUE(any_contains(lines, "chat-event-format")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "typed, sample")) << joined(lines);
}

TEST_F(ConfigTest, HelpIsReportedAsOneHelpLine) {
    const auto lines = problems({"--help"});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].rfind("help:", 0), 0u);
    EXPECT_NE(lines[0].find("--api-key"), std::string::npos);
    EXPECT_NE(lines[0].find("EVENTCAST_PORT"), std::string::npos) << "help names the variables";
}

// ---- environment --------------------------------------------------------------------------------

TEST_F(ConfigTest, EnvironmentSetsKnobs) {
    set_env("EVENTCAST_PORT", "9001");
    set_env("EVENTCAST_HOST", "0.0.0.0");
    set_env("EVENTCAST_API_KEY", "e1,e2@1700000000");
    set_env("EVENTCAST_NAMESPACE", "envns,BedrockChat");
    set_env("EVENTCAST_MAX_EVENTS_PER_PUBLISH", "9");
    set_env("EVENTCAST_KEEPALIVE_MS", "1234");
    set_env("EVENTCAST_LOG_JSON", "true");
    const auto cfg = loaded({});
    EXPECT_EQ(cfg.port, 9001);
    EXPECT_EQ(cfg.host, "0.0.0.0");
    EXPECT_EQ(key_values(cfg), (std::vector<std::string>{"e1", "e2"}));
    EXPECT_TRUE(cfg.api_keys[1].expires.has_value());
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"envns", "BedrockChat"}));
    EXPECT_EQ(cfg.lim.max_events_per_publish, 9u);
    EXPECT_EQ(cfg.lim.keepalive_interval, milliseconds(1234));
    EXPECT_TRUE(cfg.log_json);
}

TEST_F(ConfigTest, FlagBeatsEnvironment) {
    set_env("EVENTCAST_PORT", "9001");
    set_env("EVENTCAST_API_KEY", "from-env");
    const auto cfg = loaded({"--port", "9002", "--api-key", "from-flag"});
    EXPECT_EQ(cfg.port, 9002);
    EXPECT_EQ(key_values(cfg), (std::vector<std::string>{"from-flag"}));
}

TEST_F(ConfigTest, BadEnvironmentValueIsReported) {
    set_env("EVENTCAST_PORT", "eighty");
    const auto lines = problems({});
    EXPECT_TRUE(any_contains(lines, "port")) << joined(lines);
}

// ---- config file --------------------------------------------------------------------------------

TEST_F(ConfigTest, ConfigFileSetsKnobsByLongOptionName) {
    const auto file = write_file("eventcast.toml",
                                 "# eventcast config\n"
                                 "host = \"0.0.0.0\"\n"
                                 "port = 9003\n"
                                 "api-key = [\"f1\", \"f2@2026-12-31T00:00:00Z\"]\n"
                                 "namespace = [\"filens\", \"BedrockChat\"]\n"
                                 "max-events-per-publish = 3\n"
                                 "log-json = true\n");
    const auto cfg = loaded({"--config", file});
    EXPECT_EQ(cfg.host, "0.0.0.0");
    EXPECT_EQ(cfg.port, 9003);
    EXPECT_EQ(key_values(cfg), (std::vector<std::string>{"f1", "f2"}));
    ASSERT_TRUE(cfg.api_keys[1].expires.has_value());
    EXPECT_EQ(*cfg.api_keys[1].expires, system_clock::time_point(seconds(1798675200)));
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"filens", "BedrockChat"}));
    EXPECT_EQ(cfg.lim.max_events_per_publish, 3u);
    EXPECT_TRUE(cfg.log_json);
}

TEST_F(ConfigTest, EnvironmentBeatsConfigFile) {
    const auto file = write_file("eventcast.toml",
                                 "port = 9003\nnamespace = [\"filens\", \"BedrockChat\"]\n"
                                 "api-key = [\"file-key\"]\n"
                                 "host = \"10.0.0.1\"\n");
    set_env("EVENTCAST_PORT", "9001");
    set_env("EVENTCAST_NAMESPACE", "envns,BedrockChat");
    set_env("EVENTCAST_API_KEY", "env-key");
    const auto cfg = loaded({"--config", file});
    EXPECT_EQ(cfg.port, 9001);
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"envns", "BedrockChat"}));
    EXPECT_EQ(key_values(cfg), (std::vector<std::string>{"env-key"}));
    EXPECT_EQ(cfg.host, "10.0.0.1")
        << "what the environment does not set still comes from the file";
}

TEST_F(ConfigTest, FlagBeatsEnvironmentAndConfigFile) {
    const auto file =
        write_file("eventcast.toml", "port = 9003\nnamespace = [\"filens\", \"BedrockChat\"]\n");
    set_env("EVENTCAST_PORT", "9001");
    set_env("EVENTCAST_NAMESPACE", "envns,BedrockChat");
    const auto cfg =
        loaded({"--config", file, "--port", "9002", "--namespace", "flagns,BedrockChat"});
    EXPECT_EQ(cfg.port, 9002);
    EXPECT_EQ(cfg.namespaces, (std::vector<std::string>{"flagns", "BedrockChat"}));
}

TEST_F(ConfigTest, FlagBeatsConfigFile) {
    const auto file = write_file("eventcast.toml", "port = 9003\n");
    EXPECT_EQ(loaded({"--config", file, "--port", "9004"}).port, 9004);
    EXPECT_EQ(loaded({"--port", "9004", "--config", file}).port, 9004);
}

TEST_F(ConfigTest, MissingConfigFileIsReported) {
    const auto lines = problems({"--config", (dir_ / "absent.toml").string()});
    EXPECT_FALSE(lines.empty());
    EXPECT_TRUE(any_contains(lines, "absent.toml")) << joined(lines);
}

TEST_F(ConfigTest, BadValueInConfigFileIsReported) {
    const auto file = write_file("eventcast.toml", "port = 70000\n");
    const auto lines = problems({"--config", file});
    EXPECT_TRUE(any_contains(lines, "port")) << joined(lines);
}

// ---- bad values ---------------------------------------------------------------------------------

TEST_F(ConfigTest, RejectsPortOutOfRange) {
    const auto lines = problems({"--port", "70000"});
    EXPECT_TRUE(any_contains(lines, "port")) << joined(lines);
    EXPECT_FALSE(load({"--port", "-1"}).has_value());
    EXPECT_FALSE(load({"--port", "http"}).has_value());
}

TEST_F(ConfigTest, RejectsUnknownLogLevel) {
    const auto lines = problems({"--log-level", "loud"});
    EXPECT_TRUE(any_contains(lines, "log-level")) << joined(lines);
}

TEST_F(ConfigTest, RejectsZeroLimits) {
    for (const char* flag : {"--max-event-bytes", "--max-events-per-publish", "--max-subscriptions",
                             "--keepalive-ms", "--max-outbox-bytes"}) {
        const auto lines = problems({flag, "0"});
        EXPECT_FALSE(lines.empty()) << flag;
    }
}

TEST_F(ConfigTest, MaxJsonDepthIsALimitWithARange) {
    EXPECT_EQ(loaded({}).lim.max_json_depth, 64u);
    EXPECT_EQ(loaded({"--max-json-depth", "100"}).lim.max_json_depth, 100u);
    for (const char* bad : {"0", "10001", "deep"}) {
        const auto lines = problems({"--max-json-depth", bad});
        EXPECT_TRUE(any_contains(lines, "max-json-depth")) << bad << ": " << joined(lines);
    }
}

TEST_F(ConfigTest, RejectsUnknownOption) {
    const auto lines = problems({"--prot", "1"});
    EXPECT_TRUE(any_contains(lines, "--prot")) << joined(lines);
}

TEST_F(ConfigTest, RejectsInvalidNamespaceNames) {
    for (const char* ns : {"bad_ns", "-a", "a-", "a/b", "*"}) {
        const auto lines = problems({std::string("--namespace=") + ns, "--namespace=BedrockChat"});
        ASSERT_EQ(lines.size(), 1u) << ns << "\n" << joined(lines);
        EXPECT_NE(lines[0].find(std::string("'") + ns + "' is not a namespace name"),
                  std::string::npos)
            << lines[0];
    }
    EXPECT_FALSE(
        load({"--namespace", std::string(51, 'a'), "--namespace", "BedrockChat"}).has_value());
    EXPECT_TRUE(
        load({"--namespace", std::string(50, 'a'), "--namespace", "BedrockChat"}).has_value());
}

TEST_F(ConfigTest, RejectsTlsCertWithoutKey) {
    const auto lines = problems({"--tls-cert", "c.pem"});
    ASSERT_EQ(lines.size(), 1u) << joined(lines);
    EXPECT_NE(lines[0].find("--tls-cert and --tls-key go together"), std::string::npos);
    EXPECT_EQ(problems({"--tls-key", "k.pem"}).size(), 1u);
}

TEST_F(ConfigTest, RejectsEventLimitAboveFrameLimit) {
    const auto lines = problems({"--max-event-bytes", "100", "--max-frame-bytes", "50"});
    ASSERT_EQ(lines.size(), 1u) << joined(lines);
    EXPECT_NE(lines[0].find("--max-event-bytes must not exceed --max-frame-bytes"),
              std::string::npos);
}

TEST_F(ConfigTest, ReportsEveryProblemAtOnce) {
    const auto lines = problems({"--api-key", "@1", "--api-key", "k@soon", "--namespace", "bad_ns",
                                 "--namespace", "BedrockChat", "--tls-cert", "c.pem",
                                 "--max-event-bytes", "100", "--max-frame-bytes", "50"});
    ASSERT_EQ(lines.size(), 5u) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "--api-key: api key is empty")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "--api-key: api key expiry 'soon'")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "'bad_ns' is not a namespace name")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "--tls-cert and --tls-key")) << joined(lines);
    EXPECT_TRUE(any_contains(lines, "--max-event-bytes must not exceed")) << joined(lines);
}

// ---- parse_api_key ------------------------------------------------------------------------------

TEST_F(ConfigTest, ClusterIsOffByDefault) {
    const auto cfg = loaded({});
    EXPECT_TRUE(cfg.cluster.urls.empty());
    EXPECT_EQ(cfg.cluster.subject_prefix, "eventcast");
}

TEST_F(ConfigTest, ClusterUrlsAreRepeatableCommaSeparatedAndFromTheEnvironment) {
    auto cfg = loaded({"--cluster", "nats://10.0.0.1:4222,nats://10.0.0.2:4222", "--cluster",
                       "tls://n3:4222", "--cluster-subject-prefix", "acme.events",
                       "--cluster-reconnect-wait-ms", "100", "--cluster-reconnect-max-ms", "900",
                       "--cluster-subscribe-timeout-ms", "300"});
    EXPECT_EQ(cfg.cluster.urls,
              (std::vector<std::string>{"nats://10.0.0.1:4222", "nats://10.0.0.2:4222",
                                        "tls://n3:4222"}));
    EXPECT_EQ(cfg.cluster.subject_prefix, "acme.events");
    EXPECT_EQ(cfg.cluster.reconnect_wait, std::chrono::milliseconds(100));
    EXPECT_EQ(cfg.cluster.reconnect_max, std::chrono::milliseconds(900));
    EXPECT_EQ(cfg.cluster.subscribe_timeout, std::chrono::milliseconds(300));
    set_env("EVENTCAST_CLUSTER", "nats://a:1,nats://b:2");
    cfg = loaded({});
    EXPECT_EQ(cfg.cluster.urls, (std::vector<std::string>{"nats://a:1", "nats://b:2"}));
}

TEST_F(ConfigTest, ClusterNoticesASilentLinkWithinSecondsByDefault) {
    auto cfg = loaded({});
    // nats.c drops the link once more than max_pings_out pings are unanswered.
    EXPECT_LE(cfg.cluster.ping_interval * (cfg.cluster.max_pings_out + 1),
              std::chrono::milliseconds(5000));
    EXPECT_LE(cfg.cluster.echo_timeout, std::chrono::milliseconds(2000));
    cfg = loaded({"--cluster-ping-interval-ms", "250", "--cluster-max-pings-out", "4",
                  "--cluster-echo-timeout-ms", "300"});
    EXPECT_EQ(cfg.cluster.ping_interval, std::chrono::milliseconds(250));
    EXPECT_EQ(cfg.cluster.max_pings_out, 4u);
    EXPECT_EQ(cfg.cluster.echo_timeout, std::chrono::milliseconds(300));
    EXPECT_FALSE(problems({"--cluster-ping-interval-ms", "10"}).empty());
    EXPECT_FALSE(problems({"--cluster-max-pings-out", "0"}).empty());
}

TEST_F(ConfigTest, ClusterTlsAndCredentialsComeFromFlagsAndTheEnvironment) {
    set_env("EVENTCAST_CLUSTER_PASSWORD", "s3cret");
    auto cfg = loaded({"--cluster", "tls://n1:4222", "--cluster-tls-ca", "/etc/ca.pem",
                       "--cluster-tls-cert", "/etc/c.pem", "--cluster-tls-key", "/etc/k.pem",
                       "--cluster-user", "events"});
    EXPECT_EQ(cfg.cluster.tls_ca_file, "/etc/ca.pem");
    EXPECT_EQ(cfg.cluster.tls_cert_file, "/etc/c.pem");
    EXPECT_EQ(cfg.cluster.tls_key_file, "/etc/k.pem");
    EXPECT_EQ(cfg.cluster.user, "events");
    EXPECT_EQ(cfg.cluster.password, "s3cret") << "the password need not be on the command line";
    cfg = loaded({"--cluster", "nats://n1:4222", "--cluster-creds", "/etc/node.creds",
                  "--cluster-user", "", "--cluster-password", ""});
    EXPECT_EQ(cfg.cluster.creds_file, "/etc/node.creds");
}

TEST_F(ConfigTest, RejectsClusterTlsAndCredentialsThatDoNotGoTogether) {
    auto p = problems({"--cluster", "nats://n1:4222", "--cluster-tls-cert", "/c.pem",
                       "--cluster-user", "u", "--cluster-creds", "/x.creds"});
    EXPECT_TRUE(any_contains(p, "--cluster-tls-cert and --cluster-tls-key go together"))
        << joined(p);
    EXPECT_TRUE(any_contains(p, "--cluster-user and --cluster-password go together")) << joined(p);
    EXPECT_TRUE(any_contains(p, "--cluster-creds and --cluster-user are two ways")) << joined(p);
    p = problems({"--cluster-tls-ca", "/ca.pem"});
    EXPECT_TRUE(any_contains(p, "need --cluster")) << joined(p);
}

TEST_F(ConfigTest, RejectsBadClusterSettings) {
    const auto p =
        problems({"--cluster", "http://x:4222", "--cluster", "nats://", "--cluster", "nats://a b:1",
                  "--cluster-subject-prefix", "a.*", "--cluster-reconnect-wait-ms", "500",
                  "--cluster-reconnect-max-ms", "100"});
    EXPECT_TRUE(any_contains(p, "'http://x:4222' is not a NATS URL")) << joined(p);
    EXPECT_TRUE(any_contains(p, "'nats://' is not a NATS URL")) << joined(p);
    EXPECT_TRUE(any_contains(p, "'nats://a b:1' is not a NATS URL")) << joined(p);
    EXPECT_TRUE(any_contains(p, "--cluster-subject-prefix: 'a.*'")) << joined(p);
    EXPECT_TRUE(any_contains(p, "--cluster-reconnect-max-ms must not be below")) << joined(p);
    for (const auto* prefix : {"", ".a", "a.", "a..b", "a>", "a b"})
        EXPECT_FALSE(problems({"--cluster-subject-prefix", prefix}).empty()) << prefix;
}

TEST(ParseApiKeyTest, KeyWithoutExpiryNeverExpires) {
    auto k = parse_api_key("da2-abc");
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->value, "da2-abc");
    EXPECT_FALSE(k->expires.has_value());
}

TEST(ParseApiKeyTest, ExpiryInEpochSeconds) {
    auto k = parse_api_key("key@1700000000");
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->value, "key");
    ASSERT_TRUE(k->expires.has_value());
    EXPECT_EQ(*k->expires, system_clock::time_point(seconds(1700000000)));
}

TEST(ParseApiKeyTest, ExpiryInRfc3339Utc) {
    for (const char* text : {"key@2026-12-31T00:00:00Z", "key@2026-12-31T00:00:00z"}) {
        auto k = parse_api_key(text);
        ASSERT_TRUE(k.has_value()) << text << ": " << k.error();
        EXPECT_EQ(k->value, "key");
        ASSERT_TRUE(k->expires.has_value());
        EXPECT_EQ(*k->expires, system_clock::time_point(seconds(1798675200))) << text;
    }
    auto k = parse_api_key("key@2024-02-29T12:34:56Z");
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(*k->expires, system_clock::time_point(seconds(1709210096)));
}

TEST(ParseApiKeyTest, TheLastAtSeparatesTheExpiry) {
    auto k = parse_api_key("a@b@1700000000");
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->value, "a@b");
    EXPECT_TRUE(k->expires.has_value());
}

TEST(ParseApiKeyTest, RejectsEmptyKey) {
    for (const char* text : {"", "@1700000000"}) {
        auto k = parse_api_key(text);
        ASSERT_FALSE(k.has_value()) << text;
        EXPECT_NE(k.error().find("api key is empty"), std::string::npos) << k.error();
    }
}

TEST(ParseApiKeyTest, RejectsBadExpiryAndNamesIt) {
    for (const char* expiry :
         {"", "soon", "2026-12-31", "2026-12-31T00:00:00", "2026-12-31T00:00:00Zjunk",
          "2026-13-01T00:00:00Z", "12x", "2026-12-31 00:00:00Z"}) {
        auto k = parse_api_key(std::string("key@") + expiry);
        ASSERT_FALSE(k.has_value()) << expiry;
        EXPECT_NE(k.error().find(std::string("api key expiry '") + expiry + "'"), std::string::npos)
            << k.error();
        EXPECT_NE(k.error().find("2026-12-31T00:00:00Z"), std::string::npos) << "shows the format";
    }
}

// ---- history ------------------------------------------------------------------------------------

TEST_F(ConfigTest, HistoryDefaultsAreDocumented) {
    const auto cfg = loaded({});
    EXPECT_EQ(cfg.history.defaults.count, 100u);
    EXPECT_EQ(cfg.history.defaults.age, std::chrono::minutes(10));
    EXPECT_EQ(cfg.history.max_bytes, 64u * 1024 * 1024);
    EXPECT_EQ(cfg.history.for_namespace("default").count, 100u);
    // The chat namespace keeps at least 1000 (an answer is one event per delta).
    EXPECT_EQ(cfg.history.for_namespace("BedrockChat").count, 1000u);
    EXPECT_EQ(cfg.history.for_namespace("BedrockChat").age, std::chrono::minutes(10));
}

TEST_F(ConfigTest, HistoryFlagsAndPerNamespaceOverrides) {
    const auto cfg = loaded({"--namespace", "default,room", "--history-count", "5", "--history-age",
                             "90s", "--history-max-bytes", "1000000", "--namespace-history",
                             "room:0:1h", "--namespace-history", "BedrockChat:20:500ms"});
    EXPECT_EQ(cfg.history.defaults.count, 5u);
    EXPECT_EQ(cfg.history.defaults.age, std::chrono::seconds(90));
    EXPECT_EQ(cfg.history.max_bytes, 1000000u);
    EXPECT_EQ(cfg.history.for_namespace("default").count, 5u);
    EXPECT_EQ(cfg.history.for_namespace("room").count, 0u);
    EXPECT_EQ(cfg.history.for_namespace("room").age, std::chrono::hours(1));
    EXPECT_EQ(cfg.history.for_namespace("BedrockChat").count, 20u) << "an override wins";
    EXPECT_EQ(cfg.history.for_namespace("BedrockChat").age, std::chrono::milliseconds(500));
}

TEST_F(ConfigTest, HistoryOffEverywhereLeavesTheChatNamespaceOffToo) {
    const auto cfg = loaded({"--history-count", "0"});
    EXPECT_EQ(cfg.history.for_namespace("BedrockChat").count, 0u);
}

TEST_F(ConfigTest, HistoryFromAConfigFile) {
    const auto file = write_file("eventcast.toml",
                                 "history-count = 7\n"
                                 "history-age = \"2h\"\n"
                                 "namespace-history = [\"default:3:1m\"]\n");
    const auto cfg = loaded({"--config", file});
    EXPECT_EQ(cfg.history.defaults.count, 7u);
    EXPECT_EQ(cfg.history.defaults.age, std::chrono::hours(2));
    EXPECT_EQ(cfg.history.for_namespace("default").count, 3u);
    EXPECT_EQ(cfg.history.for_namespace("default").age, std::chrono::minutes(1));
}

TEST_F(ConfigTest, BadHistoryValuesAreReportedClearly) {
    auto p = problems({"--history-age", "10"});
    EXPECT_TRUE(any_contains(p,
                             "--history-age: '10' is not a duration; expected a number and a "
                             "unit (ms, s, m, h) like 10m, or 0"))
        << joined(p);
    p = problems({"--namespace-history", "default:ten:1m", "--namespace-history", "nope:1:1m",
                  "--namespace-history", "default:1", "--namespace-history", "default:1:1d"});
    EXPECT_TRUE(any_contains(p, "COUNT 'ten' is not a whole number")) << joined(p);
    EXPECT_TRUE(any_contains(p, "'nope' is not a configured namespace")) << joined(p);
    EXPECT_TRUE(any_contains(p, "'default:1' is not NAMESPACE:COUNT:AGE")) << joined(p);
    EXPECT_TRUE(any_contains(p, "AGE '1d' is not a duration")) << joined(p);
}

TEST(DurationTest, ParsesAndFormatsEveryUnit) {
    EXPECT_EQ(*parse_duration("0"), std::chrono::milliseconds(0));
    EXPECT_EQ(*parse_duration("250ms"), std::chrono::milliseconds(250));
    EXPECT_EQ(*parse_duration("30s"), std::chrono::seconds(30));
    EXPECT_EQ(*parse_duration("10m"), std::chrono::minutes(10));
    EXPECT_EQ(*parse_duration("2h"), std::chrono::hours(2));
    for (std::string_view bad : {"", "m", "10", "-1s", "1.5s", "10 m", "10M", "99999999999999999h"})
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
    EXPECT_EQ(format_duration(std::chrono::milliseconds(0)), "0");
    EXPECT_EQ(format_duration(std::chrono::minutes(10)), "10m");
    EXPECT_EQ(format_duration(std::chrono::seconds(90)), "90s");
    EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
    EXPECT_EQ(format_duration(std::chrono::hours(3)), "3h");
}

}  // namespace
}  // namespace eventcast::core

namespace eventcast::core {
namespace {

// What a reload compares: names only, in the table's order, keys and histories included.
TEST(ChangedOptionsTest, NamesEveryOptionThatDiffersAndNothingElse) {
    config a, b;
    EXPECT_TRUE(changed_options(a, b).empty());
    b.port = 9000;
    b.lim.max_subscriptions = 5;
    b.log_level = "debug";
    EXPECT_EQ(changed_options(a, b),
              (std::vector<std::string>{"port", "log-level", "max-subscriptions"}));
    config c, d;
    d.api_keys = {{"k", std::nullopt}};
    EXPECT_EQ(changed_options(c, d), std::vector<std::string>{"api-key"});
    c.api_keys = {{"k", std::chrono::system_clock::time_point{}}};
    EXPECT_EQ(changed_options(c, d), std::vector<std::string>{"api-key"});  // the expiry counts
    config e, f;
    f.history.per_namespace = {{"ns", history_limits{}}};
    EXPECT_EQ(changed_options(e, f), std::vector<std::string>{"namespace-history"});
}

}  // namespace
}  // namespace eventcast::core

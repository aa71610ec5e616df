// eventcast-bench: load generator for AppSync Events servers (eventcast and the peers in
// bench/peers/), and with --protocol nats for nats-server's websocket listener. Subcommands
// fanout, streams, idle and chat print one JSON result line on stdout and exit 1 when anything
// was lost or a connection failed; fake-openai serves a local OpenAI-compatible stream for the
// chat scenario. See bench/README.md.
#include "fake_openai.hpp"
#include "scenarios.hpp"

#include <CLI/CLI.hpp>
#include <boost/url/parse.hpp>

#include <csignal>
#include <iostream>
#include <string>

namespace {

using namespace eventcast::bench;

void add_common(CLI::App& app, common_options& c, std::string& url, std::string& protocol,
                double default_duration) {
    c.duration = default_duration;
    app.add_option("--url", url, "server, ws://HOST:PORT (overrides --host/--port)");
    app.add_option("--host", c.host, "server address")->capture_default_str();
    app.add_option("--port", c.port, "server port")->capture_default_str();
    app.add_option("--api-key", c.api_key,
                   "API key (header- subprotocol and authorization); required for appsync");
    if (app.get_name() != "chat")  // chat needs POST /chat: AppSync only
        app.add_option("--protocol", protocol,
                       "appsync, or nats: the NATS client protocol over nats-server's "
                       "websocket listener (ws://HOST:PORT, path /)")
            ->check(CLI::IsMember({"appsync", "nats"}))
            ->capture_default_str();
    app.add_option("--label", c.label, "name of the server under test, copied into the result");
    app.add_option("--threads", c.threads, "worker threads, one io_context each")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--duration", c.duration, "measured seconds (idle: seconds held open)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", c.warmup, "seconds of load before measuring")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--drain-timeout", c.drain_timeout, "seconds to wait for in-flight events")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--connect-timeout", c.connect_timeout,
                   "seconds for every connection to be subscribed")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_flag(
        "--busy-poll", c.busy_poll,
        "workers spin on poll() instead of sleeping (give the load generator its own core)");
    app.add_option("--max-connecting", c.max_connecting,
                   "connects + upgrades in progress per thread")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
}

// ws://host:port[/...] -> host and port.
bool apply_url(const std::string& url, common_options& c) {
    if (url.empty())
        return true;
    auto u = boost::urls::parse_uri(url);
    if (!u || (u->scheme() != "ws" && u->scheme() != "http")) {
        std::cerr << "eventcast-bench: --url '" << url
                  << "': expected ws://HOST:PORT (plain ws only)\n";
        return false;
    }
    c.host = std::string(u->host());
    if (u->has_port())
        c.port = u->port_number();
    else
        c.port = 80;
    return true;
}

void print(const scenario_result& r, bool json_only) {
    std::cout << boost::json::serialize(r.json) << std::endl;
    if (json_only)
        return;
    std::cerr << "eventcast-bench " << r.json.at("scenario").as_string().c_str() << ": "
              << (r.ok ? "ok" : "FAILED") << "\n";
    for (const auto& s : r.json.at("failure_samples").as_array())
        std::cerr << "  " << s.as_string().c_str() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App app{"eventcast-bench: load generator for AppSync Events servers over ws://"};
    app.require_subcommand(1);
    bool json_only = false;
    app.add_flag("--json", json_only,
                 "print only the JSON result line (also accepted after the subcommand)");

    common_options common;
    std::string url;
    std::string protocol = "appsync";

    fanout_options fan;
    auto* fanout =
        app.add_subcommand("fanout", "1 channel, N subscribers, publishers at full rate");
    add_common(*fanout, common, url, protocol, 10);
    fanout->add_flag("--json", json_only, "print only the JSON result line");
    fanout->add_option("--subscribers", fan.subscribers)->capture_default_str();
    fanout->add_option("--event-bytes", fan.event_bytes, "bytes of event JSON text")
        ->capture_default_str();
    fanout->add_option("--publishers", fan.publishers, "publisher connections")
        ->capture_default_str();
    fanout->add_option("--batch", fan.batch, "events per publish (1..5)")->capture_default_str();
    fanout->add_option("--window", fan.window, "publishes in flight per publisher")
        ->capture_default_str();
    fanout->add_option("--max-lag", fan.max_lag, "undelivered events per subscriber before pausing")
        ->capture_default_str();
    fanout->add_option("--rate", fan.rate, "events/s in total (0: as fast as possible)")
        ->capture_default_str();
    fanout->add_option("--channel", fan.channel)->capture_default_str();
    fanout
        ->add_option(
            "--ids", fan.ids,
            "subscription ids: short (s<N>), uuid (36 chars each), shared (one 36-char id)")
        ->check(CLI::IsMember({"short", "uuid", "shared"}))
        ->capture_default_str();
    fanout
        ->add_option("--http-publishers", fan.http_publishers,
                     "publish by HTTP POST /event over N keep-alive connections (0: WebSocket)")
        ->capture_default_str();
    std::string publish_url;
    fanout->add_option("--publish-url", publish_url,
                       "publishers connect here, ws://HOST:PORT (another cluster node); "
                       "subscribers use --url");

    streams_options str;
    auto* streams =
        app.add_subcommand("streams", "M channels, one subscriber each, R events/s each");
    add_common(*streams, common, url, protocol, 10);
    streams->add_flag("--json", json_only, "print only the JSON result line");
    streams->add_option("--channels", str.channels)->capture_default_str();
    streams->add_option("--rate", str.rate, "events/s per channel")->capture_default_str();
    streams
        ->add_option("--publishers", str.publishers,
                     "publisher connections (0: one per 250 channels)")
        ->capture_default_str();
    streams->add_option("--event-bytes", str.event_bytes)->capture_default_str();

    idle_options idl;
    auto* idle =
        app.add_subcommand("idle", "K idle subscribed connections; server VmRSS per connection");
    add_common(*idle, common, url, protocol, 10);
    idle->add_flag("--json", json_only, "print only the JSON result line");
    idle->add_option("--connections", idl.connections)->capture_default_str();
    idle->add_option("--server-pid", idl.server_pid, "read VmRSS from /proc/PID/status")
        ->capture_default_str();
    idle->add_option("--sources", idl.sources, "127.0.0.x source addresses (0: one per 25,000)")
        ->capture_default_str();
    idle->add_option("--settle", idl.settle, "seconds between the last subscribe and reading VmRSS")
        ->capture_default_str();

    chat_options cht;
    auto* chat =
        app.add_subcommand("chat", "C concurrent POST /chat streams with a subscriber each");
    add_common(*chat, common, url, protocol, 10);
    chat->add_flag("--json", json_only, "print only the JSON result line");
    chat->add_option("--streams", cht.streams, "concurrent streams (one user each)")
        ->capture_default_str();
    chat->add_option("--namespace", cht.chat_namespace)->capture_default_str();
    chat->add_option("--user-prefix", cht.user_prefix)->capture_default_str();
    chat->add_option("--prompt", cht.prompt)->capture_default_str();
    chat->add_option("--ramp-ms", cht.ramp_ms,
                     "start the streams spread over this long (0: all at once); use the "
                     "provider's chunk interval")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();

    fake_openai_options fake;
    auto* fake_cmd =
        app.add_subcommand("fake-openai", "serve a local OpenAI-compatible stream with timestamps");
    fake_cmd->add_option("--host", fake.host)->capture_default_str();
    fake_cmd->add_option("--port", fake.port, "0: any free port")->capture_default_str();
    fake_cmd->add_option("--port-file", fake.port_file, "write the port here once listening");
    fake_cmd->add_option("--chunks", fake.chunks, "content chunks per answer")
        ->capture_default_str();
    fake_cmd->add_option("--interval-ms", fake.interval_ms, "between chunks")
        ->capture_default_str();
    fake_cmd->add_option("--first-delay-ms", fake.first_delay_ms, "before the first chunk")
        ->capture_default_str();
    fake_cmd->add_option("--chunk-bytes", fake.chunk_bytes, "content bytes per chunk")
        ->capture_default_str();
    fake_cmd->add_option("--max-seconds", fake.max_seconds, "exit after this long")
        ->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    if (*fake_cmd)
        return run_fake_openai(fake);
    if (!apply_url(url, common))
        return 2;
    common.nats = protocol == "nats";
    if (!common.nats && common.api_key.empty()) {
        std::cerr << "eventcast-bench: --api-key is required (except with --protocol nats)\n";
        return 2;
    }
    if (!publish_url.empty()) {
        common_options pub;
        if (!apply_url(publish_url, pub))
            return 2;
        common.publish_host = pub.host;
        common.publish_port = pub.port;
    }
    common.drain_timeout = std::max(common.drain_timeout, 0.0);
    scenario_result r;
    if (*fanout)
        r = run_fanout(common, fan);
    else if (*streams)
        r = run_streams(common, str);
    else if (*idle)
        r = run_idle(common, idl);
    else
        r = run_chat(common, cht);
    print(r, json_only);
    return r.ok ? 0 : 1;
}

// eventcast-bench scenarios: fanout, streams, idle and chat against an AppSync Events server
// (eventcast or a peer speaking the same subset), each returning one JSON result. fanout, streams
// and idle also speak NATS over WebSocket (common_options::nats), for nats-server as a reference.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <string>

namespace eventcast::bench {

/// What every scenario needs. Times are seconds.
struct common_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::string api_key;
    // NATS client protocol over nats-server's websocket listener instead of AppSync (fanout,
    // streams, idle): channels become subjects, PING/PONG stands in for the acks.
    bool nats = false;
    std::string label;                // copied into the result ("eventcast", "uws", ...)
    std::size_t threads = 1;          // worker threads, one io_context each
    double duration = 10;             // measured window
    double warmup = 1;                // load runs this long before the window opens
    double drain_timeout = 10;        // after the window: wait this long for in-flight events
    double connect_timeout = 60;      // for all connections to be subscribed
    std::size_t max_connecting = 64;  // per worker: connects + upgrades in progress
    bool busy_poll = false;           // workers spin on poll() instead of sleeping
    // Where publisher connections go (fanout): another node of a cluster, so events cross NATS
    // before reaching the subscribers. Empty host: the same server as everything else.
    std::string publish_host;
    std::uint16_t publish_port = 0;
};

struct fanout_options {
    std::size_t subscribers = 1000;
    std::size_t event_bytes = 100;
    std::size_t publishers = 1;
    std::size_t batch = 5;      // events per publish message (the protocol allows 1..5)
    std::size_t window = 16;    // publish messages in flight per publisher (until publish_success)
    std::size_t max_lag = 256;  // events published but not yet delivered, per subscriber
    double rate = 0;            // events/s over all publishers; 0: as fast as the window allows
    std::string channel = "/default/fanout";
    /// Subscription ids: `short` (s<N>), `uuid` (36 characters, one per subscriber, as the AWS
    /// clients make them), `shared` (one 36-character id for every subscriber: identical frames).
    std::string ids = "short";
    /// > 0: publish by HTTP POST /event over this many keep-alive connections, one request in
    /// flight on each, instead of by WebSocket (`publishers` and `window` are then unused).
    std::size_t http_publishers = 0;
};

struct streams_options {
    std::size_t channels = 5000;
    double rate = 20;            // events/s per channel
    std::size_t publishers = 0;  // 0: one per 250 channels, at least 1
    std::size_t event_bytes = 100;
};

struct idle_options {
    std::size_t connections = 10000;
    int server_pid = 0;       // VmRSS is read from /proc/<pid>/status; 0: not measured
    std::size_t sources = 0;  // 127.0.0.x source addresses; 0: one per 25,000 connections
    double settle = 1;        // wait after the last subscribe before reading VmRSS
};

struct chat_options {
    std::size_t streams = 100;  // concurrent POST /chat streams, one user (and channel) each
    std::string chat_namespace = "BedrockChat";
    std::string user_prefix = "bench-u";
    std::string prompt = "Explain AppSync Events in one paragraph.";
    // The first streams start evenly spread over this many milliseconds (0: all at once), and
    // measuring begins --warmup seconds after the last has started. With a ramp of one stream's
    // length (the fake provider's default: 40 chunks x 50 ms), starts and chunks are spread
    // evenly in time, as with a real service's unrelated users; all at once, every stream's
    // chunk lands in the same instant, and a chunk's latency is mostly its place in that burst.
    double ramp_ms = 2000;
};

struct scenario_result {
    boost::json::object json;
    bool ok = false;
};

scenario_result run_fanout(const common_options& common, const fanout_options& opt);
scenario_result run_streams(const common_options& common, const streams_options& opt);
scenario_result run_idle(const common_options& common, const idle_options& opt);
scenario_result run_chat(const common_options& common, const chat_options& opt);

}  // namespace eventcast::bench

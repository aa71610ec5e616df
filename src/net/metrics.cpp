// GET /metrics. Counters end in _total; no label has user input.
#include "net/metrics.hpp"

#include "chat/chat_service.hpp"
#include "core/metrics_text.hpp"
#include "net/http_router.hpp"

#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

#ifndef EVENTCAST_VERSION
#define EVENTCAST_VERSION "unknown"
#endif
#ifndef EVENTCAST_COMMIT
#define EVENTCAST_COMMIT "unknown"
#endif

namespace eventcast::net {

namespace {

// The process_* metrics every Prometheus client library exports, from /proc/self (Linux).
void append_process_metrics(std::string& out) {
    double cpu_seconds = 0, start_seconds = 0;
    if (std::ifstream stat("/proc/self/stat"); stat) {
        std::string line;
        std::getline(stat, line);
        // The command (field 2) may hold spaces and parentheses: fields count from the last ')'.
        const auto close = line.rfind(')');
        if (close != std::string::npos) {
            std::istringstream fields(line.substr(close + 2));
            std::string f;
            unsigned long long utime = 0, stime = 0, starttime = 0;
            for (int i = 3; fields >> f; ++i) {
                if (i == 14)
                    utime = std::stoull(f);
                else if (i == 15)
                    stime = std::stoull(f);
                else if (i == 22) {
                    starttime = std::stoull(f);
                    break;
                }
            }
            const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
            cpu_seconds = static_cast<double>(utime + stime) / ticks;
            double boot = 0;
            if (std::ifstream s("/proc/stat"); s)
                for (std::string key; s >> key;)
                    if (key == "btime") {
                        s >> boot;
                        break;
                    }
            start_seconds = boot + static_cast<double>(starttime) / ticks;
        }
    }
    unsigned long long pages_total = 0, pages_resident = 0;
    if (std::ifstream statm("/proc/self/statm"); statm)
        statm >> pages_total >> pages_resident;
    const auto page = static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE));
    std::size_t fds = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (const dirent* e = ::readdir(d))
            if (e->d_name[0] != '.')
                ++fds;
        ::closedir(d);
        --fds;  // the directory stream's own descriptor
    }
    std::size_t max_fds = 0;
    if (std::ifstream limits("/proc/self/limits"); limits)
        for (std::string line; std::getline(limits, line);)
            if (line.rfind("Max open files", 0) == 0) {
                std::istringstream(line.substr(14)) >> max_fds;
                break;
            }
    core::append_metric(out, "process_cpu_seconds_total", "counter",
                        "Total user and system CPU time spent in seconds.", cpu_seconds);
    core::append_metric(out, "process_resident_memory_bytes", "gauge",
                        "Resident memory size in bytes.", pages_resident * page);
    core::append_metric(out, "process_virtual_memory_bytes", "gauge",
                        "Virtual memory size in bytes.", pages_total * page);
    core::append_metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    core::append_metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                        max_fds);
    core::append_metric(out, "process_start_time_seconds", "gauge",
                        "Start time of the process since unix epoch in seconds.", start_seconds);
}

}  // namespace

// Prometheus text format (version 0.0.4). Counters end in _total; no label has user input.
std::string render_metrics(server_context& ctx) {
    const auto& st = ctx.api.stats();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
        core::append_metric(out, name, type, help, value);
    };
    metric("eventcast_connections", "gauge", "Open WebSocket connections.",
           st.connections_open.load());
    metric("eventcast_connections_total", "counter", "WebSocket connections accepted.",
           st.connections_total.load());
    metric("eventcast_subscriptions", "gauge", "Live subscriptions.", ctx.api.subscription_count());
    metric("eventcast_http_requests_total", "counter", "HTTP requests answered (not upgrades).",
           st.http_requests.load());
    metric("eventcast_ws_messages_in_total", "counter", "WebSocket messages received.",
           st.ws_messages_in.load());
    metric("eventcast_events_in_total", "counter", "Events accepted for publish.",
           st.events_in.load());
    metric("eventcast_frames_out_total", "counter", "Data frames queued to subscribers.",
           st.frames_out.load());
    metric("eventcast_bytes_out_total", "counter", "WebSocket payload bytes written.",
           st.bytes_out.load());
    metric("eventcast_ws_writes_total", "counter", "WebSocket socket writes.",
           st.ws_frames_written.load());
    metric("eventcast_incomplete_bytes", "gauge",
           "Bytes held for WebSocket messages and HTTP bodies still arriving.",
           st.incomplete_bytes.load());
    metric("eventcast_buffer_cap_refusals_total", "counter",
           "Connections closed (1013) and requests refused (503) past --max-buffered-bytes.",
           st.buffer_cap_refusals.load());
    metric("eventcast_message_timeouts_total", "counter",
           "WebSocket connections closed (1008) for a message not completed in time.",
           st.message_timeouts.load());
    metric("eventcast_slow_consumer_closes_total", "counter",
           "Connections closed because their outbox passed --max-outbox-bytes.",
           st.slow_consumer_closes.load());
    metric("eventcast_ws_origin_refused_total", "counter",
           "WebSocket upgrades refused (403) because their Origin is not a --cors-origin.",
           st.ws_origin_refused.load());
    metric("eventcast_auth_failures_total", "counter", "Refused credentials.",
           st.auth_failures.load());
    metric("eventcast_handler_failures_total", "counter",
           "Operations failed by namespace code (exception, time or memory limit, bad return).",
           st.handler_failures.load());
    out +=
        "# HELP eventcast_rate_limited_total Refusals by rate limit.\n"
        "# TYPE eventcast_rate_limited_total counter\n"
        "eventcast_rate_limited_total{limit=\"connections_per_ip\"} " +
        std::to_string(st.rate_limited_connections.load()) +
        "\n"
        "eventcast_rate_limited_total{limit=\"ops_per_second\"} " +
        std::to_string(st.rate_limited_operations.load()) + "\n";
    // Namespace code (--namespace-code, data sources): zero and constant when none is attached.
    const auto hc = ctx.api.attached_handlers() ? ctx.api.attached_handlers()->counters()
                                                : handlers::handler_counters{};
    metric("eventcast_handler_invocations_total", "counter",
           "onPublish/onSubscribe (and data source handler) invocations.", hc.invocations);
    metric("eventcast_handler_timeouts_total", "counter",
           "Handler invocations stopped at --handler-time-limit-ms.", hc.timeouts);
    metric("eventcast_handler_memory_limits_total", "counter",
           "Handler invocations stopped at --handler-memory-limit-mb.", hc.memory);
    const auto ac = ctx.api.auth_counters();
    metric("eventcast_jwks_refreshes_total", "counter",
           "JWKS refetches asked for by tokens with an unknown kid.", ac.jwks_refreshes);
    metric("eventcast_lambda_authorizer_calls_total", "counter",
           "Calls to the Lambda authorizer webhook (cache misses).", ac.lambda_calls);
    out +=
        "# HELP eventcast_errors_total Error replies by errorType.\n"
        "# TYPE eventcast_errors_total counter\n";
    using k = events::error_kind;
    for (auto kind :
         {k::invalid_input, k::bad_request, k::unauthorized, k::max_subscriptions, k::duplicate_id,
          k::unknown_operation, k::unsupported, k::limit_exceeded, k::resume_too_old}) {
        events::protocol_error e{kind, {}};
        out += std::string("eventcast_errors_total{errorType=\"") + e.ws_error_type() + "\"} " +
               std::to_string(st.errors_by_kind[static_cast<std::size_t>(kind)].load()) + "\n";
    }
    const auto hist = ctx.api.history().stats();
    metric("eventcast_history_events", "gauge", "Events retained for resume.", hist.events);
    metric("eventcast_history_bytes", "gauge", "Bytes counted against --history-max-bytes.",
           hist.bytes);
    metric("eventcast_history_evicted_total", "counter",
           "Events dropped from history by count, age or the byte cap.", hist.evicted);
    metric("eventcast_chat_streams_active", "gauge", "Chat streams running.",
           ctx.chat ? ctx.chat->active_streams() : 0);
    metric("eventcast_chat_streams_total", "counter", "Chat streams started.",
           st.chat_streams_total.load());
    metric("eventcast_chat_streams_failed_total", "counter",
           "Chat streams that ended with a provider error.", st.chat_streams_failed.load());
    if (ctx.chat)
        ctx.chat->append_metrics(out);
    if (ctx.cluster)
        ctx.cluster->append_metrics(out);
    out +=
        "# HELP eventcast_build_info The running build: version and the commit it was built "
        "from.\n# TYPE eventcast_build_info "
        "gauge\neventcast_build_info{version=\"" EVENTCAST_VERSION "\",commit=\"" EVENTCAST_COMMIT
        "\"} 1\n";
    append_process_metrics(out);
    // Per namespace: the configured names only (no label from a client).
    const auto per_ns = ctx.api.namespace_counts();
    auto by_ns = [&](const char* name, const char* type, const char* help, auto value_of) {
        out += std::string("# HELP ") + name + ' ' + help + "\n# TYPE " + name + ' ' + type + '\n';
        for (const auto& m : per_ns)
            out += std::string(name) + "{namespace=\"" + m.ns + "\"} " +
                   std::to_string(value_of(m)) + '\n';
    };
    using nm = api::event_api::namespace_metrics;
    by_ns("eventcast_namespace_connections", "gauge",
          "Connections with at least one subscription in the namespace.",
          [](const nm& m) { return m.connections; });
    by_ns("eventcast_namespace_subscriptions", "gauge", "Live subscriptions in the namespace.",
          [](const nm& m) { return m.subscriptions; });
    by_ns("eventcast_namespace_publishes_total", "counter",
          "Publish requests accepted in the namespace (HTTP and WebSocket).",
          [](const nm& m) { return m.publishes; });
    by_ns("eventcast_namespace_events_in_total", "counter",
          "Events accepted for publish in the namespace.", [](const nm& m) { return m.events_in; });
    by_ns("eventcast_namespace_deliveries_total", "counter",
          "Data frames queued to the namespace's subscribers.",
          [](const nm& m) { return m.deliveries; });
    out +=
        "# HELP eventcast_http_responses_total HTTP responses by listener, route (the table's "
        "pattern) and status.\n# TYPE eventcast_http_responses_total counter\n";
    if (ctx.routes)
        ctx.routes->append_metrics(out, "client");
    if (ctx.admin_routes)
        ctx.admin_routes->append_metrics(out, "admin");
    st.provider_first_chunk.render(out, "eventcast_provider_first_chunk_seconds",
                                   "Time from starting a provider request to its first text.");
    st.chunk_publish.render(out, "eventcast_chunk_publish_seconds",
                            "Time from provider text parsed to its delta handed to subscribers "
                            "(includes the --chat-coalesce-ms window).");
    return out;
}

}  // namespace eventcast::net

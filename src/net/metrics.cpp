// GET /metrics. Counters end in _total; no label has user input.
#include "net/metrics.hpp"

#include "chat/chat_service.hpp"
#include "core/metrics_text.hpp"

namespace eventcast::net {

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
    if (ctx.cluster)
        ctx.cluster->append_metrics(out);
    st.provider_first_chunk.render(out, "eventcast_provider_first_chunk_seconds",
                                   "Time from starting a provider request to its first text.");
    st.chunk_publish.render(out, "eventcast_chunk_publish_seconds",
                            "Time from provider text parsed to its delta handed to subscribers "
                            "(includes the --chat-coalesce-ms window).");
    return out;
}

}  // namespace eventcast::net

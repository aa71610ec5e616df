// Process-wide counters, updated lock-free from any thread and read by /healthz (and /metrics
// once it exists). Relaxed atomics: each is an independent count, not a synchronization point.
#pragma once

#include "core/histogram.hpp"

#include <array>
#include <atomic>
#include <cstdint>

namespace eventcast::core {

struct stats {
    std::atomic<std::int64_t> connections_open{0};    // WebSocket sessions now
    std::atomic<std::uint64_t> connections_total{0};  // WebSocket sessions ever accepted
    std::atomic<std::uint64_t> http_requests{0};
    std::atomic<std::uint64_t> ws_messages_in{0};
    std::atomic<std::uint64_t> events_in{0};   // events accepted for publish
    std::atomic<std::uint64_t> frames_out{0};  // data frames queued to subscribers
    std::atomic<std::uint64_t> bytes_out{0};   // WebSocket payload bytes written
    std::atomic<std::uint64_t> slow_consumer_closes{0};
    std::atomic<std::uint64_t> protocol_errors{0};  // error replies of any kind
    std::atomic<std::uint64_t> auth_failures{0};
    std::atomic<std::uint64_t> handler_failures{0};          // namespace code failed an operation
    std::atomic<std::uint64_t> rate_limited_connections{0};  // over --max-connections-per-ip
    std::atomic<std::uint64_t> rate_limited_operations{0};   // over --max-ops-per-second
    std::atomic<std::uint64_t> ws_frames_written{0};
    std::atomic<std::int64_t> incomplete_bytes{0};      // held for --max-buffered-bytes
    std::atomic<std::uint64_t> buffer_cap_refusals{0};  // closes/503s past it
    std::atomic<std::uint64_t> message_timeouts{
        0};  // --message-timeout-ms closes  // socket writes, for frames per write
    std::atomic<std::uint64_t> ws_origin_refused{0};  // upgrades whose Origin --cors-origin lacks
    /// Error replies by errorType index (events::error_kind), WebSocket and HTTP together.
    std::array<std::atomic<std::uint64_t>, 16> errors_by_kind{};  // by events::error_kind

    // chat
    std::atomic<std::uint64_t> chat_streams_total{0};
    std::atomic<std::uint64_t> chat_streams_failed{0};
    histogram provider_first_chunk;  // POST /chat accepted by us -> first text from the provider
    histogram chunk_publish;         // provider bytes parsed -> delta handed to subscribers

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }
};

}  // namespace eventcast::core

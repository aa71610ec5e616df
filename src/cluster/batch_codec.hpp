// One publish batch as one NATS message payload. The bodies travel as the publishing node made
// them (each event already escaped once into `"<event as a JSON string>"`, not yet closed: each
// receiving node appends its own history position and the closing brace in deliver_local), so
// receivers splice them into data frames without encoding anything again.
//
// Layout: "ecb1", one byte with the number of bodies, then per body a 4-byte big-endian length
// and the bytes. Binary lengths instead of a JSON array: no second escaping pass, and a
// receiver finds each body with no scan.
#pragma once

#include "events/error.hpp"
#include "pubsub/broker.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace eventcast::cluster {

/// Bodies per message: AWS allows 5 events per publish; --max-events-per-publish may raise it,
/// but not past what the one count byte holds.
inline constexpr std::size_t max_batch_bodies = 255;

/// The size of encode_batch's payload for `bodies` bodies of `body_bytes` bytes in all.
constexpr std::size_t encoded_batch_bytes(std::size_t bodies, std::size_t body_bytes) noexcept {
    return 4 + 1 + 4 * bodies + body_bytes;  // magic, count, a length per body, the bodies
}

/// The payload for `batch`. `batch.bodies.size()` must be 1..max_batch_bodies.
std::string encode_batch(const pubsub::event_batch& batch);

/// Parses a payload from NATS (outside input: anyone with access to the subjects can publish).
/// Checks the layout and that every body is one JSON string literal, valid UTF-8,
/// so what reaches a WebSocket text frame is what a local publish would have produced.
/// The error says what was wrong and where.
events::result<pubsub::event_batch> decode_batch(std::string_view payload);

/// A JetStream sequence from a message header (`Nats-Sequence`, outside input): 1 to 20 ASCII
/// digits, no sign, no spaces, no leading zero, fitting 64 bits, not 0. nullopt otherwise.
std::optional<std::uint64_t> parse_sequence(std::string_view text) noexcept;

}  // namespace eventcast::cluster

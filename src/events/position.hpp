// Event positions: where an accepted event sits in its namespace's history (docs/protocol.md,
// "History and resume"). A position is (epoch, seq): seq counts the namespace's events from 1
// and never goes back; epoch names the history that seq counts in (one run of a single node
// today, a JetStream stream later), so a position from another run is recognised, not misread.
// On the wire it is the string "<epoch as 8 lowercase hex digits>-<seq in decimal>", e.g.
// "5f3a0c1e-42": data frames carry it as "position", subscribe's "resume":{"after":...} takes it.
#pragma once

#include "events/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace eventcast::events {

struct position {
    std::uint32_t epoch = 0;
    std::uint64_t seq = 0;  // 0: before the namespace's first event
    friend bool operator==(const position&, const position&) = default;
};

/// "<8 hex>-<decimal>".
std::string format_position(const position& p);
/// Appends format_position(p) to `out` without a temporary.
void append_position(std::string& out, const position& p);

/// Parses untrusted text (a client's resume field). Strict: exactly 8 lowercase hex digits, '-',
/// then 1..20 decimal digits without a leading zero (except "0") that fit 64 bits. The error
/// (invalid_input) says what was wrong and shows the expected form.
result<position> parse_position(std::string_view text);

}  // namespace eventcast::events

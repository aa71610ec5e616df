// Batch payloads. decode_batch is a parser of outside input: bounds-checked, allocation only for
// the bodies it returns, fuzzed (tests/fuzz/fuzz_cluster_batch.cpp).
#include "cluster/batch_codec.hpp"

#include "events/message.hpp"

#include <cassert>

namespace eventcast::cluster {

namespace {
constexpr std::string_view magic = "ecb1";
}

std::string encode_batch(const pubsub::event_batch& batch) {
    assert(!batch.bodies.empty() && batch.bodies.size() <= max_batch_bodies &&
           "event_api publishes 1..max_events_per_publish events");
    std::string out;
    out.reserve(magic.size() + 1 + batch.bodies.size() * 4 + batch.bytes);
    out += magic;
    out.push_back(static_cast<char>(batch.bodies.size()));
    for (const auto& body : batch.bodies) {
        const auto n = static_cast<std::uint32_t>(body.size());
        out.push_back(static_cast<char>(n >> 24));
        out.push_back(static_cast<char>(n >> 16));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n));
        out += body;
    }
    return out;
}

events::result<pubsub::event_batch> decode_batch(std::string_view payload) {
    using events::protocol_error;
    if (payload.size() < magic.size() + 1 || payload.substr(0, magic.size()) != magic)
        return protocol_error::invalid("cluster message does not start with the 'ecb1' header");
    const auto count = static_cast<unsigned char>(payload[magic.size()]);
    if (count == 0)
        return protocol_error::invalid("cluster message holds no events");
    std::size_t pos = magic.size() + 1;
    pubsub::event_batch batch;
    batch.bodies.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
        if (payload.size() - pos < 4)
            return protocol_error::invalid("cluster message ends inside the length of event " +
                                           std::to_string(i));
        std::uint32_t n = 0;
        for (int b = 0; b < 4; ++b)
            n = (n << 8) | static_cast<unsigned char>(payload[pos++]);
        if (payload.size() - pos < n)
            return protocol_error::invalid("cluster message event " + std::to_string(i) +
                                           " claims " + std::to_string(n) + " bytes; " +
                                           std::to_string(payload.size() - pos) + " remain");
        const auto body = payload.substr(pos, n);
        pos += n;
        // `"<JSON string>"` (events::data_body_open): the literal must be one JSON text
        // (grammar and UTF-8 checked) and a string, so closing it and splicing it after the
        // frame prefix makes a valid data frame.
        if (body.size() < 2 || body.front() != '"' || body.back() != '"' ||
            !events::is_json_text(body))
            return protocol_error::invalid("cluster message event " + std::to_string(i) +
                                           " is not a JSON string");
        batch.bodies.emplace_back(body);
        batch.bytes += n;
    }
    if (pos != payload.size())
        return protocol_error::invalid("cluster message has " +
                                       std::to_string(payload.size() - pos) +
                                       " bytes after its last event");
    return batch;
}

std::optional<std::uint64_t> parse_sequence(std::string_view text) noexcept {
    if (text.empty() || text.size() > 20 || (text.size() > 1 && text.front() == '0'))
        return std::nullopt;
    std::uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return std::nullopt;
        v = v * 10 + d;
    }
    if (v == 0)
        return std::nullopt;
    return v;
}

}  // namespace eventcast::cluster

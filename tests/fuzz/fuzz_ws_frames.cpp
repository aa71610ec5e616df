// Fuzzes net::ws_frame_reader, the WebSocket frame layer of every client connection, against
// an independent byte-at-a-time reference parser written here from RFC 6455 §5.2: the same
// stream cut into arbitrary chunks, through feed() (plain TCP) and through prepare()/commit()
// (TLS), with pauses, must give exactly the reference's frames, payloads (unmasked) and
// violation, and nothing after a failure.
//
// Input: byte 0 picks the message size limit, byte 1 seeds the chunk sizes and the pauses; the
// rest is what a client sends.
#include "net/ws_frame_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using eventcast::net::frame_verdict;
using eventcast::net::frame_violation;
using eventcast::net::ws_frame_reader;

struct event {
    bool violation = false;
    bool fin = false;
    unsigned opcode = 0;
    int code = 0;
    std::string payload;
    bool operator==(const event&) const = default;
};

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
}

// What the session does with message_bytes(): a fragmented data message grows until its fin.
void track_message(std::size_t& message, bool fin, unsigned opcode, std::size_t len) {
    if (opcode >= 8)
        return;
    if (opcode == 0)
        message += len;
    else
        message = len;
    if (fin)
        message = 0;
}

// The reference: straightforward, byte at a time, no buffering tricks.
std::vector<event> reference(std::string_view in, std::size_t max) {
    std::vector<event> out;
    std::size_t pos = 0;
    std::size_t message = 0;
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
    while (in.size() - pos >= 2) {
        const bool fin = byte(pos) & 0x80;
        const unsigned opcode = byte(pos) & 0x0F;
        const bool masked = byte(pos + 1) & 0x80;
        std::uint64_t len = byte(pos + 1) & 0x7F;
        std::size_t hdr = 2;
        if (len == 126) {
            if (in.size() - pos < 4)
                break;
            len = byte(pos + 2) * 256u + byte(pos + 3);
            hdr = 4;
        } else if (len == 127) {
            if (in.size() - pos < 10)
                break;
            len = 0;
            for (std::size_t i = 0; i < 8; ++i)
                len = len * 256 + byte(pos + 2 + i);
            hdr = 10;
        }
        int code = 0;
        if (byte(pos) & 0x70)
            code = 1002;
        else if (!masked)
            code = 1002;
        else if (opcode >= 8 && (!fin || len > 125))
            code = 1002;
        else if (opcode < 8 && static_cast<long double>(len) + message > max)
            code = 1009;
        if (code) {
            out.push_back({true, false, 0, code, {}});
            return out;
        }
        if (in.size() - pos < hdr + 4 + len)
            break;
        std::string payload(in.substr(pos + hdr + 4, static_cast<std::size_t>(len)));
        for (std::size_t i = 0; i < payload.size(); ++i)
            payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^
                                           byte(pos + hdr + (i % 4)));
        out.push_back({false, fin, opcode, 0, std::move(payload)});
        track_message(message, fin, opcode, static_cast<std::size_t>(len));
        pos += hdr + 4 + static_cast<std::size_t>(len);
    }
    return out;
}

struct handler {
    std::vector<event> seen;
    std::size_t message = 0;
    std::uint32_t rng = 1;
    bool pauses = false;
    bool failed = false;

    frame_verdict on_frame(bool fin, unsigned opcode, std::string_view payload) {
        if (failed)
            violated("a frame after the connection failed");
        seen.push_back({false, fin, opcode, 0, std::string(payload)});
        track_message(message, fin, opcode, payload.size());
        rng = rng * 1103515245u + 12345u;
        return pauses && (rng >> 16) % 3 == 0 ? frame_verdict::pause : frame_verdict::next;
    }
    frame_verdict on_violation(const frame_violation& v) {
        if (failed)
            violated("a violation after the connection failed");
        failed = true;
        seen.push_back({true, false, 0, static_cast<int>(v.code), {}});
        return frame_verdict::fail;
    }
    std::size_t message_bytes() const { return message; }
};

// Runs the stream through the reader in chunks; `tls` uses prepare()/commit().
std::vector<event> chunked(std::string_view in, std::size_t max, std::uint8_t seed, bool tls) {
    ws_frame_reader reader(max);
    handler h;
    h.rng = seed + 1u;
    h.pauses = (seed & 1) != 0;
    std::uint32_t cut = seed * 2654435761u + 7u;
    std::string scratch;
    std::size_t pos = 0;
    while (pos < in.size() && !h.failed) {
        cut = cut * 1664525u + 1013904223u;
        const std::size_t n = std::min<std::size_t>(in.size() - pos, 1 + (cut >> 24) % 97);
        frame_verdict v;
        if (tls) {
            auto room = reader.prepare(1);
            const std::size_t take = std::min(n, room.size());
            std::memcpy(room.data(), in.data() + pos, take);
            pos += take;
            v = reader.commit(take, h);
        } else {
            scratch.assign(in.substr(pos, n));
            pos += n;
            v = reader.feed(scratch.data(), scratch.size(), h);
        }
        while (v == frame_verdict::pause)
            v = reader.resume(h);  // the authorization came back
        if (v == frame_verdict::fail && !h.failed)
            violated("fail without a violation (the handler never fails here)");
        // Only an incomplete frame may stay: a header and at most the limit (or a control
        // frame's 125 bytes).
        if (!h.failed && reader.buffered() > 14 + std::max<std::size_t>(max, 125))
            violated("more buffered than one frame can need");
    }
    return h.seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2)
        return 0;
    const std::size_t max = 1 + static_cast<std::size_t>(data[0]) * 8;
    const std::uint8_t seed = data[1];
    const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
    const auto expected = reference(in, max);
    if (chunked(in, max, seed, false) != expected)
        violated("feed() in chunks differs from the reference");
    if (chunked(in, max, seed, true) != expected)
        violated("prepare()/commit() in chunks differs from the reference");
    return 0;
}

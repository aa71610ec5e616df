// Splits the bytes a client sends into WebSocket frames (RFC 6455 §5.2, the server's side):
// checks each header, unmasks the payload in place and hands every complete frame to a handler.
// The bytes of an incomplete frame (and, while the handler pauses, of frames not yet handled)
// are kept here, and nothing else: an idle connection's reader holds no buffer.
//
// Two ways in. Plain TCP reads into a per-thread buffer and calls feed(): complete frames are
// handled right there, only the rest is copied in. TLS reads through the stream into this
// reader's own buffer: prepare(), then commit(). Pure code (no sockets): unit-tested and fuzzed
// (tests/unit/net/ws_frame_reader_test.cpp, tests/fuzz/fuzz_ws_frames.cpp).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace eventcast::net {

/// What a handler answers for a frame, and what the reader reports back.
enum class frame_verdict {
    next,   // handled; go on (from the reader: every complete frame is handled, read more)
    pause,  // stop here; the unhandled bytes stay buffered until resume()
    fail,   // the connection is failing: read nothing more
};

/// A frame header that breaks the protocol: the close code to send and why.
struct frame_violation {
    boost::beast::websocket::close_code code;
    const char* why;
};

/// Unmasks a client frame's payload in place (RFC 6455 §5.3), eight bytes at a time.
inline void unmask(char* payload, std::size_t n, const unsigned char* key) noexcept {
    std::uint32_t k32 = 0;
    std::memcpy(&k32, key, 4);
    const std::uint64_t k64 = (std::uint64_t{k32} << 32) | k32;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, payload + i, 8);
        w ^= k64;
        std::memcpy(payload + i, &w, 8);
    }
    for (; i < n; ++i)
        payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ key[i & 3]);
}

/// Handler requirements:
///   frame_verdict on_frame(bool fin, unsigned opcode, std::string_view payload);
///   frame_verdict on_violation(const frame_violation&);
///   std::size_t message_bytes() const;  // of a fragmented message assembled so far
class ws_frame_reader {
public:
    /// A data frame whose payload and the message assembled so far pass `max_message_bytes` is
    /// refused (1009) as soon as its header is in, before its payload is buffered.
    explicit ws_frame_reader(std::size_t max_message_bytes) noexcept : max_(max_message_bytes) {}

    /// Plain TCP: `n` bytes just read into `data` (the caller's buffer; unmasked in place).
    template <class Handler>
    frame_verdict feed(char* data, std::size_t n, Handler& h) {
        if (len_ > 0) {
            buf_.resize(len_);
            buf_.insert(buf_.end(), data, data + n);
            len_ = buf_.size();
            return resume(h);
        }
        frame_verdict v = frame_verdict::next;
        const std::size_t used = parse(data, n, h, v);
        if (v != frame_verdict::fail && used < n) {
            buf_.assign(data + used, data + n);
            len_ = buf_.size();
        } else {
            release();
        }
        return v;
    }

    /// Keeps `n` bytes that arrived before the reader existed (what the HTTP parser read past
    /// the upgrade request) to be handled by the next resume() or feed(), before any new bytes.
    void preload(const char* data, std::size_t n) {
        buf_.resize(len_);
        buf_.insert(buf_.end(), data, data + n);
        len_ = buf_.size();
    }

    /// Handles what is buffered (after a pause); keeps only what is left.
    template <class Handler>
    frame_verdict resume(Handler& h) {
        frame_verdict v = frame_verdict::next;
        const std::size_t used = parse(buf_.data(), len_, h, v);
        if (v == frame_verdict::fail) {
            release();
            return v;
        }
        if (used > 0) {
            std::memmove(buf_.data(), buf_.data() + used, len_ - used);
            len_ -= used;
        }
        if (len_ == 0)
            release();
        else
            buf_.resize(len_);
        return v;
    }

    /// TLS: room to read into, at least `min_room` bytes and the whole of a frame whose header
    /// is in; then commit() what was read.
    boost::asio::mutable_buffer prepare(std::size_t min_room = 512) {
        std::size_t want = std::max(len_ + min_room, pending_frame_size());
        if (buf_.size() < want)
            buf_.resize(std::max(want, buf_.size() * 2));
        return {buf_.data() + len_, buf_.size() - len_};
    }
    template <class Handler>
    frame_verdict commit(std::size_t n, Handler& h) {
        len_ += n;
        return resume(h);
    }

    std::size_t buffered() const noexcept { return len_; }
    std::size_t capacity() const noexcept { return buf_.capacity(); }

private:
    void release() noexcept {
        len_ = 0;
        if (buf_.capacity() > 0)
            std::vector<char>().swap(buf_);
    }

    // The size of the incomplete frame at the start of the buffer once its header is in, else 0.
    std::size_t pending_frame_size() const noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(buf_.data());
        if (len_ < 2)
            return 0;
        std::uint64_t len = p[1] & 0x7F;
        std::size_t hdr = 2;
        if (len == 126) {
            if (len_ < 4)
                return 0;
            len = (std::uint64_t{p[2]} << 8) | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (len_ < 10)
                return 0;
            len = 0;
            for (int i = 0; i < 8; ++i)
                len = (len << 8) | p[2 + i];
            hdr = 10;
        }
        // parse() has refused a frame longer than max_ before its payload could be buffered.
        return hdr + 4 + static_cast<std::size_t>(std::min<std::uint64_t>(len, max_));
    }

    // Handles every complete frame in [data, data + n). Returns the bytes consumed; `v` says
    // why it stopped (next: no complete frame left).
    template <class Handler>
    std::size_t parse(char* data, std::size_t n, Handler& h, frame_verdict& v) {
        namespace ws = boost::beast::websocket;
        std::size_t pos = 0;
        v = frame_verdict::next;
        while (v == frame_verdict::next) {
            const auto* p = reinterpret_cast<const unsigned char*>(data) + pos;
            const std::size_t avail = n - pos;
            if (avail < 2)
                break;
            const bool fin = (p[0] & 0x80) != 0;
            const unsigned opcode = p[0] & 0x0F;
            const bool masked = (p[1] & 0x80) != 0;
            std::uint64_t len = p[1] & 0x7F;
            std::size_t hdr = 2;
            if (len == 126) {
                if (avail < 4)
                    break;
                len = (std::uint64_t{p[2]} << 8) | p[3];
                hdr = 4;
            } else if (len == 127) {
                if (avail < 10)
                    break;
                len = 0;
                for (int i = 0; i < 8; ++i)
                    len = (len << 8) | p[2 + i];
                hdr = 10;
            }
            const bool control = opcode >= 8;
            if ((p[0] & 0x70) != 0)
                v = h.on_violation({ws::close_code::protocol_error,
                                    "reserved bits set (no extension was negotiated)"});
            else if (!masked)
                v = h.on_violation(
                    {ws::close_code::protocol_error, "client frames must be masked"});
            else if (control && (!fin || len > 125))
                v = h.on_violation({ws::close_code::protocol_error,
                                    "control frames must be final and at most 125 bytes"});
            else if (!control && len > max_ - std::min(max_, h.message_bytes()))
                v = h.on_violation({ws::close_code::too_big, "message too big"});
            if (v != frame_verdict::next) {
                v = frame_verdict::fail;  // a violation always ends the connection
                break;
            }
            const std::size_t total = hdr + 4 + static_cast<std::size_t>(len);
            if (avail < total)
                break;
            char* payload = data + pos + hdr + 4;
            unmask(payload, static_cast<std::size_t>(len), p + hdr);
            pos += total;
            v = h.on_frame(fin, opcode, std::string_view(payload, static_cast<std::size_t>(len)));
        }
        return pos;
    }

    std::vector<char> buf_;  // [0, len_) received, not yet handled
    std::size_t len_ = 0;
    std::size_t max_;
};

}  // namespace eventcast::net

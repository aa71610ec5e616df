// The sending half of a WebSocket connection, without the socket: the outbox (frames queued as
// (head, shared batch, index) so fan-out copies nothing until the write), its bound (past
// --max-outbox-bytes the client is a slow consumer), RFC 6455 framing of server frames, and the
// one-buffer write: the frames at the head of the outbox copied, header, prefix and body, into
// one contiguous buffer for one send (docs/decisions/005-write-path.md). net/ws_session does the
// system calls with what this builds and reports back what was written. Unit-tested
// (tests/unit/net/ws_writer_test.cpp).
//
// Not thread-safe: one per connection, touched on its strand only.
#pragma once

#include "pubsub/broker.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::net {

enum class frame_kind : std::uint8_t { text, raw, pong, close };

struct out_frame {
    pubsub::shared_bytes head;   // control text, raw bytes, pong/close payload, or data prefix
    pubsub::shared_batch batch;  // data frames: the shared bodies; null otherwise
    std::uint32_t index = 0;     // which body of batch
    frame_kind kind = frame_kind::text;
    std::size_t payload_size() const noexcept {
        return head->size() + (batch ? batch->bodies[index].size() : 0);
    }
};

// FIFO of frames that allocates nothing until the first frame: an idle connection's outbox
// costs a few words, where std::deque allocates over 500 bytes up front.
class frame_queue {
public:
    bool empty() const noexcept { return head_ == items_.size(); }
    std::size_t size() const noexcept { return items_.size() - head_; }
    out_frame& at(std::size_t i) noexcept { return items_[head_ + i]; }
    const out_frame& at(std::size_t i) const noexcept { return items_[head_ + i]; }
    void push_back(out_frame f) { items_.push_back(std::move(f)); }
    void pop_front(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i)
            items_[head_ + i] = out_frame{};
        head_ += n;
        if (head_ == items_.size()) {
            items_.clear();
            head_ = 0;
            if (items_.capacity() > 256)
                items_.shrink_to_fit();  // a burst is over; give its memory back
        } else if (head_ > 64 && head_ * 2 > items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }
    // Drops everything after the first `keep` frames.
    void truncate(std::size_t keep) { items_.resize(head_ + keep); }

private:
    std::vector<out_frame> items_;
    std::size_t head_ = 0;
};

class ws_writer {
public:
    /// One write takes about this much of the outbox (a frame is never split across writes'
    /// buffers; the frame that crosses it is the last one taken).
    static constexpr std::size_t max_bytes_per_write = 64 * 1024;

    explicit ws_writer(std::size_t max_outbox_bytes) noexcept : max_(max_outbox_bytes) {}

    /// Queues a data or control frame. False, and nothing queued, when it would take the
    /// outbox past its bound: the connection is a slow consumer and must be closed.
    bool queue(out_frame f) {
        const auto size = f.payload_size() + overhead;
        if (bytes_ + size > max_)
            return false;
        bytes_ += size;
        outbox_.push_back(std::move(f));
        return true;
    }
    /// Queues bytes that bypass the bound and the framing (the HTTP upgrade's answer) or a
    /// close frame (which must go out even to a slow consumer).
    void queue_unbounded(out_frame f) { outbox_.push_back(std::move(f)); }

    bool empty() const noexcept { return outbox_.empty(); }
    std::size_t queued_bytes() const noexcept { return bytes_; }
    std::size_t limit() const noexcept { return max_; }

    /// Drops every queued frame after the first `keep` (frames being written stay).
    void drop_after(std::size_t keep) {
        outbox_.truncate(std::min(keep, outbox_.size()));
        bytes_ = 0;
        for (std::size_t i = 0; i < outbox_.size(); ++i)
            if (outbox_.at(i).kind != frame_kind::raw)
                bytes_ += outbox_.at(i).payload_size() + overhead;
    }

    /// Copies the first frames of the outbox (header, prefix, body), up to about
    /// max_bytes_per_write, into `out`. Returns how many frames it took; nothing follows a
    /// close frame in one buffer.
    std::size_t flatten(std::string& out) const {
        out.clear();
        std::size_t frames = 0;
        unsigned char h[10];
        for (std::size_t i = 0; i < outbox_.size() && out.size() < max_bytes_per_write; ++i) {
            const auto& f = outbox_.at(i);
            ++frames;
            if (f.kind == frame_kind::raw) {
                out.append(*f.head);
                continue;
            }
            out.append(reinterpret_cast<const char*>(h), put_header(h, f.kind, f.payload_size()));
            out.append(*f.head);
            if (f.batch)
                out.append(f.batch->bodies[f.index]);
            if (f.kind == frame_kind::close)
                break;
        }
        return frames;
    }

    /// The first `frames` frames are on the wire: forgets them. True when a close frame was
    /// among them.
    bool wrote(std::size_t frames) {
        bool close_sent = false;
        for (std::size_t i = 0; i < frames; ++i) {
            const auto& f = outbox_.at(i);
            if (f.kind == frame_kind::close)
                close_sent = true;
            if (f.kind != frame_kind::raw)
                bytes_ -= std::min(bytes_, f.payload_size() + overhead);
        }
        outbox_.pop_front(frames);
        return close_sent;
    }

    /// A server frame's header (FIN set, never masked): 2, 4 or 10 bytes into `h`.
    static std::size_t put_header(unsigned char* h, frame_kind kind, std::size_t len) {
        unsigned opcode = 0x1;
        if (kind == frame_kind::pong)
            opcode = 0xA;
        else if (kind == frame_kind::close)
            opcode = 0x8;
        h[0] = static_cast<unsigned char>(0x80 | opcode);
        if (len < 126) {
            h[1] = static_cast<unsigned char>(len);
            return 2;
        }
        if (len < 65536) {
            h[1] = 126;
            h[2] = static_cast<unsigned char>(len >> 8);
            h[3] = static_cast<unsigned char>(len);
            return 4;
        }
        h[1] = 127;
        for (int i = 0; i < 8; ++i)
            h[2 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(len) >> (56 - 8 * i));
        return 10;
    }

private:
    static constexpr std::size_t overhead = 10;  // a frame header at most, counted per frame
    frame_queue outbox_;
    std::size_t bytes_ = 0;  // payload + header of queued frames, raw bytes not counted
    std::size_t max_;
};

}  // namespace eventcast::net

// The sending half of a WebSocket connection, without the socket: the outbox, its bound (past
// --max-outbox-bytes the client is a slow consumer), RFC 6455 framing of server frames, and the
// one-buffer write (docs/decisions/005-write-path.md).
//
// A small control frame (at most max_copied_payload bytes: publish_success, acks, errors) is
// framed and copied at once into a run, an owned buffer of whole frames that the next write
// sends as it is; consecutive small frames share one run. Data frames are queued as (prefix,
// shared batch, index) and copied only by the write: copying them at delivery cut instructions
// but not time (issue #15 note: 1,000 subscribers' runs are megabytes, written cold).
// net/ws_session does the system calls with what this builds and reports back what was
// written. Unit-tested
// (tests/unit/net/ws_writer_test.cpp).
//
// Not thread-safe: one per connection, touched on its strand only.
#pragma once

#include "pubsub/broker.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventcast::net {

/// The bytes of a run: one allocation of a fixed capacity, filled by plain copies (a frame is
/// three pieces; std::string's append would cost a call and checks per piece, and growing would
/// copy what is there). Moved, never copied.
class run_buffer {
public:
    run_buffer() = default;
    explicit run_buffer(std::size_t capacity)
        : data_(std::make_unique_for_overwrite<char[]>(capacity)), cap_(capacity) {}
    run_buffer(run_buffer&& o) noexcept
        : data_(std::move(o.data_)),
          size_(std::exchange(o.size_, 0)),
          cap_(std::exchange(o.cap_, 0)) {}
    run_buffer& operator=(run_buffer&& o) noexcept {
        data_ = std::move(o.data_);
        size_ = std::exchange(o.size_, 0);
        cap_ = std::exchange(o.cap_, 0);
        return *this;
    }
    std::size_t size() const noexcept { return size_; }
    std::size_t room() const noexcept { return cap_ - size_; }
    std::string_view view() const noexcept { return {data_.get(), size_}; }
    /// `n` (at most room()) more bytes at the end, for the caller to fill.
    char* extend(std::size_t n) noexcept {
        char* p = data_.get() + size_;
        size_ += n;
        return p;
    }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};

/// `run`: whole frames already framed and copied (out_frame::run); the others are one frame
/// each, framed by the write.
enum class frame_kind : std::uint8_t { text, raw, pong, close, run };

struct out_frame {
    out_frame() = default;
    out_frame(pubsub::shared_bytes h, pubsub::shared_batch b, std::uint32_t i, frame_kind k)
        : head(std::move(h)), batch(std::move(b)), index(i), kind(k) {}

    pubsub::shared_bytes head;   // control text, raw bytes, pong/close payload, or data prefix
    pubsub::shared_batch batch;  // data frames: the shared bodies; null otherwise
    std::uint32_t index = 0;     // which body of batch
    frame_kind kind = frame_kind::text;
    run_buffer run;            // kind run: the frames' bytes, headers included
    std::size_t run_cost = 0;  // kind run: what its frames count against the bound
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

    /// Control frames whose payload is at most this are copied when queued (queue_copy)
    /// instead of allocated as a shared string each.
    static constexpr std::size_t max_copied_payload = 1024;

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

    /// Queues one text frame whose payload is `a` then `b`, framed and copied now into the run
    /// at the tail of the outbox (a new run when the tail is not one, is being written, or is
    /// full). A new run is twice the size of the runs queued before it, from 512 bytes to
    /// 16 KiB: a connection sent one event holds a small buffer, a busy one few allocations.
    /// False, and nothing queued, as for queue().
    bool queue_copy(std::string_view a, std::string_view b) {
        const std::size_t payload = a.size() + b.size();
        const std::size_t cost = payload + overhead;
        if (bytes_ + cost > max_)
            return false;
        bytes_ += cost;
        unsigned char h[10];
        const std::size_t header = put_header(h, frame_kind::text, payload);
        const std::size_t need = header + payload;
        out_frame* tail = outbox_.size() > sealed_ ? &outbox_.at(outbox_.size() - 1) : nullptr;
        if (tail == nullptr || tail->kind != frame_kind::run || tail->run.room() < need) {
            out_frame f;
            f.kind = frame_kind::run;
            f.run = run_buffer(std::max(need, std::clamp<std::size_t>(2 * run_bytes_, 512, 16384)));
            outbox_.push_back(std::move(f));
            tail = &outbox_.at(outbox_.size() - 1);
        }
        char* p = tail->run.extend(need);
        std::memcpy(p, h, header);
        if (!a.empty())
            std::memcpy(p + header, a.data(), a.size());
        if (!b.empty())
            std::memcpy(p + header + a.size(), b.data(), b.size());
        tail->run_cost += cost;
        run_bytes_ += need;
        return true;
    }

    /// The runs at the head of the outbox, at most `max` of them, as views into `out`: bytes a
    /// write can send as they are (a gathered write of a few large pieces). 0 when the head
    /// is not a run.
    std::size_t leading_runs(std::string_view* out, std::size_t max) const noexcept {
        std::size_t n = 0;
        while (n < max && n < outbox_.size() && outbox_.at(n).kind == frame_kind::run) {
            out[n] = outbox_.at(n).run.view();
            ++n;
        }
        return n;
    }

    /// The frames of the next write are taken (flatten or leading_runs): nothing is appended to
    /// them until wrote() or drop_after().
    void seal(std::size_t frames) noexcept { sealed_ = frames; }
    /// Queues bytes that bypass the bound and the framing (the HTTP upgrade's answer) or a
    /// close frame (which must go out even to a slow consumer).
    void queue_unbounded(out_frame f) { outbox_.push_back(std::move(f)); }

    bool empty() const noexcept { return outbox_.empty(); }
    std::size_t queued_bytes() const noexcept { return bytes_; }
    std::size_t limit() const noexcept { return max_; }

    /// Drops every queued frame after the first `keep` (frames being written stay).
    void drop_after(std::size_t keep) {
        outbox_.truncate(std::min(keep, outbox_.size()));
        sealed_ = std::min(sealed_, outbox_.size());
        bytes_ = 0;
        run_bytes_ = 0;
        for (std::size_t i = 0; i < outbox_.size(); ++i) {
            bytes_ += cost_of(outbox_.at(i));
            if (outbox_.at(i).kind == frame_kind::run)
                run_bytes_ += outbox_.at(i).run.size();
        }
    }

    /// Copies the first frames of the outbox (header, prefix, body), up to about
    /// max_bytes_per_write, into `out`, and seals them. Returns how many frames it took;
    /// nothing follows a close frame in one buffer.
    std::size_t flatten(std::string& out) {
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
            if (f.kind == frame_kind::run) {
                out.append(f.run.view());
                continue;
            }
            out.append(reinterpret_cast<const char*>(h), put_header(h, f.kind, f.payload_size()));
            out.append(*f.head);
            if (f.batch)
                out.append(f.batch->bodies[f.index]);
            if (f.kind == frame_kind::close)
                break;
        }
        sealed_ = frames;
        return frames;
    }

    /// The first `frames` frames are on the wire: forgets them. True when a close frame was
    /// among them.
    bool wrote(std::size_t frames) {
        bool close_sent = false;
        for (std::size_t i = 0; i < frames; ++i) {
            auto& f = outbox_.at(i);
            if (f.kind == frame_kind::close)
                close_sent = true;
            bytes_ -= std::min(bytes_, cost_of(f));
            if (f.kind == frame_kind::run)
                run_bytes_ -= std::min(run_bytes_, f.run.size());
        }
        outbox_.pop_front(frames);
        sealed_ = 0;
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

    static std::size_t cost_of(const out_frame& f) noexcept {
        if (f.kind == frame_kind::raw)
            return 0;
        return f.kind == frame_kind::run ? f.run_cost : f.payload_size() + overhead;
    }

    frame_queue outbox_;
    std::size_t bytes_ = 0;      // what queued frames count against the bound (raw bytes: nothing)
    std::size_t sealed_ = 0;     // the first frames, taken by the write under way
    std::size_t run_bytes_ = 0;  // bytes in the queued runs
    std::size_t max_;
};

}  // namespace eventcast::net

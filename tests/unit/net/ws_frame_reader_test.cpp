// Tests src/net/ws_frame_reader.hpp: frames split anywhere, lengths in all three encodings,
// unmasking, every header violation, the size limit before the payload is buffered, pausing,
// and that nothing stays buffered between messages.
#include "net/ws_frame_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventcast::net {
namespace {

// A masked client frame.
std::string frame(unsigned opcode, std::string_view payload, bool fin = true,
                  const char key[4] = "\x11\x22\x33\x44") {
    std::string out;
    out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(0x80 | payload.size()));
    } else if (payload.size() < 65536) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xFF));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i)
            out.push_back(
                static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> (8 * i)) & 0xFF));
    }
    out.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    return out;
}

struct recorder {
    std::vector<std::pair<unsigned, std::string>> frames;
    std::vector<int> violations;
    std::size_t message = 0;
    bool pause_each = false;
    frame_verdict on_frame(bool, unsigned opcode, std::string_view payload) {
        frames.emplace_back(opcode, std::string(payload));
        return pause_each ? frame_verdict::pause : frame_verdict::next;
    }
    frame_verdict on_violation(const frame_violation& v) {
        violations.push_back(static_cast<int>(v.code));
        return frame_verdict::fail;
    }
    std::size_t message_bytes() const { return message; }
};

frame_verdict feed(ws_frame_reader& r, recorder& h, std::string bytes) {
    return r.feed(bytes.data(), bytes.size(), h);
}

TEST(WsFrameReaderTest, WholeFramesInOneReadAreHandledAndNothingIsKept) {
    ws_frame_reader r(1 << 20);
    recorder h;
    EXPECT_EQ(feed(r, h, frame(1, "hello") + frame(9, "p") + frame(1, std::string(300, 'x'))),
              frame_verdict::next);
    ASSERT_EQ(h.frames.size(), 3u);
    EXPECT_EQ(h.frames[0], (std::pair<unsigned, std::string>{1, "hello"}));
    EXPECT_EQ(h.frames[1], (std::pair<unsigned, std::string>{9, "p"}));
    EXPECT_EQ(h.frames[2].second, std::string(300, 'x'));
    EXPECT_EQ(r.buffered(), 0u);
    EXPECT_EQ(r.capacity(), 0u);
}

TEST(WsFrameReaderTest, AFrameSplitAtEveryByteComesOutWhole) {
    const std::string payload(70000, 'a');  // the 8-byte length form
    for (const auto& bytes : {frame(1, "x"), frame(1, std::string(200, 'b')), frame(2, payload)}) {
        for (std::size_t cut = 1; cut<bytes.size(); cut += bytes.size()> 1000 ? 997 : 1) {
            ws_frame_reader r(1 << 20);
            recorder h;
            EXPECT_EQ(feed(r, h, bytes.substr(0, cut)), frame_verdict::next);
            EXPECT_TRUE(h.frames.empty());
            EXPECT_EQ(r.buffered(), cut);
            EXPECT_EQ(feed(r, h, bytes.substr(cut)), frame_verdict::next);
            ASSERT_EQ(h.frames.size(), 1u) << "cut at " << cut;
            EXPECT_EQ(h.frames[0].second.size(), bytes.size() - (bytes.size() > 70000 ? 14
                                                                 : bytes.size() > 130 ? 8
                                                                                      : 6));
            EXPECT_EQ(r.buffered(), 0u);
        }
    }
}

TEST(WsFrameReaderTest, UnmasksEveryLengthAndKey) {
    const char key[4] = {'\x01', '\x7f', '\x80', '\xff'};
    for (std::size_t n = 0; n < 40; ++n) {
        std::string payload;
        for (std::size_t i = 0; i < n; ++i)
            payload.push_back(static_cast<char>('A' + i));
        ws_frame_reader r(1 << 20);
        recorder h;
        feed(r, h, frame(1, payload, true, key));
        ASSERT_EQ(h.frames.size(), 1u);
        EXPECT_EQ(h.frames[0].second, payload);
    }
}

TEST(WsFrameReaderTest, EveryHeaderViolationFailsWithItsCode) {
    struct bad {
        std::string bytes;
        int code;
    };
    std::string unmasked = frame(1, "hi");
    unmasked[1] = static_cast<char>(unmasked[1] & 0x7F);
    std::string reserved = frame(1, "hi");
    reserved[0] = static_cast<char>(reserved[0] | 0x40);
    for (const auto& [bytes, code] :
         std::vector<bad>{{unmasked, 1002},
                          {reserved, 1002},
                          {frame(9, "ping", false), 1002},          // control frames must be final
                          {frame(9, std::string(126, 'p')), 1002},  // and at most 125 bytes
                          {frame(1, std::string(101, 'x')), 1009}}) {  // over the limit of 100
        ws_frame_reader r(100);
        recorder h;
        EXPECT_EQ(feed(r, h, frame(1, "ok") + bytes + frame(1, "never")), frame_verdict::fail);
        ASSERT_EQ(h.frames.size(), 1u);
        EXPECT_EQ(h.violations, std::vector<int>{code});
        EXPECT_EQ(r.buffered(), 0u);
    }
}

TEST(WsFrameReaderTest, TooBigIsRefusedFromTheHeaderAloneAndCountsTheMessageSoFar) {
    ws_frame_reader r(1000);
    recorder h;
    const std::string big = frame(1, std::string(5000, 'x'));
    EXPECT_EQ(feed(r, h, big.substr(0, 8)), frame_verdict::fail);  // payload not sent yet
    EXPECT_EQ(h.violations, std::vector<int>{1009});

    ws_frame_reader r2(1000);
    recorder h2;
    h2.message = 900;  // a fragmented message already holds 900 bytes
    EXPECT_EQ(feed(r2, h2, frame(0, std::string(101, 'x'), false)), frame_verdict::fail);
    EXPECT_EQ(h2.violations, std::vector<int>{1009});
    h2 = {};
    ws_frame_reader r3(1000);
    h2.message = 900;
    EXPECT_EQ(feed(r3, h2, frame(0, std::string(100, 'x'))), frame_verdict::next);
    EXPECT_TRUE(h2.violations.empty());

    // A 64-bit length that would overflow `len + message` is refused, not wrapped.
    ws_frame_reader r4(1000);
    recorder h4;
    h4.message = 10;
    std::string huge = "\x81\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF";
    EXPECT_EQ(feed(r4, h4, huge + "abcd"), frame_verdict::fail);
    EXPECT_EQ(h4.violations, std::vector<int>{1009});
}

TEST(WsFrameReaderTest, PauseKeepsTheRestUntilResume) {
    ws_frame_reader r(1 << 20);
    recorder h;
    h.pause_each = true;
    EXPECT_EQ(feed(r, h, frame(1, "a") + frame(1, "b") + frame(1, "c").substr(0, 3)),
              frame_verdict::pause);
    EXPECT_EQ(h.frames.size(), 1u);
    EXPECT_EQ(r.buffered(), frame(1, "b").size() + 3);
    EXPECT_EQ(r.resume(h), frame_verdict::pause);
    EXPECT_EQ(h.frames.size(), 2u);
    h.pause_each = false;
    EXPECT_EQ(r.resume(h), frame_verdict::next);  // the incomplete "c" stays
    EXPECT_EQ(r.buffered(), 3u);
    EXPECT_EQ(feed(r, h, frame(1, "c").substr(3)), frame_verdict::next);
    ASSERT_EQ(h.frames.size(), 3u);
    EXPECT_EQ(h.frames[2].second, "c");
    EXPECT_EQ(r.capacity(), 0u);
}

TEST(WsFrameReaderTest, TlsReadsIntoItsOwnBufferWithRoomForAWholeFrame) {
    ws_frame_reader r(1 << 20);
    recorder h;
    const std::string bytes = frame(1, std::string(3000, 'z')) + frame(1, "tail");
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        auto room = r.prepare();
        ASSERT_GE(room.size(), 1u);
        const std::size_t n =
            std::min<std::size_t>(room.size(), std::min<std::size_t>(700, bytes.size() - pos));
        std::memcpy(room.data(), bytes.data() + pos, n);
        pos += n;
        EXPECT_NE(r.commit(n, h), frame_verdict::fail);
        if (r.buffered() >= 4) {
            // Once the header is in, prepare() makes room for the whole frame.
            EXPECT_GE(r.buffered() + r.prepare().size(), std::min<std::size_t>(3008, bytes.size()));
        }
    }
    ASSERT_EQ(h.frames.size(), 2u);
    EXPECT_EQ(h.frames[0].second, std::string(3000, 'z'));
    EXPECT_EQ(h.frames[1].second, "tail");
}

}  // namespace
}  // namespace eventcast::net

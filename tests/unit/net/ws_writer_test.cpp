// Tests src/net/ws_writer.hpp: RFC 6455 server frame headers, the outbox bound, the one-buffer
// flatten (raw bytes verbatim, nothing after a close, about 64 KiB per write), what wrote() and
// drop_after() forget, small frames copied into runs (order, sealing, the bound), and the
// frame_queue's order through compaction. The frames are decoded
// here by hand, independently of the writer.
#include "net/ws_writer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventcast::net {
namespace {

pubsub::shared_bytes bytes(std::string s) {
    return std::make_shared<const std::string>(std::move(s));
}

out_frame text(std::string s) {
    return out_frame{bytes(std::move(s)), nullptr, 0, frame_kind::text};
}

out_frame data(std::string prefix, const pubsub::shared_batch& batch, std::uint32_t index) {
    return out_frame{bytes(std::move(prefix)), batch, index, frame_kind::text};
}

pubsub::shared_batch batch_of(std::vector<std::string> bodies) {
    auto b = std::make_shared<pubsub::event_batch>();
    b->bodies = std::move(bodies);
    return b;
}

struct decoded {
    unsigned first_byte;
    std::string payload;
};

// Splits a buffer of unmasked server frames (RFC 6455 §5.2).
std::vector<decoded> decode(const std::string& buf) {
    std::vector<decoded> out;
    std::size_t i = 0;
    while (i < buf.size()) {
        const auto b0 = static_cast<unsigned char>(buf[i]);
        const auto b1 = static_cast<unsigned char>(buf[i + 1]);
        EXPECT_EQ(b1 & 0x80, 0) << "server frames are never masked";
        std::uint64_t len = b1 & 0x7f;
        i += 2;
        if (len == 126) {
            len =
                (static_cast<unsigned char>(buf[i]) << 8) | static_cast<unsigned char>(buf[i + 1]);
            i += 2;
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; ++k)
                len = (len << 8) | static_cast<unsigned char>(buf[i + k]);
            i += 8;
        }
        out.push_back({b0, buf.substr(i, len)});
        i += len;
    }
    EXPECT_EQ(i, buf.size());
    return out;
}

TEST(WsWriterTest, HeadersUseTheShortestLengthForm) {
    unsigned char h[10];
    EXPECT_EQ(ws_writer::put_header(h, frame_kind::text, 0), 2u);
    EXPECT_EQ(h[0], 0x81);
    EXPECT_EQ(h[1], 0);
    EXPECT_EQ(ws_writer::put_header(h, frame_kind::text, 125), 2u);
    EXPECT_EQ(h[1], 125);
    EXPECT_EQ(ws_writer::put_header(h, frame_kind::text, 126), 4u);
    EXPECT_EQ(h[1], 126);
    EXPECT_EQ(h[2], 0);
    EXPECT_EQ(h[3], 126);
    EXPECT_EQ(ws_writer::put_header(h, frame_kind::text, 65535), 4u);
    EXPECT_EQ(h[2], 0xff);
    EXPECT_EQ(h[3], 0xff);
    EXPECT_EQ(ws_writer::put_header(h, frame_kind::text, 65536), 10u);
    EXPECT_EQ(h[1], 127);
    const unsigned char want[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    for (int i = 0; i < 8; ++i)
        EXPECT_EQ(h[2 + i], want[i]) << i;
}

TEST(WsWriterTest, OpcodesOfTheFrameKinds) {
    unsigned char h[10];
    ws_writer::put_header(h, frame_kind::pong, 1);
    EXPECT_EQ(h[0], 0x8A);
    ws_writer::put_header(h, frame_kind::close, 2);
    EXPECT_EQ(h[0], 0x88);
}

TEST(WsWriterTest, FlattenFramesTextDataPongAndRawInOrder) {
    ws_writer w(1 << 20);
    auto batch = batch_of({"first\"}", "second\"}"});
    w.queue_unbounded(out_frame{bytes("HTTP/1.1 101 ...\r\n\r\n"), nullptr, 0, frame_kind::raw});
    ASSERT_TRUE(w.queue(text(R"({"type":"ka"})")));
    ASSERT_TRUE(w.queue(data(R"({"type":"data","id":"s1","event":")", batch, 1)));
    ASSERT_TRUE(w.queue(out_frame{bytes("p"), nullptr, 0, frame_kind::pong}));
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 4u);
    const std::string upgrade = "HTTP/1.1 101 ...\r\n\r\n";
    ASSERT_EQ(buf.compare(0, upgrade.size(), upgrade), 0);  // raw bytes go out without a header
    auto frames = decode(buf.substr(upgrade.size()));
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].first_byte, 0x81u);
    EXPECT_EQ(frames[0].payload, R"({"type":"ka"})");
    EXPECT_EQ(frames[1].payload, R"({"type":"data","id":"s1","event":"second"})");
    EXPECT_EQ(frames[2].first_byte, 0x8Au);
    EXPECT_EQ(frames[2].payload, "p");
    EXPECT_EQ(w.flatten(buf), 4u);  // flatten forgets nothing; wrote() does
}

TEST(WsWriterTest, NothingFollowsACloseFrameInOneBuffer) {
    ws_writer w(1 << 20);
    ASSERT_TRUE(w.queue(text("a")));
    w.queue_unbounded(out_frame{bytes(std::string("\x03\xe8", 2)), nullptr, 0, frame_kind::close});
    ASSERT_TRUE(w.queue(text("after")));
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 2u);
    auto frames = decode(buf);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[1].first_byte, 0x88u);
    EXPECT_EQ(frames[1].payload, std::string("\x03\xe8", 2));
    EXPECT_TRUE(w.wrote(2));  // the close went out
    EXPECT_FALSE(w.empty());
    EXPECT_FALSE(w.wrote(1));
    EXPECT_TRUE(w.empty());
}

TEST(WsWriterTest, OneBufferTakesAbout64KiBAndNeverSplitsAFrame) {
    ws_writer w(1 << 20);
    const std::string big(40 * 1024, 'x');
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(w.queue(text(big)));
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 2u);  // the second crosses 64 KiB and is the last one taken
    EXPECT_EQ(buf.size(), 2 * (big.size() + 4));
    EXPECT_FALSE(w.wrote(2));
    EXPECT_EQ(w.flatten(buf), 1u);
    EXPECT_EQ(decode(buf).at(0).payload, big);
}

TEST(WsWriterTest, TheBoundRefusesAFrameThatWouldPassIt) {
    ws_writer w(100);  // payload + 10 bytes per frame are counted
    ASSERT_TRUE(w.queue(text(std::string(80, 'a'))));
    EXPECT_EQ(w.queued_bytes(), 90u);
    EXPECT_FALSE(w.queue(text(std::string(1, 'b'))));  // 90 + 11 > 100: a slow consumer
    EXPECT_EQ(w.queued_bytes(), 90u);
    EXPECT_TRUE(w.queue(text("")));  // 90 + 10 == 100 still fits
    EXPECT_EQ(w.queued_bytes(), 100u);
    // A close frame must go out even to a slow consumer, and is not counted.
    w.queue_unbounded(out_frame{bytes("\x03\xf5"), nullptr, 0, frame_kind::close});
    EXPECT_EQ(w.queued_bytes(), 100u);
    EXPECT_FALSE(w.wrote(1));
    EXPECT_EQ(w.queued_bytes(), 10u);
    EXPECT_EQ(w.limit(), 100u);
}

TEST(WsWriterTest, DataFramesCountTheirSharedBody) {
    ws_writer w(1000);
    auto batch = batch_of({std::string(500, 'e')});
    ASSERT_TRUE(w.queue(data("prefix", batch, 0)));
    EXPECT_EQ(w.queued_bytes(), 6u + 500 + 10);
}

TEST(WsWriterTest, DropAfterKeepsTheFirstFramesAndRecountsThem) {
    ws_writer w(1 << 20);
    w.queue_unbounded(out_frame{bytes("raw"), nullptr, 0, frame_kind::raw});
    ASSERT_TRUE(w.queue(text("12345")));
    ASSERT_TRUE(w.queue(text("more")));
    ASSERT_TRUE(w.queue(text("and more")));
    w.drop_after(2);
    EXPECT_EQ(w.queued_bytes(), 5u + 10);  // the raw bytes are never counted
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 2u);
    w.drop_after(10);  // more than there are: nothing changes
    EXPECT_EQ(w.flatten(buf), 2u);
}

// The runs at the head of the outbox: how many, and their bytes end to end.
struct head_runs {
    std::size_t count = 0;
    std::string bytes;
};
head_runs runs_of(const ws_writer& w) {
    std::string_view views[16];
    head_runs r;
    r.count = w.leading_runs(views, std::size(views));
    for (std::size_t i = 0; i < r.count; ++i)
        r.bytes += views[i];
    return r;
}

TEST(WsWriterTest, SmallFramesAreCopiedIntoOneRunInOrder) {
    ws_writer w(1 << 20);
    auto batch = batch_of({"\"a\"}", "\"b\"}"});
    ASSERT_TRUE(w.queue_copy("{\"id\":\"s1\",\"event\":", batch->bodies[0]));
    ASSERT_TRUE(w.queue_copy("{\"id\":\"s1\",\"event\":", batch->bodies[1]));
    ASSERT_TRUE(w.queue_copy("ack", {}));
    // Three frames, one run: what a write sends as it is.
    const head_runs r = runs_of(w);
    ASSERT_EQ(r.count, 1u);
    const auto frames = decode(r.bytes);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].first_byte, 0x81u);
    EXPECT_EQ(frames[0].payload, "{\"id\":\"s1\",\"event\":\"a\"}");
    EXPECT_EQ(frames[1].payload, "{\"id\":\"s1\",\"event\":\"b\"}");
    EXPECT_EQ(frames[2].payload, "ack");
    EXPECT_EQ(w.queued_bytes(), (19u + 4 + 10) * 2 + 3 + 10);  // prefix, body, header
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 1u);
    EXPECT_EQ(buf, r.bytes);
    EXPECT_FALSE(w.wrote(1));
    EXPECT_TRUE(w.empty());
    EXPECT_EQ(w.queued_bytes(), 0u);
    EXPECT_EQ(runs_of(w).count, 0u);
}

TEST(WsWriterTest, ARunBeingWrittenIsNotAppendedTo) {
    ws_writer w(1 << 20);
    ASSERT_TRUE(w.queue_copy("one", {}));
    w.seal(1);  // the write under way took it
    ASSERT_TRUE(w.queue_copy("two", {}));
    EXPECT_EQ(runs_of(w).count, 2u);
    EXPECT_FALSE(w.wrote(1));  // the first is on the wire; "two" is not lost
    head_runs r = runs_of(w);
    ASSERT_EQ(r.count, 1u);
    ASSERT_EQ(decode(r.bytes).size(), 1u);
    EXPECT_EQ(decode(r.bytes)[0].payload, "two");
    // After a write is taken by flatten, the same holds.
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 1u);
    ASSERT_TRUE(w.queue_copy("three", {}));
    EXPECT_FALSE(w.wrote(1));
    r = runs_of(w);
    ASSERT_EQ(r.count, 1u);
    EXPECT_EQ(decode(r.bytes).at(0).payload, "three");
}

TEST(WsWriterTest, RunsAndSharedFramesKeepTheirOrder) {
    ws_writer w(1 << 20);
    const std::string big(ws_writer::max_copied_payload + 1, 'x');
    auto batch = batch_of({big});
    ASSERT_TRUE(w.queue_copy("first", {}));
    ASSERT_TRUE(w.queue(data("p:", batch, 0)));  // too large to copy: by reference
    ASSERT_TRUE(w.queue_copy("third", {}));
    ASSERT_TRUE(w.queue_copy("fourth", {}));  // joins "third"'s run, not "first"'s
    EXPECT_EQ(runs_of(w).count, 1u);          // a shared frame follows the first run
    std::string buf;
    EXPECT_EQ(w.flatten(buf), 3u);
    const auto frames = decode(buf);
    ASSERT_EQ(frames.size(), 4u);
    EXPECT_EQ(frames[0].payload, "first");
    EXPECT_EQ(frames[1].payload, "p:" + big);
    EXPECT_EQ(frames[2].payload, "third");
    EXPECT_EQ(frames[3].payload, "fourth");
}

TEST(WsWriterTest, CopiedFramesCountAgainstTheBound) {
    ws_writer w(40);
    ASSERT_TRUE(w.queue_copy(std::string(20, 'a'), {}));    // 30
    EXPECT_FALSE(w.queue_copy("b", std::string(10, 'c')));  // 30 + 21 > 40: refused, not queued
    EXPECT_EQ(w.queued_bytes(), 30u);
    EXPECT_EQ(decode(runs_of(w).bytes).size(), 1u);
    w.drop_after(0);
    EXPECT_TRUE(w.empty());
    EXPECT_EQ(w.queued_bytes(), 0u);
}

TEST(WsWriterTest, RunsGrowWithTheBurstAndEveryFrameStaysWhole) {
    ws_writer w(1 << 24);
    const std::string body(1000, 'e');  // 1004-byte frames
    for (int i = 0; i < 200; ++i)       // about 200 KB
        ASSERT_TRUE(w.queue_copy(body, std::to_string(i % 10)));
    // 512-byte and 1 KiB runs would not hold a frame; then 2, 4, 8 KiB, then 16 KiB each:
    // far fewer runs than frames, none past 16 KiB.
    std::string_view views[64];
    const std::size_t n = w.leading_runs(views, std::size(views));
    EXPECT_GT(n, 8u);
    EXPECT_LT(n, 25u);
    for (std::size_t i = 0; i < n; ++i)
        EXPECT_LE(views[i].size(), 16384u);
    std::string buf;
    std::size_t frames_seen = 0;
    while (!w.empty()) {
        const std::size_t taken = w.flatten(buf);
        for (const auto& f : decode(buf)) {
            ASSERT_EQ(f.payload, body + std::to_string(frames_seen % 10));
            ++frames_seen;
        }
        w.wrote(taken);
    }
    EXPECT_EQ(frames_seen, 200u);
    EXPECT_EQ(w.queued_bytes(), 0u);
}

TEST(FrameQueueTest, KeepsOrderThroughCompactionAndEmptiesCleanly) {
    frame_queue q;
    EXPECT_TRUE(q.empty());
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 7; ++i)
            q.push_back(text(std::to_string(next_in++)));
        const std::size_t take = std::min<std::size_t>(q.size(), 5);
        for (std::size_t i = 0; i < take; ++i)
            ASSERT_EQ(*q.at(i).head, std::to_string(next_out + static_cast<int>(i)));
        q.pop_front(take);
        next_out += static_cast<int>(take);
        ASSERT_EQ(q.size(), static_cast<std::size_t>(next_in - next_out));
    }
    q.pop_front(q.size());
    EXPECT_TRUE(q.empty());
    q.push_back(text("again"));
    EXPECT_EQ(*q.at(0).head, "again");
    q.truncate(0);
    EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace eventcast::net

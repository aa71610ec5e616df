// Tests src/llm/sse.cpp: WHATWG line and field rules, the same events wherever a feed boundary
// falls (a CRLF split in two included), the BOM, limits, and the end-of-stream flush.
#include "llm/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace eventcast::llm {
namespace {

using namespace std::string_literals;

std::string describe(const std::vector<sse_event>& events) {
    std::string out;
    for (const auto& e : events)
        out += "{event=" + e.event + " data=" + e.data + " id=" + e.id + " error=" + e.error + "}";
    return out;
}

std::vector<sse_event> parse_all(std::string_view wire, sse_limits limits = {}) {
    sse_parser parser(limits);
    auto events = parser.feed(wire);
    auto rest = parser.finish();
    events.insert(events.end(), rest.begin(), rest.end());
    return events;
}

TEST(SseParserTest, SameEventsWhereverTheChunkBoundaryFalls) {
    const std::string wire = "data: Hel\n\ndata: lo\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        sse_parser parser;
        auto events = parser.feed(std::string_view(wire).substr(0, cut));
        auto rest = parser.feed(std::string_view(wire).substr(cut));
        events.insert(events.end(), rest.begin(), rest.end());
        ASSERT_EQ(events.size(), 3u) << "cut at byte " << cut;
        EXPECT_EQ(events[0].data, "Hel");
        EXPECT_EQ(events[1].data, "lo");
        EXPECT_EQ(events[2].data, "[DONE]");
    }
}

// Every rule at once, in all three line-end styles, a BOM in front.
const std::string mixed_wire =
    "\xEF\xBB\xBF"
    "event: first\r\nid: 1\r\ndata: a\r\ndata:b\r\ndata\r\n\r\n"
    ": comment\n"
    "retry: 1000\nunknown: x\ndata:  two spaces\n\n"
    "event: lonely\n\n"
    "error: {\"error\":\"boom\"}\r\r"
    "id: 7\rdata: cr only\r\r"
    "data: tail";

const std::string mixed_expected =
    "{event=first data=a\nb\n id=1 error=}"
    "{event= data= two spaces id=1 error=}"
    "{event= data= id=1 error={\"error\":\"boom\"}}"
    "{event= data=cr only id=7 error=}"
    "{event= data=tail id=7 error=}";

TEST(SseParserTest, AppliesTheFieldRules) {
    EXPECT_EQ(describe(parse_all(mixed_wire)), mixed_expected);
}

TEST(SseParserTest, SameEventsForEveryTwoPieceSplitAndByteByByte) {
    for (std::size_t cut = 0; cut <= mixed_wire.size(); ++cut) {
        sse_parser parser;
        auto events = parser.feed(std::string_view(mixed_wire).substr(0, cut));
        auto rest = parser.feed(std::string_view(mixed_wire).substr(cut));
        events.insert(events.end(), rest.begin(), rest.end());
        rest = parser.finish();
        events.insert(events.end(), rest.begin(), rest.end());
        ASSERT_EQ(describe(events), mixed_expected) << "cut at byte " << cut;
    }
    sse_parser parser;
    std::vector<sse_event> events;
    for (const char c : mixed_wire) {
        auto got = parser.feed(std::string_view(&c, 1));
        events.insert(events.end(), got.begin(), got.end());
    }
    auto rest = parser.finish();
    events.insert(events.end(), rest.begin(), rest.end());
    EXPECT_EQ(describe(events), mixed_expected);
}

TEST(SseParserTest, CrlfSplitAcrossFeedsIsOneLineEnd) {
    sse_parser parser;
    EXPECT_TRUE(parser.feed("data: x\r").empty());
    // If the LF counted as a second line end, this would dispatch "x" here.
    EXPECT_TRUE(parser.feed("\n").empty());
    const auto events = parser.feed("data: y\r\n\r\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "x\ny");
}

TEST(SseParserTest, DropsOnlyALeadingBomEvenWhenSplit) {
    sse_parser parser;
    EXPECT_TRUE(parser.feed("\xEF").empty());
    EXPECT_TRUE(parser.feed("\xBB").empty());
    const auto events = parser.feed(
        "\xBF"
        "data: x\n\n\xEF\xBB\xBF"
        "data: y\n\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "x");
    // A BOM later in the stream is part of a field name, which is then unknown.
    EXPECT_TRUE(parser.finish().empty());
}

TEST(SseParserTest, KeepsBytesThatOnlyLookedLikeTheStartOfABom) {
    EXPECT_EQ(describe(parse_all("\xEF"
                                 "data: x\n\n")),
              "");  // field "\xEF" "data" is unknown
    EXPECT_EQ(describe(parse_all("\xEF\xBB")), "");
    EXPECT_EQ(describe(parse_all("data: \xEF\xBB\xBF\n\n")),
              "{event= data=\xEF\xBB\xBF id= error=}");
}

TEST(SseParserTest, DoesNotDispatchEventsWithoutData) {
    EXPECT_EQ(describe(parse_all("event: ping\n\n\n\nid: 3\n\n: c\n\n")), "");
    // The event type does not leak into the next event.
    EXPECT_EQ(describe(parse_all("event: ping\n\ndata: x\n\n")), "{event= data=x id= error=}");
}

TEST(SseParserTest, IgnoresIdsContainingNul) {
    EXPECT_EQ(describe(parse_all("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s)),
              "{event= data=a id=1 error=}{event= data=b id=1 error=}");
}

TEST(SseParserTest, FinishFlushesAnUnterminatedDone) {
    sse_parser parser;
    EXPECT_EQ(parser.feed("data: {\"a\":1}\n\ndata: [DONE]").size(), 1u);
    const auto events = parser.finish();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "[DONE]");
    EXPECT_TRUE(parser.finish().empty());
}

TEST(SseParserTest, FinishDispatchesAnEventMissingItsBlankLine) {
    sse_parser parser;
    EXPECT_TRUE(parser.feed("data: last\n").empty());
    ASSERT_EQ(parser.finish().size(), 1u);
}

TEST(SseParserTest, FeedAfterFinishIsAnError) {
    sse_parser parser;
    parser.finish();
    EXPECT_TRUE(parser.feed("data: x\n\n").empty());
    ASSERT_TRUE(parser.failed());
    EXPECT_EQ(parser.error()->message, "SSE data fed after finish()");
}

TEST(SseParserTest, RejectsALineOverTheLimitEvenWhenItArrivesInPieces) {
    sse_parser parser(sse_limits{16, 1024});
    EXPECT_TRUE(parser.feed("data: 0123456789").empty());
    EXPECT_FALSE(parser.failed());
    EXPECT_TRUE(parser.feed("x\n\n").empty());
    ASSERT_TRUE(parser.failed());
    EXPECT_EQ(parser.error()->message, "SSE line exceeds 16 bytes without a line end");
    EXPECT_TRUE(parser.feed("data: ok\n\n").empty());  // sticky
    EXPECT_TRUE(parser.finish().empty());
}

TEST(SseParserTest, RejectsAnEventOverTheLimitAndKeepsEarlierEvents) {
    sse_parser parser(sse_limits{64, 10});
    const auto events = parser.feed("data: ok\n\ndata: 12345\ndata: 67890\n\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "ok");
    ASSERT_TRUE(parser.failed());
    EXPECT_EQ(parser.error()->message,
              "SSE event data exceeds 10 bytes; the limit bounds memory per event");
}

TEST(SseParserTest, HandlesALargeChunkOfManyEvents) {
    std::string wire;
    for (int i = 0; i < 1000; ++i)
        wire += "data: {\"i\":" + std::to_string(i) + "}\n\n";
    sse_parser parser;
    const auto events = parser.feed(wire);
    ASSERT_EQ(events.size(), 1000u);
    EXPECT_EQ(events[999].data, "{\"i\":999}");
}

}  // namespace
}  // namespace eventcast::llm

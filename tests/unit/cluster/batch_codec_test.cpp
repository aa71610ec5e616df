// Tests src/cluster/batch_codec.cpp: round trip of publish batches and refusal of malformed
// payloads (what any NATS client could put on our subjects).
#include "cluster/batch_codec.hpp"

#include "events/message.hpp"

#include <gtest/gtest.h>

#include <string>

namespace eventcast::cluster {
namespace {

pubsub::event_batch batch_of(std::initializer_list<std::string_view> events) {
    pubsub::event_batch b;
    for (auto e : events) {
        b.bodies.push_back(events::data_body_open(e));  // bodies travel open
        b.bytes += b.bodies.back().size();
    }
    return b;
}

TEST(BatchCodecTest, RoundTripKeepsBodiesAndOrder) {
    const auto b = batch_of({R"({"a":1})", R"("text with \"quotes\" and é")", "[1,2,3]", "null",
                             std::string(300'000, '1')});
    auto back = decode_batch(encode_batch(b));
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(back->bodies, b.bodies);
    EXPECT_EQ(back->bytes, b.bytes);
}

TEST(BatchCodecTest, RefusesMalformedPayloads) {
    const auto good = encode_batch(batch_of({R"({"a":1})", "2"}));
    EXPECT_TRUE(decode_batch(good).has_value());
    EXPECT_FALSE(decode_batch("").has_value());
    EXPECT_FALSE(decode_batch("ecb2" + good.substr(4)).has_value());
    EXPECT_FALSE(decode_batch(std::string("ecb1\0", 5)).has_value());  // no events
    for (std::size_t cut = 0; cut < good.size(); ++cut)
        EXPECT_FALSE(decode_batch(good.substr(0, cut)).has_value()) << "cut at " << cut;
    EXPECT_FALSE(decode_batch(good + "x").has_value());
}

TEST(BatchCodecTest, RefusesBodiesThatWouldBreakADataFrame) {
    auto one = [](std::string_view body) {
        std::string p = "ecb1";
        p.push_back(1);
        const auto n = static_cast<std::uint32_t>(body.size());
        for (int shift : {24, 16, 8, 0})
            p.push_back(static_cast<char>(n >> shift));
        p += body;
        return decode_batch(p);
    };
    EXPECT_TRUE(one(R"("{\"a\":1}")").has_value());
    EXPECT_FALSE(one(R"({"a":1})").has_value());       // not a string
    EXPECT_FALSE(one(R"("{\"a\":1}"})").has_value());  // closed: positions are added on arrival
    EXPECT_FALSE(one(R"("a")"
                     "x")
                     .has_value());                 // a byte after the string
    EXPECT_FALSE(one(R"("a" "b")").has_value());    // two texts
    EXPECT_FALSE(one("\"a\x01\"").has_value());     // raw control byte
    EXPECT_FALSE(one("\"\xff\xfe\"").has_value());  // invalid UTF-8
    EXPECT_FALSE(one(R"("a)").has_value());
}

TEST(BatchCodecTest, SequencesFromHeadersAreStrictDigits) {
    EXPECT_EQ(parse_sequence("1"), 1u);
    EXPECT_EQ(parse_sequence("18446744073709551615"), UINT64_MAX);
    for (const char* bad : {"", "0", "01", "-1", "+1", " 1", "1 ", "1a", "0x10",
                            "18446744073709551616", "999999999999999999999"})
        EXPECT_FALSE(parse_sequence(bad).has_value()) << bad;
}

}  // namespace
}  // namespace eventcast::cluster

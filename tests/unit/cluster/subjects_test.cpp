// Tests src/cluster/subjects.cpp: channel <-> subject round trips, escapes of every byte NATS
// treats specially, and that each pattern's subject filter matches exactly the channels the
// AppSync wildcard matches (events::channel_pattern::matches, spec §7.3).
#include "cluster/subjects.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventcast::cluster {
namespace {

events::channel_path path(std::string_view text) {
    auto r = events::channel_path::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

events::channel_pattern pattern(std::string_view text) {
    auto r = events::channel_pattern::parse(text);
    EXPECT_TRUE(r.has_value()) << text;
    return *r;
}

TEST(SubjectsTest, ChannelSegmentsBecomeTokensUnderThePrefix) {
    EXPECT_EQ(channel_subject("eventcast", path("/default/room")), "eventcast.default.room");
    EXPECT_EQ(channel_subject("acme.events", path("ns/a-b/C9/d/e")), "acme.events.ns.a-b.C9.d.e");
    EXPECT_EQ(channel_subject("eventcast", path("default")), "eventcast.default");
}

TEST(SubjectsTest, CaseIsKeptBecauseChannelsAndSubjectsAreBothCaseSensitive) {
    EXPECT_NE(channel_subject("p", path("ns/Room")), channel_subject("p", path("ns/room")));
    EXPECT_EQ(channel_subject("p", path("BedrockChat/Alice")), "p.BedrockChat.Alice");
}

TEST(SubjectsTest, EveryValidChannelRoundTrips) {
    for (const auto* text :
         {"default", "default/room", "a/b/c/d/e", "BedrockChat/user-1", "x1/0/Z-9-z",
          "ns/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
        const auto p = path(text);
        auto back = subject_channel("eventcast", channel_subject("eventcast", p));
        ASSERT_TRUE(back.has_value()) << text;
        EXPECT_EQ(back->str(), p.str());
    }
}

TEST(SubjectsTest, SpecialBytesAreEscapedAndDecodeBack) {
    // '.', '*', '>', whitespace and '_' (the escape itself), then every other byte.
    EXPECT_EQ(encode_token("a.b"), "a_2Eb");
    EXPECT_EQ(encode_token("*"), "_2A");
    EXPECT_EQ(encode_token(">"), "_3E");
    EXPECT_EQ(encode_token(" \t\r\n"), "_20_09_0D_0A");
    EXPECT_EQ(encode_token("_"), "_5F");
    EXPECT_EQ(encode_token("a-Z0"), "a-Z0");
    for (int b = 0; b < 256; ++b) {
        const std::string seg = std::string("x") + static_cast<char>(b) + "y";
        const auto token = encode_token(seg);
        EXPECT_EQ(token.find_first_of(".*> \t\r\n\f\v"), std::string::npos) << b;
        auto back = decode_token(token);
        ASSERT_TRUE(back.has_value()) << b;
        EXPECT_EQ(*back, seg) << b;
    }
}

TEST(SubjectsTest, DecodingRefusesWhatEncodingNeverWrites) {
    EXPECT_FALSE(decode_token("").has_value());
    EXPECT_FALSE(decode_token("a_2").has_value());   // cut escape
    EXPECT_FALSE(decode_token("a_2e").has_value());  // lower-case hex
    EXPECT_FALSE(decode_token("a_41").has_value());  // 'A' needs no escape
    EXPECT_FALSE(decode_token("a*").has_value());    // raw wildcard
    EXPECT_FALSE(decode_token("a b").has_value());
    EXPECT_TRUE(decode_token("a_2Eb").has_value());
}

TEST(SubjectsTest, SubjectsThatNameNoValidChannelAreRefused) {
    EXPECT_FALSE(subject_channel("eventcast", "other.default.room").has_value());
    EXPECT_FALSE(subject_channel("eventcast", "eventcast").has_value());
    EXPECT_FALSE(subject_channel("eventcast", "eventcastx.default").has_value());
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.default..room").has_value());
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.a.b.c.d.e.f").has_value());  // 6 segments
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.default.a_2Eb").has_value());  // '.'
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.default.-a").has_value());
    // An encoded '/' must not split a token into two segments (found by fuzz_cluster_message).
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.ns.a_2Fb").has_value());
    EXPECT_FALSE(subject_channel("eventcast", "eventcast.ns._2F").has_value());
    EXPECT_TRUE(subject_channel("eventcast", "eventcast.default.a").has_value());
}

TEST(SubjectsTest, PrefixGrammar) {
    EXPECT_TRUE(valid_subject_prefix("eventcast"));
    EXPECT_TRUE(valid_subject_prefix("acme.prod_1.events-x"));
    for (const auto* bad : {"", ".a", "a.", "a..b", "a.*", "a.>", "a b", "a\tb"})
        EXPECT_FALSE(valid_subject_prefix(bad)) << bad;
}

TEST(SubjectsTest, NatsMatchingRules) {
    EXPECT_TRUE(subject_matches("a.b", "a.b"));
    EXPECT_FALSE(subject_matches("a.b", "a.b.c"));
    EXPECT_TRUE(subject_matches("a.*", "a.b"));
    EXPECT_FALSE(subject_matches("a.*", "a.b.c"));
    EXPECT_TRUE(subject_matches("a.>", "a.b.c"));
    EXPECT_FALSE(subject_matches("a.>", "a"));
}

// The wildcard table: each pattern against each channel, the AppSync answer (the broker's
// matcher) must equal the NATS answer for the mapped subjects.
TEST(SubjectsTest, PatternSubjectsMatchExactlyTheChannelsThePatternMatches) {
    const std::vector<std::string> patterns = {
        "default",       "default/*", "default/a", "default/a/*", "default/a/b",
        "default/a/b/*", "a/b/c/d/*", "other/*",   "Default/*",   "default/A/*"};
    const std::vector<std::string> channels = {
        "default",         "default/a",  "default/b",    "default/a/b", "default/a/b/c",
        "default/a/c",     "default/ab", "default/ab/c", "default/A",   "default/A/b",
        "other",           "other/a",    "Default/a",    "a/b/c/d/e",   "a/b/c/d",
        "default/a/b/c/d", "defaultx/a", "default/a-b/c"};
    for (const auto& pt : patterns) {
        const auto pat = pattern(pt);
        const auto filter = pattern_subject("eventcast", pat);
        for (const auto& ch : channels) {
            const auto p = path(ch);
            EXPECT_EQ(subject_matches(filter, channel_subject("eventcast", p)), pat.matches(p))
                << "pattern " << pt << " (subject " << filter << ") vs channel " << ch;
        }
    }
}

TEST(SubjectsTest, WildcardMatchesAnyDepthBelowButNotThePrefixItself) {
    // spec §7.3: /ns/a/* matches /ns/a/b and /ns/a/b/c, not /ns/a.
    const auto filter = pattern_subject("eventcast", pattern("/ns/a/*"));
    EXPECT_EQ(filter, "eventcast.ns.a.>");
    EXPECT_TRUE(subject_matches(filter, channel_subject("eventcast", path("ns/a/b"))));
    EXPECT_TRUE(subject_matches(filter, channel_subject("eventcast", path("ns/a/b/c"))));
    EXPECT_FALSE(subject_matches(filter, channel_subject("eventcast", path("ns/a"))));
}

TEST(SubjectsTest, ANamespacesTwoSubjectsCoverEachOfItsChannelsExactlyOnce) {
    // The bridge subscribes <prefix>.<ns> and <prefix>.<ns>.> per namespace: disjoint, and
    // together every channel of the namespace, so NATS delivers each message once.
    const std::string exact = "eventcast.default", below = "eventcast.default.>";
    for (const auto* ch : {"default", "default/a", "default/a/b/c/d", "other/a", "other"}) {
        const auto subject = channel_subject("eventcast", path(ch));
        const int hits =
            int(subject_matches(exact, subject)) + int(subject_matches(below, subject));
        EXPECT_EQ(hits, path(ch).namespace_name() == "default" ? 1 : 0) << ch;
    }
}

}  // namespace
}  // namespace eventcast::cluster

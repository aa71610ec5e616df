// Tests the channel grammar and wildcard matching of src/events/channel.cpp
// (spec/appsync-events.md §7).
#include "events/channel.hpp"

#include "events/message.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::events {
namespace {

// The error message of a parse that must fail; fails the test if it succeeded.
template <class T>
std::string error_of(const result<T>& r) {
    EXPECT_FALSE(r.has_value()) << "expected a parse error";
    if (r.has_value())
        return {};
    EXPECT_EQ(r.error().kind, error_kind::invalid_input);
    return r.error().message;
}

// True when `s` is well-formed UTF-8: as a JSON string it passes a validating JSON parser.
bool valid_utf8(std::string_view s) {
    std::string quoted;
    append_json_string(quoted, s);
    return is_json_text(quoted);
}

channel_path path(std::string_view text) {
    auto r = channel_path::parse(text);
    EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().message);
    return *r;
}

channel_pattern pattern(std::string_view text) {
    auto r = channel_pattern::parse(text);
    EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().message);
    return *r;
}

// ---- channel_path: accepted ---------------------------------------------------------------------

TEST(ChannelPathTest, AcceptsNamespaceAndChannel) {
    auto p = channel_path::parse("default/channel");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->str(), "default/channel");
    EXPECT_EQ(p->size(), 2u);
    EXPECT_EQ(p->segment(0), "default");
    EXPECT_EQ(p->segment(1), "channel");
    EXPECT_EQ(p->namespace_name(), "default");
}

TEST(ChannelPathTest, AcceptsASingleSegment) {
    auto p = channel_path::parse("default");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->size(), 1u);
    EXPECT_EQ(p->str(), "default");
}

TEST(ChannelPathTest, AcceptsFiveSegments) {
    auto p = channel_path::parse("/a/b/c/d/e");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->size(), 5u);
    EXPECT_EQ(p->segment(4), "e");
}

TEST(ChannelPathTest, NormalizesOptionalLeadingAndTrailingSlash) {
    for (std::string_view text : {"ns/a/b", "/ns/a/b", "ns/a/b/", "/ns/a/b/"}) {
        auto p = channel_path::parse(text);
        ASSERT_TRUE(p.has_value()) << text;
        EXPECT_EQ(p->str(), "ns/a/b") << text;
        EXPECT_EQ(p->size(), 3u) << text;
    }
}

TEST(ChannelPathTest, AcceptsFiftyCharacterSegment) {
    const std::string seg(50, 'x');
    auto p = channel_path::parse("ns/" + seg);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->segment(1), seg);
}

TEST(ChannelPathTest, AcceptsHyphenInsideASegment) {
    auto p = channel_path::parse("my-ns/a-b-c/x--y");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->segment(0), "my-ns");
    EXPECT_EQ(p->segment(2), "x--y");
}

TEST(ChannelPathTest, AcceptsDigitsAndBothCases) {
    auto p = channel_path::parse("Ns9/0abcXYZ/7");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->str(), "Ns9/0abcXYZ/7");
}

TEST(ChannelPathTest, IsCaseSensitive) {
    EXPECT_NE(path("ns/Chat").str(), path("ns/chat").str());
    EXPECT_FALSE(pattern("ns/Chat").matches(path("ns/chat")));
}

// ---- channel_path: rejected ---------------------------------------------------------------------

TEST(ChannelPathTest, RejectsSixSegments) {
    const auto msg = error_of(channel_path::parse("default/1/2/3/4/5"));
    EXPECT_NE(msg.find("more than 5 segments"), std::string::npos) << msg;
    EXPECT_NE(msg.find("default/1/2/3/4/5"), std::string::npos) << msg;
}

TEST(ChannelPathTest, RejectsFiftyOneCharacterSegment) {
    const auto msg = error_of(channel_path::parse("ns/" + std::string(51, 'x')));
    EXPECT_NE(msg.find("segment 2 is 51 characters; the limit is 50"), std::string::npos) << msg;
}

TEST(ChannelPathTest, RejectsSixtyCharacterSegment) {
    const auto msg = error_of(channel_path::parse("default/" + std::string(60, 'a')));
    EXPECT_NE(msg.find("60 characters"), std::string::npos) << msg;
}

TEST(ChannelPathTest, RejectsEmptyText) {
    const auto msg = error_of(channel_path::parse(""));
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
}

TEST(ChannelPathTest, RejectsOnlySlashes) {
    for (std::string_view text : {"/", "//"}) {
        const auto msg = error_of(channel_path::parse(text));
        EXPECT_NE(msg.find("no segments"), std::string::npos) << text << ": " << msg;
    }
}

TEST(ChannelPathTest, RejectsEmptySegmentInTheMiddle) {
    const auto msg = error_of(channel_path::parse("ns//a"));
    EXPECT_NE(msg.find("segment 2 is empty"), std::string::npos) << msg;
}

TEST(ChannelPathTest, RejectsDoubleLeadingOrTrailingSlash) {
    EXPECT_FALSE(channel_path::parse("//ns/a").has_value());
    EXPECT_FALSE(channel_path::parse("ns/a//").has_value());
}

TEST(ChannelPathTest, RejectsHyphenAtEitherEndOfASegment) {
    for (std::string_view text : {"-ns/a", "ns-/a", "ns/-a", "ns/a-", "ns/-"}) {
        const auto msg = error_of(channel_path::parse(text));
        EXPECT_NE(msg.find("starts or ends with '-'"), std::string::npos) << text << ": " << msg;
    }
}

TEST(ChannelPathTest, RejectsCharactersOutsideTheAlphabetAndSaysWhichAndWhere) {
    struct bad_case {
        std::string_view text;
        std::string_view expected;
    };
    const bad_case cases[] = {
        {"ns/a_b", "segment 2 ('a_b') has '_' at offset 1; allowed: A-Z a-z 0-9 and '-'"},
        {"ns/a.b", "has '.' at offset 1"},
        {"ns/a b", "has ' ' at offset 1"},
        {"ns/a%20b", "has '%' at offset 1"},
        {"n:s/a", "segment 1 ('n:s') has ':' at offset 1"},
        {"ns/caf\xc3\xa9", "has byte 0xc3 at offset 3"},
        {std::string_view("ns/a\0b", 6), "has byte 0x00 at offset 1"},
        {"ns/a\nb", "has byte 0x0a at offset 1"},
    };
    for (const auto& c : cases) {
        const auto msg = error_of(channel_path::parse(c.text));
        EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
    }
}

TEST(ChannelPathTest, ErrorMessageReplacesControlBytesInTheEchoedChannel) {
    const auto msg = error_of(channel_path::parse("ns/a\nb"));
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(ChannelPathTest, ErrorMessageCapsTheEchoedChannel) {
    const std::string text = "ns/" + std::string(500, 'a') + "_";
    const auto msg = error_of(channel_path::parse(text));
    EXPECT_LT(msg.size(), 300u) << msg;
}

// A WebSocket text frame must be valid UTF-8 (RFC 6455 §8.1), and browsers drop the
// connection otherwise, so capping the echoed channel must never split a character.
TEST(ChannelPathTest, ErrorMessageNeverSplitsAUtf8Character) {
    for (std::size_t pad = 50; pad < 64; ++pad) {
        // 'é' (2 bytes) and '€' (3 bytes) straddle the 60-byte cap at some pad.
        for (std::string_view ch : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
            std::string text = "ns/" + std::string(pad, 'a');
            for (int i = 0; i < 10; ++i)
                text += ch;
            const auto msg = error_of(channel_path::parse(text));
            EXPECT_TRUE(valid_utf8(msg)) << "pad " << pad << ": " << msg;
        }
    }
}

TEST(ChannelPathTest, RejectsPublishToAWildcard) {
    for (std::string_view text : {"ns/*", "/ns/a/*", "ns/*/"}) {
        const auto msg = error_of(channel_path::parse(text));
        EXPECT_NE(msg.find("wildcard"), std::string::npos) << text << ": " << msg;
        EXPECT_NE(msg.find("concrete channel"), std::string::npos) << text << ": " << msg;
    }
}

TEST(ChannelPathTest, RejectsStarInsideASegment) {
    const auto msg = error_of(channel_path::parse("ns/a*"));
    EXPECT_NE(msg.find("'*' at offset 1"), std::string::npos) << msg;
}

// The protocol page's regex (spec §7.1) is the oracle: parse succeeds exactly when it matches.
TEST(ChannelPathTest, AgreesWithTheSpecRegex) {
    const std::regex spec(R"(^\/?[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?)"
                          R"((?:\/[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?){0,4}\/?$)");
    const std::vector<std::string> samples = {"a",
                                              "/a",
                                              "a/",
                                              "/a/",
                                              "//a",
                                              "a//",
                                              "a//b",
                                              "/",
                                              "",
                                              "ab",
                                              "a-b",
                                              "-a",
                                              "a-",
                                              "a--b",
                                              "a/b/c/d/e",
                                              "a/b/c/d/e/f",
                                              "/a/b/c/d/e/",
                                              "a/b/c/d/e/f/",
                                              "a_b",
                                              "a.b",
                                              "a b",
                                              "A/Z/0/9",
                                              "ns/*",
                                              "*",
                                              std::string(50, 'q'),
                                              std::string(51, 'q'),
                                              "x/" + std::string(50, '9'),
                                              "x/" + std::string(51, '9'),
                                              "a-" + std::string(47, 'b') + "-c",
                                              "ns/a/"};
    for (const auto& s : samples) {
        EXPECT_EQ(channel_path::parse(s).has_value(), std::regex_match(s, spec)) << "'" << s << "'";
    }
}

// ---- channel_pattern ----------------------------------------------------------------------------

TEST(ChannelPatternTest, ParsesExactPattern) {
    auto p = channel_pattern::parse("/ns/a/b");
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(p->wildcard());
    EXPECT_EQ(p->prefix().str(), "ns/a/b");
    EXPECT_EQ(p->namespace_name(), "ns");
    EXPECT_EQ(p->str(), "ns/a/b");
}

TEST(ChannelPatternTest, ParsesTrailingWildcard) {
    for (std::string_view text : {"ns/*", "/ns/*", "ns/*/", "/ns/*/"}) {
        auto p = channel_pattern::parse(text);
        ASSERT_TRUE(p.has_value()) << text << ": " << p.error().message;
        EXPECT_TRUE(p->wildcard()) << text;
        EXPECT_EQ(p->prefix().str(), "ns") << text;
        EXPECT_EQ(p->str(), "ns/*") << text;
    }
}

TEST(ChannelPatternTest, AcceptsWildcardAsTheFifthSegment) {
    auto p = channel_pattern::parse("ns/a/b/c/*");
    ASSERT_TRUE(p.has_value());
    EXPECT_TRUE(p->wildcard());
    EXPECT_EQ(p->prefix().size(), 4u);
}

TEST(ChannelPatternTest, RejectsWildcardAsTheSixthSegment) {
    const auto msg = error_of(channel_pattern::parse("ns/a/b/c/d/*"));
    EXPECT_NE(msg.find("more than 5 segments; the wildcard counts as one"), std::string::npos)
        << msg;
}

TEST(ChannelPatternTest, RejectsSixConcreteSegments) {
    const auto msg = error_of(channel_pattern::parse("default/1/2/3/4/5"));
    EXPECT_NE(msg.find("more than 5 segments"), std::string::npos) << msg;
}

TEST(ChannelPatternTest, RejectsWildcardAlone) {
    for (std::string_view text : {"*", "/*", "*/", "/*/"}) {
        const auto msg = error_of(channel_pattern::parse(text));
        EXPECT_NE(msg.find("only a wildcard; it must start with a namespace"), std::string::npos)
            << text << ": " << msg;
    }
}

TEST(ChannelPatternTest, RejectsWildcardInTheMiddle) {
    for (std::string_view text : {"ns/*/a", "*/a", "ns/*/*", "/*/*"}) {
        const auto msg = error_of(channel_pattern::parse(text));
        EXPECT_NE(msg.find("'*' is allowed only as the whole last segment"), std::string::npos)
            << text << ": " << msg;
    }
}

TEST(ChannelPatternTest, RejectsDoubleStar) {
    const auto msg = error_of(channel_pattern::parse("ns/**"));
    EXPECT_NE(msg.find("'*' is allowed only as the whole last segment"), std::string::npos) << msg;
}

TEST(ChannelPatternTest, RejectsStarJoinedToOtherCharacters) {
    for (std::string_view text : {"ns/a*", "ns/*a", "ns*", "ns/a/b*"}) {
        const auto msg = error_of(channel_pattern::parse(text));
        EXPECT_NE(msg.find("'*' is allowed only as the whole last segment"), std::string::npos)
            << text << ": " << msg;
    }
}

TEST(ChannelPatternTest, RejectsEmptySegmentBeforeTheWildcard) {
    EXPECT_FALSE(channel_pattern::parse("ns//*").has_value());
    EXPECT_FALSE(channel_pattern::parse("//*").has_value());
}

TEST(ChannelPatternTest, RejectsInvalidSegmentsLikeAPath) {
    const auto msg = error_of(channel_pattern::parse("ns/a_b/*"));
    EXPECT_NE(msg.find("has '_' at offset 1"), std::string::npos) << msg;
    EXPECT_FALSE(channel_pattern::parse("ns/" + std::string(51, 'a') + "/*").has_value());
    EXPECT_FALSE(channel_pattern::parse("").has_value());
}

// ---- matching -----------------------------------------------------------------------------------

TEST(ChannelMatchTest, WildcardMatchesEveryDepthBelowItsPrefix) {
    const auto p = pattern("/default/*");
    EXPECT_TRUE(p.matches(path("default/messages")));
    EXPECT_TRUE(p.matches(path("/default/greetings/tutorial")));
    EXPECT_TRUE(p.matches(path("default/download/user1/id9")));
    EXPECT_TRUE(p.matches(path("default/a/b/c/d")));
}

TEST(ChannelMatchTest, WildcardDoesNotMatchItsPrefixItself) {
    EXPECT_FALSE(pattern("ns/*").matches(path("ns")));
    EXPECT_FALSE(pattern("ns/a/*").matches(path("ns/a")));
}

TEST(ChannelMatchTest, WildcardDoesNotMatchOtherBranches) {
    const auto p = pattern("ns/a/*");
    EXPECT_FALSE(p.matches(path("ns/b/c")));
    EXPECT_FALSE(p.matches(path("other/a/c")));
    EXPECT_FALSE(p.matches(path("ns")));
    EXPECT_FALSE(p.matches(path("ns/ab/c")));
    EXPECT_TRUE(p.matches(path("ns/a/c")));
}

TEST(ChannelMatchTest, WildcardComparesWholeSegmentsNotTextPrefixes) {
    EXPECT_FALSE(pattern("ns/a/*").matches(path("ns/ab/c")));
    EXPECT_FALSE(pattern("ns/*").matches(path("nsx/a")));
}

TEST(ChannelMatchTest, ExactPatternMatchesOnlyExactly) {
    const auto p = pattern("ns/a");
    EXPECT_TRUE(p.matches(path("ns/a")));
    EXPECT_TRUE(p.matches(path("/ns/a/")));
    EXPECT_FALSE(p.matches(path("ns")));
    EXPECT_FALSE(p.matches(path("ns/a/b")));
    EXPECT_FALSE(p.matches(path("ns/b")));
    EXPECT_FALSE(p.matches(path("ns/A")));
}

TEST(ChannelMatchTest, NamespaceOnlyPatternMatchesOnlyTheNamespace) {
    EXPECT_TRUE(pattern("ns").matches(path("ns")));
    EXPECT_FALSE(pattern("ns").matches(path("ns/a")));
}

TEST(ChannelMatchTest, EveryPathMatchesItselfAndTheWildcardsOfItsProperPrefixes) {
    const auto p = path("a/b/c/d/e");
    EXPECT_TRUE(pattern(p.str()).matches(p));
    std::string prefix;
    for (std::size_t i = 0; i + 1 < p.size(); ++i) {
        prefix += (i ? "/" : "") + std::string(p.segment(i));
        EXPECT_TRUE(pattern(prefix + "/*").matches(p)) << prefix;
        EXPECT_FALSE(pattern(prefix).matches(p)) << prefix;
    }
}

// ---- valid_segment ------------------------------------------------------------------------------

TEST(ValidSegmentTest, FollowsTheSegmentRule) {
    EXPECT_TRUE(valid_segment("a"));
    EXPECT_TRUE(valid_segment("BedrockChat"));
    EXPECT_TRUE(valid_segment("a-1"));
    EXPECT_TRUE(valid_segment(std::string(50, 'z')));
    EXPECT_FALSE(valid_segment(""));
    EXPECT_FALSE(valid_segment(std::string(51, 'z')));
    EXPECT_FALSE(valid_segment("-a"));
    EXPECT_FALSE(valid_segment("a-"));
    EXPECT_FALSE(valid_segment("a_b"));
    EXPECT_FALSE(valid_segment("a/b"));
    EXPECT_FALSE(valid_segment("*"));
}

}  // namespace
}  // namespace eventcast::events

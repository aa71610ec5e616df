// Tests src/events/position.cpp: the position text form and its strict parser.
#include "events/position.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace eventcast::events {
namespace {

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

TEST(PositionTest, FormatsFixedWidthEpochAndDecimalSeq) {
    EXPECT_EQ(format_position({0x5f3a0c1e, 42}), "5f3a0c1e-42");
    EXPECT_EQ(format_position({1, 0}), "00000001-0");
    EXPECT_EQ(format_position({0xffffffff, 18446744073709551615ull}),
              "ffffffff-18446744073709551615");
}

TEST(PositionTest, ParseIsTheInverseOfFormat) {
    for (const position p : {position{0, 0}, position{0x5f3a0c1e, 42},
                             position{0xffffffff, 18446744073709551615ull}}) {
        auto r = parse_position(format_position(p));
        ASSERT_TRUE(r.has_value()) << format_position(p);
        EXPECT_EQ(*r, p);
    }
}

TEST(PositionTest, RefusesEverySecondSpelling) {
    for (std::string_view bad :
         {"", "5f3a0c1e", "5f3a0c1e-", "5f3a0c1e-+1", "5f3a0c1e- 1", " 5f3a0c1e-1", "5f3a0c1e-1 ",
          "5f3a0c1-1", "5f3a0c1ee-1", "5f3a0c1e_1", "5f3a0c1e-00", "g0000000-1"})
        EXPECT_FALSE(parse_position(bad).has_value()) << bad;
}

TEST(PositionTest, RefusalMasksWhatCannotBeShown) {
    auto r = parse_position(std::string_view("\x01\"\\\xc3", 4));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error().message, "position '" + std::string(4, '?') + "'"))
        << r.error().message;
}

}  // namespace
}  // namespace eventcast::events

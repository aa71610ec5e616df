// Tests src/core/ids.cpp: UUIDv4 text and random hex secrets.
#include "core/ids.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

namespace eventcast::core {
namespace {

TEST(UuidV4Test, IsLowerCaseVersion4Variant1Text) {
    const std::regex shape("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    for (int i = 0; i < 1000; ++i) {
        const auto id = uuid_v4();
        ASSERT_TRUE(std::regex_match(id, shape)) << id;
    }
}

TEST(UuidV4Test, DoesNotRepeat) {
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i)
        ASSERT_TRUE(seen.insert(uuid_v4()).second);
}

TEST(RandomSecretHexTest, IsTwoLowerHexDigitsPerByteAndDoesNotRepeat) {
    const auto a = random_secret_hex(16);
    const auto b = random_secret_hex(16);
    EXPECT_EQ(a.size(), 32u);
    EXPECT_TRUE(std::regex_match(a, std::regex("^[0-9a-f]{32}$"))) << a;
    EXPECT_NE(a, b);
    EXPECT_EQ(random_secret_hex(0), "");
}

}  // namespace
}  // namespace eventcast::core

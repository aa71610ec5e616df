// Tests src/core/strings.cpp: trim, iequals, and strip_bearer with the forms both of its users
// (the authorizer's mode detection and verify_jwt) must accept.
#include "core/strings.hpp"

#include <gtest/gtest.h>

namespace eventcast::core {
namespace {

TEST(TrimTest, RemovesSpacesTabsAndLineEndsAtBothEnds) {
    EXPECT_EQ(trim("  a b\t"), "a b");
    EXPECT_EQ(trim("\r\n token \r\n"), "token");
    EXPECT_EQ(trim("a"), "a");
    EXPECT_EQ(trim(" \t\r\n"), "");
    EXPECT_EQ(trim(""), "");
    EXPECT_EQ(trim("\va\v"), "\va\v") << "only space, tab, CR and LF are trimmed";
}

TEST(IequalsTest, IgnoresAsciiCaseOnly) {
    EXPECT_TRUE(iequals("Bearer", "bEARER"));
    EXPECT_TRUE(iequals("", ""));
    EXPECT_FALSE(iequals("bearer", "bearer "));
    EXPECT_FALSE(iequals("bearer", "bearex"));
    EXPECT_FALSE(iequals("\xc3\x89", "\xc3\xa9")) << "no Unicode folding";
}

TEST(StripBearerTest, DropsTheSchemeInAnyCaseWithAnyWhitespace) {
    EXPECT_EQ(strip_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
    EXPECT_EQ(strip_bearer("bearer abc"), "abc");
    EXPECT_EQ(strip_bearer("BEARER abc"), "abc");
    EXPECT_EQ(strip_bearer("   Bearer abc"), "abc");
    EXPECT_EQ(strip_bearer("Bearer\tabc"), "abc");
    EXPECT_EQ(strip_bearer(" Bearer   abc  \r\n"), "abc");
}

TEST(StripBearerTest, LeavesBareTokensAndLookalikesAlone) {
    EXPECT_EQ(strip_bearer("abc.def.ghi"), "abc.def.ghi");
    EXPECT_EQ(strip_bearer("  abc "), "abc");
    EXPECT_EQ(strip_bearer("Bearerabc"), "Bearerabc") << "the scheme needs whitespace after it";
    EXPECT_EQ(strip_bearer("Bearer"), "Bearer");
    EXPECT_EQ(strip_bearer("Bearer "), "Bearer") << "nothing after the scheme: not stripped";
    EXPECT_EQ(strip_bearer("Basic abc"), "Basic abc");
    EXPECT_EQ(strip_bearer(""), "");
}

TEST(TrimOwsTest, RemovesOnlySpacesAndTabsAsHttpListsDo) {
    EXPECT_EQ(trim_ows(" \taws-appsync-event-ws\t "), "aws-appsync-event-ws");
    EXPECT_EQ(trim_ows("\r\rheader-x\n"), "\r\rheader-x\n") << "CR and LF are data here";
    EXPECT_EQ(trim_ows("   "), "");
}

}  // namespace
}  // namespace eventcast::core

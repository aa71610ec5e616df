// Tests src/core/base64.cpp: tolerant decoding (both alphabets, padding optional) and base64url
// encoding without padding.
#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

namespace eventcast::core {
namespace {

TEST(Base64UrlEncodeTest, MatchesRfc4648VectorsWithoutPadding) {
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
    EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
    EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64UrlEncodeTest, UsesTheUrlAlphabet) {
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
    EXPECT_EQ(base64url_encode("\xff\xff\xff"), "____");
    EXPECT_EQ(base64url_encode("{}"), "e30");
}

TEST(Base64DecodeAnyTest, DecodesRfc4648VectorsWithPadding) {
    EXPECT_EQ(base64_decode_any(""), "");
    EXPECT_EQ(base64_decode_any("Zg=="), "f");
    EXPECT_EQ(base64_decode_any("Zm8="), "fo");
    EXPECT_EQ(base64_decode_any("Zm9v"), "foo");
    EXPECT_EQ(base64_decode_any("Zm9vYg=="), "foob");
    EXPECT_EQ(base64_decode_any("Zm9vYmE="), "fooba");
    EXPECT_EQ(base64_decode_any("Zm9vYmFy"), "foobar");
}

TEST(Base64DecodeAnyTest, DecodesWithoutPadding) {
    EXPECT_EQ(base64_decode_any("Zg"), "f");
    EXPECT_EQ(base64_decode_any("Zm8"), "fo");
    EXPECT_EQ(base64_decode_any("Zm9vYmE"), "fooba");
    EXPECT_EQ(base64_decode_any("e30"), "{}");
    EXPECT_EQ(base64_decode_any("e30="), "{}");
}

TEST(Base64DecodeAnyTest, DecodesBothAlphabets) {
    EXPECT_EQ(base64_decode_any("-_8"), "\xfb\xff");
    EXPECT_EQ(base64_decode_any("+/8="), "\xfb\xff");
    EXPECT_EQ(base64_decode_any("+/8"), "\xfb\xff");
    EXPECT_EQ(base64_decode_any("-/+_"), base64_decode_any("+/+/"));
}

TEST(Base64DecodeAnyTest, RejectsCharactersOutsideBothAlphabets) {
    const std::string_view bad_inputs[] = {
        "Zm9v!", "Zm 9v", "Zm9v\n", "Zm.v", std::string_view("Zm\0v", 4), "Zm9\xc3\xa9"};
    for (std::string_view bad : bad_inputs) {
        EXPECT_FALSE(base64_decode_any(bad).has_value()) << bad;
    }
}

TEST(Base64DecodeAnyTest, RejectsPaddingInTheMiddle) {
    EXPECT_FALSE(base64_decode_any("Zg==Zg==").has_value());
    EXPECT_FALSE(base64_decode_any("Z=g").has_value());
    EXPECT_FALSE(base64_decode_any("=Zm9v").has_value());
}

TEST(Base64DecodeAnyTest, RejectsImpossibleLength) {
    EXPECT_FALSE(base64_decode_any("Z").has_value());
    EXPECT_FALSE(base64_decode_any("Z===").has_value());
    EXPECT_FALSE(base64_decode_any("Zm9vY").has_value());
}

TEST(Base64DecodeAnyTest, PaddingAloneDecodesToNothing) {
    EXPECT_EQ(base64_decode_any("=="), "");
}

TEST(Base64UrlDecodeTest, DecodesRfc4648VectorsWithoutPadding) {
    EXPECT_EQ(base64url_decode(""), "");
    EXPECT_EQ(base64url_decode("Zg"), "f");
    EXPECT_EQ(base64url_decode("Zm8"), "fo");
    EXPECT_EQ(base64url_decode("Zm9v"), "foo");
    EXPECT_EQ(base64url_decode("Zm9vYg"), "foob");
    EXPECT_EQ(base64url_decode("Zm9vYmE"), "fooba");
    EXPECT_EQ(base64url_decode("Zm9vYmFy"), "foobar");
    EXPECT_EQ(base64url_decode("-_8"), "\xfb\xff");
}

TEST(Base64UrlDecodeTest, RejectsTheStandardAlphabetAndPadding) {
    EXPECT_FALSE(base64url_decode("+/8").has_value());
    EXPECT_FALSE(base64url_decode("Zm8=").has_value());
    EXPECT_FALSE(base64url_decode("Zg==").has_value());
    EXPECT_FALSE(base64url_decode("e30=").has_value());
}

TEST(Base64UrlDecodeTest, RejectsOtherCharactersAndImpossibleLength) {
    const std::string_view bad_inputs[] = {
        "Zm9v!",       "Zm 9v", "Zm9v\n", "Zm.v", std::string_view("Zm\0v", 4),
        "Zm9\xc3\xa9", "Z",     "Zm9vY"};
    for (std::string_view bad : bad_inputs) {
        EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
    }
}

TEST(Base64UrlDecodeTest, RejectsNonZeroLeftoverBits) {
    // "Zg" is the one encoding of "f"; "Zh".."Zv" carry set bits past the byte.
    EXPECT_FALSE(base64url_decode("Zh").has_value());
    EXPECT_FALSE(base64url_decode("Zv").has_value());
    EXPECT_FALSE(base64url_decode("Zm9").has_value());
    EXPECT_EQ(base64url_decode("Zm8"), "fo");
}

TEST(Base64Test, EncodeThenDecodeGivesBackEveryInput) {
    std::mt19937 rng(12345);
    for (std::size_t len = 0; len < 200; ++len) {
        std::string bytes(len, '\0');
        for (auto& b : bytes)
            b = static_cast<char>(rng() & 0xFF);
        const auto encoded = base64url_encode(bytes);
        EXPECT_EQ(encoded.size(), (len * 4 + 2) / 3) << "no padding, length " << len;
        EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
        EXPECT_EQ(base64_decode_any(encoded), bytes) << "length " << len;
        EXPECT_EQ(base64url_decode(encoded), bytes) << "strict, length " << len;
        std::string padded = encoded;
        while (padded.size() % 4 != 0)
            padded.push_back('=');
        EXPECT_EQ(base64_decode_any(padded), bytes) << "padded, length " << len;
    }
}

}  // namespace
}  // namespace eventcast::core

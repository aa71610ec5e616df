// Tests src/events/handshake.cpp: subprotocol selection and where connect credentials come
// from (spec/appsync-events.md §2.1).
#include "events/handshake.hpp"

#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::events {
namespace {

const std::string auth_json = R"({"host":"localhost:8443","x-api-key":"da2-key","x-amz-date":"x"})";

// base64url without padding, what Amplify sends.
std::string b64url(std::string_view s) {
    return core::base64url_encode(s);
}

// The standard alphabet with padding, what btoa and the docs' wscat example give.
std::string b64std(std::string_view s) {
    std::string out = core::base64url_encode(s);
    for (auto& c : out) {
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
    }
    while (out.size() % 4 != 0)
        out.push_back('=');
    return out;
}

std::string key_of(const upgrade_auth& a) {
    const auto* k = a.creds.find("x-api-key");
    return k ? *k : std::string("<none>");
}

upgrade_auth parse(const std::vector<std::string_view>& protocols, std::string_view query = {},
                   const credentials& headers = {}) {
    return parse_upgrade(protocols, query, headers);
}

TEST(ParseUpgradeTest, AmplifyOrderAppsyncThenHeader) {
    const std::string value = "aws-appsync-event-ws,header-" + b64url(auth_json);
    const auto a = parse({value});
    EXPECT_TRUE(a.offered_subprotocols);
    EXPECT_TRUE(a.offered_appsync);
    EXPECT_FALSE(a.error.has_value());
    EXPECT_EQ(key_of(a), "da2-key");
    ASSERT_NE(a.creds.find("host"), nullptr);
    EXPECT_EQ(*a.creds.find("host"), "localhost:8443");
}

TEST(ParseUpgradeTest, WscatOrderHeaderThenAppsync) {
    const std::string value = "header-" + b64url(auth_json) + ", aws-appsync-event-ws";
    const auto a = parse({value});
    EXPECT_TRUE(a.offered_appsync);
    EXPECT_FALSE(a.error.has_value());
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, ProtocolsSplitAcrossSeveralHeaderValues) {
    const std::string header = "header-" + b64url(auth_json);
    for (const auto& values :
         {std::vector<std::string_view>{"aws-appsync-event-ws", header},
          std::vector<std::string_view>{header, "aws-appsync-event-ws"},
          std::vector<std::string_view>{"graphql-ws", header, " aws-appsync-event-ws "}}) {
        const auto a = parse(values);
        EXPECT_TRUE(a.offered_appsync);
        EXPECT_FALSE(a.error.has_value());
        EXPECT_EQ(key_of(a), "da2-key");
    }
}

TEST(ParseUpgradeTest, ToleratesSpacesTabsAndEmptyListItems) {
    const std::string value = " ,\taws-appsync-event-ws\t, ,header-" + b64url(auth_json) + " ,";
    const auto a = parse({value});
    EXPECT_TRUE(a.offered_appsync);
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, AcceptsPaddedBase64url) {
    std::string padded = b64url(auth_json);
    while (padded.size() % 4 != 0)
        padded.push_back('=');
    ASSERT_NE(padded, b64url(auth_json)) << "the sample must need padding";
    const auto a = parse({"aws-appsync-event-ws,header-" + padded});
    EXPECT_FALSE(a.error.has_value());
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, AcceptsTheStandardAlphabet) {
    // '?' and '>' encode to '/' and '+' in the standard alphabet.
    const std::string json = R"({"x-api-key":"k?>?>>?~~","host":"h"})";
    ASSERT_NE(b64std(json).find_first_of("+/"), std::string::npos) << "sample must use + or /";
    const auto a = parse({"aws-appsync-event-ws", "header-" + b64std(json)});
    EXPECT_FALSE(a.error.has_value()) << a.error->message;
    EXPECT_EQ(key_of(a), "k?>?>>?~~");
}

TEST(ParseUpgradeTest, BadBase64IsABadRequest) {
    for (std::string_view bad : {"header-!!!", "header-a", "header-ab=c", "header-e30 x"}) {
        const auto a = parse({"aws-appsync-event-ws", bad});
        EXPECT_TRUE(a.offered_appsync) << bad;
        ASSERT_TRUE(a.error.has_value()) << bad;
        EXPECT_EQ(a.error->kind, error_kind::bad_request) << bad;
        EXPECT_NE(a.error->message.find("the header- subprotocol is not base64url"),
                  std::string::npos)
            << a.error->message;
        EXPECT_TRUE(a.creds.empty()) << "no fallback to the request headers";
    }
}

TEST(ParseUpgradeTest, HeaderJsonThatIsNotAnObjectIsABadRequest) {
    for (std::string_view json : {"[]", "\"x-api-key\"", "42", "{", "not json"}) {
        const auto a = parse({"aws-appsync-event-ws", "header-" + b64url(json)});
        ASSERT_TRUE(a.error.has_value()) << json;
        EXPECT_EQ(a.error->kind, error_kind::bad_request);
        EXPECT_NE(a.error->message.find("the header- subprotocol: "), std::string::npos)
            << a.error->message;
    }
}

TEST(ParseUpgradeTest, EmptyHeaderJsonObjectGivesNoCredentials) {
    const auto a = parse({"aws-appsync-event-ws", "header-" + b64url("{}")});
    EXPECT_FALSE(a.error.has_value());
    EXPECT_TRUE(a.creds.empty());
}

TEST(ParseUpgradeTest, CredentialNamesAreCaseInsensitive) {
    const auto a =
        parse({"aws-appsync-event-ws", "header-" + b64url(R"({"X-Api-Key":"K1","Host":"h"})")});
    EXPECT_EQ(key_of(a), "K1");
    ASSERT_NE(a.creds.find("host"), nullptr);
}

TEST(ParseUpgradeTest, FirstHeaderProtocolWins) {
    const auto a = parse({"header-" + b64url(R"({"x-api-key":"first"})"),
                          "header-" + b64url(R"({"x-api-key":"second"})"), "aws-appsync-event-ws"});
    EXPECT_EQ(key_of(a), "first");
}

TEST(ParseUpgradeTest, HeaderQueryParameterGraphqlStyle) {
    const std::string query = "header=" + b64std(auth_json) + "&payload=e30=";
    const auto a = parse({"aws-appsync-event-ws"}, query);
    EXPECT_TRUE(a.offered_appsync);
    EXPECT_FALSE(a.error.has_value()) << a.error->message;
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, HeaderQueryParameterAfterOtherParameters) {
    const auto a = parse({}, "x=1&header=" + b64url(auth_json));
    EXPECT_FALSE(a.offered_subprotocols);
    EXPECT_FALSE(a.offered_appsync);
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, HeaderQueryParameterMayBePercentEncoded) {
    // Go's url.Values.Encode and JavaScript's URLSearchParams escape '=' '+' '/'.
    std::string encoded;
    for (char c : b64std(R"({"x-api-key":"k?>?>>?~~"})")) {
        if (c == '=')
            encoded += "%3D";
        else if (c == '+')
            encoded += "%2B";
        else if (c == '/')
            encoded += "%2F";
        else
            encoded += c;
    }
    const auto a = parse({"aws-appsync-event-ws"}, "header=" + encoded + "&payload=e30%3D");
    EXPECT_FALSE(a.error.has_value()) << a.error->message;
    EXPECT_EQ(key_of(a), "k?>?>>?~~");
}

// Boost.URL 1.81's parse_query measures its input with strlen (boostorg/url#946), so a query
// that is a view into a larger buffer used to be read past its end.
TEST(ParseUpgradeTest, QueryIsReadOnlyWithinItsView) {
    const std::string storage = "header=" + b64url(auth_json) + "!!!!";
    const std::string_view query(storage.data(), storage.size() - 4);
    const auto a = parse({}, query);
    EXPECT_FALSE(a.error.has_value()) << a.error->message;
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, QueryNeedNotBeNulTerminated) {
    // Exactly sized heap buffer: AddressSanitizer reports any read past its end.
    const std::string text = "header=" + b64url(auth_json) + "&payload=e30";
    const auto buffer = std::make_unique<char[]>(text.size());
    std::memcpy(buffer.get(), text.data(), text.size());
    const auto a = parse({"aws-appsync-event-ws"}, std::string_view(buffer.get(), text.size()));
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, BadHeaderQueryParameterIsABadRequest) {
    const auto a = parse({}, "header=***");
    ASSERT_TRUE(a.error.has_value());
    EXPECT_EQ(a.error->kind, error_kind::bad_request);
    EXPECT_NE(a.error->message.find("the header query parameter"), std::string::npos)
        << a.error->message;
}

TEST(ParseUpgradeTest, HeaderSubprotocolWinsOverQueryParameter) {
    const auto a = parse({"aws-appsync-event-ws,header-" + b64url(R"({"x-api-key":"proto"})")},
                         "header=" + b64url(R"({"x-api-key":"query"})"));
    EXPECT_EQ(key_of(a), "proto");
}

TEST(ParseUpgradeTest, CredentialsComeFromRequestHeadersWithoutAHeaderProtocol) {
    // Swift and Android send only aws-appsync-event-ws and put auth in real headers.
    credentials headers;
    headers.add("X-Api-Key", "from-headers");
    headers.add("Host", "example.com");
    const auto a = parse({"aws-appsync-event-ws"}, "", headers);
    EXPECT_TRUE(a.offered_appsync);
    EXPECT_FALSE(a.error.has_value());
    EXPECT_EQ(key_of(a), "from-headers");
}

TEST(ParseUpgradeTest, QueryWithoutHeaderParameterFallsBackToRequestHeaders) {
    credentials headers;
    headers.add("x-api-key", "from-headers");
    const auto a = parse({}, "payload=e30=&x=1", headers);
    EXPECT_EQ(key_of(a), "from-headers");
}

TEST(ParseUpgradeTest, HeaderProtocolWinsOverRequestHeaders) {
    credentials headers;
    headers.add("x-api-key", "from-headers");
    const auto a = parse({"aws-appsync-event-ws,header-" + b64url(auth_json)}, "", headers);
    EXPECT_EQ(key_of(a), "da2-key");
}

TEST(ParseUpgradeTest, NoProtocolsOffered) {
    const auto a = parse({});
    EXPECT_FALSE(a.offered_subprotocols);
    EXPECT_FALSE(a.offered_appsync);
    EXPECT_FALSE(a.error.has_value());
}

TEST(ParseUpgradeTest, OtherProtocolsOnlyDoNotOfferAppsync) {
    const auto a = parse({"graphql-ws, graphql-transport-ws"});
    EXPECT_TRUE(a.offered_subprotocols);
    EXPECT_FALSE(a.offered_appsync);
}

TEST(ParseUpgradeTest, SubprotocolNameMatchesExactly) {
    EXPECT_FALSE(parse({"aws-appsync-event-ws2"}).offered_appsync);
    EXPECT_FALSE(parse({"xaws-appsync-event-ws"}).offered_appsync);
}

TEST(ParseUpgradeTest, BareHeaderPrefixIsNotCredentials) {
    credentials headers;
    headers.add("x-api-key", "from-headers");
    const auto a = parse({"aws-appsync-event-ws,header-"}, "", headers);
    EXPECT_FALSE(a.error.has_value());
    EXPECT_EQ(key_of(a), "from-headers");
}

TEST(ParseUpgradeTest, AcceptsALongIamHeaderProtocol) {
    // An IAM header- value carries a session token and can be 3-5 KB (spec §2.1).
    const std::string json = R"({"authorization":"AWS4-HMAC-SHA256 )" + std::string(3000, 'a') +
                             R"(","x-amz-security-token":")" + std::string(2000, 'b') + R"("})";
    const auto a = parse({"aws-appsync-event-ws,header-" + b64url(json)});
    EXPECT_FALSE(a.error.has_value());
    ASSERT_NE(a.creds.find("x-amz-security-token"), nullptr);
    EXPECT_EQ(a.creds.find("x-amz-security-token")->size(), 2000u);
}

}  // namespace
}  // namespace eventcast::events

// ctx.identity per auth mode, in the field names of AWS's Event API context reference.
#include "auth/identity_json.hpp"

#include "auth/lambda_authorizer.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace eventcast::auth {
namespace {

namespace json = boost::json;

json::value of(const identity& who) {
    return json::parse(identity_json(who));
}

TEST(IdentityJsonTest, ApiKeyIsNull) {
    identity who;
    who.how = mode::api_key;
    EXPECT_TRUE(of(who).is_null());
}

TEST(IdentityJsonTest, CognitoHasEveryUserPoolField) {
    identity who;
    who.how = mode::cognito;
    who.user = "alice";
    who.subject = "2357be7c-39e0-461e-8d8f-9a7a003c294d";
    who.issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc";
    who.username = "alice";
    who.groups = {"admin", "users"};
    who.claims_json = R"({"sub":"2357be7c-39e0-461e-8d8f-9a7a003c294d","email":"a@example.com"})";
    auto id = of(who).as_object();
    EXPECT_EQ(id.at("sub"), "2357be7c-39e0-461e-8d8f-9a7a003c294d");
    EXPECT_EQ(id.at("issuer"), "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc");
    EXPECT_EQ(id.at("username"), "alice");
    EXPECT_EQ(id.at("claims").at("email"), "a@example.com");
    EXPECT_EQ(id.at("sourceIp"), json::array());
    EXPECT_EQ(id.at("defaultAuthStrategy"), "ALLOW");
    EXPECT_EQ(id.at("groups"), json::parse(R"(["admin","users"])"));
    EXPECT_EQ(id.size(), 7u);
}

TEST(IdentityJsonTest, CognitoWithoutGroupsHasNullGroups) {
    identity who;
    who.how = mode::cognito;
    who.subject = "s";
    auto id = of(who).as_object();
    EXPECT_TRUE(id.at("groups").is_null());
    EXPECT_TRUE(id.at("issuer").is_null());
    EXPECT_EQ(id.at("claims"), json::object());
}

TEST(IdentityJsonTest, OidcHasSubIssuerAndClaimsOnly) {
    identity who;
    who.how = mode::oidc;
    who.user = "bob";
    who.subject = "sub-1";
    who.issuer = "https://issuer.example";
    who.claims_json = R"({"sub":"sub-1","scope":"events"})";
    who.groups = {"ignored"};
    auto id = of(who).as_object();
    EXPECT_EQ(id.at("sub"), "sub-1");
    EXPECT_EQ(id.at("issuer"), "https://issuer.example");
    EXPECT_EQ(id.at("claims").at("scope"), "events");
    EXPECT_EQ(id.size(), 3u);
}

TEST(IdentityJsonTest, IamWithAnArnPrincipalShowsAccountAndArn) {
    identity who;
    who.how = mode::iam;
    who.user = "arn:aws:iam::123456789012:user/appsync";
    who.access_key_id = "AKIDEXAMPLE";
    auto id = of(who).as_object();
    EXPECT_EQ(id.at("accountId"), "123456789012");
    EXPECT_EQ(id.at("userArn"), "arn:aws:iam::123456789012:user/appsync");
    EXPECT_EQ(id.at("username"), "arn:aws:iam::123456789012:user/appsync");
    EXPECT_EQ(id.at("sourceIp"), json::array());
    for (const char* f : {"cognitoIdentityPoolId", "cognitoIdentityId", "cognitoIdentityAuthType",
                          "cognitoIdentityAuthProvider"})
        EXPECT_TRUE(id.at(f).is_null()) << f;
    EXPECT_EQ(id.size(), 8u);
}

TEST(IdentityJsonTest, IamAssumedRoleArnHasItsAccount) {
    identity who;
    who.how = mode::iam;
    who.user = "arn:aws:sts::210987654321:assumed-role/app/session";
    EXPECT_EQ(of(who).at("accountId"), "210987654321");
}

TEST(IdentityJsonTest, IamWithABareKeyIdHasNoAccountOrArn) {
    identity who;
    who.how = mode::iam;
    who.user = "AKIDEXAMPLE";
    who.access_key_id = "AKIDEXAMPLE";
    auto id = of(who).as_object();
    EXPECT_TRUE(id.at("accountId").is_null());
    EXPECT_TRUE(id.at("userArn").is_null());
    EXPECT_EQ(id.at("username"), "AKIDEXAMPLE");
}

TEST(IdentityJsonTest, StringsAreEscaped) {
    identity who;
    who.how = mode::oidc;
    who.subject = "a\"b\\c\n";
    EXPECT_EQ(of(who).at("sub"), "a\"b\\c\n");
}

TEST(IdentityJsonTest, LambdaShowsTheAuthorizersHandlerContext) {
    auto [answer, ttl] = lambda_authorizer::parse_answer(
        200, R"({"isAuthorized":true,"handlerContext":{"tenant":"t1","level":3}})",
        std::chrono::seconds(5));
    ASSERT_TRUE(answer.allowed);
    identity who;
    who.how = mode::lambda;
    who.handler_context = answer.handler_context;
    auto id = of(who).as_object();
    EXPECT_EQ(id.at("handlerContext").at("tenant"), "t1");
    EXPECT_EQ(id.at("handlerContext").at("level"), 3);
    EXPECT_EQ(id.size(), 1u);
}

TEST(IdentityJsonTest, LambdaWithoutHandlerContextShowsAnEmptyObject) {
    auto [answer, ttl] = lambda_authorizer::parse_answer(
        200, R"({"isAuthorized":true,"handlerContext":"not an object"})", std::chrono::seconds(5));
    identity who;
    who.how = mode::lambda;
    who.handler_context = answer.handler_context;
    EXPECT_EQ(of(who).at("handlerContext"), json::object());
    who.handler_context.clear();
    EXPECT_EQ(of(who).at("handlerContext"), json::object());
}

}  // namespace
}  // namespace eventcast::auth

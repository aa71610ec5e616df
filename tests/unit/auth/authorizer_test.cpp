// Tests src/auth/authorizer.cpp and src/auth/iam.cpp: mode selection per operation and
// namespace, API keys, AWS_IAM signatures (made by eventcast's own SigV4 signer, the one checked
// against the AWS suite) on WebSocket operations and HTTP, the per-user namespace rule, and the
// Lambda webhook's request and answer formats. JWT verification has its own tests (jwt_test).
#include "auth/authorizer.hpp"

#include "auth/iam.hpp"
#include "auth/lambda_authorizer.hpp"
#include "auth/rate_limit.hpp"
#include "aws/sigv4.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace eventcast::auth {
namespace {

using std::chrono::system_clock;

events::credentials with_key(const std::string& key) {
    events::credentials c;
    c.add("X-Api-Key", key);
    return c;
}

std::string write_temp(const std::string& text) {
    char name[] = "/tmp/eventcast-authz-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    std::ofstream(name) << text;
    return name;
}

// POST /event with `headers` and `body`, signed as a client would, as the credentials the
// server sees: the headers, the ones the signer added, and Authorization.
events::credentials signed_post(const std::vector<aws::http_header>& headers, std::string_view body,
                                const aws::aws_credentials& creds, const std::string& region,
                                system_clock::time_point when) {
    aws::sigv4_request req{"POST", "/event", "", headers, body};
    auto sig = aws::sign_request(req, creds, {region, "appsync", when});
    EXPECT_TRUE(sig.has_value());
    events::credentials c;
    for (const auto& h : headers)
        c.add(h.name, h.value);
    for (const auto& h : sig->added_headers)
        c.add(h.name, h.value);
    c.add("Authorization", sig->authorization);
    return c;
}

// Signs like Amplify's IAM mode: the headers Amplify sends, as an authorization object.
events::credentials iam_headers(std::string_view body, const std::string& akid,
                                const std::string& secret, system_clock::time_point when,
                                const std::string& token = "session-token",
                                const std::string& region = "us-east-1") {
    auto c = signed_post({{"accept", "application/json, text/javascript"},
                          {"content-encoding", "amz-1.0"},
                          {"content-type", "application/json; charset=UTF-8"},
                          {"host", "localhost:8443"}},
                         body, {akid, secret, token}, region, when);
    c.add("x-amz-user-agent", "aws-amplify/6.0 (not signed)");
    return c;
}

events::channel_pattern pattern(std::string_view t) {
    return *events::channel_pattern::parse(t);
}
events::channel_path path(std::string_view t) {
    return *events::channel_path::parse(t);
}

class AuthorizerTest : public ::testing::Test {
protected:
    void SetUp() override {
        keys_file_ = write_temp(
            "# test keys\n"
            "AKIDALICE alice-secret alice\n"
            "AKIDBOB   bob-secret\n");
        cfg_.api_keys = {{"good-key", std::nullopt},
                         {"expired-key", system_clock::now() - std::chrono::hours(1)}};
        cfg_.namespaces = {"default", "BedrockChat", "private"};
        cfg_.auth.iam_keys_file = keys_file_;
    }
    void TearDown() override { std::remove(keys_file_.c_str()); }

    std::unique_ptr<authorizer> make() {
        auto a = authorizer::create(cfg_, nullptr);
        if (!a) {
            for (const auto& p : a.error())
                ADD_FAILURE() << p;
            return nullptr;
        }
        return std::move(*a);
    }

    auth_result run(const authorizer& a, const auth_request& r) {
        auto res = a.try_authorize(r);
        EXPECT_TRUE(res.has_value()) << "needed I/O unexpectedly";
        return res ? *res : auth_result(events::protocol_error::unauthorized("no decision"));
    }

    auth_result subscribe(const authorizer& a, const events::credentials* c, std::string_view ch) {
        const auto p = pattern(ch);
        auth_request r;
        r.op = operation::subscribe;
        r.creds = c;
        r.ns = p.namespace_name();
        r.raw_channel = ch;
        r.pattern = &p;
        return run(a, r);
    }

    auth_result publish(const authorizer& a, const events::credentials* c, std::string_view ch,
                        const std::vector<std::string>& evs) {
        const auto p = path(ch);
        auth_request r;
        r.op = operation::publish;
        r.creds = c;
        r.ns = p.namespace_name();
        r.raw_channel = ch;
        r.path = &p;
        r.events = &evs;
        return run(a, r);
    }

    core::config cfg_;
    std::string keys_file_;
};

TEST_F(AuthorizerTest, ApiKeyIsTheDefaultForEveryOperation) {
    auto a = make();
    ASSERT_TRUE(a);
    const auto good = with_key("good-key");
    auth_request r;
    r.creds = &good;
    auto res = run(*a, r);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->how, mode::api_key);
    EXPECT_TRUE(res->user.empty());
    EXPECT_TRUE(subscribe(*a, &good, "/default/*").has_value());
    EXPECT_TRUE(publish(*a, &good, "/default/x", {"1"}).has_value());
}

TEST_F(AuthorizerTest, RefusesBadMissingAndExpiredKeys) {
    auto a = make();
    for (const auto& creds : {with_key("bad-key"), with_key("expired-key")}) {
        auto res = subscribe(*a, &creds, "/default/x");
        ASSERT_FALSE(res.has_value());
        EXPECT_STREQ(res.error().ws_error_type(), "UnauthorizedException");
    }
    events::credentials none;
    auto res = subscribe(*a, &none, "/default/x");
    ASSERT_FALSE(res.has_value());
    EXPECT_NE(res.error().message.find("allows API_KEY"), std::string::npos) << res.error().message;
}

TEST_F(AuthorizerTest, AMissingAuthorizationObjectIsRefusedNamingTheOperation) {
    auto a = make();
    auto res = subscribe(*a, nullptr, "/default/x");
    ASSERT_FALSE(res.has_value());
    EXPECT_EQ(res.error().message.rfind("subscribe on namespace 'default' needs an "
                                        "'authorization' object",
                                        0),
              0u)
        << res.error().message;
}

TEST_F(AuthorizerTest, NamespaceOverridesReplaceTheDefaults) {
    cfg_.auth.publish_modes = {"API_KEY", "AWS_IAM"};
    cfg_.auth.namespace_rules = {"private:publish=AWS_IAM", "private:subscribe=iam|apiKey"};
    auto a = make();
    ASSERT_TRUE(a);
    const auto key = with_key("good-key");
    EXPECT_TRUE(publish(*a, &key, "/default/x", {"1"}).has_value());
    auto refused = publish(*a, &key, "/private/x", {"1"});
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message.find("publish on namespace 'private' allows AWS_IAM; the "
                                           "request carried an x-api-key"),
              std::string::npos)
        << refused.error().message;
    EXPECT_TRUE(subscribe(*a, &key, "/private/x").has_value());
    EXPECT_TRUE(a->allowed(operation::subscribe, "private").has(mode::iam));
    EXPECT_FALSE(a->allowed(operation::subscribe, "default").has(mode::iam));
}

TEST_F(AuthorizerTest, ConfigProblemsAreAllReported) {
    cfg_.auth.connect_modes = {"API_KEY", "KERBEROS"};
    cfg_.auth.subscribe_modes = {"OPENID_CONNECT"};
    cfg_.auth.publish_modes = {"AWS_LAMBDA"};
    cfg_.auth.namespace_rules = {"nope:publish=API_KEY", "default:delete=API_KEY", "garbage"};
    cfg_.auth.user_namespaces = {"missing"};
    auto a = authorizer::create(cfg_, nullptr);
    ASSERT_FALSE(a.has_value());
    std::string all;
    for (const auto& p : a.error())
        all += p + "\n";
    for (const char* want :
         {"'KERBEROS' is not a mode", "namespace 'nope' is not defined", "'delete' is not an",
          "'garbage' must be NS:publish", "--user-namespace: namespace 'missing'",
          "--oidc-issuer is not set", "--lambda-authorizer-url is not set"})
        EXPECT_NE(all.find(want), std::string::npos) << want << "\nin:\n" << all;
}

TEST_F(AuthorizerTest, IamVerifiesAmplifyStyleSignaturesOnEveryWebSocketOperation) {
    cfg_.auth.connect_modes = cfg_.auth.publish_modes = cfg_.auth.subscribe_modes = {"AWS_IAM"};
    auto a = make();
    ASSERT_TRUE(a);
    const auto now = system_clock::now();
    // connect: body {}
    const auto c = iam_headers("{}", "AKIDALICE", "alice-secret", now);
    auth_request r;
    r.creds = &c;
    auto res = run(*a, r);
    ASSERT_TRUE(res.has_value()) << res.error().message;
    EXPECT_EQ(res->how, mode::iam);
    EXPECT_EQ(res->user, "alice");
    // subscribe: the channel exactly as sent, not normalized
    const auto s = iam_headers(R"({"channel":"default/a/*"})", "AKIDBOB", "bob-secret", now);
    auto sub = subscribe(*a, &s, "default/a/*");
    ASSERT_TRUE(sub.has_value()) << sub.error().message;
    EXPECT_EQ(sub->user, "AKIDBOB");  // no principal in the file: the access key id
    EXPECT_FALSE(subscribe(*a, &s, "/default/a/*").has_value());  // another text, another body
    // publish: events as strings, JSON.stringify escaping, '<' '>' '/' left alone
    const std::vector<std::string> evs{R"({"a":"<b>/\n"})", "\"\u00e9\x01\""};
    std::string body = R"({"channel":"/default/x","events":[)";
    body += R"("{\"a\":\"<b>/\\n\"}",)";
    body += "\"\\\"\u00e9\\u0001\\\"\"]}";
    EXPECT_EQ(synthetic_body("/default/x", evs), body);
    const auto p = iam_headers(body, "AKIDALICE", "alice-secret", now);
    auto pub = publish(*a, &p, "/default/x", evs);
    EXPECT_TRUE(pub.has_value()) << pub.error().message;
    EXPECT_FALSE(publish(*a, &p, "/default/x", {"{}"}).has_value());  // other events
}

TEST_F(AuthorizerTest, IamRefusesWrongSecretsSkewUnknownKeysAndTampering) {
    cfg_.auth.connect_modes = {"AWS_IAM"};
    cfg_.auth.iam_region = "us-east-1";
    auto a = make();
    ASSERT_TRUE(a);
    const auto now = system_clock::now();
    auto connect = [&](const events::credentials& c) {
        auth_request r;
        r.creds = &c;
        return run(*a, r);
    };
    auto expect_refused = [&](const events::credentials& c, const std::string& why) {
        auto res = connect(c);
        ASSERT_FALSE(res.has_value()) << why;
        EXPECT_NE(res.error().message.find(why), std::string::npos) << res.error().message;
    };
    expect_refused(iam_headers("{}", "AKIDALICE", "wrong-secret", now), "does not match");
    expect_refused(iam_headers("{}", "AKIDNOBODY", "x", now), "is not known");
    expect_refused(iam_headers("{}", "AKIDALICE", "alice-secret", now - std::chrono::minutes(6)),
                   "away from the server's clock");
    expect_refused(iam_headers("{\"x\":1}", "AKIDALICE", "alice-secret", now), "does not match");
    expect_refused(iam_headers("{}", "AKIDALICE", "alice-secret", now, "tok", "eu-west-1"),
                   "region is 'eu-west-1'");
    auto tampered = iam_headers("{}", "AKIDALICE", "alice-secret", now);
    events::credentials changed;
    for (const auto& [n, v] : tampered.entries())
        changed.add(n, n == "host" ? std::string("evil:443") : v);
    expect_refused(changed, "does not match");
    // A date far in the future is a clear refusal, not an overflow (found by fuzz_authorization).
    auto far = iam_headers("{}", "AKIDALICE", "alice-secret", now);
    events::credentials far_future;
    for (const auto& [n, v] : far.entries())
        far_future.add(n, n == "x-amz-date" ? std::string("40520202T000000Z") : v);
    expect_refused(far_future, "x-amz-date");
    // Within the skew it is fine.
    EXPECT_TRUE(
        connect(iam_headers("{}", "AKIDALICE", "alice-secret", now - std::chrono::minutes(4)))
            .has_value());
}

TEST_F(AuthorizerTest, IamChecksTheRealRequestOverHttp) {
    cfg_.auth.publish_modes = {"AWS_IAM"};
    auto a = make();
    ASSERT_TRUE(a);
    const std::string body = R"({"channel":"/default/x","events":["{}"]})";
    // Amplify's HTTP signature: content-type;host;x-amz-date;x-amz-security-token;x-amz-user-agent
    const auto c =
        signed_post({{"content-type", "application/json; charset=UTF-8"},
                     {"host", "127.0.0.1:8080"},
                     {"x-amz-user-agent", "aws-amplify/6"}},
                    body, {"AKIDALICE", "alice-secret", "tok"}, "us-east-1", system_clock::now());
    const auto p = path("/default/x");
    const std::vector<std::string> evs{"{}"};
    http_view hv{"POST", "/event", "", body};
    auth_request r;
    r.op = operation::publish;
    r.creds = &c;
    r.ns = "default";
    r.raw_channel = "/default/x";
    r.path = &p;
    r.http = &hv;
    auto res = run(*a, r);
    EXPECT_TRUE(res.has_value()) << res.error().message;
    const std::string other = R"({"channel":"/default/y","events":["{}"]})";
    http_view changed{"POST", "/event", "", other};
    r.http = &changed;
    EXPECT_FALSE(run(*a, r).has_value());
}

TEST_F(AuthorizerTest, UserNamespacesBindTheFirstSegmentToTheCaller) {
    cfg_.auth.subscribe_modes = {"AWS_IAM", "API_KEY"};
    cfg_.auth.publish_modes = {"AWS_IAM", "API_KEY"};
    cfg_.auth.user_namespaces = {"BedrockChat"};
    auto a = make();
    ASSERT_TRUE(a);
    const auto now = system_clock::now();
    auto sub_as_alice = [&](std::string_view ch) {
        const auto c = iam_headers(synthetic_body(ch), "AKIDALICE", "alice-secret", now);
        return subscribe(*a, &c, ch);
    };
    EXPECT_TRUE(sub_as_alice("/BedrockChat/alice").has_value());
    EXPECT_TRUE(sub_as_alice("/BedrockChat/alice/*").has_value());
    EXPECT_TRUE(sub_as_alice("BedrockChat/alice/").has_value());
    for (const char* other : {"/BedrockChat/bob", "/BedrockChat/*", "/BedrockChat/Alice",
                              "/BedrockChat/ALICE/*", "/BedrockChat", "//BedrockChat//bob//"}) {
        auto pat = events::channel_pattern::parse(other);
        if (!pat)
            continue;  // the grammar refuses it before authorization ever runs
        auto res = sub_as_alice(other);
        ASSERT_FALSE(res.has_value()) << other;
        EXPECT_NE(res.error().message.find("is per-user"), std::string::npos)
            << res.error().message;
    }
    const std::vector<std::string> evs{"1"};
    const auto pub_bob =
        iam_headers(synthetic_body("/BedrockChat/bob", evs), "AKIDALICE", "alice-secret", now);
    EXPECT_FALSE(publish(*a, &pub_bob, "/BedrockChat/bob", evs).has_value());
    const auto pub_own =
        iam_headers(synthetic_body("/BedrockChat/alice", evs), "AKIDALICE", "alice-secret", now);
    EXPECT_TRUE(publish(*a, &pub_own, "/BedrockChat/alice", evs).has_value());
    // API keys carry no identity: refused in a per-user namespace, fine elsewhere.
    const auto key = with_key("good-key");
    auto res = subscribe(*a, &key, "/BedrockChat/alice");
    ASSERT_FALSE(res.has_value());
    EXPECT_NE(res.error().message.find("carries no user identity"), std::string::npos);
    EXPECT_TRUE(subscribe(*a, &key, "/default/*").has_value());
    EXPECT_TRUE(a->user_namespace("BedrockChat"));
    EXPECT_FALSE(a->user_namespace("bedrockchat"));
}

TEST(AuthConfig, ConfigAllowsSeesDefaultsChatAndNamespaceRules) {
    core::auth_config a;
    EXPECT_TRUE(config_allows(a, mode::api_key));  // the defaults
    a.connect_modes = a.publish_modes = a.subscribe_modes = {"userPool"};
    EXPECT_FALSE(config_allows(a, mode::api_key));
    a.namespace_rules = {"default:publish=AWS_IAM|apiKey"};
    EXPECT_TRUE(config_allows(a, mode::api_key));  // the key must exist: a generated one
    EXPECT_TRUE(config_allows(a, mode::iam));
    EXPECT_FALSE(config_allows(a, mode::lambda));
    a.chat_modes = {"lambda"};
    EXPECT_TRUE(config_allows(a, mode::lambda));
    auto r = split_namespace_rule("ns:subscribe=A|B|");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->ns, "ns");
    EXPECT_EQ(r->op, "subscribe");
    EXPECT_EQ(r->modes, (std::vector<std::string>{"A", "B", ""}));
    EXPECT_FALSE(split_namespace_rule("ns=publish:A").has_value());
}

TEST(SigV4Authorization, ParsesAndExplainsWhatIsWrong) {
    auto ok = parse_sigv4_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/appsync/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" +
        std::string(64, 'a'));
    ASSERT_TRUE(ok.has_value()) << ok.error();
    EXPECT_EQ(ok->access_key_id, "AKID");
    EXPECT_EQ(ok->region, "us-east-1");
    EXPECT_EQ(ok->signed_headers, (std::vector<std::string>{"host", "x-amz-date"}));
    const std::pair<const char*, const char*> bad[] = {
        {"Bearer abc", "must start with AWS4-HMAC-SHA256"},
        {"AWS4-HMAC-SHA256 Credential=a/b/c", "Credential must be"},
        {"AWS4-HMAC-SHA256 Credential=A/20250101/r/s/aws4_request, SignedHeaders=Host, "
         "Signature=00",
         "lower-case header names"},
        {"AWS4-HMAC-SHA256 Credential=A/20250101/r/s/aws4_request, SignedHeaders=host",
         "needs Credential=, SignedHeaders= and Signature="},
        {"AWS4-HMAC-SHA256 Foo=bar", "unknown parameter 'Foo'"},
        {"AWS4-HMAC-SHA256 junk", "is not Name=value"},
    };
    for (const auto& [text, why] : bad) {
        auto r = parse_sigv4_authorization(text);
        ASSERT_FALSE(r.has_value()) << text;
        EXPECT_NE(r.error().find(why), std::string::npos) << text << " -> " << r.error();
    }
}

TEST(IamKeyStore, ParsesLinesAndNamesBadOnesWithoutTheSecret) {
    auto ok = iam_key_store::parse("A s1 alice # comment\n\n  B   s2\n");
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(ok->size(), 2u);
    EXPECT_EQ(ok->find("A")->principal, "alice");
    EXPECT_EQ(ok->find("B")->principal, "B");
    auto bad = iam_key_store::parse("A s1\nonly-one-field-secretish\n");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().find("line 2"), std::string::npos);
    EXPECT_EQ(bad.error().find("secretish"), std::string::npos);
    EXPECT_FALSE(iam_key_store::parse("A s1\nA s2\n").has_value());
}

TEST(LambdaAuthorizer, SendsTheAppSyncRequestShape) {
    lambda_request q;
    q.token = "tok-123";
    q.op = operation::subscribe;
    q.ns = "default";
    q.channel = "/default/a";
    q.headers.add("Authorization", "tok-123");
    auto v = boost::json::parse(lambda_authorizer::request_body(q, "req-1"));
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("authorizationToken"), "tok-123");
    const auto& ctx = o.at("requestContext").as_object();
    EXPECT_EQ(ctx.at("operation"), "EVENT_SUBSCRIBE");
    EXPECT_EQ(ctx.at("channelNamespaceName"), "default");
    EXPECT_EQ(ctx.at("channel"), "/default/a");
    EXPECT_EQ(ctx.at("requestId"), "req-1");
    EXPECT_EQ(o.at("requestHeaders").at("authorization"), "tok-123");
}

TEST(LambdaAuthorizer, ReadsAnswersAndRefusesNonsense) {
    using namespace std::chrono_literals;
    auto [yes, ttl] = lambda_authorizer::parse_answer(200, R"({"isAuthorized":true})", 300s);
    EXPECT_TRUE(yes.allowed);
    EXPECT_EQ(ttl, 300s);
    auto [no, ttl2] =
        lambda_authorizer::parse_answer(200, R"({"isAuthorized":false,"ttlOverride":5})", 300s);
    EXPECT_FALSE(no.allowed);
    EXPECT_EQ(ttl2, 5s);
    auto [capped, ttl3] =
        lambda_authorizer::parse_answer(200, R"({"isAuthorized":true,"ttlOverride":99999})", 1s);
    EXPECT_EQ(ttl3, 3600s);
    for (auto [status, body] :
         std::vector<std::pair<long, const char*>>{{500, R"({"isAuthorized":true})"},
                                                   {200, "not json"},
                                                   {200, R"({"isAuthorized":"yes"})"},
                                                   {200, "[]"}}) {
        auto [a, t] = lambda_authorizer::parse_answer(status, body, 300s);
        EXPECT_FALSE(a.allowed) << body;
        EXPECT_EQ(t, 0s) << "failures are never cached";
        EXPECT_FALSE(a.reason.empty());
    }
}

TEST(TokenBucket, AllowsTheBurstThenTheRate) {
    token_bucket b(10, 10);
    const auto t0 = token_bucket::clock::now();
    int taken = 0;
    for (int i = 0; i < 20; ++i)
        taken += b.take(t0) ? 1 : 0;
    EXPECT_EQ(taken, 10);
    EXPECT_FALSE(b.take(t0 + std::chrono::milliseconds(50)));
    EXPECT_TRUE(b.take(t0 + std::chrono::milliseconds(150)));
    token_bucket unlimited(0, 0);
    for (int i = 0; i < 1000; ++i)
        ASSERT_TRUE(unlimited.take(t0));
}

TEST(ConnectionCounter, CountsPerAddress) {
    connection_counter c(2);
    EXPECT_TRUE(c.try_add("1.2.3.4"));
    EXPECT_TRUE(c.try_add("1.2.3.4"));
    EXPECT_FALSE(c.try_add("1.2.3.4"));
    EXPECT_TRUE(c.try_add("5.6.7.8"));
    c.remove("1.2.3.4");
    EXPECT_TRUE(c.try_add("1.2.3.4"));
}

}  // namespace
}  // namespace eventcast::auth

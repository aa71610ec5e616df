// Tests src/aws/sigv4.cpp: every case of the AWS SigV4 test suite (aws-c-auth, header signing),
// the generated Bedrock converse-stream cases (pre-encoded "%3A" path, session token), and the
// input checks.
#include "aws/sigv4.hpp"

#include "llm/test_data.hpp"  // tests/data reading, shared with the llm tests

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::aws {
namespace {

namespace json = boost::json;
namespace test = llm::test;
using test::read_data;

// All 38 cases of tests/data/aws-sigv4/v4; none is skipped.
const std::vector<std::string> suite_cases = {
    "get-header-key-duplicate",
    "get-header-value-multiline",
    "get-header-value-order",
    "get-header-value-trim",
    "get-relative-normalized",
    "get-relative-relative-normalized",
    "get-relative-relative-unnormalized",
    "get-relative-unnormalized",
    "get-slash-dot-slash-normalized",
    "get-slash-dot-slash-unnormalized",
    "get-slash-normalized",
    "get-slash-pointless-dot-normalized",
    "get-slash-pointless-dot-unnormalized",
    "get-slash-unnormalized",
    "get-slashes-normalized",
    "get-slashes-unnormalized",
    "get-space-normalized",
    "get-space-unnormalized",
    "get-unreserved",
    "get-utf8",
    "get-vanilla",
    "get-vanilla-empty-query-key",
    "get-vanilla-query",
    "get-vanilla-query-order-encoded",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-header-after",
    "post-sts-header-before",
    "post-vanilla",
    "post-vanilla-empty-query-value",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
};

struct raw_request {
    std::string method;
    std::string path;
    std::string query;
    std::vector<http_header> headers;
    std::string body;
};

// Parses request.txt / header-signed-request.txt: "METHOD target HTTP/1.1" (the target may hold
// spaces, as in get-space-*), "Name:value" lines, obs-fold continuation lines (joined to the
// previous value with '\n', as they were on the wire), a blank line, the body.
raw_request parse_raw_request(std::string_view text) {
    raw_request r;
    std::vector<std::string_view> lines;
    std::size_t pos = 0;
    bool in_body = false;
    while (pos <= text.size() && !in_body) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (!lines.empty() && line.empty()) {
            in_body = true;
            break;
        }
        lines.push_back(line);
    }
    if (in_body && pos <= text.size())
        r.body = std::string(text.substr(pos));
    if (lines.empty())
        return r;
    const std::string_view request_line = lines.front();
    const std::size_t first_space = request_line.find(' ');
    const std::size_t last_space = request_line.rfind(' ');
    r.method = std::string(request_line.substr(0, first_space));
    const std::string_view target =
        request_line.substr(first_space + 1, last_space - first_space - 1);
    const std::size_t question = target.find('?');
    r.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos)
        r.query = std::string(target.substr(question + 1));
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const std::string_view line = lines[i];
        if ((line.front() == ' ' || line.front() == '\t') && !r.headers.empty()) {
            r.headers.back().value.append("\n").append(line);
            continue;
        }
        const std::size_t colon = line.find(':');
        r.headers.push_back(
            {std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    return r;
}

std::chrono::system_clock::time_point parse_timestamp(const std::string& iso) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6) << iso;
    using namespace std::chrono;
    return sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} +
           hours{h} + minutes{mi} + seconds{s};
}

class SigV4SuiteTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4SuiteTest, MatchesCanonicalRequestStringToSignAndSignature) {
    const std::string dir = "aws-sigv4/v4/" + GetParam() + "/";
    const json::object context = json::parse(read_data(dir + "context.json")).as_object();
    const json::object& creds = context.at("credentials").as_object();
    const raw_request request = parse_raw_request(read_data(dir + "request.txt"));

    aws_credentials credentials{std::string(creds.at("access_key_id").as_string()),
                                std::string(creds.at("secret_access_key").as_string()),
                                {}};
    if (const json::value* token = creds.if_contains("token"))
        credentials.session_token = std::string(token->as_string());
    const std::string region(context.at("region").as_string());
    const std::string service(context.at("service").as_string());
    sigv4_options options;
    options.normalize_path = context.at("normalize").as_bool();
    options.add_content_sha256 = context.at("sign_body").as_bool();
    if (const json::value* omit = context.if_contains("omit_session_token"))
        options.omit_session_token = omit->as_bool();

    const sigv4_request to_sign{request.method, request.path, request.query, request.headers,
                                request.body};
    const sigv4_scope scope{region, service,
                            parse_timestamp(std::string(context.at("timestamp").as_string()))};
    auto signed_request = sign_request(to_sign, credentials, scope, options);
    ASSERT_TRUE(signed_request.has_value()) << signed_request.error().message;

    EXPECT_EQ(signed_request->canonical_request, read_data(dir + "header-canonical-request.txt"));
    EXPECT_EQ(signed_request->string_to_sign, read_data(dir + "header-string-to-sign.txt"));
    EXPECT_EQ(signed_request->signature, read_data(dir + "header-signature.txt"));

    // The signed request has exactly the original headers plus ours (order aside).
    const raw_request expected = parse_raw_request(read_data(dir + "header-signed-request.txt"));
    std::vector<http_header> ours = request.headers;
    ours.insert(ours.end(), signed_request->added_headers.begin(),
                signed_request->added_headers.end());
    ours.push_back({"Authorization", signed_request->authorization});
    const auto lines = [](const std::vector<http_header>& headers) {
        std::vector<std::string> out;
        for (const auto& h : headers)
            out.push_back(h.name + ":" + h.value);
        std::sort(out.begin(), out.end());
        return out;
    };
    EXPECT_EQ(lines(ours), lines(expected.headers));
}

INSTANTIATE_TEST_SUITE_P(AwsSigningTestSuite, SigV4SuiteTest, ::testing::ValuesIn(suite_cases),
                         [](const ::testing::TestParamInfo<std::string>& case_info) {
                             std::string name = case_info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

TEST(SigV4SuiteListTest, CoversEveryCaseInTheDataDirectory) {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(test::data_path("aws-sigv4/v4")))
        found.push_back(entry.path().filename().string());
    std::sort(found.begin(), found.end());
    EXPECT_EQ(found, suite_cases);
}

struct bedrock_case {
    std::string path;
    std::string token;
    std::string canonical_request;
    std::string string_to_sign;
    std::string authorization;
};

// generated/bedrock-sigv4.txt: "# Body ..." line then the body; per "## case": the path and
// token comments, two <<< >>> blocks and the Authorization line.
std::vector<bedrock_case> bedrock_cases(std::string& body) {
    const std::string text = read_data("generated/bedrock-sigv4.txt");
    std::vector<bedrock_case> cases;
    std::vector<std::string> lines;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos)
            end = text.size();
        lines.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    std::string* block = nullptr;  // the <<< >>> block being read, if any
    std::vector<std::string> block_lines;
    int blocks = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string& line = lines[i];
        if (block != nullptr) {
            if (line != ">>>") {
                block_lines.push_back(line);
                continue;
            }
            for (std::size_t j = 0; j < block_lines.size(); ++j)
                block->append(j == 0 ? "" : "\n").append(block_lines[j]);
            block = nullptr;
            block_lines.clear();
            continue;
        }
        if (line.rfind("# Body", 0) == 0)
            body = lines.at(i + 1);
        else if (line.rfind("## case", 0) == 0) {
            cases.emplace_back();
            blocks = 0;
        } else if (line.rfind("# request line path: ", 0) == 0)
            cases.back().path = line.substr(21);
        else if (line.rfind("# X-Amz-Security-Token: ", 0) == 0)
            cases.back().token = line.substr(24);
        else if (line == "<<<")
            block = blocks++ == 0 ? &cases.back().canonical_request : &cases.back().string_to_sign;
        else if (line == "### Authorization header value")
            cases.back().authorization = lines.at(i + 1);
    }
    return cases;
}

TEST(SigV4BedrockTest, SignsConverseStreamWithEncodedAndLiteralColonPaths) {
    std::string body;
    const std::vector<bedrock_case> cases = bedrock_cases(body);
    ASSERT_EQ(cases.size(), 2u);
    ASSERT_EQ(body.front(), '{');
    for (const bedrock_case& c : cases) {
        SCOPED_TRACE(c.path);
        const std::vector<http_header> headers = {
            {"Content-Type", "application/json"},
            {"Host", "bedrock-runtime.us-east-1.amazonaws.com"}};
        const aws_credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                          c.token};
        const sigv4_scope scope{"us-east-1", "bedrock", parse_timestamp("2015-08-30T12:36:00Z")};
        auto s = sign_request({"POST", c.path, "", headers, body}, credentials, scope);
        ASSERT_TRUE(s.has_value()) << s.error().message;
        EXPECT_EQ(s->canonical_request, c.canonical_request);
        EXPECT_EQ(s->string_to_sign, c.string_to_sign);
        EXPECT_EQ(s->authorization, c.authorization);
        ASSERT_EQ(s->added_headers.size(), c.token.empty() ? 1u : 2u);
        EXPECT_EQ(s->added_headers[0].name, "X-Amz-Date");
        EXPECT_EQ(s->added_headers[0].value, "20150830T123600Z");
        if (!c.token.empty()) {
            EXPECT_EQ(s->added_headers[1].name, "X-Amz-Security-Token");
            EXPECT_EQ(s->added_headers[1].value, c.token);
        }
    }
}

// A small valid request for the checks below.
struct fixture {
    std::vector<http_header> headers = {{"Host", "example.amazonaws.com"}};
    aws_credentials credentials{"AKIDEXAMPLE", "secret", ""};
    sigv4_scope scope{"us-east-1", "service", parse_timestamp("2015-08-30T12:36:00Z")};
    sigv4_request request() const { return {"GET", "/", "", headers, ""}; }
};

TEST(SigV4UriTest, EncodesTheWirePathAgainExceptForS3) {
    EXPECT_EQ(canonical_uri("/model/a.b-v1%3A0/converse-stream", {}),
              "/model/a.b-v1%253A0/converse-stream");
    EXPECT_EQ(canonical_uri("/model/a.b-v1:0/converse-stream", {}),
              "/model/a.b-v1%3A0/converse-stream");
    sigv4_options s3;
    s3.normalize_path = false;
    s3.double_encode_path = false;
    EXPECT_EQ(canonical_uri("/bucket/a%3Ab c//./d", s3), "/bucket/a%3Ab%20c//./d");
    EXPECT_EQ(canonical_uri("", {}), "/");
    EXPECT_EQ(canonical_uri("/a/b/../../..", {}), "/");
    EXPECT_EQ(canonical_uri("/a/./b/", {}), "/a/b/");
}

TEST(SigV4UriTest, EncodesABedrockModelIdAsOnePathLabel) {
    EXPECT_EQ(uri_encode("anthropic.claude-3-haiku-20240307-v1:0"),
              "anthropic.claude-3-haiku-20240307-v1%3A0");
    EXPECT_EQ(uri_encode("arn:aws:bedrock:us-east-1:123:inference-profile/us.x"),
              "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x");
    EXPECT_EQ(uri_encode("-_.~ AZaz09\xE1"), "-_.~%20AZaz09%E1");
}

TEST(SigV4QueryTest, SortsByEncodedNameThenValueAndDecodesFirst) {
    EXPECT_EQ(canonical_query("b=2&a=2&a=1&c"), "a=1&a=2&b=2&c=");
    EXPECT_EQ(canonical_query("x=%7e&y=a+b&z=%zz"), "x=~&y=a%2Bb&z=%25zz");
    EXPECT_EQ(canonical_query(""), "");
    EXPECT_EQ(canonical_query("&&a=1&"), "a=1");
}

TEST(SigV4DateTest, FormatsXAmzDateInUtc) {
    EXPECT_EQ(amz_date(parse_timestamp("2015-08-30T12:36:00Z")), "20150830T123600Z");
    EXPECT_EQ(amz_date(parse_timestamp("2024-02-29T00:00:09Z") + std::chrono::milliseconds(999)),
              "20240229T000009Z");
}

TEST(SigV4SignTest, DoesNotDependOnTheOrderOfDistinctHeaders) {
    fixture f;
    f.headers = {{"Host", "h"}, {"Content-Type", "application/json"}, {"X-B", " 1 "}};
    auto a = sign_request(f.request(), f.credentials, f.scope);
    std::reverse(f.headers.begin(), f.headers.end());
    auto b = sign_request(f.request(), f.credentials, f.scope);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->signature, b->signature);
    EXPECT_EQ(a->signed_headers, "content-type;host;x-amz-date;x-b");
}

TEST(SigV4SignTest, SendsButDoesNotSignAnOmittedSessionToken) {
    fixture f;
    f.credentials.session_token = "TOKEN";
    sigv4_options options;
    options.omit_session_token = true;
    auto s = sign_request(f.request(), f.credentials, f.scope, options);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->signed_headers, "host;x-amz-date");
    ASSERT_EQ(s->added_headers.size(), 2u);
    EXPECT_EQ(s->added_headers[1].value, "TOKEN");
}

TEST(SigV4SignTest, RejectsMissingHostHeader) {
    fixture f;
    f.headers = {{"Content-Type", "application/json"}};
    auto s = sign_request(f.request(), f.credentials, f.scope);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("host"), std::string::npos) << s.error().message;
}

TEST(SigV4SignTest, RejectsHeadersTheSignerAddsItself) {
    for (const char* name : {"Authorization", "X-Amz-Date"}) {
        fixture f;
        f.headers.push_back({name, "x"});
        auto s = sign_request(f.request(), f.credentials, f.scope);
        ASSERT_FALSE(s) << name;
        EXPECT_NE(s.error().message.find(name), std::string::npos) << s.error().message;
    }
}

TEST(SigV4SignTest, RejectsEmptyCredentialsBadScopeAndBadHeaderNames) {
    fixture f;
    f.credentials.access_key_id.clear();
    EXPECT_FALSE(sign_request(f.request(), f.credentials, f.scope));
    f = fixture{};
    f.credentials.secret_access_key.clear();
    EXPECT_FALSE(sign_request(f.request(), f.credentials, f.scope));
    f = fixture{};
    f.scope.region = "us-east-1/x";
    EXPECT_FALSE(sign_request(f.request(), f.credentials, f.scope));
    f = fixture{};
    f.scope.service = "";
    EXPECT_FALSE(sign_request(f.request(), f.credentials, f.scope));
    f = fixture{};
    f.headers.push_back({"Bad Name", "x"});
    auto s = sign_request(f.request(), f.credentials, f.scope);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message, "sigv4: header name 'Bad Name' is not an HTTP token");
}

TEST(SigV4SignTest, NeverPutsTheSecretIntoItsOutput) {
    fixture f;
    f.credentials.secret_access_key = "SECRET-KEY-VALUE";
    auto s = sign_request(f.request(), f.credentials, f.scope);
    ASSERT_TRUE(s);
    for (const std::string* text : {&s->canonical_request, &s->string_to_sign, &s->authorization})
        EXPECT_EQ(text->find("SECRET-KEY-VALUE"), std::string::npos);
}

}  // namespace
}  // namespace eventcast::aws

// The pure parts of data sources: the specs, the direct integration's payload and answers.
#include "handlers/data_source.hpp"

#include "handlers/registry.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace eventcast::handlers {
namespace {

namespace json = boost::json;

TEST(DataSourceSpecTest, ParsesEachKind) {
    auto l = parse_data_source("ns:lambda:arn:aws:lambda:us-east-1:123456789012:function:f");
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->first, "ns");
    EXPECT_EQ(l->second.what, data_source::kind::lambda);
    EXPECT_EQ(l->second.target, "arn:aws:lambda:us-east-1:123456789012:function:f");
    auto h = parse_data_source("web:http:http://127.0.0.1:8080/base/");
    ASSERT_TRUE(h) << h.error();
    EXPECT_EQ(h->second.what, data_source::kind::http);
    EXPECT_EQ(h->second.target, "http://127.0.0.1:8080/base");
    auto b = parse_data_source("ask:bedrock");
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->second.what, data_source::kind::bedrock);
    EXPECT_EQ(b->second.target, "");
    auto bm = parse_data_source("ask:bedrock:anthropic.claude-3-haiku-20240307-v1:0");
    ASSERT_TRUE(bm) << bm.error();
    EXPECT_EQ(bm->second.target, "anthropic.claude-3-haiku-20240307-v1:0");
}

TEST(DataSourceSpecTest, RefusalsNameTheRule) {
    EXPECT_NE(parse_data_source("nocolon").error().find("is not NS:lambda"), std::string::npos);
    EXPECT_NE(parse_data_source("ns:lambda").error().find("names no function"), std::string::npos);
    EXPECT_NE(parse_data_source("ns:http:ftp://x").error().find("http:// or https://"),
              std::string::npos);
    EXPECT_NE(parse_data_source("ns:dynamodb:t").error().find("allowed: lambda, http, bedrock"),
              std::string::npos);
}

TEST(DirectLambdaSpecTest, ParsesOperationsAndInvokeType) {
    auto d = parse_direct_lambda(
        "chat:publish+subscribe:REQUEST_RESPONSE:arn:aws:lambda:x:1:function:f");
    ASSERT_TRUE(d) << d.error();
    EXPECT_EQ(d->first, "chat");
    EXPECT_TRUE(d->second.publish);
    EXPECT_TRUE(d->second.subscribe);
    EXPECT_FALSE(d->second.event);
    EXPECT_EQ(d->second.function, "arn:aws:lambda:x:1:function:f");
    auto e = parse_direct_lambda("n:subscribe:EVENT:f");
    ASSERT_TRUE(e) << e.error();
    EXPECT_FALSE(e->second.publish);
    EXPECT_TRUE(e->second.subscribe);
    EXPECT_TRUE(e->second.event);
}

TEST(DirectLambdaSpecTest, RefusalsNameTheRule) {
    EXPECT_NE(parse_direct_lambda("n:publish:EVENT").error().find("NS:OPERATIONS:INVOKE_TYPE"),
              std::string::npos);
    EXPECT_NE(parse_direct_lambda("n:connect:EVENT:f").error().find("operation 'connect'"),
              std::string::npos);
    EXPECT_NE(parse_direct_lambda("n:publish:ASYNC:f").error().find("REQUEST_RESPONSE, EVENT"),
              std::string::npos);
    EXPECT_NE(parse_direct_lambda("n::EVENT:f").error().find("names no operation"),
              std::string::npos);
}

TEST(DirectLambdaPayloadTest, AddsAppSyncsFields) {
    auto v = json::parse(direct_lambda_payload(R"({"events":[],"identity":null,"stash":{}})"));
    const auto& o = v.as_object();
    EXPECT_TRUE(o.at("result").is_null());
    EXPECT_TRUE(o.at("error").is_null());
    EXPECT_TRUE(o.at("prev").is_null());
    EXPECT_TRUE(o.at("outErrors").as_array().empty());
    EXPECT_TRUE(o.at("events").as_array().empty());
}

TEST(DirectLambdaAnswerTest, PublishEventsErrorsAndRefusals) {
    const std::vector<std::string> ids{"a", "b", "c"};
    auto d = map_direct_publish(
        json::parse(R"({"events":[{"id":"b","payload":{"x":1}},{"id":"a","error":"no"}]})"), ids);
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->broadcast.size(), 1u);
    EXPECT_EQ(d->broadcast[0].index, 1u);
    EXPECT_EQ(d->broadcast[0].payload, R"({"x":1})");
    ASSERT_EQ(d->failed.size(), 1u);
    EXPECT_EQ(d->failed[0].message, "no");
    auto whole = map_direct_publish(json::parse(R"({"error":"refused by the function"})"), ids);
    ASSERT_FALSE(whole);
    EXPECT_EQ(whole.error().what, failure::kind::error);
    EXPECT_EQ(whole.error().message, "refused by the function");
    auto nothing = map_direct_publish(nullptr, ids);
    ASSERT_TRUE(nothing);
    EXPECT_TRUE(nothing->broadcast.empty());
    auto unknown = map_direct_publish(json::parse(R"({"events":[{"id":"zz","payload":1}]})"), ids);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().what, failure::kind::bad_result);
    EXPECT_FALSE(map_direct_publish(json::parse(R"({"events":{}})"), ids));
    EXPECT_FALSE(map_direct_publish(json::parse("[1]"), ids));
}

TEST(DirectLambdaAnswerTest, SubscribeAcceptsUnlessError) {
    EXPECT_FALSE(map_direct_subscribe(nullptr));
    EXPECT_FALSE(map_direct_subscribe(json::parse("{}")));
    EXPECT_FALSE(map_direct_subscribe(json::parse(R"({"error":null})")));
    auto refused = map_direct_subscribe(json::parse(R"({"error":"go away"})"));
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->what, failure::kind::error);
    EXPECT_EQ(refused->message, "go away");
}

// A {request, response} handler needs a data source; a handler is either code or DIRECT.
TEST(DataSourcePlanTest, StartUpRefusesAPairWithoutASourceAndCodePlusDirect) {
    const std::string file = ::testing::TempDir() + "pair_handler.js";
    std::ofstream(file) << "export const onPublish = { request(ctx) { return {} }, "
                           "response(ctx) { return ctx.events } }\n"
                           "export function onSubscribe(ctx) {}\n";
    aws::transport transport;
    auto make = [&](std::vector<std::string> sources, std::vector<std::string> directs) {
        registry::options o;
        o.specs = {"ns:" + file};
        o.namespaces = {"ns"};
        o.data_sources = std::move(sources);
        o.direct_lambdas = std::move(directs);
        o.outbound.transport = &transport;
        o.outbound.region = "us-east-1";
        return registry::create(std::move(o));
    };
    auto no_source = make({}, {});
    ASSERT_FALSE(no_source);
    EXPECT_NE(no_source.error().at(0).find("onPublish has request/response, but namespace 'ns' "
                                           "has no --namespace-data-source"),
              std::string::npos);
    auto both = make({"ns:lambda:f"}, {"ns:subscribe:EVENT:f"});
    ASSERT_FALSE(both);
    EXPECT_NE(both.error().at(0).find("onSubscribe is both in"), std::string::npos);
    auto ok = make({"ns:lambda:f"}, {});
    ASSERT_TRUE(ok) << ok.error().at(0);
    EXPECT_TRUE((*ok)->waits("ns", operation::publish));
    EXPECT_FALSE((*ok)->waits("ns", operation::subscribe));  // a plain function: no waiting
    auto undefined_ns = make({"other:lambda:f"}, {});
    ASSERT_FALSE(undefined_ns);
    EXPECT_NE(undefined_ns.error().at(0).find("'other' is not a defined --namespace"),
              std::string::npos);
    transport.stop();
    std::remove(file.c_str());
}

}  // namespace
}  // namespace eventcast::handlers

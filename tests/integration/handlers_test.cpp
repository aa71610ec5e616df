// Namespace handlers (issue 16) through the real binary: handler files written as AWS's
// "Writing event handlers" examples are (tests/data/handlers/), over WebSocket and HTTP publish;
// the time limit, start-up with broken files, and SIGHUP reloads.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace eventcast::testing {
namespace {

using namespace std::chrono_literals;

std::string str(const json::value& v) {
    return std::string(v.as_string());
}

std::string data(const std::string& name) {
    return std::string(EVENTCAST_TEST_DATA) + "/handlers/" + name;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
}

std::string temp_dir() {
    char tmpl[] = "/tmp/eventcast-handlers-XXXXXX";
    if (!mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

// Every namespace the tests use, each with its file; `plain` has none.
std::vector<std::string> handler_args(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--namespace",      "plain",
                                     "--namespace",      "filter",
                                     "--namespace",      "transform",
                                     "--namespace",      "validate",
                                     "--namespace-code", "filter:" + data("filter.js"),
                                     "--namespace-code", "transform:" + data("transform.js"),
                                     "--namespace-code", "validate:" + data("validate.js")};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

http_result http_publish(const server_process& srv, const std::string& channel,
                         const std::vector<std::string>& events) {
    json::object body;
    body["channel"] = channel;
    json::array list;
    for (const auto& e : events)
        list.emplace_back(e);
    body["events"] = std::move(list);
    return http_request(srv.port(), http::verb::post, "/event", json::serialize(body),
                        {{"X-Api-Key", srv.api_key()}, {"Content-Type", "application/json"}});
}

// The payloads of the data frames that arrive within `quiet` of each other.
std::vector<json::value> received(ws_client& c, std::chrono::milliseconds quiet = 500ms) {
    std::vector<json::value> out;
    while (auto frame = c.expect_type("data", quiet))
        out.push_back(json::parse(str(frame->at("event"))));
    return out;
}

std::unique_ptr<ws_client> subscribed(const server_process& srv, const std::string& channel) {
    auto c = std::make_unique<ws_client>(srv.port(), srv.api_key());
    c->subscribe("s", channel);
    auto ok = c->expect_type("subscribe_success");
    if (!ok)
        throw std::runtime_error("no subscribe_success for " + channel);
    return c;
}

TEST(HandlersTest, FilterDropsSpamOverWebSocketAndHttp) {
    server_process srv(handler_args());
    auto sub = subscribed(srv, "/filter/*");
    ws_client pub(srv.port(), srv.api_key());
    pub.publish("p1", "/filter/room", {R"({"n":1})", R"({"n":2,"spam":true})", R"({"n":3})"});
    auto ack = pub.expect_type("publish_success");
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->at("successful").as_array().size(), 3u);  // dropped is not failed
    EXPECT_TRUE(ack->at("failed").as_array().empty());
    auto got = received(*sub);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].at("n"), 1);
    EXPECT_EQ(got[1].at("n"), 3);

    auto r = http_publish(srv, "/filter/room", {R"({"spam":true})", R"({"n":4})"});
    ASSERT_EQ(r.status, 200u) << r.body;
    got = received(*sub);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].at("n"), 4);
}

TEST(HandlersTest, TransformEnrichesWithTheChannelAndUtilTime) {
    server_process srv(handler_args());
    auto sub = subscribed(srv, "/transform/*");
    const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto r = http_publish(srv, "/transform/a/b", {R"({"message":"hello","keep":7})"});
    ASSERT_EQ(r.status, 200u) << r.body;
    ws_client pub(srv.port(), srv.api_key());
    pub.publish("p1", "/transform/ws", {R"({"message":"via ws"})"});
    ASSERT_TRUE(pub.expect_type("publish_success"));
    auto got = received(*sub);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].at("message"), "HELLO");
    EXPECT_EQ(got[0].at("keep"), 7);
    EXPECT_EQ(got[0].at("channel"), "/transform/a/b");
    EXPECT_EQ(got[0].at("segments"), json::parse(R"(["transform","a","b"])"));
    const auto epoch = got[0].at("receivedEpoch").to_number<std::int64_t>();
    EXPECT_GE(epoch, before);
    EXPECT_LE(epoch, before + 60);
    const auto iso = str(got[0].at("receivedAt"));
    EXPECT_EQ(iso.size(), 24u) << iso;  // 2026-12-07T17:00:00.000Z
    EXPECT_EQ(iso.back(), 'Z');
    EXPECT_EQ(got[1].at("message"), "VIA WS");
    EXPECT_EQ(got[1].at("channel"), "/transform/ws");
}

TEST(HandlersTest, PerEventErrorReachesThePublisherInFailed) {
    server_process srv(handler_args());
    auto sub = subscribed(srv, "/validate/ok/*");
    ws_client pub(srv.port(), srv.api_key());
    pub.publish("p1", "/validate/ok/x", {R"({"amount":5})", R"({"amount":"five"})"});
    auto ack = pub.expect_type("publish_success");
    ASSERT_TRUE(ack);
    ASSERT_EQ(ack->at("successful").as_array().size(), 1u);
    ASSERT_EQ(ack->at("failed").as_array().size(), 1u);
    const auto& failed = ack->at("failed").at(0).as_object();
    EXPECT_EQ(failed.at("index"), 1);
    EXPECT_EQ(failed.at("message"), "amount must be a number");
    EXPECT_EQ(ack->at("successful").at(0).at("index"), 0);

    auto r = http_publish(srv, "/validate/ok/y", {R"({"amount":"no"})", R"({"amount":9})"});
    ASSERT_EQ(r.status, 200u) << r.body;
    auto body = json::parse(r.body).as_object();
    ASSERT_EQ(body.at("failed").as_array().size(), 1u);
    EXPECT_EQ(body.at("failed").at(0).at("index"), 0);
    EXPECT_EQ(body.at("failed").at(0).at("message"), "amount must be a number");
    EXPECT_EQ(body.at("successful").as_array().size(), 1u);

    auto got = received(*sub);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].at("amount"), 5);
    EXPECT_EQ(got[1].at("amount"), 9);
}

TEST(HandlersTest, OnSubscribeRefusesByIdentityAndWithUtilError) {
    server_process srv(handler_args());
    ws_client c(srv.port(), srv.api_key());
    // API keys have a null ctx.identity: the handler calls util.unauthorized().
    c.subscribe("private", "/validate/private/*");
    auto refused = c.expect_type("subscribe_error");
    ASSERT_TRUE(refused);
    EXPECT_EQ(str(refused->at("id")), "private");
    EXPECT_EQ(error_type(*refused), "UnauthorizedException");

    c.subscribe("closed", "/validate/closed");
    auto error = c.expect_type("subscribe_error");
    ASSERT_TRUE(error);
    EXPECT_EQ(str(error->at("id")), "closed");
    const auto& e = error->at("errors").at(0).as_object();
    EXPECT_EQ(str(e.at("message")), "channel /validate/closed is closed")
        << json::serialize(*error);

    c.subscribe("open", "/validate/ok/*");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
}

TEST(HandlersTest, NamespacesWithoutCodeAreUnaffected) {
    server_process srv(handler_args());
    auto sub = subscribed(srv, "/plain/*");
    ws_client pub(srv.port(), srv.api_key());
    pub.publish("p1", "/plain/a", {R"({"spam":true,"message":"as is"})", R"({"amount":"x"})"});
    auto ack = pub.expect_type("publish_success");
    ASSERT_TRUE(ack);
    EXPECT_TRUE(ack->at("failed").as_array().empty());
    auto got = received(*sub);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], json::parse(R"({"spam":true,"message":"as is"})"));
    EXPECT_EQ(got[1], json::parse(R"({"amount":"x"})"));
    ws_client c(srv.port(), srv.api_key());
    c.subscribe("private", "/plain/private/*");  // no onSubscribe: accepted
    EXPECT_TRUE(c.expect_type("subscribe_success"));
}

TEST(HandlersTest, AnEndlessLoopIsStoppedByTheTimeLimitWhileOtherNamespacesServe) {
    server_process srv(
        handler_args({"--namespace", "loop", "--namespace-code", "loop:" + data("loop.js"),
                      "--handler-time-limit-ms", "1500"}));
    auto sub = subscribed(srv, "/plain/*");
    ws_client looping(srv.port(), srv.api_key());
    const auto start = std::chrono::steady_clock::now();
    looping.publish("stuck", "/loop/a", {R"({"n":1})"});
    std::this_thread::sleep_for(100ms);  // the handler is running now
    // With one I/O thread the loop holds the only thread, so the other namespace is answered
    // only after the limit; with more, at once.
    const bool one_thread = std::getenv("EVENTCAST_TEST_THREADS") &&
                            std::string(std::getenv("EVENTCAST_TEST_THREADS")) == "1";
    ws_client other(srv.port(), srv.api_key(),
                    ws_client::options{});  // connected while the loop runs
    const auto asked = std::chrono::steady_clock::now();
    other.publish("fine", "/plain/b", {R"({"n":2})"});
    auto ok = other.expect_type("publish_success", 5s);
    const auto answered = std::chrono::steady_clock::now() - asked;
    ASSERT_TRUE(ok);
    if (!one_thread) {
        EXPECT_LT(answered, 500ms) << "the other namespace waited for the looping handler";
    }
    auto got = received(*sub);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].at("n"), 2);

    auto stopped = looping.expect_type("publish_error", 5s);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(stopped);
    EXPECT_GE(took, 1400ms);
    EXPECT_LT(took, 4s);
    const auto message = str(stopped->at("errors").at(0).at("message"));
    EXPECT_NE(message.find("time"), std::string::npos) << message;
    const auto metrics = http_request(srv.port(), http::verb::get, "/metrics", "", {}).body;
    EXPECT_NE(metrics.find("eventcast_handler_timeouts_total 1\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("eventcast_handler_failures_total 1\n"), std::string::npos) << metrics;
    // The engine that was interrupted serves the next invocation.
    ws_client again(srv.port(), srv.api_key());
    again.publish("after", "/filter/a", {R"({"n":3})"});
    EXPECT_TRUE(again.expect_type("publish_success", 5s));
}

// The server's stderr when it refuses to start with these arguments.
std::string start_failure(const std::vector<std::string>& args) {
    const auto dir = temp_dir();
    const auto log = dir + "/stderr";
    try {
        server_process srv(args, "test-key", 0, log);
        ADD_FAILURE() << "eventcast started";
    } catch (const std::runtime_error&) {
    }
    return read_file(log);
}

TEST(HandlersTest, StartUpWithASyntaxErrorRefusesAndSaysFileLineColumn) {
    const auto err =
        start_failure({"--namespace", "bad", "--namespace-code", "bad:" + data("syntax_error.js")});
    EXPECT_NE(err.find("syntax_error.js:3:"), std::string::npos) << err;
    EXPECT_NE(err.find("SyntaxError"), std::string::npos) << err;
}

TEST(HandlersTest, StartUpWithABadImportRefusesAndSaysFileLineColumn) {
    const auto err =
        start_failure({"--namespace", "bad", "--namespace-code", "bad:" + data("bad_import.js")});
    EXPECT_NE(err.find("bad_import.js:1:"), std::string::npos) << err;
    EXPECT_NE(err.find("no-such-module"), std::string::npos) << err;
}

TEST(HandlersTest, SighupWithABrokenFileKeepsTheOldCodeAndWithAGoodOneSwitches) {
    const auto dir = temp_dir();
    const auto file = dir + "/live.js";
    const auto log = dir + "/stderr";
    write_file(file, read_file(data("filter.js")));
    server_process srv({"--namespace", "live", "--namespace-code", "live:" + file}, "test-key", 0,
                       log);
    auto sub = subscribed(srv, "/live/*");
    ws_client pub(srv.port(), srv.api_key());
    auto publish = [&](const std::string& id) {
        pub.publish(id, "/live/a", {R"({"spam":true,"message":"m"})"});
        return pub.expect_type("publish_success").has_value();
    };
    ASSERT_TRUE(publish("1"));
    EXPECT_TRUE(received(*sub, 300ms).empty());  // filtered

    write_file(file, read_file(data("syntax_error.js")));
    srv.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] { return read_file(log).find("the old code stays") != std::string::npos; }, 10s))
        << read_file(log);
    EXPECT_NE(read_file(log).find("live.js:3:"), std::string::npos) << read_file(log);
    ASSERT_TRUE(publish("2"));
    EXPECT_TRUE(received(*sub, 300ms).empty());  // still the filter

    write_file(file, read_file(data("transform.js")));
    srv.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] { return read_file(log).find("reloaded 1 namespace handler") != std::string::npos; },
        10s))
        << read_file(log);
    ASSERT_TRUE(publish("3"));
    auto got = received(*sub);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].at("message"), "M");
    EXPECT_EQ(got[0].at("channel"), "/live/a");
}

}  // namespace
}  // namespace eventcast::testing

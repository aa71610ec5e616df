// The bad-input suite: malformed frames, handshakes and HTTP requests, each answered with the
// documented error (docs/protocol.md), and the server still serving afterwards. CI runs it
// against the ASan/UBSan build.
#include "harness.hpp"

#include <gtest/gtest.h>

namespace eventcast::testing {
namespace {

struct ws_case {
    const char* name;
    std::string frame;
    std::string reply_type;  // expected "type" of the reply
    std::string error_type;  // expected errors[0].errorType
    std::string id;          // expected echoed id, or "" for none
};

std::string auth(const std::string& key) {
    return R"({"x-api-key":")" + key + R"("})";
}

std::vector<ws_case> ws_cases(const std::string& key) {
    const std::string a = auth(key);
    const std::string sub = R"({"type":"subscribe","id":"s1","authorization":)" + a + ",";
    const std::string pub = R"({"type":"publish","id":"p1","authorization":)" + a + ",";
    const std::string big_event = "\"\\\"" + std::string(240 * 1024, 'x') + "\\\"\"";
    std::string deep(100, '[');
    deep += std::string(100, ']');
    return {
        {"not json", "not json", "error", "InvalidInputError", ""},
        {"empty text", "", "error", "InvalidInputError", ""},
        {"truncated json", R"({"type":"subscribe")", "error", "InvalidInputError", ""},
        {"array root", "[]", "error", "InvalidInputError", ""},
        {"string root", R"("subscribe")", "error", "InvalidInputError", ""},
        {"number root", "42", "error", "InvalidInputError", ""},
        {"no type", "{}", "error", "InvalidInputError", ""},
        {"type not string", R"({"type":5})", "error", "InvalidInputError", ""},
        {"unknown type", R"({"type":"bogus"})", "error", "UnsupportedOperation", ""},
        {"unknown type with id", R"({"type":"bogus","id":"x1"})", "error", "UnsupportedOperation",
         "x1"},
        {"unknown type with a live subscription id", R"({"type":"bogus","id":"live1"})", "error",
         "UnsupportedOperation", ""},
        {"json nested too deep", deep, "error", "InvalidInputError", ""},
        {"subscribe without id", R"({"type":"subscribe","channel":"default/a"})", "error",
         "InvalidInputError", ""},
        {"subscribe empty id", R"({"type":"subscribe","id":"","channel":"default/a"})", "error",
         "InvalidInputError", ""},
        {"subscribe id with space", R"({"type":"subscribe","id":"a b","channel":"default/a"})",
         "error", "InvalidInputError", ""},
        {"subscribe id 129 chars",
         R"({"type":"subscribe","id":")" + std::string(129, 'a') + R"(","channel":"default/a"})",
         "error", "InvalidInputError", ""},
        {"subscribe id number", R"({"type":"subscribe","id":7,"channel":"default/a"})", "error",
         "InvalidInputError", ""},
        {"subscribe no channel", sub + R"("x":1})", "subscribe_error", "InvalidInputError", "s1"},
        {"subscribe channel number", sub + R"("channel":5})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe channel empty", sub + R"("channel":""})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe channel slash", sub + R"("channel":"/"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe six segments", sub + R"("channel":"default/1/2/3/4/5"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe segment 51 chars",
         sub + R"("channel":"default/)" + std::string(51, 'a') + R"("})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe underscore", sub + R"("channel":"default/a_b"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe leading dash", sub + R"("channel":"default/-a"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe mid wildcard", sub + R"("channel":"default/*/a"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe double star", sub + R"("channel":"default/**"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe bare star", sub + R"("channel":"*"})", "subscribe_error", "InvalidInputError",
         "s1"},
        {"subscribe empty segment", sub + R"("channel":"default//a"})", "subscribe_error",
         "InvalidInputError", "s1"},
        {"subscribe wildcard makes six", sub + R"("channel":"default/1/2/3/4/*"})",
         "subscribe_error", "InvalidInputError", "s1"},
        {"subscribe undefined namespace", sub + R"("channel":"nope/a"})", "subscribe_error",
         "UnauthorizedException", "s1"},
        {"subscribe without authorization",
         R"({"type":"subscribe","id":"s1","channel":"default/a"})", "subscribe_error",
         "UnauthorizedException", "s1"},
        {"subscribe wrong key",
         R"({"type":"subscribe","id":"s1","channel":"default/a","authorization":{"x-api-key":"nope"}})",
         "subscribe_error", "UnauthorizedException", "s1"},
        {"subscribe authorization string",
         R"({"type":"subscribe","id":"s1","channel":"default/a","authorization":"key"})",
         "subscribe_error", "InvalidInputError", "s1"},
        {"subscribe duplicate live id",
         R"({"type":"subscribe","id":"live1","channel":"default/a","authorization":)" + a + "}",
         "subscribe_error", "DuplicatedOperationError", "live1"},
        {"unsubscribe unknown id", R"({"type":"unsubscribe","id":"never"})", "unsubscribe_error",
         "UnknownOperationError", "never"},
        {"unsubscribe without id", R"({"type":"unsubscribe"})", "error", "InvalidInputError", ""},
        {"publish without events", pub + R"("channel":"default/a"})", "publish_error",
         "InvalidInputError", "p1"},
        {"publish events object", pub + R"("channel":"default/a","events":{"a":1}})",
         "publish_error", "InvalidInputError", "p1"},
        {"publish events empty", pub + R"("channel":"default/a","events":[]})", "publish_error",
         "InvalidInputError", "p1"},
        {"publish six events", pub + R"("channel":"default/a","events":["1","2","3","4","5","6"]})",
         "publish_error", "InvalidInputError", "p1"},
        {"publish event not a string", pub + R"("channel":"default/a","events":[{"a":1}]})",
         "publish_error", "InvalidInputError", "p1"},
        {"publish event not json text", pub + R"("channel":"default/a","events":["{a:1}"]})",
         "publish_error", "InvalidInputError", "p1"},
        {"publish event two json texts", pub + R"("channel":"default/a","events":["1 2"]})",
         "publish_error", "InvalidInputError", "p1"},
        {"publish event over 240 KB",
         pub + R"("channel":"default/a","events":[)" + big_event + "]}", "publish_error",
         "InvalidInputError", "p1"},
        {"publish to wildcard", pub + R"("channel":"default/*","events":["1"]})", "publish_error",
         "InvalidInputError", "p1"},
        {"publish undefined namespace", pub + R"("channel":"bad/channel","events":["1"]})",
         "publish_error", "UnauthorizedException", "p1"},
        {"publish without authorization",
         R"({"type":"publish","id":"p1","channel":"default/a","events":["1"]})", "publish_error",
         "UnauthorizedException", "p1"},
        {"publish wrong key",
         R"({"type":"publish","id":"p1","channel":"default/a","events":["1"],"authorization":{"x-api-key":"nope"}})",
         "publish_error", "UnauthorizedException", "p1"},
        {"publish channel array", pub + R"("channel":["default","a"],"events":["1"]})",
         "publish_error", "InvalidInputError", "p1"},
    };
}

class BadInputTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new server_process({"--max-frame-bytes", "2097152"}); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static server_process* server_;
};
server_process* BadInputTest::server_ = nullptr;

TEST_F(BadInputTest, EveryMalformedFrameGetsItsErrorAndTheConnectionStaysOpen) {
    const auto& key = server_->api_key();
    ws_client c(server_->port(), key);
    c.subscribe("live1", "default/live");
    ASSERT_TRUE(c.expect_type("subscribe_success"));
    const auto cases = ws_cases(key);
    ASSERT_GE(cases.size(), 40u);
    for (const auto& tc : cases) {
        SCOPED_TRACE(tc.name);
        c.send(tc.frame);
        auto reply = c.read_json();
        ASSERT_TRUE(reply) << "no reply; connection closed=" << c.closed();
        EXPECT_EQ(std::string(reply->at("type").as_string()), tc.reply_type)
            << json::serialize(*reply);
        EXPECT_EQ(error_type(*reply), tc.error_type) << json::serialize(*reply);
        const auto* id = reply->if_contains("id");
        EXPECT_EQ(id ? std::string(id->as_string()) : std::string(), tc.id);
        const auto& err = reply->at("errors").as_array()[0].as_object();
        if (tc.error_type != "UnauthorizedException") {
            ASSERT_TRUE(err.contains("message"));
            EXPECT_FALSE(err.at("message").as_string().empty());
        }
    }
    // Binary frames are refused, not parsed.
    c.send_binary(R"({"type":"connection_init"})");
    auto bin = c.read_json();
    ASSERT_TRUE(bin);
    EXPECT_EQ(error_type(*bin), "UnsupportedOperation");
    // Still serving: the live subscription gets an event published on this connection.
    c.publish("after", "default/live", {R"({"still":"here"})"});
    auto d = c.expect_type("data");
    ASSERT_TRUE(d);
    EXPECT_EQ(std::string(d->at("event").as_string()), R"({"still":"here"})");
    EXPECT_TRUE(c.expect_type("publish_success"));
}

TEST_F(BadInputTest, SixEventsUseAwsWording) {
    ws_client c(server_->port(), server_->api_key());
    c.publish("p6", "default/a", {"1", "2", "3", "4", "5", "6"});
    auto e = c.expect_type("publish_error");
    ASSERT_TRUE(e);
    EXPECT_EQ(std::string(e->at("errors").as_array()[0].at("message").as_string()),
              "input exceeded 5 event limit");
}

TEST_F(BadInputTest, OversizeFrameClosesWith1009AndServerKeepsServing) {
    // The server refuses the frame from its header, then lingers: it shuts down its side and
    // drops the rest of the frame, so our write of all 3 MB completes and we read the 1009
    // close frame (closing at once, with our bytes unread, would have sent a reset instead).
    for (int round = 0; round < 3; ++round) {
        ws_client c(server_->port(), server_->api_key());
        c.send(std::string(3 * 1024 * 1024, ' '));
        EXPECT_TRUE(c.wait_closed());
        EXPECT_EQ(c.close_code(), 1009);
    }
    ws_client next(server_->port(), server_->api_key());
    next.init();
    EXPECT_TRUE(next.expect_type("connection_ack"));
}

TEST_F(BadInputTest, InvalidUtf8TextFrameClosesWith1007) {
    ws_client c(server_->port(), server_->api_key());
    c.send(std::string("{\"type\":\"\xff\xfe\"}"));
    EXPECT_TRUE(c.wait_closed());
    EXPECT_EQ(c.close_code(), 1007);
}

TEST_F(BadInputTest, BadHeaderSubprotocolsGetConnectionError) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not base64", "header-!!!not_base64!!!"},
        {"not json", "header-bm90IGpzb24"},  // "not json"
        {"json array", "header-WzEsMl0"},    // "[1,2]"
        {"impossible length", "header-abcde"},
    };
    for (const auto& [name, proto] : cases) {
        SCOPED_TRACE(name);
        ws_client c(server_->port(), server_->api_key(),
                    {.subprotocols = {"aws-appsync-event-ws", proto}});
        auto e = c.read_json();
        ASSERT_TRUE(e);
        EXPECT_EQ(std::string(e->at("type").as_string()), "connection_error");
        EXPECT_EQ(error_type(*e), "BadRequestException");
        EXPECT_TRUE(c.wait_closed());
    }
}

TEST_F(BadInputTest, MissingCredentialsGetUnauthorized) {
    ws_client c(server_->port(), server_->api_key(), {.offer_none = true});
    auto e = c.read_json();
    ASSERT_TRUE(e);
    EXPECT_EQ(error_type(*e), "UnauthorizedException");
}

TEST_F(BadInputTest, UpgradeWithoutTheAppSyncSubprotocolIsRefused) {
    EXPECT_THROW(ws_client(server_->port(), server_->api_key(), {.subprotocols = {"graphql-ws"}}),
                 boost::system::system_error);
    EXPECT_THROW(ws_client(server_->port(), server_->api_key(), {.target = "/elsewhere"}),
                 boost::system::system_error);
}

struct http_case {
    const char* name;
    http::verb verb;
    std::string target;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    unsigned status;
    std::string error_type;
};

TEST_F(BadInputTest, HttpErrorsCarryStatusTypeAndMessage) {
    const auto& key = server_->api_key();
    const std::pair<std::string, std::string> k{"x-api-key", key};
    const std::pair<std::string, std::string> json_ct{"content-type", "application/json"};
    const std::vector<http_case> cases = {
        {"bad json", http::verb::post, "/event", "{nope", {k, json_ct}, 400, "BadRequestException"},
        {"array body", http::verb::post, "/event", "[]", {k, json_ct}, 400, "BadRequestException"},
        {"no channel",
         http::verb::post,
         "/event",
         R"({"events":["1"]})",
         {k, json_ct},
         400,
         "BadRequestException"},
        {"bad channel",
         http::verb::post,
         "/event",
         R"({"channel":"a_b","events":["1"]})",
         {k, json_ct},
         400,
         "BadRequestException"},
        {"wildcard channel",
         http::verb::post,
         "/event",
         R"({"channel":"/default/*","events":["1"]})",
         {k, json_ct},
         400,
         "BadRequestException"},
        {"six events",
         http::verb::post,
         "/event",
         R"({"channel":"/default/a","events":["1","2","3","4","5","6"]})",
         {k, json_ct},
         400,
         "BadRequestException"},
        {"event not string",
         http::verb::post,
         "/event",
         R"({"channel":"/default/a","events":[1]})",
         {k, json_ct},
         400,
         "BadRequestException"},
        {"no key",
         http::verb::post,
         "/event",
         R"({"channel":"/default/a","events":["1"]})",
         {json_ct},
         401,
         "UnauthorizedException"},
        {"wrong key",
         http::verb::post,
         "/event",
         R"({"channel":"/default/a","events":["1"]})",
         {{"x-api-key", "nope"}, json_ct},
         401,
         "UnauthorizedException"},
        {"undefined namespace",
         http::verb::post,
         "/event",
         R"({"channel":"/bad/channel","events":["1"]})",
         {k, json_ct},
         401,
         "UnauthorizedException"},
        {"text/plain",
         http::verb::post,
         "/event",
         R"({"channel":"/default/a","events":["1"]})",
         {k, {"content-type", "text/plain"}},
         415,
         "BadRequestException"},
        {"get /event", http::verb::get, "/event", "", {k}, 405, "BadRequestException"},
        {"unknown route", http::verb::get, "/nowhere", "", {}, 404, "NotFoundException"},
        {"realtime without upgrade",
         http::verb::get,
         "/event/realtime",
         "",
         {},
         426,
         "BadRequestException"},
        {"body over limit",
         http::verb::post,
         "/event",
         std::string(5 * 1024 * 1024, ' '),
         {k, json_ct},
         413,
         "BadRequestException"},
        {"headers over limit",
         http::verb::post,
         "/event",
         "{}",
         {k, {"x-padding", std::string(20 * 1024, 'p')}},
         431,
         "BadRequestException"},
    };
    for (const auto& tc : cases) {
        SCOPED_TRACE(tc.name);
        auto r = http_request(server_->port(), tc.verb, tc.target, tc.body, tc.headers);
        EXPECT_EQ(r.status, tc.status) << r.body;
        EXPECT_EQ(std::string(r.headers["x-amzn-ErrorType"]), tc.error_type);
        auto body = json::parse(r.body).as_object();
        EXPECT_EQ(std::string(body.at("errors").as_array()[0].at("errorType").as_string()),
                  tc.error_type);
        if (tc.status != 401) {
            EXPECT_FALSE(body.at("message").as_string().empty());
        }
    }
    auto health = http_request(server_->port(), http::verb::get, "/healthz", "", {});
    EXPECT_EQ(health.status, 200u);
}

TEST_F(BadInputTest, GarbageHttpGetsA400) {
    asio::io_context ioc;
    asio::ip::tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    asio::write(s, asio::buffer(std::string("HELLO ::: nonsense\r\n\r\n")));
    std::string reply;
    boost::system::error_code ec;
    std::array<char, 1024> buf;
    while (true) {
        const auto n = s.read_some(asio::buffer(buf), ec);
        reply.append(buf.data(), n);
        if (ec)
            break;
    }
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
    auto health = http_request(server_->port(), http::verb::get, "/healthz", "", {});
    EXPECT_EQ(health.status, 200u);
}

}  // namespace
}  // namespace eventcast::testing

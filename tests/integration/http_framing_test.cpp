// HTTP/1.1 message framing against the real binary (RFC 9112 §2-3, §5-7): Transfer-Encoding
// and Content-Length combinations, Host, obs-fold, bare LF, pipelining, request-target forms,
// media types and slow senders. Each request goes out as raw bytes in one write, so what the
// server answers to every byte is visible: a smuggled second request shows up as a second
// response, or as an event a subscriber receives.
#include "raw_client.hpp"

#include <gtest/gtest.h>

namespace eventcast::testing {
namespace {

class HttpFramingTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new server_process({"--handshake-timeout-ms", "1500"});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static std::uint16_t port() { return server_->port(); }
    static const std::string& key() { return server_->api_key(); }
    static server_process* server_;
};
server_process* HttpFramingTest::server_ = nullptr;

std::string head(const std::string& lines) {
    return "POST /event HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + "\r\n";
}

std::vector<unsigned> statuses(const std::vector<raw_response>& rs) {
    std::vector<unsigned> out;
    for (const auto& r : rs)
        out.push_back(r.status);
    return out;
}

// A subscriber on `channel` that reports whether any event arrived.
class watcher {
public:
    watcher(std::uint16_t port, const std::string& key, const std::string& channel)
        : c_(port, key) {
        c_.subscribe("w", channel);
        ok_ = c_.expect_type("subscribe_success").has_value();
    }
    bool ready() const { return ok_; }
    bool got_event(std::chrono::milliseconds wait = 500ms) {
        return c_.expect_type("data", wait).has_value();
    }

private:
    ws_client c_;
    bool ok_ = false;
};

// ---- item 1: request smuggling through Transfer-Encoding ----------------------------------

TEST_F(HttpFramingTest, TransferEncodingWhoseLastCodingIsNotChunkedIs400AndCloses) {
    watcher w(port(), key(), "/default/smuggle");
    ASSERT_TRUE(w.ready());
    const std::string smuggled = publish_request(key(), "/default/smuggle", R"({"smuggled":1})");
    for (const std::string_view te : {"gzip", "chunked, identity", "identity", "chunked,gzip", "x"}) {
        SCOPED_TRACE(te);
        const auto rs = exchange(port(), head("x-api-key: " + key() +
                                              "\r\nContent-Type: application/json"
                                              "\r\nTransfer-Encoding: " +
                                              std::string(te) + "\r\n") +
                                             smuggled);
        ASSERT_EQ(statuses(rs), std::vector<unsigned>{400u});
        EXPECT_FALSE(rs[0].keep_alive);
    }
    EXPECT_FALSE(w.got_event()) << "the body ran as a second request";
}

TEST_F(HttpFramingTest, TransferEncodingSplitOverTwoFieldsIsReadAsOneList) {
    // "chunked" then "gzip": the last coding is gzip, so the length is unknown.
    const auto rs = exchange(port(), head("x-api-key: " + key() +
                                          "\r\nTransfer-Encoding: chunked\r\n"
                                          "Transfer-Encoding: gzip\r\n") +
                                         "0\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u});
}

TEST_F(HttpFramingTest, ChunkedTwiceIs400) {
    const auto rs =
        exchange(port(), head("Transfer-Encoding: chunked, chunked\r\n") + "0\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u});
}

TEST_F(HttpFramingTest, ACodingBeforeChunkedIsNotImplemented) {
    const auto rs = exchange(port(), head("Transfer-Encoding: gzip, chunked\r\n") + "0\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{501u});
}

TEST_F(HttpFramingTest, TransferEncodingInHttp10Is400) {
    const auto rs = exchange(port(), "POST /event HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: "
                                     "chunked\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u});
}

TEST_F(HttpFramingTest, TransferEncodingWithContentLengthIs400AndCloses) {
    watcher w(port(), key(), "/default/tecl");
    ASSERT_TRUE(w.ready());
    const std::string smuggled = publish_request(key(), "/default/tecl", R"({"smuggled":2})");
    // Both orders: TE then CL, CL then TE. The body would be read two ways.
    const auto a = exchange(port(), head("x-api-key: " + key() +
                                         "\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n") +
                                        "0\r\n\r\n" + smuggled);
    EXPECT_EQ(statuses(a), std::vector<unsigned>{400u});
    const auto b = exchange(port(), head("x-api-key: " + key() +
                                         "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n") +
                                        "0\r\n\r\n" + smuggled);
    EXPECT_EQ(statuses(b), std::vector<unsigned>{400u});
    EXPECT_FALSE(w.got_event());
}

TEST_F(HttpFramingTest, ChunkedBodyIsReadAndTheConnectionKept) {
    json::object o;
    o["channel"] = "/default/chunked";
    o["events"] = json::array{json::value(R"({"a":1})")};
    const auto body = json::serialize(o);
    std::string chunked;
    // Chunks of 7 bytes, one with an extension, then a trailer field.
    for (std::size_t at = 0; at < body.size(); at += 7) {
        const auto part = body.substr(at, 7);
        char size[16];
        std::snprintf(size, sizeof size, "%zx", part.size());
        chunked += std::string(size) + (at == 0 ? ";ext=1" : "") + "\r\n" + part + "\r\n";
    }
    chunked += "0\r\nx-trailer: t\r\n\r\n";
    const auto req = head("x-api-key: " + key() +
                          "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n") +
                     chunked;
    raw_conn c(port(), false);
    c.write(req + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.read_to_eof();
    EXPECT_EQ(statuses(parse_responses(c.buffer())), (std::vector<unsigned>{200u, 200u}));
}

TEST_F(HttpFramingTest, BadChunkSizeIs400) {
    for (const std::string_view body : {"zz\r\nabc\r\n0\r\n\r\n", "-1\r\n\r\n",
                                   "ffffffffffffffffff\r\n"}) {
        const auto rs = exchange(port(), head("Transfer-Encoding: chunked\r\n") + std::string(body));
        EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u}) << body;
    }
}

TEST_F(HttpFramingTest, ConflictingOrMalformedContentLengthIs400) {
    for (const std::string_view cl : {"Content-Length: 5\r\nContent-Length: 6\r\n",
                                 "Content-Length: 5, 6\r\n", "Content-Length: +5\r\n",
                                 "Content-Length: 0x5\r\n", "Content-Length: -1\r\n",
                                 "Content-Length: 99999999999999999999999\r\n"}) {
        const auto rs = exchange(port(), head(std::string(cl)) + "hello");
        EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u}) << cl;
    }
}

// ---- item 5: Host ---------------------------------------------------------------------------

TEST_F(HttpFramingTest, Http11WithoutHostOrWithTwoIs400) {
    auto none = exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n");
    EXPECT_EQ(statuses(none), std::vector<unsigned>{400u});
    auto two = exchange(port(), "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    EXPECT_EQ(statuses(two), std::vector<unsigned>{400u});
    // HTTP/1.0 has no Host requirement.
    auto old = exchange(port(), "GET /healthz HTTP/1.0\r\n\r\n");
    EXPECT_EQ(statuses(old), std::vector<unsigned>{200u});
}

TEST_F(HttpFramingTest, UpgradeWithoutHostIs400) {
    const auto rs = exchange(port(),
                             "GET /event/realtime HTTP/1.1\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u});
}

// ---- item 5: media types ------------------------------------------------------------------

TEST_F(HttpFramingTest, MediaTypeIsMatchedExactlyAndCaseInsensitively) {
    const std::vector<std::pair<std::string, unsigned>> cases = {
        {"application/json", 200},
        {"APPLICATION/JSON", 200},
        {"Application/Json; charset=utf-8", 200},
        {"application/json;charset=UTF-8", 200},
        {"application/json ; charset=utf-8", 200},
        {"application/jsonx", 415},
        {"application/json-patch+json", 415},
        {"application/jso", 415},
        {"text/json", 415},
        {"application/json/x", 415},
    };
    for (const auto& [type, status] : cases) {
        SCOPED_TRACE(type);
        const auto rs = exchange(
            port(), publish_request(key(), "/default/media", R"({"m":1})", type) +
                        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        ASSERT_FALSE(rs.empty());
        EXPECT_EQ(rs[0].status, status) << rs[0].body;
        if (status == 415) {  // the AppSync error shape, as every refusal
            EXPECT_NE(rs[0].body.find(R"("errorType":"BadRequestException")"), std::string::npos)
                << rs[0].body;
        }
    }
}

// ---- line syntax ----------------------------------------------------------------------------

TEST_F(HttpFramingTest, ObsFoldIsRefusedOrUnfolded) {
    // RFC 9112 §5.2: reject with 400, or replace each fold with a space. Either way the folded
    // line is never read as a field of its own.
    const auto rs = exchange(port(),
                             "GET /healthz HTTP/1.1\r\nHost: x\r\nx-note: a\r\n b\r\n"
                             "Connection: close\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].status == 400 || rs[0].status == 200) << rs[0].status;
}

TEST_F(HttpFramingTest, SpaceBeforeTheColonIs400) {
    // RFC 9112 §5.1: "Host : x" must be refused, or a proxy and we would disagree on Host.
    const auto rs = exchange(port(), "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n");
    EXPECT_EQ(statuses(rs), std::vector<unsigned>{400u});
}

TEST_F(HttpFramingTest, BareLineFeedsNeverSmuggleARequest) {
    // A bare LF is either a line end (then this is two requests) or an error (one 400); never
    // two requests where the second is hidden inside the first's header.
    const auto rs = exchange(port(), "GET /healthz HTTP/1.1\nHost: x\n\nGET /healthz HTTP/1.1\r\n"
                                     "Host: x\r\nConnection: close\r\n\r\n");
    ASSERT_FALSE(rs.empty());
    if (rs[0].status == 400) {
        EXPECT_EQ(rs.size(), 1u);
    } else {
        EXPECT_EQ(statuses(rs), (std::vector<unsigned>{200u, 200u}));
    }
}

TEST_F(HttpFramingTest, GarbageRequestLinesAre400) {
    for (const std::string_view line : {"GET  /healthz HTTP/1.1", "GET /healthz HTTP/1.1 extra",
                                   "GET /healthz HTTP/2.0", "GET /healthz", "G\x01T /healthz HTTP/1.1",
                                   "GET /he\x7fz HTTP/1.1"}) {
        const auto rs = exchange(port(), std::string(line) + "\r\nHost: x\r\n\r\n");
        ASSERT_FALSE(rs.empty()) << line;
        EXPECT_EQ(rs[0].status, 400u) << line;
    }
}

// ---- pipelining -----------------------------------------------------------------------------

TEST_F(HttpFramingTest, PipelinedRequestsAreAnsweredInOrder) {
    watcher w(port(), key(), "/default/pipe");
    ASSERT_TRUE(w.ready());
    std::string reqs;
    for (int i = 0; i < 3; ++i)
        reqs += publish_request(key(), "/default/pipe", "{\"n\":" + std::to_string(i) + "}");
    reqs += "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
    reqs += "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const auto rs = exchange(port(), reqs);
    EXPECT_EQ(statuses(rs), (std::vector<unsigned>{200u, 200u, 200u, 404u, 200u}));
    EXPECT_TRUE(w.got_event(3s));
}

TEST_F(HttpFramingTest, ContentLengthBodyEndsExactlyWhereItSays) {
    // The next request starts right after the body's last byte, even inside the same write.
    auto one = publish_request(key(), "/default/cl", R"({"a":1})");
    const auto rs =
        exchange(port(), one + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(statuses(rs), (std::vector<unsigned>{200u, 200u}));
}

// ---- request-target forms -----------------------------------------------------------------

TEST_F(HttpFramingTest, RequestTargetForms) {
    // origin-form is served; absolute-form must be accepted by a server (RFC 9112 §3.2.2);
    // authority-form is for CONNECT only and asterisk-form for server-wide OPTIONS.
    EXPECT_EQ(statuses(exchange(port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close"
                                        "\r\n\r\n")),
              std::vector<unsigned>{200u});
    EXPECT_EQ(statuses(exchange(port(),
                                "GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Connection: close\r\n\r\n")),
              std::vector<unsigned>{200u});
    const auto authority = exchange(port(), "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(authority.size(), 1u);
    EXPECT_GE(authority[0].status, 400u);
    const auto star = exchange(port(), "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(star.size(), 1u);
    EXPECT_GE(star[0].status, 400u);
}

// ---- item 6: slow senders -------------------------------------------------------------------

TEST_F(HttpFramingTest, ARequestHeadMustCompleteWithinTheHandshakeTimeout) {
    // One header byte every 200 ms keeps an idle timer happy forever; the head deadline
    // (--handshake-timeout-ms 1500 here) must close the connection anyway.
    raw_conn c(port(), false);
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\nx-slow: " + std::string(200, 'a');
    const auto start = std::chrono::steady_clock::now();
    std::size_t sent = 0;
    while (sent < req.size() && std::chrono::steady_clock::now() - start < 8s) {
        if (!c.write(req.substr(sent, 1)))
            break;
        ++sent;
        c.read_more(200ms);
        if (c.eof())
            break;
    }
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(c.eof()) << "still open after " << sent << " bytes";
    EXPECT_LT(took, 5s);
}

TEST_F(HttpFramingTest, AnIdleKeepAliveConnectionIsNotCutByTheHeadDeadline) {
    // The head deadline starts at the first byte of a request, not when the connection opens:
    // a keep-alive connection may wait (up to the idle timeout) between requests.
    raw_conn c(port(), false);
    c.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(c.read_until("\r\n\r\n"));
    c.buffer().clear();
    std::this_thread::sleep_for(2s);  // longer than the 1.5 s head deadline
    c.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.read_to_eof();
    EXPECT_EQ(statuses(parse_responses(c.buffer())), std::vector<unsigned>{200u});
}

}  // namespace
}  // namespace eventcast::testing

// Helpers shared by the history tests (one node and cluster mode): positions, resume
// subscribes, data frames with their position, and numbered publishes.
#pragma once

#include "harness.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace eventcast::testing {

inline std::string str(const json::value& v) {
    return std::string(v.as_string());
}

// "5f3a0c1e-42" -> 42
inline std::uint64_t seq_of(const std::string& position) {
    return std::stoull(position.substr(position.find('-') + 1));
}
inline std::string epoch_of(const std::string& position) {
    return position.substr(0, position.find('-'));
}

inline void subscribe_resume(ws_client& c, const std::string& id, const std::string& channel,
                             const std::string& after) {
    c.send(R"({"type":"subscribe","id":")" + id + R"(","channel":")" + channel +
           R"(","authorization":)" + c.auth_json() + R"(,"resume":{"after":")" + after + R"("}})");
}

struct data_frame {
    std::string id;
    std::string event;
    std::string position;
};

inline std::optional<data_frame> next_data(
    ws_client& c, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto f = c.expect_type("data", timeout);
    if (!f)
        return std::nullopt;
    return data_frame{str(f->at("id")), str(f->at("event")), str(f->at("position"))};
}

// Publishes events {"n":from}..{"n":to-1} one per publish over HTTP, returns when all are acked.
inline void publish_range(const server_process& srv, const std::string& channel, int from, int to) {
    for (int n = from; n < to; ++n) {
        auto r = http_request(
            srv.port(), http::verb::post, "/event",
            R"({"channel":")" + channel + R"(","events":["{\"n\":)" + std::to_string(n) + R"(}"]})",
            {{"x-api-key", srv.api_key()}, {"content-type", "application/json"}});
        ASSERT_EQ(r.status, 200u) << r.body;
    }
}

// Chat events from `c` appended to `events` until the stream's end or error event.
inline void read_until_end(ws_client& c, std::vector<json::object>& events) {
    for (;;) {
        auto d = next_data(c, std::chrono::seconds(10));
        ASSERT_TRUE(d) << "the stream did not end";
        auto ev = json::parse(d->event).as_object();
        events.push_back(ev);
        if (str(ev.at("type")) == "end" || str(ev.at("type")) == "error")
            return;
    }
}

// The joined delta text of one stream's events, checking that seq is gapless from 0 and every
// event belongs to `stream_id`.
inline std::string joined_deltas(const std::vector<json::object>& events,
                                 const std::string& stream_id) {
    std::string text;
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].at("seq").as_int64(), static_cast<std::int64_t>(i)) << "gapless seq";
        EXPECT_EQ(str(events[i].at("streamId")), stream_id);
        if (str(events[i].at("type")) == "delta")
            text += str(events[i].at("data"));
    }
    return text;
}

}  // namespace eventcast::testing

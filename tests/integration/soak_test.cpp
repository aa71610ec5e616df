// Bounded soak: thousands of connections subscribe, publish, stall, send bad frames and vanish
// at random for EVENTCAST_SOAK_SECONDS (default 45; CI runs it so, under ASan/UBSan), while a
// set of healthy subscribers must receive every event published meanwhile, in order. After the
// load the server's open fds must be back to their count before it, its RSS within
// EVENTCAST_SOAK_RSS_MARGIN_MB (default 64) of what it was after a warm-up round of the same
// load, and the server must exit 0 on SIGTERM (a sanitizer report would abort it). Everything
// runs on 127.0.0.1. docs/soak.md has the figures of a longer run.
#include "raw_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <sys/resource.h>

namespace eventcast::testing {
namespace {

std::size_t env_number(const char* name, std::size_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::stoul(v) : fallback;
}

// The test opens a few hundred sockets at once; Debian's default soft limit is 1,024.
void raise_fd_limit() {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
}

struct churn_stats {
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> bad_frames{0};
    std::atomic<std::size_t> closed_for_bad_frames{0};
    std::atomic<std::size_t> publishes{0};
    std::atomic<std::size_t> stalls{0};
    std::atomic<std::size_t> errors{0};  // a connection the server refused to open
};

const std::vector<std::string>& bad_frames() {
    static const std::vector<std::string> frames = {
        encode_frame(0x1, "{\"type\":\"\xff\"}"),          // invalid UTF-8: 1007
        encode_frame(0x3, "x"),                            // reserved opcode: 1002
        encode_frame(0x1, "{}", true, 4),                  // RSV1: 1002
        encode_frame(0x1, R"({"type":"connection_init"})", true, 0, false),  // unmasked: 1002
        encode_frame(0x0, "orphan continuation"),          // 1002
        encode_frame(0x9, std::string(126, 'p')),          // oversize ping: 1002
        encode_frame(0x8, std::string("\x03\xed", 2)),     // close 1005 on the wire: 1002
    };
    return frames;
}

// One client thread: opens a connection, does one random thing with it, and moves on.
void churn(std::uint16_t port, const std::string& key, std::chrono::steady_clock::time_point end,
           unsigned seed, churn_stats& st) {
    std::mt19937 rng(seed);
    std::deque<std::unique_ptr<raw_ws>> stalled;  // held open, never read, dropped later
    while (std::chrono::steady_clock::now() < end) {
        ++st.connections;
        try {
            const bool tls = rng() % 8 == 0;
            auto c = std::make_unique<raw_ws>(port, key, raw_ws::options{.tls = tls});
            switch (rng() % 6) {
                case 0: {  // a bad frame: the server must close
                    const auto& frames = bad_frames();
                    c->send_bytes(frames[rng() % frames.size()]);
                    ++st.bad_frames;
                    if (c->wait_close(3s) > 0)
                        ++st.closed_for_bad_frames;
                    break;
                }
                case 1: {  // subscribe, then vanish without a close frame
                    c->send_text(subscribe_text(key, "s", "default/churn/" +
                                                              std::to_string(rng() % 50)));
                    c->expect_type("subscribe_success", 1s);
                    break;
                }
                case 2: {  // publish to a channel nobody healthy reads
                    c->send_text(publish_text(key, "p", "default/churn/x", {R"({"c":1})"}));
                    if (c->expect_type("publish_success", 2s))
                        ++st.publishes;
                    break;
                }
                case 3: {  // stall: half a frame, or a subscriber that never reads
                    ++st.stalls;
                    if (rng() % 2)
                        c->send_bytes(encode_frame(0x1, R"({"type":"connection_init"})").substr(0, 5));
                    else
                        c->send_text(subscribe_text(key, "st", "default/soak"));
                    stalled.push_back(std::move(c));
                    if (stalled.size() > 40)
                        stalled.pop_front();
                    break;
                }
                case 4: {  // a clean close
                    c->send_frame(0x8, std::string("\x03\xe8", 2));
                    c->wait_close(2s);
                    break;
                }
                default: {  // many messages in one write, then gone mid-answer
                    std::string batch;
                    for (int i = 0; i < 20; ++i)
                        batch += encode_frame(0x1, R"({"type":"connection_init"})");
                    c->send_bytes(batch);
                    break;
                }
            }
        } catch (const std::exception&) {
            ++st.errors;
        }
        if (rng() % 16 == 0) {  // raw HTTP garbage now and then
            try {
                raw_conn h(port, false);
                h.write("POST /event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nzz");
                h.read_to_eof(2s);
            } catch (const std::exception&) {
                ++st.errors;
            }
        }
    }
}

// A healthy subscriber: reads every data frame on default/soak and checks the sequence.
struct healthy {
    explicit healthy(std::uint16_t port, const std::string& key) : c(port, key) {
        c.subscribe("h", "default/soak");
        ok = c.expect_type("subscribe_success").has_value();
    }
    void run(const std::atomic<std::size_t>& published, const std::atomic<bool>& done) {
        std::optional<std::chrono::steady_clock::time_point> give_up;
        while (true) {
            if (done && !give_up)
                give_up = std::chrono::steady_clock::now() + 10s;
            if (give_up && std::chrono::steady_clock::now() > *give_up)
                return;  // the count check reports what is missing
            auto d = c.expect_type("data", 500ms);
            if (d) {
                const auto v = json::parse(d->at("event").as_string()).as_object();
                const auto seq = static_cast<std::size_t>(v.at("seq").as_int64());
                if (seq != received)
                    out_of_order = true;
                received = seq + 1;
                continue;
            }
            if (c.closed() || (done && received >= published))
                return;
        }
    }
    ws_client c;
    bool ok = false;
    std::size_t received = 0;
    bool out_of_order = false;
};

void run_load(server_process& server, std::chrono::seconds length, churn_stats& st,
              std::size_t healthy_count, std::size_t& published_out, bool& all_received) {
    const auto end = std::chrono::steady_clock::now() + length;
    std::vector<std::unique_ptr<healthy>> subs;
    for (std::size_t i = 0; i < healthy_count; ++i) {
        subs.push_back(std::make_unique<healthy>(server.port(), server.api_key()));
        ASSERT_TRUE(subs.back()->ok);
    }
    std::atomic<std::size_t> published{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (auto& s : subs)
        threads.emplace_back([&s, &published, &done] { s->run(published, done); });
    for (unsigned i = 0; i < 4; ++i)
        threads.emplace_back([&, i] { churn(server.port(), server.api_key(), end, 7 + i, st); });
    // The publisher: one event every 20 ms over HTTP, numbered from 0.
    while (std::chrono::steady_clock::now() < end) {
        const std::string event = "{\"seq\":" + std::to_string(published.load()) + "}";
        json::object body;
        body["channel"] = "/default/soak";
        body["events"] = json::array{json::value(event)};
        const auto r = http_request(server.port(), http::verb::post, "/event",
                                    json::serialize(body),
                                    {{"x-api-key", server.api_key()},
                                     {"content-type", "application/json"}});
        ASSERT_EQ(r.status, 200u) << r.body;
        ++published;
        std::this_thread::sleep_for(20ms);
    }
    done = true;
    for (auto& t : threads)
        t.join();
    published_out = published;
    all_received = true;
    for (const auto& s : subs) {
        EXPECT_EQ(s->received, published.load());
        EXPECT_FALSE(s->out_of_order);
        all_received = all_received && s->received == published && !s->out_of_order;
    }
}

TEST(SoakTest, ChurnLeavesNoLeakAndHealthySubscribersGetEverything) {
    raise_fd_limit();
    const auto seconds = env_number("EVENTCAST_SOAK_SECONDS", 45);
    const auto margin_kb = env_number("EVENTCAST_SOAK_RSS_MARGIN_MB", 64) * 1024;
    // ASan keeps freed memory in a quarantine (256 MiB by default) that would read as growth;
    // a small one keeps its use-after-free checks and makes RSS mean what it says.
    std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
    setenv("ASAN_OPTIONS", (asan + (asan.empty() ? "" : ":") + "quarantine_size_mb=16").c_str(),
           1);
    server_process server({"--max-frame-bytes", "1048576"});
    const int pid = server.pid();
    const auto fds_start = open_fds(pid);

    // Warm-up: the same load, briefly, so one-time allocations (thread buffers, allocator
    // arenas, TLS contexts) are in the baseline.
    churn_stats warm;
    std::size_t warm_published = 0;
    bool warm_ok = false;
    run_load(server, std::chrono::seconds(std::max<std::size_t>(3, seconds / 10)), warm, 5,
             warm_published, warm_ok);
    ASSERT_TRUE(eventually([&] { return open_fds(pid) <= fds_start; }, 15s))
        << open_fds(pid) << " fds open after the warm-up, " << fds_start << " before";
    const auto rss_warm = rss_kb(pid);

    churn_stats st;
    std::size_t published = 0;
    bool all_received = false;
    const auto started = std::chrono::steady_clock::now();
    run_load(server, std::chrono::seconds(seconds), st, 20, published, all_received);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_TRUE(all_received);
    ASSERT_TRUE(server.running()) << "the server died under load";

    EXPECT_TRUE(eventually([&] { return open_fds(pid) <= fds_start; }, 15s))
        << open_fds(pid) << " fds open after the load, " << fds_start << " before";
    // Freed memory reaches the OS lazily; give it the same few seconds.
    std::size_t rss_end = rss_kb(pid);
    eventually(
        [&] {
            rss_end = rss_kb(pid);
            return rss_end <= rss_warm + margin_kb;
        },
        10s);
    EXPECT_LE(rss_end, rss_warm + margin_kb) << "RSS " << rss_end << " kB after the load, "
                                             << rss_warm << " kB after the warm-up";
    // A line for docs/soak.md.
    std::printf("soak: %zus, %zu connections (%zu bad frames, %zu closed for them, %zu stalls, "
                "%zu publishes over ws, %zu refused), %zu events to 20 subscribers, fds %zu -> "
                "%zu, RSS %zu kB -> %zu kB, wall %llds\n",
                seconds, st.connections.load(), st.bad_frames.load(),
                st.closed_for_bad_frames.load(), st.stalls.load(), st.publishes.load(),
                st.errors.load(), published, fds_start, open_fds(pid), rss_warm, rss_end,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(took).count()));
    EXPECT_GT(st.connections.load(), 1000u);
    EXPECT_EQ(st.closed_for_bad_frames.load(), st.bad_frames.load())
        << "a bad frame did not get a close frame";
    EXPECT_EQ(server.terminate(), 0) << "the server did not exit cleanly (sanitizer report?)";
}

}  // namespace
}  // namespace eventcast::testing

// eventcast-bench scenarios. Each run: connect and subscribe every connection (paced), open a
// measured window after a warm-up, stop the load, wait for what is in flight, stop the workers,
// then merge the per-worker counters and histograms into one JSON result.
#include "scenarios.hpp"

#include "client.hpp"
#include "histogram.hpp"
#include "wire.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace eventcast::bench {

namespace json = boost::json;

namespace {

using namespace std::chrono_literals;

// ---- protocol messages ----------------------------------------------------------------------

enum class kind : std::uint8_t {
    data,
    ka,
    connection_ack,
    subscribe_success,
    publish_success,
    failure,  // connection_error, subscribe_error, publish_error, error, ...
    other
};

/// Classifies a server message by its "type" without parsing JSON: the first `"type":"` in a
/// message is the top-level one, because inside the escaped `event` string quotes are `\"`.
kind classify(std::string_view m) {
    const std::size_t at = m.find("\"type\":\"");
    if (at == std::string_view::npos)
        return kind::other;
    const std::string_view t = m.substr(at + 8);
    auto is = [&](std::string_view word) {
        return t.size() > word.size() && t.compare(0, word.size(), word) == 0 &&
               t[word.size()] == '"';
    };
    if (is("data"))
        return kind::data;
    if (is("ka"))
        return kind::ka;
    if (is("publish_success"))
        return kind::publish_success;
    if (is("subscribe_success"))
        return kind::subscribe_success;
    if (is("connection_ack"))
        return kind::connection_ack;
    const std::size_t close = t.find('"');
    const std::string_view word = t.substr(0, close);
    if (word == "error" || (word.size() > 6 && word.substr(word.size() - 6) == "_error"))
        return kind::failure;
    return kind::other;
}

/// A JSON number: an integer when the value is whole (Boost.JSON prints doubles as 1.5E3).
json::value num(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15)
        return static_cast<std::int64_t>(v);
    return v;
}

json::value us(std::int64_t ns) {
    return num(std::round(static_cast<double>(ns) / 10.0) / 100.0);
}

json::object latency_json(const latency_histogram& h) {
    return json::object{
        {"p50", us(h.quantile(0.50))}, {"p90", us(h.quantile(0.90))},
        {"p99", us(h.quantile(0.99))}, {"p999", us(h.quantile(0.999))},
        {"max", us(h.max())},          {"mean", us(static_cast<std::int64_t>(h.mean()))},
        {"samples", h.count()}};
}

json::value round2(double v) {
    return num(std::round(v * 100.0) / 100.0);
}

std::string subscribe_message(std::string_view id, std::string_view channel, std::string_view key) {
    std::string m = R"({"type":"subscribe","id":")";
    m += id;
    m += R"(","channel":")";
    m += channel;
    m += R"(","authorization":{"x-api-key":")";
    m += key;
    m += "\"}}";
    return m;
}

/// Appends `{"type":"publish","id":"p<id>","channel":"<channel>","events":[` to `out`.
void begin_publish(std::string& out, std::uint64_t id, std::string_view channel) {
    out += R"({"type":"publish","id":"p)";
    append_number(out, static_cast<std::int64_t>(id));
    out += R"(","channel":")";
    out += channel;
    out += R"(","events":[)";
}

void end_publish(std::string& out, std::string_view key) {
    out += R"(],"authorization":{"x-api-key":")";
    out += key;
    out += "\"}}";
}

struct alignas(64) worker_counters {
    std::uint64_t delivered = 0;  // data frames received
    std::uint64_t unflushed = 0;  // delivered, not yet added to the shared total
    std::uint64_t in_window = 0;  // data frames received inside the measured window
    std::uint64_t no_marker = 0;  // data frames without a timestamp marker
    std::uint64_t published_in_window = 0;
};

// ---- what every scenario shares -------------------------------------------------------------

class run_base : public ws_listener {
public:
    explicit run_base(const common_options& common) : common_(common) {
        target_.server = tcp::endpoint(asio::ip::make_address(common.host), common.port);
        target_.host_header = common.host + ":" + std::to_string(common.port);
        target_.api_key = common.api_key;
        if (common.nats) {
            target_.nats = true;
            target_.path = "/";
        }
        publish_target_ = target_;
        if (!common.publish_host.empty()) {
            publish_target_.server =
                tcp::endpoint(asio::ip::make_address(common.publish_host), common.publish_port);
            publish_target_.host_header =
                common.publish_host + ":" + std::to_string(common.publish_port);
        }
        const std::size_t threads = std::max<std::size_t>(1, common.threads);
        for (std::size_t t = 0; t < threads; ++t) {
            workers_.push_back(std::make_unique<worker>(t));
            workers_.back()->max_connecting = common.max_connecting;
            workers_.back()->busy_poll = common.busy_poll;
        }
        counters_.resize(threads);
        auth_ = R"({"x-api-key":")" + common.api_key + "\"}";
    }

    ~run_base() override { stop_workers(); }

protected:
    worker& worker_for(std::size_t index) { return *workers_[index % workers_.size()]; }

    /// `publisher`: connect to --publish-url when given (a cluster's other node).
    ws_conn& add_conn(std::size_t index, bool publisher = false) {
        conns_.push_back(std::make_unique<ws_conn>(
            worker_for(index), publisher ? publish_target_ : target_, *this, index));
        return *conns_.back();
    }

    void start_workers() {
        for (auto& w : workers_)
            w->start();
    }

    void stop_workers() {
        stopping_ = true;
        for (auto& w : workers_)
            w->stop();
    }

    /// Polls `pred` every 5 ms until it holds, a failure was noted, or `seconds` pass.
    bool wait_for(const std::function<bool()>& pred, double seconds) {
        const auto end = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(seconds));
        while (std::chrono::steady_clock::now() < end) {
            if (pred())
                return true;
            if (failures_.load() > 0)
                return false;
            std::this_thread::sleep_for(5ms);
        }
        return pred();
    }

    static void sleep_until_ns(std::int64_t t) {
        const std::int64_t now = now_ns();
        if (t > now)
            std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
    }

    /// Thread-safe. Keeps the first few reasons for the result.
    void note_failure(std::string why) {
        if (failures_.fetch_add(1) < 8) {
            std::lock_guard lock(failure_mutex_);
            if (why.size() > 300)
                why.resize(300);
            failure_samples_.push_back(std::move(why));
        }
    }

    /// AppSync: connection_init, then a subscription to `subscribe_channel` unless it is empty.
    /// NATS: CONNECT, SUB to the channel's subject, PING (its PONG stands for subscribe_success,
    /// or for connection_ack without a subscription).
    void send_init(ws_conn& conn, std::string_view subscribe_channel, std::string id = {}) {
        if (common_.nats) {
            conn.append_binary(nats_hello(
                subscribe_channel.empty() ? std::string() : nats_subject(subscribe_channel)));
            conn.flush();
            return;
        }
        conn.append_text(R"({"type":"connection_init"})");
        if (!subscribe_channel.empty()) {
            if (id.empty())
                id = "s" + std::to_string(conn.index());
            conn.append_text(subscribe_message(id, subscribe_channel, common_.api_key));
        }
        conn.flush();
    }

    /// A delivered event (AppSync `data` frame, NATS `MSG` payload).
    virtual void on_event(ws_conn& /*conn*/, std::string_view /*payload*/, std::int64_t /*now*/) {}
    /// A publish was acknowledged (AppSync `publish_success`; NATS: a PONG after the first).
    virtual void on_publish_ack(ws_conn& /*conn*/) {}
    /// Publisher connections are ready on connection_ack (AppSync) or their first PONG.
    virtual bool is_publisher(const ws_conn& /*conn*/) const { return false; }

    void on_text(ws_conn& conn, std::string_view payload, std::int64_t now) override {
        switch (classify(payload)) {
            case kind::data: return on_event(conn, payload, now);
            case kind::publish_success: return on_publish_ack(conn);
            case kind::subscribe_success: ready_.fetch_add(1); return;
            case kind::connection_ack:
                if (is_publisher(conn))
                    ready_.fetch_add(1);
                return;
            case kind::failure: return on_failure_message(conn, payload);
            default: return;
        }
    }

    void on_nats(ws_conn& conn, nats_op op, std::string_view payload, std::int64_t now) override {
        switch (op) {
            case nats_op::msg: return on_event(conn, payload, now);
            case nats_op::pong:
                if (!conn.ready) {  // the PONG to the hello's PING: connected and subscribed
                    conn.ready = true;
                    ready_.fetch_add(1);
                    return;
                }
                return on_publish_ack(conn);
            case nats_op::err: return on_failure_message(conn, payload);
            default: return;  // INFO, +OK
        }
    }

    void on_closed(ws_conn& conn, std::string_view why) override {
        if (!stopping_)
            note_failure("connection " + std::to_string(conn.index()) + ": " + std::string(why));
    }

    void on_failure_message(ws_conn& conn, std::string_view payload) {
        note_failure("connection " + std::to_string(conn.index()) + " got " + std::string(payload));
    }

    /// Adds what every result carries.
    void finish_json(json::object& out, const char* scenario, bool ok) {
        out["scenario"] = scenario;
        out["label"] = common_.label;
        out["protocol"] = common_.nats ? "nats" : "appsync";
        out["ok"] = ok;
        out["failures"] = failures_.load();
        json::array samples;
        {
            std::lock_guard lock(failure_mutex_);
            for (const auto& s : failure_samples_)
                samples.push_back(json::string(s));
        }
        out["failure_samples"] = std::move(samples);
    }

    latency_histogram merged_latency() const {
        latency_histogram h;
        for (const auto& w : workers_)
            h.merge(w->latency);
        return h;
    }

    latency_histogram merged_secondary() const {
        latency_histogram h;
        for (const auto& w : workers_)
            h.merge(w->secondary);
        return h;
    }

    worker_counters total_counters() const {
        worker_counters t;
        for (const auto& c : counters_) {
            t.delivered += c.delivered;
            t.in_window += c.in_window;
            t.no_marker += c.no_marker;
            t.published_in_window += c.published_in_window;
        }
        return t;
    }

    bool in_window(std::int64_t t) const { return t >= window_start_ && t < window_end_; }

    /// Call at the window's start and end (main thread): the load generator's own CPU use, to
    /// tell when a figure is bounded by the load generator rather than by the server.
    void mark_window_start() {
        cpu_at_start_ = process_cpu_ns();
        busy_at_start_ = busy_total();
    }
    void mark_window_end() {
        cpu_in_window_ = process_cpu_ns() - cpu_at_start_;
        busy_in_window_ = busy_total() - busy_at_start_;
    }
    void add_loadgen_json(json::object& out) const {
        const double window = common_.duration * 1e9 * static_cast<double>(workers_.size());
        out["loadgen_cpu_pct"] = round2(100.0 * static_cast<double>(cpu_in_window_) / window);
        if (common_.busy_poll)
            out["loadgen_busy_pct"] = round2(100.0 * static_cast<double>(busy_in_window_) / window);
    }

    static std::int64_t process_cpu_ns() {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
    }
    std::int64_t busy_total() const {
        std::int64_t t = 0;
        for (const auto& w : workers_)
            t += w->busy_ns();
        return t;
    }

    const common_options& common_;
    ws_target target_;
    ws_target publish_target_;  // target_ unless --publish-url names another node
    std::string auth_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::vector<std::unique_ptr<ws_conn>> conns_;
    std::vector<worker_counters> counters_;  // one per worker, touched only by it
    std::atomic<std::size_t> ready_{0};
    std::atomic<std::size_t> failures_{0};
    std::atomic<bool> stopping_{false};
    std::int64_t window_start_ = 0;  // written before the load starts, then only read
    std::int64_t window_end_ = 0;
    std::mutex failure_mutex_;
    std::vector<std::string> failure_samples_;
    std::int64_t cpu_at_start_ = 0;
    std::int64_t cpu_in_window_ = 0;
    std::int64_t busy_at_start_ = 0;
    std::int64_t busy_in_window_ = 0;
};

std::int64_t seconds_ns(double s) {
    return static_cast<std::int64_t>(s * 1e9);
}

// ---- fanout -------------------------------------------------------------------------------

class fanout_run final : public run_base {
public:
    fanout_run(const common_options& common, const fanout_options& opt)
        : run_base(common), opt_(opt) {
        opt_.batch = std::clamp<std::size_t>(opt_.batch, 1, 5);
        opt_.window = std::max<std::size_t>(1, opt_.window);
        opt_.publishers = std::max<std::size_t>(1, opt_.publishers);
        subject_ = nats_subject(opt_.channel);
    }

    scenario_result run() {
        scenario_result r;
        const std::size_t n = opt_.subscribers;
        const std::size_t ws_publishers = opt_.http_publishers > 0 ? 0 : opt_.publishers;
        publishers_.resize(ws_publishers);
        start_workers();
        for (std::size_t i = 0; i < n + ws_publishers; ++i) {
            ws_conn& c = add_conn(i, i >= n);
            if (i >= n)
                publishers_[i - n].conn = &c;
        }
        for (auto& c : conns_)
            c->start();
        start_http_publishers();
        const bool up =
            wait_for([&] { return ready_.load() == conns_.size() + opt_.http_publishers; },
                     common_.connect_timeout);
        if (up) {
            const std::int64_t t0 = now_ns();
            publish_start_ = t0;
            window_start_ = t0 + seconds_ns(common_.warmup);
            window_end_ = window_start_ + seconds_ns(common_.duration);
            publishing_ = true;
            for (auto& w : workers_)
                asio::post(w->ioc(), [this, wp = w.get()] { tick(*wp); });
            sleep_until_ns(window_start_);
            mark_window_start();
            sleep_until_ns(window_end_);
            mark_window_end();
            publishing_ = false;
            wait_for(
                [&] {
                    return delivered_total_.load() == sent_events_.load() * n &&
                           acked_messages_.load() == sent_messages_.load();
                },
                common_.drain_timeout);
        }
        stop_workers();

        const auto totals = total_counters();
        const latency_histogram h = merged_latency();
        const std::uint64_t expected = sent_events_.load() * n;
        const std::uint64_t lost = expected > totals.delivered ? expected - totals.delivered : 0;
        r.ok = up && failures_.load() == 0 && lost == 0 && totals.no_marker == 0 && h.count() > 0;
        r.json["params"] = json::object{
            {"subscribers", n},
            {"event_bytes", opt_.event_bytes},
            {"publishers", opt_.publishers},
            {"batch", opt_.batch},
            {"window", opt_.window},
            {"max_lag", opt_.max_lag},
            {"rate", num(opt_.rate)},
            {"publish_to", common_.publish_host.empty()
                               ? std::string("same server")
                               : common_.publish_host + ":" + std::to_string(common_.publish_port)},
            {"duration_s", num(common_.duration)},
            {"warmup_s", num(common_.warmup)},
            {"threads", workers_.size()},
            {"channel", opt_.channel},
            {"ids", opt_.ids},
            {"http_publishers", opt_.http_publishers}};
        r.json["connected"] = up;
        r.json["delivered_per_s"] =
            round2(static_cast<double>(totals.in_window) / common_.duration);
        r.json["published_per_s"] =
            round2(static_cast<double>(totals.published_in_window) / common_.duration);
        r.json["latency_us"] = latency_json(h);
        r.json["sent_events"] = sent_events_.load();
        r.json["expected_deliveries"] = expected;
        r.json["delivered"] = totals.delivered;
        r.json["lost"] = lost;
        r.json["frames_without_marker"] = totals.no_marker;
        add_loadgen_json(r.json);
        finish_json(r.json, "fanout", r.ok);
        return r;
    }

private:
    struct publisher {
        ws_conn* conn = nullptr;
        std::size_t inflight = 0;
        std::uint64_t next_id = 0;
    };

    bool is_publisher(const ws_conn& c) const override { return c.index() >= opt_.subscribers; }

    void on_open(ws_conn& conn) override {
        if (is_publisher(conn))
            return send_init(conn, {});
        send_init(conn, opt_.channel, subscription_id(conn.index()));
    }

    // 36 characters in the UUID's layout, distinct per subscriber (or one for all).
    std::string subscription_id(std::size_t index) const {
        if (opt_.ids == "short")
            return {};  // send_init's s<N>
        if (opt_.ids == "shared")
            return "00000000-0000-4000-8000-000000000000";
        char id[40];
        std::snprintf(id, sizeof id, "%08zx-0000-4000-8000-%012zx", index,
                      (index * 2654435761u) & 0xffffffffffffu);
        return id;
    }

    void on_event(ws_conn& conn, std::string_view payload, std::int64_t now) override {
        worker_counters& c = counters_[conn.owner().index()];
        ++c.delivered;
        ++c.unflushed;
        marker m;
        if (find_marker(payload.data(), payload.data() + payload.size(), m) == nullptr) {
            ++c.no_marker;
            return;
        }
        if (in_window(now)) {
            conn.owner().latency.record(now - m.ts);
            ++c.in_window;
        }
    }

    void on_publish_ack(ws_conn& conn) override {
        if (!is_publisher(conn))
            return;
        publisher& p = publishers_[conn.index() - opt_.subscribers];
        if (p.inflight > 0)
            --p.inflight;
        acked_messages_.fetch_add(1, std::memory_order_relaxed);
        pump(p);
    }

    void on_read_done(ws_conn& conn) override {
        worker_counters& c = counters_[conn.owner().index()];
        if (c.unflushed == 0)
            return;
        delivered_total_.fetch_add(c.unflushed, std::memory_order_relaxed);
        c.unflushed = 0;
        if (blocked_.load(std::memory_order_relaxed) && blocked_.exchange(false)) {
            for (auto& w : workers_)
                asio::post(w->ioc(), [this, wp = w.get()] { pump_worker(*wp); });
        }
    }

    void pump_worker(worker& w) {
        for (auto& p : publishers_)
            if (&p.conn->owner() == &w)
                pump(p);
        for (auto& h : http_publishers_)
            if (h.owner == &w)
                pump_http(h);
    }

    // ---- publishing by HTTP POST /event ----

    struct http_publisher {
        worker* owner = nullptr;
        std::shared_ptr<http_keepalive> conn;
        std::string request;  // the request being built; touched only on owner's thread
    };

    void start_http_publishers() {
        for (std::size_t i = 0; i < opt_.http_publishers; ++i) {
            worker& w = worker_for(opt_.subscribers + i);
            http_publishers_.push_back({&w, std::make_shared<http_keepalive>(w.ioc()), {}});
        }
        for (auto& h : http_publishers_)
            asio::post(h.owner->ioc(), [this, &h] {
                h.conn->connect(target_.server, [this](bool ok) {
                    if (ok)
                        ready_.fetch_add(1);
                    else
                        note_failure("HTTP publisher: cannot connect");
                });
            });
    }

    // One request in flight per connection: the next leaves when the answer is in.
    void pump_http(http_publisher& h) {
        if (!publishing_ || h.conn->busy() || h.conn->failed())
            return;
        const auto subs = static_cast<std::int64_t>(opt_.subscribers);
        const auto sent = static_cast<std::int64_t>(sent_events_.load(std::memory_order_relaxed));
        const auto outstanding =
            sent * subs -
            static_cast<std::int64_t>(delivered_total_.load(std::memory_order_relaxed));
        if (outstanding > static_cast<std::int64_t>(opt_.max_lag) * subs) {
            blocked_ = true;
            return;
        }
        const std::int64_t now = now_ns();
        const std::size_t count = opt_.batch;
        const std::uint64_t seq = sent_events_.fetch_add(count, std::memory_order_relaxed);
        std::string body = R"({"channel":")" + opt_.channel + R"(","events":[)";
        for (std::size_t e = 0; e < count; ++e) {
            if (e > 0)
                body += ',';
            append_event_literal(body, now, 0, static_cast<std::int64_t>(seq + e),
                                 opt_.event_bytes);
        }
        body += "]}";
        std::string& req = h.request;
        req = "POST /event HTTP/1.1\r\nHost: " + target_.host_header +
              "\r\nContent-Type: application/json\r\nx-api-key: " + common_.api_key +
              "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        sent_messages_.fetch_add(1, std::memory_order_relaxed);
        if (in_window(now))
            counters_[h.owner->index()].published_in_window += count;
        h.conn->send(req, [this, &h](unsigned status, std::string_view answer) {
            if (status != 200) {
                note_failure("POST /event answered " + std::to_string(status) + ": " +
                             std::string(answer.substr(0, 200)));
                return;
            }
            acked_messages_.fetch_add(1, std::memory_order_relaxed);
            pump_http(h);
        });
    }

    // Every millisecond: paces the rate mode and recovers from a missed wake-up.
    void tick(worker& w) {
        if (!publishing_)
            return;
        pump_worker(w);
        auto timer = std::make_shared<asio::steady_timer>(w.ioc(), 1ms);
        timer->async_wait([this, &w, timer](const boost::system::error_code& ec) {
            if (!ec)
                tick(w);
        });
    }

    void pump(publisher& p) {
        if (!publishing_ || !p.conn->is_open())
            return;
        const auto subs = static_cast<std::int64_t>(opt_.subscribers);
        bool any = false;
        while (p.inflight < opt_.window) {
            const std::int64_t now = now_ns();
            std::size_t count = opt_.batch;
            const auto sent =
                static_cast<std::int64_t>(sent_events_.load(std::memory_order_relaxed));
            if (opt_.rate > 0) {
                const auto allowed = static_cast<std::int64_t>(
                    opt_.rate * static_cast<double>(now - publish_start_) / 1e9);
                if (allowed - sent <= 0)
                    break;
                count = std::min<std::size_t>(count, static_cast<std::size_t>(allowed - sent));
            }
            const auto outstanding =
                sent * subs -
                static_cast<std::int64_t>(delivered_total_.load(std::memory_order_relaxed));
            if (outstanding > static_cast<std::int64_t>(opt_.max_lag) * subs) {
                blocked_ = true;
                break;
            }
            const std::uint64_t seq = sent_events_.fetch_add(count, std::memory_order_relaxed);
            std::string& m = p.conn->scratch;
            m.clear();
            if (common_.nats) {
                // `count` PUBs and a PING in one frame: the PONG is this publish's ack, as
                // nats-server answers a PING after processing what came before it.
                for (std::size_t e = 0; e < count; ++e)
                    append_nats_pub(m, subject_, now, 0, static_cast<std::int64_t>(seq + e),
                                    opt_.event_bytes);
                m += "PING\r\n";
                p.conn->append_binary(m);
            } else {
                begin_publish(m, p.next_id++, opt_.channel);
                for (std::size_t e = 0; e < count; ++e) {
                    if (e > 0)
                        m += ',';
                    append_event_literal(m, now, 0, static_cast<std::int64_t>(seq + e),
                                         opt_.event_bytes);
                }
                end_publish(m, common_.api_key);
                p.conn->append_text(m);
            }
            ++p.inflight;
            sent_messages_.fetch_add(1, std::memory_order_relaxed);
            if (in_window(now))
                counters_[p.conn->owner().index()].published_in_window += count;
            any = true;
        }
        if (any)
            p.conn->flush();
    }

    fanout_options opt_;
    std::string subject_;  // NATS: opt_.channel as a subject
    std::vector<publisher> publishers_;
    std::deque<http_publisher> http_publishers_;  // stable addresses for their callbacks
    std::atomic<bool> publishing_{false};
    std::atomic<bool> blocked_{false};
    std::atomic<std::uint64_t> sent_events_{0};
    std::atomic<std::uint64_t> sent_messages_{0};
    std::atomic<std::uint64_t> acked_messages_{0};
    std::atomic<std::uint64_t> delivered_total_{0};
    std::int64_t publish_start_ = 0;
};

// ---- streams ------------------------------------------------------------------------------

class streams_run final : public run_base {
public:
    streams_run(const common_options& common, const streams_options& opt)
        : run_base(common), opt_(opt) {
        opt_.channels = std::max<std::size_t>(1, opt_.channels);
        if (opt_.publishers == 0)
            opt_.publishers = std::max<std::size_t>(1, (opt_.channels + 249) / 250);
        channels_.resize(opt_.channels);
        next_event_.resize(workers_.size(), 0);
        if (common.nats) {
            subjects_.reserve(opt_.channels);
            for (std::size_t c = 0; c < opt_.channels; ++c)
                subjects_.push_back(nats_subject(channel_name(c)));
        }
    }

    scenario_result run() {
        scenario_result r;
        const std::size_t m = opt_.channels;
        start_workers();
        for (std::size_t i = 0; i < m + opt_.publishers; ++i) {
            ws_conn& c = add_conn(i);
            if (i >= m)
                publishers_.push_back(&c);
        }
        for (auto& c : conns_)
            c->start();
        const bool up =
            wait_for([&] { return ready_.load() == conns_.size(); }, common_.connect_timeout);
        const double total_rate = opt_.rate * static_cast<double>(m);
        total_events_ =
            static_cast<std::uint64_t>(total_rate * (common_.warmup + common_.duration));
        if (up) {
            const std::int64_t t0 = now_ns();
            publish_start_ = t0;
            window_start_ = t0 + seconds_ns(common_.warmup);
            window_end_ = window_start_ + seconds_ns(common_.duration);
            publishing_ = true;
            for (auto& w : workers_)
                asio::post(w->ioc(), [this, wp = w.get()] { tick(*wp); });
            sleep_until_ns(window_start_);
            mark_window_start();
            sleep_until_ns(window_end_);
            mark_window_end();
            wait_for(
                [&] {
                    return received_total_.load() >= total_events_ &&
                           acked_.load() >= total_events_;
                },
                common_.drain_timeout + 1.0);
            publishing_ = false;
        }
        stop_workers();

        const auto totals = total_counters();
        const latency_histogram h = merged_latency();
        std::uint64_t lost = 0;
        std::uint64_t gaps = 0;
        std::uint64_t duplicates = 0;
        std::uint64_t misrouted = 0;
        const std::uint64_t sent = published_total_.load();
        for (std::size_t c = 0; c < m; ++c) {
            const std::uint64_t expected = sent / m + (c < sent % m ? 1 : 0);
            const channel_state& s = channels_[c];
            if (s.received < expected)
                lost += expected - s.received;
            gaps += s.gaps;
            duplicates += s.duplicates;
            misrouted += s.misrouted;
        }
        r.ok = up && failures_.load() == 0 && lost == 0 && gaps == 0 && duplicates == 0 &&
               misrouted == 0 && totals.no_marker == 0 && h.count() > 0;
        const double achieved = static_cast<double>(totals.published_in_window) / common_.duration;
        r.json["params"] = json::object{{"channels", m},
                                        {"rate_per_channel", num(opt_.rate)},
                                        {"publishers", opt_.publishers},
                                        {"event_bytes", opt_.event_bytes},
                                        {"duration_s", num(common_.duration)},
                                        {"warmup_s", num(common_.warmup)},
                                        {"threads", workers_.size()}};
        r.json["connected"] = up;
        r.json["target_per_s"] = round2(total_rate);
        r.json["published_per_s"] = round2(achieved);
        r.json["generator_behind"] = achieved < 0.95 * total_rate;
        r.json["delivered_per_s"] =
            round2(static_cast<double>(totals.in_window) / common_.duration);
        r.json["latency_us"] = latency_json(h);
        r.json["sent_events"] = sent;
        r.json["publish_acks"] = acked_.load();
        r.json["delivered"] = totals.delivered;
        r.json["lost"] = lost;
        r.json["gaps"] = gaps;
        r.json["duplicates"] = duplicates;
        r.json["misrouted"] = misrouted;
        r.json["frames_without_marker"] = totals.no_marker;
        add_loadgen_json(r.json);
        finish_json(r.json, "streams", r.ok);
        return r;
    }

private:
    struct channel_state {
        std::uint64_t expected_seq = 0;
        std::uint64_t received = 0;
        std::uint64_t gaps = 0;
        std::uint64_t duplicates = 0;
        std::uint64_t misrouted = 0;
    };

    bool is_publisher(const ws_conn& c) const override { return c.index() >= opt_.channels; }

    static std::string channel_name(std::size_t c) {
        return "/default/streams/c" + std::to_string(c);
    }

    void on_open(ws_conn& conn) override {
        send_init(conn, is_publisher(conn) ? std::string() : channel_name(conn.index()));
    }

    void on_event(ws_conn& conn, std::string_view payload, std::int64_t now) override {
        worker_counters& c = counters_[conn.owner().index()];
        ++c.delivered;
        ++c.unflushed;
        if (is_publisher(conn))
            return;
        marker mk;
        if (find_marker(payload.data(), payload.data() + payload.size(), mk) == nullptr) {
            ++c.no_marker;
            return;
        }
        channel_state& s = channels_[conn.index()];
        if (static_cast<std::size_t>(mk.a) != conn.index()) {
            ++s.misrouted;
            return;
        }
        ++s.received;
        const auto seq = static_cast<std::uint64_t>(mk.b);
        if (seq == s.expected_seq) {
            ++s.expected_seq;
        } else if (seq > s.expected_seq) {
            s.gaps += seq - s.expected_seq;
            s.expected_seq = seq + 1;
        } else {
            ++s.duplicates;
        }
        if (in_window(now)) {
            conn.owner().latency.record(now - mk.ts);
            ++c.in_window;
        }
    }

    void on_publish_ack(ws_conn& /*conn*/) override {
        acked_.fetch_add(1, std::memory_order_relaxed);
    }

    void on_read_done(ws_conn& conn) override {
        worker_counters& c = counters_[conn.owner().index()];
        if (c.unflushed == 0)
            return;
        received_total_.fetch_add(c.unflushed, std::memory_order_relaxed);
        c.unflushed = 0;
    }

    // Event n goes to channel n % M as its (n / M)-th event: every channel gets `rate` events/s,
    // evenly spaced, and the whole schedule is fixed by the start time alone.
    void tick(worker& w) {
        if (!publishing_)
            return;
        const std::int64_t now = now_ns();
        const double total_rate = opt_.rate * static_cast<double>(opt_.channels);
        const auto due = std::min<std::uint64_t>(
            total_events_, static_cast<std::uint64_t>(
                               total_rate * static_cast<double>(now - publish_start_) / 1e9));
        std::uint64_t& next = next_event_[w.index()];
        const std::size_t threads = workers_.size();
        std::uint64_t mine = 0;
        for (; next < due; ++next) {
            const std::size_t c = next % opt_.channels;
            const std::size_t p = c % opt_.publishers;
            ws_conn& conn = *publishers_[p];
            if (conn.index() % threads != w.index())
                continue;
            std::string& m = conn.scratch;
            m.clear();
            if (common_.nats) {
                // One PUB + PING per event: the PONG acknowledges it, as publish_success does.
                append_nats_pub(m, subjects_[c], now, static_cast<std::int64_t>(c),
                                static_cast<std::int64_t>(next / opt_.channels), opt_.event_bytes);
                m += "PING\r\n";
                conn.append_binary(m);
            } else {
                begin_publish(m, next, channel_name(c));
                append_event_literal(m, now, static_cast<std::int64_t>(c),
                                     static_cast<std::int64_t>(next / opt_.channels),
                                     opt_.event_bytes);
                end_publish(m, common_.api_key);
                conn.append_text(m);
            }
            ++mine;
        }
        if (mine > 0) {
            published_total_.fetch_add(mine, std::memory_order_relaxed);
            if (in_window(now))
                counters_[w.index()].published_in_window += mine;
            for (ws_conn* p : publishers_)
                if (p->index() % threads == w.index())
                    p->flush();
        }
        if (due >= total_events_)
            return;
        auto timer = std::make_shared<asio::steady_timer>(w.ioc(), 1ms);
        timer->async_wait([this, &w, timer](const boost::system::error_code& ec) {
            if (!ec)
                tick(w);
        });
    }

    streams_options opt_;
    std::vector<ws_conn*> publishers_;
    std::vector<channel_state> channels_;    // element c touched only by subscriber c's worker
    std::vector<std::string> subjects_;      // NATS: channel c's subject
    std::vector<std::uint64_t> next_event_;  // per worker
    std::atomic<bool> publishing_{false};
    std::atomic<std::uint64_t> published_total_{0};
    std::atomic<std::uint64_t> received_total_{0};
    std::atomic<std::uint64_t> acked_{0};
    std::uint64_t total_events_ = 0;
    std::int64_t publish_start_ = 0;
};

// ---- idle ---------------------------------------------------------------------------------

class idle_run final : public run_base {
public:
    idle_run(const common_options& common, const idle_options& opt) : run_base(common), opt_(opt) {
        for (auto& w : workers_)
            w->read_buffer_bytes = 1024;  // acks and ka only; 100k connections stay cheap
    }

    scenario_result run() {
        scenario_result r;
        const std::size_t k = opt_.connections;
        const std::uint64_t fd_limit = raise_fd_limit(k + 256);
        std::size_t sources = opt_.sources;
        if (sources == 0)
            sources = (k + 24999) / 25000;
        sources = std::clamp<std::size_t>(sources, 1, 250);
        const std::int64_t rss_before = opt_.server_pid > 0 ? read_rss_bytes(opt_.server_pid) : -1;
        bool up = false;
        std::int64_t rss_after = -1;
        if (fd_limit < k + 64) {
            note_failure("RLIMIT_NOFILE is " + std::to_string(fd_limit) + "; " + std::to_string(k) +
                         " connections need about " + std::to_string(k + 64));
        } else {
            start_workers();
            for (std::size_t i = 0; i < k; ++i) {
                ws_conn& c = add_conn(i);
                if (sources > 1)
                    c.set_source(
                        asio::ip::make_address_v4(static_cast<asio::ip::address_v4::uint_type>(
                            (127u << 24) | (1 + i % sources))));
            }
            for (auto& c : conns_)
                c->start();
            up = wait_for([&] { return ready_.load() == k; }, common_.connect_timeout);
            if (up) {
                std::this_thread::sleep_for(std::chrono::duration<double>(opt_.settle));
                if (opt_.server_pid > 0)
                    rss_after = read_rss_bytes(opt_.server_pid);
                // Hold them open; a server that drops idle connections fails here.
                wait_for([] { return false; }, common_.duration);
            }
        }
        stop_workers();
        std::size_t still_open = 0;
        for (const auto& c : conns_)
            still_open += c->is_open() ? 1 : 0;
        r.ok = up && failures_.load() == 0 && still_open == k &&
               (opt_.server_pid == 0 || (rss_before > 0 && rss_after > 0));
        r.json["params"] = json::object{{"connections", k},
                                        {"sources", sources},
                                        {"hold_s", num(common_.duration)},
                                        {"settle_s", num(opt_.settle)},
                                        {"server_pid", opt_.server_pid},
                                        {"threads", workers_.size()}};
        r.json["connected"] = up;
        r.json["still_open"] = still_open;
        r.json["rss_before_bytes"] = rss_before;
        r.json["rss_after_bytes"] = rss_after;
        if (rss_before > 0 && rss_after > 0 && k > 0)
            r.json["bytes_per_connection"] =
                round2(static_cast<double>(rss_after - rss_before) / static_cast<double>(k));
        else
            r.json["bytes_per_connection"] = nullptr;
        finish_json(r.json, "idle", r.ok);
        return r;
    }

private:
    void on_open(ws_conn& conn) override {
        send_init(conn, "/default/idle/c" + std::to_string(conn.index()));
    }

    idle_options opt_;
};

// ---- chat ---------------------------------------------------------------------------------

/// The text after `key` (an escaped-JSON key such as `\"type\":\"`) in `s`, or "".
std::string_view after(std::string_view s, std::string_view key) {
    const std::size_t at = s.find(key);
    return at == std::string_view::npos ? std::string_view() : s.substr(at + key.size());
}

class chat_run final : public run_base {
public:
    chat_run(const common_options& common, const chat_options& opt) : run_base(common), opt_(opt) {
        slots_.resize(opt_.streams);
    }

    scenario_result run() {
        scenario_result r;
        start_workers();
        for (std::size_t i = 0; i < opt_.streams; ++i)
            add_conn(i);
        for (auto& c : conns_)
            c->start();
        const bool up =
            wait_for([&] { return ready_.load() == conns_.size(); }, common_.connect_timeout);
        if (up) {
            const std::int64_t t0 = now_ns();
            window_start_ =
                t0 + static_cast<std::int64_t>(opt_.ramp_ms * 1e6) + seconds_ns(common_.warmup);
            window_end_ = window_start_ + seconds_ns(common_.duration);
            starting_ = true;
            for (std::size_t i = 0; i < conns_.size(); ++i) {
                ws_conn* conn = conns_[i].get();
                const auto at = std::chrono::nanoseconds(
                    static_cast<std::int64_t>(opt_.ramp_ms * 1e6 * static_cast<double>(i) /
                                              static_cast<double>(conns_.size())));
                auto timer = std::make_shared<asio::steady_timer>(conn->owner().ioc(), at);
                timer->async_wait([this, conn, timer](const boost::system::error_code& ec) {
                    if (!ec)
                        start_stream(*conn);
                });
            }
            sleep_until_ns(window_start_);
            mark_window_start();
            sleep_until_ns(window_end_);
            mark_window_end();
            starting_ = false;
            wait_for([&] { return finished_.load() == started_.load(); }, common_.drain_timeout);
        }
        stop_workers();

        const latency_histogram chunk = merged_latency();
        const latency_histogram first = merged_secondary();
        std::uint64_t deltas = 0;
        std::uint64_t deltas_in_window = 0;
        std::uint64_t chunks = 0;
        std::uint64_t lost = 0;
        std::uint64_t seq_gaps = 0;
        std::uint64_t completed = 0;
        for (const auto& s : slots_) {
            deltas += s.deltas;
            deltas_in_window += s.deltas_in_window;
            chunks += s.chunks;
            lost += s.lost_chunks;
            seq_gaps += s.seq_gaps;
            completed += s.completed;
        }
        const std::uint64_t unfinished = started_.load() - finished_.load();
        r.ok = up && failures_.load() == 0 && lost == 0 && seq_gaps == 0 && unfinished == 0 &&
               completed > 0;
        r.json["params"] = json::object{{"streams", opt_.streams},
                                        {"ramp_ms", num(opt_.ramp_ms)},
                                        {"namespace", opt_.chat_namespace},
                                        {"duration_s", num(common_.duration)},
                                        {"threads", workers_.size()}};
        r.json["connected"] = up;
        r.json["streams_started"] = started_.load();
        r.json["streams_completed"] = completed;
        r.json["streams_unfinished"] = unfinished;
        r.json["delta_events"] = deltas;
        r.json["delta_events_per_s"] =
            round2(static_cast<double>(deltas_in_window) / common_.duration);
        r.json["provider_chunks"] = chunks;
        r.json["chunk_latency_measured"] = chunk.count() > 0;
        r.json["chunk_latency_us"] = latency_json(chunk);
        r.json["time_to_first_delta_us"] = latency_json(first);
        r.json["lost_chunks"] = lost;
        r.json["seq_gaps"] = seq_gaps;
        add_loadgen_json(r.json);
        finish_json(r.json, "chat", r.ok);
        return r;
    }

private:
    // One user, one channel, one stream at a time; touched only by the slot's worker.
    struct slot {
        std::int64_t posted_ns = 0;
        bool active = false;
        bool got_delta = false;
        std::int64_t next_seq = 0;
        std::int64_t next_chunk = 0;
        std::int64_t chunk_total = -1;
        std::uint64_t deltas = 0;
        std::uint64_t deltas_in_window = 0;
        std::uint64_t chunks = 0;
        std::uint64_t lost_chunks = 0;
        std::uint64_t seq_gaps = 0;
        std::uint64_t completed = 0;
    };

    std::string user(std::size_t i) const { return opt_.user_prefix + std::to_string(i); }

    void on_open(ws_conn& conn) override {
        send_init(conn, "/" + opt_.chat_namespace + "/" + user(conn.index()));
    }

    void start_stream(ws_conn& conn) {
        if (!starting_ || !conn.is_open())
            return;
        slot& s = slots_[conn.index()];
        s.active = true;
        s.got_delta = false;
        s.next_seq = 0;
        s.next_chunk = 0;
        s.chunk_total = -1;
        started_.fetch_add(1);
        json::object body{{"userId", user(conn.index())}, {"prompt", opt_.prompt}};
        const std::string text = json::serialize(body);
        std::string req =
            "POST /chat HTTP/1.1\r\nHost: " + target_.host_header +
            "\r\nContent-Type: application/json\r\nx-api-key: " + common_.api_key +
            "\r\nConnection: close\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" +
            text;
        s.posted_ns = now_ns();
        http_request(conn.owner().ioc(), target_.server, std::move(req),
                     [this, i = conn.index()](unsigned status, std::string answer) {
                         if (status != 200) {
                             note_failure("POST /chat for " + user(i) + ": HTTP " +
                                          std::to_string(status) + " " + answer);
                             end_stream(*conns_[i], false);
                         }
                     });
    }

    void end_stream(ws_conn& conn, bool completed) {
        slot& s = slots_[conn.index()];
        if (!s.active)
            return;
        s.active = false;
        finished_.fetch_add(1);
        if (!completed)
            return;  // a failed stream is not retried: a failing server would be hammered
        ++s.completed;
        start_stream(conn);
    }

    void on_text(ws_conn& conn, std::string_view payload, std::int64_t now) override {
        const kind k = classify(payload);
        if (k == kind::subscribe_success) {
            ready_.fetch_add(1);
            return;
        }
        if (k == kind::failure)
            return on_failure_message(conn, payload);
        if (k != kind::data)
            return;
        slot& s = slots_[conn.index()];
        const std::string_view type = after(payload, R"(\"type\":\")");
        std::int64_t seq = -1;
        const std::string_view seq_text = after(payload, R"(\"seq\":)");
        std::from_chars(seq_text.data(), seq_text.data() + seq_text.size(), seq);
        if (type.rfind("start", 0) == 0) {
            if (seq != 0)
                ++s.seq_gaps;
            s.next_seq = seq + 1;
            return;
        }
        if (seq != s.next_seq)
            ++s.seq_gaps;
        s.next_seq = seq + 1;
        if (type.rfind("delta", 0) == 0) {
            const bool measured = in_window(now);
            ++s.deltas;
            if (measured)
                ++s.deltas_in_window;
            if (!s.got_delta) {
                s.got_delta = true;
                if (measured)
                    conn.owner().secondary.record(now - s.posted_ns);
            }
            marker m;
            const char* p = payload.data();
            const char* end = payload.data() + payload.size();
            while ((p = find_marker(p, end, m)) != nullptr) {
                ++s.chunks;
                if (measured)
                    conn.owner().latency.record(now - m.ts);
                if (m.a != s.next_chunk)
                    s.lost_chunks +=
                        static_cast<std::uint64_t>(std::max<std::int64_t>(0, m.a - s.next_chunk));
                s.next_chunk = m.a + 1;
                s.chunk_total = m.b;
            }
            return;
        }
        if (type.rfind("end", 0) == 0) {
            if (s.chunk_total >= 0 && s.next_chunk < s.chunk_total)
                s.lost_chunks += static_cast<std::uint64_t>(s.chunk_total - s.next_chunk);
            return end_stream(conn, true);
        }
        if (type.rfind("error", 0) == 0) {
            note_failure("stream for " + user(conn.index()) + " ended with " +
                         std::string(payload));
            return end_stream(conn, false);
        }
    }

    chat_options opt_;
    std::vector<slot> slots_;
    std::atomic<bool> starting_{false};
    std::atomic<std::uint64_t> started_{0};
    std::atomic<std::uint64_t> finished_{0};
};

}  // namespace

scenario_result run_fanout(const common_options& common, const fanout_options& opt) {
    return fanout_run(common, opt).run();
}

scenario_result run_streams(const common_options& common, const streams_options& opt) {
    return streams_run(common, opt).run();
}

scenario_result run_idle(const common_options& common, const idle_options& opt) {
    return idle_run(common, opt).run();
}

scenario_result run_chat(const common_options& common, const chat_options& opt) {
    return chat_run(common, opt).run();
}

}  // namespace eventcast::bench

// JWKS cache over the outbound transport. Everything that waits (the URL fetch, the periodic and
// retry timers, the callbacks of a rate-limited refresh) is queued on the transport's one thread
// instead of a thread of our own. What is queued holds the state by weak_ptr: once the source is
// destroyed it finds nothing and does nothing. Callbacks run under `running`, which the
// destructor takes after setting `stopping`, so none runs once the destructor has returned.
#include "auth/jwks_source.hpp"

#include "aws/transport.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <exception>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <vector>

namespace eventcast::auth {

namespace {

using clock = std::chrono::steady_clock;
using callbacks = std::vector<std::function<void()>>;

bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "[::1]")
        return true;
    in_addr v4{};
    // inet_pton takes only a plain dotted quad, so "127.0.0.1.example.com" is not loopback.
    return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// Checks a URL location with the transport's parser, the one that will fetch it. On success
// says whether it is a loopback http:// URL.
boost::system::result<bool, std::string> check_url(const std::string& location) {
    const auto bad = [&](std::string_view why) {
        return "jwks URL '" + location + "': " + std::string(why);
    };
    const auto url = aws::parse_url(location);
    if (!url)
        return bad(url.error());
    if (url->host.empty())
        return bad("has no host");
    if (url->scheme == "https")
        return false;
    if (url->scheme != "http")
        return bad("scheme must be https");
    if (!is_loopback_host(url->host))
        return bad(
            "http:// is allowed only for loopback hosts (127.0.0.0/8, [::1], localhost); "
            "use https://");
    return true;
}

boost::system::result<jwks, std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return "jwks file '" + path + "' cannot be opened";
    std::string text;
    text.resize(jwks::max_json_bytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad())
        return "jwks file '" + path + "' cannot be read";
    text.resize(static_cast<std::size_t>(in.gcount()));
    auto set = parse_jwks(text);
    if (!set)
        return "jwks file '" + path + "': " + set.error();
    return set;
}

std::chrono::milliseconds until(clock::time_point when) {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::ceil<std::chrono::milliseconds>(when - clock::now()));
}

}  // namespace

struct jwks_source::state : std::enable_shared_from_this<state> {
    state(options o, bool url, bool loopback, aws::transport* t)
        : opts(std::move(o)), is_url(url), loopback_http(loopback), outbound(t) {}

    const options opts;
    const bool is_url;
    const bool loopback_http;
    aws::transport* const outbound;  // null: a file source with nothing in the background

    mutable std::mutex mutex;
    std::shared_ptr<const jwks> current;
    callbacks after_fetch;      // run when the queued or in-flight fetch finishes
    bool fetch_wanted = false;  // a fetch is queued on the transport
    bool fetching = false;      // a fetch is in flight
    bool stopping = false;      // the source is being destroyed
    std::optional<aws::transport::transfer_id> transfer;  // the URL fetch in flight
    std::optional<clock::time_point> last_fetch_started;
    std::uint64_t timer_generation = 0;  // a timer armed under an older one is stale
    std::chrono::seconds retry_delay{0};
    stats st;

    std::mutex running;  // held while callbacks run; see the top of the file

    // Runs `fn` on the transport's thread, or here without a transport.
    void later(std::function<void(state&)> fn) {
        if (!outbound)
            return fn(*this);
        outbound->post([weak = weak_from_this(), fn = std::move(fn)] {
            if (auto self = weak.lock())
                fn(*self);
        });
    }

    void refresh(std::function<void()> done) {
        std::unique_lock lock(mutex);
        if (stopping)
            return;
        if (fetching || fetch_wanted) {
            if (done)
                after_fetch.push_back(std::move(done));
            return;
        }
        if (last_fetch_started && clock::now() - *last_fetch_started < opts.min_refresh_interval) {
            ++st.rate_limited;
            lock.unlock();
            if (done)
                later([done = std::move(done)](state& s) mutable {
                    callbacks one;
                    one.push_back(std::move(done));
                    s.run_callbacks(one);
                });
            return;
        }
        fetch_wanted = true;
        if (done)
            after_fetch.push_back(std::move(done));
        lock.unlock();
        later([](state& s) { s.start_fetch(); });
    }

    // On the transport's thread (or the caller's, without a transport).
    void start_fetch() {
        std::unique_lock lock(mutex);
        if (stopping || !fetch_wanted)
            return;
        fetch_wanted = false;
        fetching = true;
        const auto started = clock::now();
        if (!is_url) {
            lock.unlock();
            return finish(read_file(opts.location), started);
        }
        // Lock order: ours, then the transport's (start() only queues; nothing runs here).
        transfer =
            outbound->start(fetch_call(), std::make_shared<fetch>(weak_from_this(), started));
    }

    aws::http_call fetch_call() const {
        aws::http_call call;
        call.method = "GET";
        call.url = opts.location;
        call.headers = {"User-Agent: eventcast-jwks"};
        call.protocols = loopback_http ? "http" : "https";
        call.ca_file = opts.ca_file;
        call.no_proxy = loopback_http;  // never send a loopback fetch to a proxy
        // A whole-transfer timeout is right here (unlike model streams): a key set is a few KiB.
        call.connect_timeout = opts.fetch_timeout;
        call.total_timeout = opts.fetch_timeout;
        call.idle_timeout = std::chrono::milliseconds(0);  // the total timeout covers stalls
        call.accept_encoding = "";
        call.max_body_bytes = jwks::max_json_bytes;
        return call;
    }

    // One URL fetch's answer, on the transport's thread.
    class fetch final : public aws::http_handler {
    public:
        fetch(std::weak_ptr<state> s, clock::time_point started)
            : state_(std::move(s)), started_(started) {}
        bool on_body(long, std::string_view bytes) override {
            body_.append(bytes);  // bounded by http_call::max_body_bytes
            return true;
        }
        void on_complete(const aws::transfer_result& r) override {
            if (auto s = state_.lock())
                s->finish(s->result_of(r, body_), started_, r.cancelled);
        }

    private:
        std::weak_ptr<state> state_;
        clock::time_point started_;
        std::string body_;
    };

    boost::system::result<jwks, std::string> result_of(const aws::transfer_result& r,
                                                       std::string_view body) const {
        const auto where = [&](const std::string& what) {
            return "jwks URL '" + opts.location + "': " + what;
        };
        if (r.too_large)
            return where("answer is over " + std::to_string(jwks::max_json_bytes) + " bytes");
        if (r.cancelled)
            return where("the fetch was cancelled");
        if (!r.error.empty())
            return where(r.detail.empty() ? r.error : r.detail);
        if (r.status != 200)
            return where("HTTP status " + std::to_string(r.status) + "; expected 200");
        auto set = parse_jwks(body);
        if (!set)
            return where(set.error());
        return set;
    }

    // Arms the next refresh `delay` from now; an older timer still queued becomes stale. Called
    // with `mutex` held.
    void arm_timer(std::chrono::milliseconds delay) {
        if (!outbound)
            return;
        const auto generation = ++timer_generation;
        outbound->schedule(delay, [weak = weak_from_this(), generation] {
            if (auto self = weak.lock())
                self->on_timer(generation);
        });
    }

    void on_timer(std::uint64_t generation) {
        {
            std::lock_guard lock(mutex);
            if (stopping || generation != timer_generation || fetching || fetch_wanted)
                return;  // stale, or a fetch is coming anyway (its end arms the next timer)
            fetch_wanted = true;
        }
        start_fetch();
    }

    // `cancelled`: the transport is stopping (our own cancel comes only with `stopping` set).
    void finish(boost::system::result<jwks, std::string> result, clock::time_point started,
                bool cancelled = false) {
        std::unique_lock lock(mutex);
        last_fetch_started = started;
        ++st.fetches;
        fetching = false;
        transfer.reset();
        auto list = std::move(after_fetch);
        after_fetch.clear();
        if (result) {
            const auto usable = result->size();
            const auto skipped = result->skipped().size();
            current = std::make_shared<const jwks>(std::move(*result));
            st.last_error.clear();
            retry_delay = std::chrono::seconds(0);
            arm_timer(until(started + opts.refresh_interval));
            lock.unlock();
            log::info("auth jwks loaded from {}: {} keys, {} skipped", opts.location, usable,
                      skipped);
            return run_callbacks(list);
        }
        ++st.failures;
        st.last_error = result.error();
        if (stopping)
            return;  // the source is being destroyed; that is not the provider's failure
        // Retry sooner than the periodic refresh, backing off so a provider outage costs little.
        const auto shortest = std::max(opts.min_refresh_interval, std::chrono::seconds(1));
        retry_delay =
            std::clamp(retry_delay * 2, shortest, std::max(shortest, opts.refresh_interval));
        arm_timer(until(started + retry_delay));
        const auto kept = current ? current->size() : 0;
        const auto retry_s = retry_delay.count();
        lock.unlock();
        if (cancelled)
            log::debug("auth jwks fetch from {} cancelled: the outbound transport is stopping",
                       opts.location);
        else
            log::warn(
                "auth jwks fetch from {} failed: {}; keeping the previous {} keys, retry in {} s",
                opts.location, result.error(), kept, retry_s);
        run_callbacks(list);
    }

    void run_callbacks(callbacks& list) {
        if (list.empty())
            return;
        std::lock_guard gate(running);
        {
            std::lock_guard lock(mutex);
            if (stopping)
                return;  // dropped unrun, as the destructor promises
        }
        for (auto& done : list) {
            try {
                done();
            } catch (const std::exception& e) {
                log::error("auth jwks refresh callback threw: {}", e.what());
            } catch (...) {
                log::error("auth jwks refresh callback threw a non-exception");
            }
        }
    }
};

boost::system::result<std::unique_ptr<jwks_source>, std::string> jwks_source::start(
    options opts, aws::transport* outbound) {
    if (opts.location.empty())
        return std::string("jwks location is empty; give a file path or an https:// URL");
    if (opts.min_refresh_interval.count() < 0 || opts.refresh_interval.count() < 1 ||
        opts.fetch_timeout.count() < 1)
        return std::string(
            "jwks intervals: min_refresh_interval must be >= 0 s, refresh_interval and "
            "fetch_timeout >= 1 s");
    const bool is_url = opts.location.find("://") != std::string::npos;
    bool loopback_http = false;
    if (is_url) {
        auto checked = check_url(opts.location);
        if (!checked)
            return checked.error();
        if (!outbound)
            return "jwks URL '" + opts.location + "': needs the outbound HTTP transport";
        loopback_http = *checked;
    }
    std::optional<boost::system::result<jwks, std::string>> first;
    const auto started = clock::now();
    if (!is_url) {
        // Read the file now so a bad path or file fails startup, not the first token.
        first = read_file(opts.location);
        if (!*first)
            return first->error();
    }
    auto s = std::make_shared<state>(std::move(opts), is_url, loopback_http, outbound);
    if (first) {
        s->finish(std::move(*first), started);
    } else {
        s->fetch_wanted = true;
        s->later([](state& st) { st.start_fetch(); });
    }
    return std::unique_ptr<jwks_source>(new jwks_source(std::move(s)));
}

jwks_source::jwks_source(std::shared_ptr<state> s) : state_(std::move(s)) {}

jwks_source::~jwks_source() {
    std::optional<aws::transport::transfer_id> in_flight;
    callbacks dropped;
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
        in_flight = state_->transfer;
        dropped = std::move(state_->after_fetch);
    }
    if (in_flight)
        state_->outbound->cancel(*in_flight);  // its completion finds `stopping` (or nothing)
    std::lock_guard gate(state_->running);     // a callback running right now has returned
}

std::shared_ptr<const jwks> jwks_source::current() const {
    std::lock_guard lock(state_->mutex);
    return state_->current;
}

jwks_source::stats jwks_source::statistics() const {
    std::lock_guard lock(state_->mutex);
    return state_->st;
}

const std::string& jwks_source::location() const noexcept {
    return state_->opts.location;
}

void jwks_source::refresh(std::function<void()> done) {
    state_->refresh(std::move(done));
}

}  // namespace eventcast::auth

// JWKS cache with its own worker thread. Fetches block (libcurl easy, file reads), which is why
// they live on a thread of their own instead of the server's io_context threads.
#include "auth/jwks_source.hpp"

#include "aws/curl_handles.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <exception>
#include <fstream>
#include <iterator>
#include <netinet/in.h>

namespace eventcast::auth {

namespace {

using aws::curl_easy_ptr;

struct transfer {
    std::string body;
    bool too_large = false;
    const std::atomic<bool>* abort = nullptr;
};

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) noexcept {
    auto* t = static_cast<transfer*>(user);
    const std::size_t n = size * count;
    if (t->body.size() + n > jwks::max_json_bytes) {
        t->too_large = true;
        return 0;  // stops the transfer with CURLE_WRITE_ERROR
    }
    try {
        t->body.append(data, n);
    } catch (...) {
        return 0;
    }
    return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
    const auto* t = static_cast<const transfer*>(user);
    return t->abort->load() ? 1 : 0;  // non-zero aborts: the source is being destroyed
}

struct curl_url_deleter {
    void operator()(CURLU* handle) const noexcept { curl_url_cleanup(handle); }
};
struct curl_free_deleter {
    void operator()(char* p) const noexcept { curl_free(p); }
};

std::string url_part(CURLU* url, CURLUPart part) {
    char* raw = nullptr;
    if (curl_url_get(url, part, &raw, 0) != CURLUE_OK || raw == nullptr)
        return {};
    std::unique_ptr<char, curl_free_deleter> owned(raw);
    return std::string(raw);
}

bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "[::1]")
        return true;
    in_addr v4{};
    // inet_pton takes only a plain dotted quad, so "127.0.0.1.example.com" is not loopback.
    return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// Checks a URL location with libcurl's own parser, the one that will fetch it (Boost.URL 1.81
// reads "http://127.0.0.1.example.com/" as host 127.0.0.1). On success says whether it is a
// loopback http:// URL.
boost::system::result<bool, std::string> check_url(const std::string& location) {
    const auto bad = [&](std::string_view why) {
        return "jwks URL '" + location + "': " + std::string(why);
    };
    std::unique_ptr<CURLU, curl_url_deleter> url(curl_url());
    if (!url)
        return bad("out of memory");
    const auto rc =
        curl_url_set(url.get(), CURLUPART_URL, location.c_str(), CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK)
        return bad(std::string("not a valid URL (") + curl_url_strerror(rc) + ")");
    const auto scheme = url_part(url.get(), CURLUPART_SCHEME);
    const auto host = url_part(url.get(), CURLUPART_HOST);
    if (host.empty())
        return bad("has no host");
    if (scheme == "https")
        return false;
    if (scheme != "http")
        return bad("scheme must be https");
    if (!is_loopback_host(host))
        return bad(
            "http:// is allowed only for loopback hosts (127.0.0.0/8, [::1], localhost); "
            "use https://");
    return true;
}

}  // namespace

boost::system::result<std::unique_ptr<jwks_source>, std::string> jwks_source::start(options opts) {
    if (opts.location.empty())
        return std::string("jwks location is empty; give a file path or an https:// URL");
    if (opts.min_refresh_interval.count() < 0 || opts.refresh_interval.count() < 1 ||
        opts.fetch_timeout.count() < 1)
        return std::string(
            "jwks intervals: min_refresh_interval must be >= 0 s, refresh_interval and "
            "fetch_timeout >= 1 s");
    const bool is_url = opts.location.find("://") != std::string::npos;
    if (is_url) {
        auto checked = check_url(opts.location);
        if (!checked)
            return checked.error();
    }
    std::unique_ptr<jwks_source> source(new jwks_source(std::move(opts), is_url));
    if (!is_url) {
        // Read the file now so a bad path or file fails startup, not the first token.
        const auto started = clock::now();
        auto first = source->fetch_file();
        if (!first)
            return first.error();
        source->finish_fetch(std::move(first), started);
    } else {
        source->fetch_wanted_ = true;
    }
    source->worker_ = std::thread([s = source.get()] { s->run(); });
    return source;
}

jwks_source::jwks_source(options opts, bool is_url) : opts_(std::move(opts)), is_url_(is_url) {
    next_periodic_ = clock::now() + opts_.refresh_interval;
}

jwks_source::~jwks_source() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    abort_ = true;
    wake_.notify_all();
    if (worker_.joinable())
        worker_.join();
}

std::shared_ptr<const jwks> jwks_source::current() const {
    std::lock_guard lock(mutex_);
    return current_;
}

jwks_source::stats jwks_source::statistics() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void jwks_source::refresh(std::function<void()> done) {
    std::lock_guard lock(mutex_);
    if (stopping_)
        return;
    if (fetching_ || fetch_wanted_) {
        if (done)
            after_fetch_.push_back(std::move(done));
        return;
    }
    if (last_fetch_started_ && clock::now() - *last_fetch_started_ < opts_.min_refresh_interval) {
        ++stats_.rate_limited;
        if (done) {
            rate_limited_.push_back(std::move(done));
            wake_.notify_one();
        }
        return;
    }
    fetch_wanted_ = true;
    if (done)
        after_fetch_.push_back(std::move(done));
    wake_.notify_one();
}

void jwks_source::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_until(lock, next_periodic_,
                         [&] { return stopping_ || fetch_wanted_ || !rate_limited_.empty(); });
        if (stopping_)
            break;
        if (!rate_limited_.empty()) {
            auto list = std::move(rate_limited_);
            rate_limited_.clear();
            lock.unlock();
            run_callbacks(list);
            lock.lock();
            continue;
        }
        const auto started = clock::now();
        if (!fetch_wanted_ && started < next_periodic_)
            continue;  // spurious wake-up
        fetch_wanted_ = false;
        fetching_ = true;
        lock.unlock();
        auto result = fetch();
        finish_fetch(std::move(result), started);
        lock.lock();
        fetching_ = false;
        auto list = std::move(after_fetch_);
        after_fetch_.clear();
        if (stopping_)
            break;
        lock.unlock();
        run_callbacks(list);
        lock.lock();
    }
}

void jwks_source::finish_fetch(boost::system::result<jwks, std::string> result,
                               clock::time_point started) {
    std::unique_lock lock(mutex_);
    last_fetch_started_ = started;
    ++stats_.fetches;
    if (result) {
        const auto usable = result->size();
        const auto skipped = result->skipped().size();
        current_ = std::make_shared<const jwks>(std::move(*result));
        stats_.last_error.clear();
        retry_delay_ = std::chrono::seconds(0);
        next_periodic_ = started + opts_.refresh_interval;
        lock.unlock();
        log::info("auth jwks loaded from {}: {} keys, {} skipped", opts_.location, usable, skipped);
        return;
    }
    ++stats_.failures;
    stats_.last_error = result.error();
    if (abort_)
        return;  // the source is being destroyed; that is not the provider's failure
    // Retry sooner than the periodic refresh, backing off so a provider outage costs little.
    const auto shortest = std::max(opts_.min_refresh_interval, std::chrono::seconds(1));
    retry_delay_ =
        std::clamp(retry_delay_ * 2, shortest, std::max(shortest, opts_.refresh_interval));
    next_periodic_ = started + retry_delay_;
    const auto kept = current_ ? current_->size() : 0;
    lock.unlock();
    log::warn("auth jwks fetch from {} failed: {}; keeping the previous {} keys, retry in {} s",
              opts_.location, result.error(), kept, retry_delay_.count());
}

void jwks_source::run_callbacks(callbacks& list) {
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

boost::system::result<jwks, std::string> jwks_source::fetch() const {
    return is_url_ ? fetch_url() : fetch_file();
}

boost::system::result<jwks, std::string> jwks_source::fetch_file() const {
    std::ifstream in(opts_.location, std::ios::binary);
    if (!in)
        return "jwks file '" + opts_.location + "' cannot be opened";
    std::string text;
    text.resize(jwks::max_json_bytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad())
        return "jwks file '" + opts_.location + "' cannot be read";
    text.resize(static_cast<std::size_t>(in.gcount()));
    auto set = parse_jwks(text);
    if (!set)
        return "jwks file '" + opts_.location + "': " + set.error();
    return set;
}

boost::system::result<jwks, std::string> jwks_source::fetch_url() const {
    const auto where = [&](const std::string& what) {
        return "jwks URL '" + opts_.location + "': " + what;
    };
    const auto checked = check_url(opts_.location);
    const bool loopback_http = checked && *checked;
    curl_easy_ptr easy(curl_easy_init());
    if (!easy)
        return where("curl_easy_init failed");
    transfer t;
    t.abort = &abort_;
    char error[CURL_ERROR_SIZE] = {};
    CURL* e = easy.get();
    curl_easy_setopt(e, CURLOPT_URL, opts_.location.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, loopback_http ? "http" : "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
    // A whole-transfer timeout is right here (unlike LLM streams): a key set is a few KiB.
    const auto timeout_ms = static_cast<long>(opts_.fetch_timeout.count() * 1000);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "eventcast-jwks");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
    if (loopback_http)
        curl_easy_setopt(e, CURLOPT_PROXY, "");  // never send a loopback fetch to a proxy
    if (!opts_.ca_file.empty())
        curl_easy_setopt(e, CURLOPT_CAINFO, opts_.ca_file.c_str());
    const CURLcode rc = curl_easy_perform(e);
    if (t.too_large)
        return where("answer is over " + std::to_string(jwks::max_json_bytes) + " bytes");
    if (rc != CURLE_OK)
        return where(error[0] != '\0' ? std::string(error) : curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        return where("HTTP status " + std::to_string(status) + "; expected 200");
    auto set = parse_jwks(t.body);
    if (!set)
        return where(set.error());
    return set;
}

}  // namespace eventcast::auth

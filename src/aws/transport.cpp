// libcurl multi on one thread, driven by curl_multi_socket_action over epoll: a wake-up handles
// only the sockets that are ready, not every transfer (curl_multi_perform walked all of them on
// every wake-up, so chunk latency grew with the number of streams; docs/BENCHMARKS.md).
// Commands from other threads (start, cancel, timers) go through a mutex-protected queue and an
// eventfd; everything touching curl handles runs on the llm thread. C callbacks are noexcept and
// never let an exception reach libcurl.
#include "aws/transport.hpp"

#include "aws/curl_handles.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <queue>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace eventcast::aws {

namespace {

struct transfer {
    transport::transfer_id id = 0;
    curl_easy_ptr easy;
    curl_slist_ptr headers;
    std::string body;
    std::shared_ptr<http_handler> handler;
    long status = 0;
    bool aborted_by_handler = false;
    bool in_final_headers = false;
    // Stall detection (http_call::idle_timeout): the last time a byte came from the provider.
    std::chrono::milliseconds idle_timeout{0};
    std::chrono::steady_clock::time_point last_byte;
    std::size_t max_body_bytes = 0;  // 0: no bound
    std::size_t body_bytes = 0;
    bool too_large = false;
    bool has_total_timeout = false;
    std::array<char, CURL_ERROR_SIZE> error{};  // CURLOPT_ERRORBUFFER
};

size_t on_write(char* data, size_t size, size_t count, void* user) noexcept {
    auto* t = static_cast<transfer*>(user);
    const size_t n = size * count;
    t->last_byte = std::chrono::steady_clock::now();
    if (t->max_body_bytes != 0 && t->body_bytes + n > t->max_body_bytes) {
        t->too_large = true;
        return 0;  // CURLE_WRITE_ERROR
    }
    t->body_bytes += n;
    try {
        if (t->status == 0)
            curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &t->status);
        if (!t->handler->on_body(t->status, std::string_view(data, n))) {
            t->aborted_by_handler = true;
            return 0;  // CURLE_WRITE_ERROR
        }
        return n;
    } catch (...) {
        t->aborted_by_handler = true;
        return 0;
    }
}

size_t on_header(char* data, size_t size, size_t count, void* user) noexcept {
    auto* t = static_cast<transfer*>(user);
    const size_t n = size * count;
    t->last_byte = std::chrono::steady_clock::now();
    try {
        std::string_view line(data, n);
        if (line.substr(0, 5) == "HTTP/") {
            // A new response starts (after 100 Continue, a redirect...): only the last counts.
            t->in_final_headers = true;
            return n;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos)
            return n;
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.remove_prefix(1);
        while (!value.empty() &&
               (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
            value.remove_suffix(1);
        t->handler->on_header(line.substr(0, colon), value);
    } catch (...) {
    }
    return n;
}

}  // namespace

struct transport::impl {
    CURLM* multi = nullptr;
    int epoll_fd = -1;
    int wake_fd = -1;  // eventfd: commands queued or stopping
    std::thread thread;
    mutable std::mutex mutex;
    std::vector<std::function<void()>> commands;  // guarded by mutex
    bool stopping = false;                        // guarded by mutex
    std::atomic<transfer_id> next_id{0};
    std::atomic<std::size_t> active{0};

    // llm thread only:
    std::unordered_map<transfer_id, std::unique_ptr<transfer>> transfers;
    std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers;
    // libcurl's own timeout (CURLMOPT_TIMERFUNCTION); max(): none.
    std::chrono::steady_clock::time_point curl_deadline =
        std::chrono::steady_clock::time_point::max();
    // Idle transfers are looked for at most this often, not on every wake-up (a scan is O(n)).
    std::chrono::steady_clock::time_point next_idle_scan{};

    impl() {
        multi = curl_multi_init();
        epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!multi || epoll_fd < 0 || wake_fd < 0)
            throw std::runtime_error("transport: curl_multi_init, epoll or eventfd failed");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_fd;
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
        curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &impl::on_socket);
        curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
        curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &impl::on_timer);
        curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
        thread = std::thread([this] { loop(); });
    }

    ~impl() {
        stop();
        curl_multi_cleanup(multi);
        close(wake_fd);
        close(epoll_fd);
    }

    void stop() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake();
        if (thread.joinable())
            thread.join();
    }

    void wake() const {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = write(wake_fd, &one, sizeof one);
    }

    void submit(std::function<void()> fn) {
        {
            std::lock_guard lock(mutex);
            commands.push_back(std::move(fn));
        }
        wake();
    }

    // CURLMOPT_SOCKETFUNCTION: keep epoll's interest in sync with what curl waits for.
    static int on_socket(CURL*, curl_socket_t fd, int what, void* user, void*) noexcept {
        auto* self = static_cast<impl*>(user);
        if (what == CURL_POLL_REMOVE) {
            epoll_ctl(self->epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
            return 0;
        }
        epoll_event ev{};
        ev.data.fd = fd;
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
            ev.events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
            ev.events |= EPOLLOUT;
        if (epoll_ctl(self->epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0)
            epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
        return 0;
    }

    // CURLMOPT_TIMERFUNCTION: -1 removes the timer; 0 means "call socket_action now".
    static int on_timer(CURLM*, long timeout_ms, void* user) noexcept {
        auto* self = static_cast<impl*>(user);
        self->curl_deadline = timeout_ms < 0 ? std::chrono::steady_clock::time_point::max()
                                             : std::chrono::steady_clock::now() +
                                                   std::chrono::milliseconds(timeout_ms);
        return 0;
    }

    void socket_action(curl_socket_t fd, int events) {
        int running = 0;
        curl_multi_socket_action(multi, fd, events, &running);
    }

    void add(transfer_id id, http_call call, std::shared_ptr<http_handler> handler) {
        auto t = std::make_unique<transfer>();
        t->id = id;
        t->handler = std::move(handler);
        t->easy.reset(curl_easy_init());
        t->body = std::move(call.body);
        CURL* e = t->easy.get();
        if (!e) {
            transfer_result r;
            r.error = "curl_easy_init failed";
            t->handler->on_complete(r);
            return;
        }
        curl_slist* list = nullptr;
        for (const auto& h : call.headers)
            list = curl_slist_append(list, h.c_str());
        // libcurl 7.88 adds Expect: 100-continue above 1 MiB; one round trip saved.
        list = curl_slist_append(list, "Expect:");
        t->headers.reset(list);
        curl_easy_setopt(e, CURLOPT_URL, call.url.c_str());
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, call.method.c_str());
        if (call.method == "POST" || !t->body.empty()) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(t->body.size()));
        }
        if (call.method == "GET")
            curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers.get());
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
        curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         static_cast<long>(call.connect_timeout.count()));
        // Stall detection is ours (expire_idle), not CURLOPT_LOW_SPEED_*: curl averages the
        // speed over a window of about 5 s and counts whole seconds, so a 1.5 s idle timeout
        // fired only about 7 s after the last byte.
        t->idle_timeout = call.idle_timeout;
        t->last_byte = std::chrono::steady_clock::now();
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, call.protocols.c_str());
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error.data());
        t->max_body_bytes = call.max_body_bytes;
        if (call.total_timeout.count() > 0) {
            t->has_total_timeout = true;
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(call.total_timeout.count()));
        }
        if (!call.ca_file.empty())
            curl_easy_setopt(e, CURLOPT_CAINFO, call.ca_file.c_str());
        if (call.no_proxy)
            curl_easy_setopt(e, CURLOPT_PROXY, "");
        if (call.accept_encoding)
            curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, call.accept_encoding->c_str());
        curl_multi_add_handle(multi, e);
        transfers.emplace(id, std::move(t));
        active.fetch_add(1, std::memory_order_relaxed);
    }

    void finish(transfer_id id, const transfer_result& r) {
        auto it = transfers.find(id);
        if (it == transfers.end())
            return;
        auto t = std::move(it->second);
        transfers.erase(it);
        curl_multi_remove_handle(multi, t->easy.get());
        active.fetch_sub(1, std::memory_order_relaxed);
        try {
            t->handler->on_complete(r);
        } catch (const std::exception& e) {
            log::error("llm handler threw: {}", e.what());
        }
    }

    // Ends, as timed out, every transfer that got no byte for its idle_timeout; returns the
    // earliest idle deadline of those still running (time_point::max() if none).
    std::chrono::steady_clock::time_point expire_idle() {
        const auto now = std::chrono::steady_clock::now();
        auto next = std::chrono::steady_clock::time_point::max();
        std::vector<transfer_id> idle;
        for (auto& [id, t] : transfers) {
            if (t->idle_timeout.count() <= 0)
                continue;
            const auto deadline = t->last_byte + t->idle_timeout;
            if (deadline <= now)
                idle.push_back(id);
            else
                next = std::min(next, deadline);
        }
        for (auto id : idle) {
            transfer_result r;
            r.timed_out = true;
            r.status = transfers.at(id)->status;
            r.error = "timed out (no data from the provider for " +
                      std::to_string(transfers.at(id)->idle_timeout.count()) + " ms)";
            finish(id, r);
        }
        return next;
    }

    void cancel(transfer_id id) {
        transfer_result r;
        r.cancelled = true;
        auto it = transfers.find(id);
        if (it != transfers.end())
            r.status = it->second->status;
        finish(id, r);
    }

    // Completed transfers, as curl reports them.
    void collect_done() {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            transfer* t = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
            transfer_result r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r.status);
            const CURLcode code = msg->data.result;
            r.detail = t->error.data();
            if (t->too_large) {
                r.too_large = true;
                r.error = "answer is over " + std::to_string(t->max_body_bytes) + " bytes";
            } else if (code == CURLE_OPERATION_TIMEDOUT) {
                r.timed_out = true;
                r.error =
                    t->has_total_timeout ? "timed out" : "timed out (no data from the provider)";
            } else if (code != CURLE_OK && !(t->aborted_by_handler && code == CURLE_WRITE_ERROR)) {
                r.error = curl_easy_strerror(code);
            }
            finish(t->id, r);
        }
    }

    void loop() {
        std::array<epoll_event, 64> ready{};
        while (true) {
            std::vector<std::function<void()>> todo;
            {
                std::lock_guard lock(mutex);
                if (stopping)
                    break;
                todo.swap(commands);
            }
            for (auto& fn : todo)
                run_safely(fn);
            auto now = std::chrono::steady_clock::now();
            while (!timers.empty() && timers.begin()->first <= now) {
                auto fn = std::move(timers.begin()->second);
                timers.erase(timers.begin());
                run_safely(fn);
            }
            if (curl_deadline <= now) {
                curl_deadline = std::chrono::steady_clock::time_point::max();
                socket_action(CURL_SOCKET_TIMEOUT, 0);
            }
            collect_done();
            auto wake_at = std::min(curl_deadline, next_idle_scan);
            if (now >= next_idle_scan) {
                // Idle timeouts are seconds; looking every 50 ms keeps them within 50 ms.
                const auto earliest = expire_idle();
                next_idle_scan = std::max(now + std::chrono::milliseconds(50),
                                          std::min(earliest, now + std::chrono::seconds(1)));
                wake_at = std::min(curl_deadline, next_idle_scan);
            }
            if (!timers.empty())
                wake_at = std::min(wake_at, timers.begin()->first);
            int timeout_ms = 1000;
            if (wake_at != std::chrono::steady_clock::time_point::max()) {
                // Round up: waking a millisecond early would only loop once more.
                const auto until = std::chrono::ceil<std::chrono::milliseconds>(
                    wake_at - std::chrono::steady_clock::now());
                timeout_ms = static_cast<int>(std::clamp<long long>(until.count(), 0, 1000));
            }
            const int n =
                epoll_wait(epoll_fd, ready.data(), static_cast<int>(ready.size()), timeout_ms);
            for (int i = 0; i < n; ++i) {
                const int fd = ready[static_cast<std::size_t>(i)].data.fd;
                const auto ev = ready[static_cast<std::size_t>(i)].events;
                if (fd == wake_fd) {
                    std::uint64_t count = 0;
                    [[maybe_unused]] auto r = read(wake_fd, &count, sizeof count);
                    continue;
                }
                int mask = 0;
                if (ev & EPOLLIN)
                    mask |= CURL_CSELECT_IN;
                if (ev & EPOLLOUT)
                    mask |= CURL_CSELECT_OUT;
                if (ev & (EPOLLERR | EPOLLHUP))
                    mask |= CURL_CSELECT_ERR;
                socket_action(fd, mask);
            }
            collect_done();
        }
        // Shutting down: cancel whatever still runs so every handler completes.
        std::vector<transfer_id> ids;
        for (auto& [id, t] : transfers)
            ids.push_back(id);
        for (auto id : ids)
            cancel(id);
    }

    static void run_safely(std::function<void()>& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            log::error("llm task threw: {}", e.what());
        }
    }
};

transport::transport() : impl_(std::make_unique<impl>()) {}
transport::~transport() = default;

transport::transfer_id transport::start(http_call call, std::shared_ptr<http_handler> handler) {
    const auto id = ++impl_->next_id;
    impl_->submit([this, id, call = std::move(call), handler = std::move(handler)]() mutable {
        impl_->add(id, std::move(call), std::move(handler));
    });
    return id;
}

void transport::cancel(transfer_id id) {
    impl_->submit([this, id] { impl_->cancel(id); });
}

void transport::schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
    const auto when = std::chrono::steady_clock::now() + delay;
    impl_->submit(
        [this, when, fn = std::move(fn)]() mutable { impl_->timers.emplace(when, std::move(fn)); });
}

void transport::stop() {
    impl_->stop();
}

std::size_t transport::active() const {
    return impl_->active.load(std::memory_order_relaxed);
}

namespace {
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
}  // namespace

boost::system::result<url_parts, std::string> parse_url(const std::string& url) {
    std::unique_ptr<CURLU, curl_url_deleter> handle(curl_url());
    if (!handle)
        return std::string("out of memory");
    const auto rc =
        curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK)
        return std::string("not a valid URL (") + curl_url_strerror(rc) + ")";
    url_parts parts;
    parts.scheme = url_part(handle.get(), CURLUPART_SCHEME);
    parts.host = url_part(handle.get(), CURLUPART_HOST);
    return parts;
}

}  // namespace eventcast::aws

// Where JWT verification keys come from: a JWKS file or an https:// URL, cached and refreshed
// on the source's own worker thread, when a token names an unknown kid (rate-limited) and
// periodically, so that a provider's key rotation is picked up without a restart.
#pragma once

#include "auth/jwt.hpp"

#include <boost/system/result.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace eventcast::auth {

/// Owns one worker thread, started by start() and joined by the destructor. Every public
/// member is thread-safe. Fetches (file reads after the first, every URL fetch) run only on the
/// worker, never on a caller's thread. A failed fetch keeps the last good key set and is logged
/// once as a warning; it is retried after min_refresh_interval, doubling up to refresh_interval.
class jwks_source {
public:
    struct options {
        /// A file path, or an https:// URL. http:// is accepted only for a loopback host
        /// (127.0.0.0/8, [::1], localhost), for tests. Redirects are not followed.
        std::string location;
        /// PEM file of CA certificates trusted for the URL instead of the system store (a
        /// private CA). Empty: the system store.
        std::string ca_file;
        /// At most one fetch per this interval on demand (refresh()), so tokens with made-up
        /// kids cannot make us hammer the provider. Measured from the start of the last fetch.
        std::chrono::seconds min_refresh_interval{30};
        /// Periodic refresh, so rotated keys are known before the first token needs them.
        std::chrono::seconds refresh_interval{3600};
        /// Bound on a whole URL fetch (connect included); a key set is a few KiB.
        std::chrono::seconds fetch_timeout{10};
    };

    struct stats {
        std::uint64_t fetches = 0;       // attempts, successful or not
        std::uint64_t failures = 0;      // fetches that kept the previous key set
        std::uint64_t rate_limited = 0;  // refresh() calls answered without a fetch
        std::string last_error;          // "" after a successful fetch
    };

    /// Checks the options and starts the worker. A file is read here, so a missing file or one
    /// with no usable key fails startup; a URL is only checked here and fetched at once on the
    /// worker: current() is null until that succeeds (refresh() with a callback waits for it).
    /// Errors say what is wrong, e.g. "jwks URL 'http://idp.example/keys': http:// is allowed
    /// only for loopback hosts; use https://". libcurl must be initialised (curl_global_init)
    /// before a URL source starts.
    static boost::system::result<std::unique_ptr<jwks_source>, std::string> start(options opts);

    /// Stops the worker, aborting a fetch in flight. Callbacks not yet run are dropped unrun.
    ~jwks_source();
    jwks_source(const jwks_source&) = delete;
    jwks_source& operator=(const jwks_source&) = delete;

    /// The latest good key set; null only for a URL source whose first fetch has not yet
    /// succeeded. The set stays valid for as long as the caller holds it.
    std::shared_ptr<const jwks> current() const;

    /// Asks for a fresh fetch, e.g. because a token named an unknown kid. `done` runs on the
    /// worker thread once a fetch finished, successful or not (then compare current()). If a
    /// fetch is already queued or in flight, `done` waits for that one; if the last fetch
    /// started less than min_refresh_interval ago, no fetch happens and `done` runs soon
    /// anyway. `done` must not block for long; an exception from it is logged and swallowed.
    void refresh(std::function<void()> done);

    stats statistics() const;
    const std::string& location() const noexcept { return opts_.location; }

private:
    using clock = std::chrono::steady_clock;
    using callbacks = std::vector<std::function<void()>>;

    explicit jwks_source(options opts, bool is_url);
    boost::system::result<jwks, std::string> fetch() const;  // file or URL, no lock held
    boost::system::result<jwks, std::string> fetch_file() const;
    boost::system::result<jwks, std::string> fetch_url() const;
    void run();
    void finish_fetch(boost::system::result<jwks, std::string> result, clock::time_point started);
    static void run_callbacks(callbacks& list);

    const options opts_;
    const bool is_url_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::shared_ptr<const jwks> current_;
    callbacks after_fetch_;      // run when the queued or in-flight fetch finishes
    callbacks rate_limited_;     // run by the worker without a fetch
    bool fetch_wanted_ = false;  // a fetch is queued for the worker
    bool fetching_ = false;      // a fetch is in flight
    bool stopping_ = false;
    std::atomic<bool> abort_{false};  // read by libcurl's progress callback without the lock
    std::optional<clock::time_point> last_fetch_started_;
    clock::time_point next_periodic_;
    std::chrono::seconds retry_delay_{0};
    stats stats_;
    std::thread worker_;  // last: started once every member above exists
};

}  // namespace eventcast::auth

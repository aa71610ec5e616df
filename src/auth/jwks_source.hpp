// Where JWT verification keys come from: a JWKS file or an https:// URL, cached and refreshed
// when a token names an unknown kid (rate-limited) and periodically, so that a provider's key
// rotation is picked up without a restart. Fetches, file re-reads and the refresh timers run on
// the outbound transport's thread (aws/transport.hpp); the source has no thread of its own.
#pragma once

#include "auth/jwt.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace eventcast::aws {
class transport;
}

namespace eventcast::auth {

/// Every public member is thread-safe. With a transport, fetches (file reads after the first,
/// every URL fetch) run only on the transport's thread, never on a caller's thread. A failed
/// fetch keeps the last good key set and is logged once as a warning; it is retried after
/// min_refresh_interval, doubling up to refresh_interval.
///
/// Lifetime: the transport must outlive the source (stopping it first is fine). What the
/// source leaves queued on the transport (timers, a fetch, its completion) holds the source's
/// state only by weak_ptr, so it does nothing once the source is gone.
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

    /// Checks the options. A file is read here, so a missing file or one with no usable key
    /// fails startup; a URL is only checked here and fetched at once on the transport: current()
    /// is null until that succeeds (refresh() with a callback waits for it). Errors say what is
    /// wrong, e.g. "jwks URL 'http://idp.example/keys': http:// is allowed only for loopback
    /// hosts; use https://". A URL needs `outbound`. Without a transport (file sources only)
    /// nothing runs in the background and no thread starts: there is no periodic refresh, and
    /// refresh() re-reads the file on the caller's thread and calls back there.
    static boost::system::result<std::unique_ptr<jwks_source>, std::string> start(
        options opts, aws::transport* outbound);

    /// Cancels a fetch in flight; callbacks not yet run are dropped unrun. A callback running on
    /// the transport's thread at this moment is waited for, so the destructor must not be
    /// called from inside a refresh() callback.
    ~jwks_source();
    jwks_source(const jwks_source&) = delete;
    jwks_source& operator=(const jwks_source&) = delete;

    /// The latest good key set; null only for a URL source whose first fetch has not yet
    /// succeeded. The set stays valid for as long as the caller holds it.
    std::shared_ptr<const jwks> current() const;

    /// Asks for a fresh fetch, e.g. because a token named an unknown kid. `done` runs on the
    /// transport's thread once a fetch finished, successful or not (then compare current()). If
    /// a fetch is already queued or in flight, `done` waits for that one; if the last fetch
    /// started less than min_refresh_interval ago, no fetch happens and `done` runs soon
    /// anyway. `done` must not block for long; an exception from it is logged and swallowed.
    void refresh(std::function<void()> done);

    stats statistics() const;
    const std::string& location() const noexcept;

private:
    struct state;  // shared with what is queued on the transport (jwks_source.cpp)
    explicit jwks_source(std::shared_ptr<state> s);
    std::shared_ptr<state> state_;
};

}  // namespace eventcast::auth

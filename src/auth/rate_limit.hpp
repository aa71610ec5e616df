// Rate limits: a token bucket per WebSocket connection (operations per second) and a counter of
// connections per source address. Both are cheap enough for the hot path: the bucket is
// per-connection state touched only on its strand; the counter takes a mutex per connect and
// disconnect, never per message.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace eventcast::auth {

/// Not thread-safe: one per connection.
class token_bucket {
public:
    using clock = std::chrono::steady_clock;
    /// `rate` tokens per second, at most `burst` saved up; rate 0 means unlimited.
    token_bucket(double rate, double burst) noexcept : rate_(rate), burst_(burst), tokens_(burst) {}

    /// Takes one token; false when none is left.
    bool take(clock::time_point now = clock::now()) noexcept {
        if (rate_ <= 0)
            return true;
        if (last_ != clock::time_point{}) {
            const std::chrono::duration<double> dt = now - last_;
            tokens_ = std::min(burst_, tokens_ + dt.count() * rate_);
        }
        last_ = now;
        if (tokens_ < 1)
            return false;
        tokens_ -= 1;
        return true;
    }

private:
    double rate_, burst_, tokens_;
    clock::time_point last_{};
};

/// Thread-safe count of open connections per source address.
class connection_counter {
public:
    explicit connection_counter(std::size_t limit) noexcept : limit_(limit) {}

    /// Counts a new connection from `address`; false (and not counted) when at the limit.
    bool try_add(const std::string& address) {
        if (limit_ == 0)
            return true;
        std::lock_guard lock(mutex_);
        auto& n = counts_[address];
        if (n >= limit_)
            return false;
        ++n;
        return true;
    }
    /// Forgets one connection counted by try_add().
    void remove(const std::string& address) {
        if (limit_ == 0)
            return;
        std::lock_guard lock(mutex_);
        auto it = counts_.find(address);
        if (it != counts_.end() && --it->second == 0)
            counts_.erase(it);
    }
    std::size_t limit() const noexcept { return limit_; }

private:
    std::size_t limit_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::size_t> counts_;
};

}  // namespace eventcast::auth

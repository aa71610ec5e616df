// API_KEY authorization: who may connect, subscribe and publish when the only mode is API keys.
// Keys come from config; each may expire. Comparison is constant-time.
#pragma once

#include "core/config.hpp"
#include "events/error.hpp"
#include "events/message.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

namespace eventcast::auth {

/// Thread-safe: checks run concurrently with replace().
class api_key_store {
public:
    explicit api_key_store(std::vector<core::api_key> keys)
        : keys_(std::make_shared<const std::vector<core::api_key>>(std::move(keys))) {}

    /// The new list applies to every check that starts after this returns (SIGHUP).
    void replace(std::vector<core::api_key> keys) {
        keys_.store(std::make_shared<const std::vector<core::api_key>>(std::move(keys)));
    }

    /// Checks the `x-api-key` entry of `creds` (an authorization object or request headers).
    /// Missing, unknown or expired keys are UnauthorizedException with AWS's message.
    events::result<void> check(
        const events::credentials& creds,
        std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

private:
    std::atomic<std::shared_ptr<const std::vector<core::api_key>>> keys_;
};

}  // namespace eventcast::auth

// Token usage, counted: totals by provider, model and direction for the metrics
// (eventcast_chat_tokens_total), and per userId the tokens of the current budget window
// (--chat-max-tokens-per-user per --chat-budget-window) and since start-up (GET /chat/usage).
// Windows are fixed, back to back from start-up, so every user's budget resets at the same
// instants. Counted on this node: in cluster mode each node keeps its own ledger.
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace eventcast::chat {

/// Thread-safe.
class token_ledger {
public:
    using clock = std::chrono::system_clock;

    /// `max_per_user` 0: no budget (usage is still counted).
    token_ledger(std::uint64_t max_per_user, std::chrono::milliseconds window,
                 clock::time_point start = clock::now());

    /// Why `user` may not start a stream now: the budget is spent for this window.
    struct over_budget {
        std::uint64_t used = 0;
        std::uint64_t limit = 0;
        clock::time_point resets_at;
    };
    std::optional<over_budget> check(std::string_view user, clock::time_point now = clock::now());

    /// A finished (or failed, or cancelled) stream's tokens.
    void add(std::string_view user, std::string_view provider, std::string_view model,
             std::uint64_t input, std::uint64_t output, clock::time_point now = clock::now());

    /// GET /chat/usage: the user's totals since start-up, this window's use, the budget and
    /// when it resets.
    boost::json::object usage_of(std::string_view user, clock::time_point now = clock::now());

    /// eventcast_chat_tokens_total{provider,model,direction}. At most max_model_labels
    /// (provider, model) pairs are labelled; further models (a request may name any) are
    /// counted under model="other".
    void append_metrics(std::string& out) const;
    static constexpr std::size_t max_model_labels = 64;

private:
    struct per_user {
        std::int64_t window = -1;  // index of the window `in_window` counts
        std::uint64_t in_window = 0;
        std::uint64_t input = 0, output = 0;  // since start-up
        std::uint64_t streams = 0;
    };
    std::int64_t window_of(clock::time_point now) const;
    clock::time_point window_end(std::int64_t window) const;

    const std::uint64_t max_per_user_;
    const std::chrono::milliseconds window_;
    const clock::time_point start_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, per_user> users_;
    std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::uint64_t>>
        by_model_;  // (provider, model) -> (input, output)
};

}  // namespace eventcast::chat

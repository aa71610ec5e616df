#include "chat/token_ledger.hpp"

#include <algorithm>
#include <ctime>

namespace eventcast::chat {

namespace {

std::string iso8601(token_ledger::clock::time_point t) {
    const std::time_t secs = token_ledger::clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::int64_t epoch_seconds(token_ledger::clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Label values are configured or validated model ids, but a quote or backslash would still
// break the text format.
std::string label_value(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 200)) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

}  // namespace

token_ledger::token_ledger(std::uint64_t max_per_user, std::chrono::milliseconds window,
                           clock::time_point start)
    : max_per_user_(max_per_user),
      window_(std::max(window, std::chrono::milliseconds(1))),
      start_(start) {}

std::int64_t token_ledger::window_of(clock::time_point now) const {
    if (now < start_)
        return 0;
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count() /
           window_.count();
}

token_ledger::clock::time_point token_ledger::window_end(std::int64_t window) const {
    return start_ + std::chrono::duration_cast<clock::duration>(window_ * (window + 1));
}

std::optional<token_ledger::over_budget> token_ledger::check(std::string_view user,
                                                             clock::time_point now) {
    if (max_per_user_ == 0)
        return std::nullopt;
    std::lock_guard lock(mutex_);
    auto it = users_.find(std::string(user));
    if (it == users_.end())
        return std::nullopt;
    const auto w = window_of(now);
    if (it->second.window != w || it->second.in_window < max_per_user_)
        return std::nullopt;
    return over_budget{it->second.in_window, max_per_user_, window_end(w)};
}

void token_ledger::add(std::string_view user, std::string_view provider, std::string_view model,
                       std::uint64_t input, std::uint64_t output, clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto& u = users_[std::string(user)];
    const auto w = window_of(now);
    if (u.window != w) {
        u.window = w;
        u.in_window = 0;
    }
    u.in_window += input + output;
    u.input += input;
    u.output += output;
    ++u.streams;
    auto key = std::make_pair(std::string(provider), std::string(model));
    if (by_model_.find(key) == by_model_.end() && by_model_.size() >= max_model_labels)
        key.second = "other";
    auto& m = by_model_[key];
    m.first += input;
    m.second += output;
}

boost::json::object token_ledger::usage_of(std::string_view user, clock::time_point now) {
    std::lock_guard lock(mutex_);
    per_user u;
    if (auto it = users_.find(std::string(user)); it != users_.end())
        u = it->second;
    const auto w = window_of(now);
    const std::uint64_t in_window = u.window == w ? u.in_window : 0;
    boost::json::object window{{"usedTokens", in_window},
                               {"startsAt", iso8601(window_end(w - 1))},
                               {"resetsAt", iso8601(window_end(w))},
                               {"resetsAtEpochSeconds", epoch_seconds(window_end(w))}};
    if (max_per_user_ > 0) {
        window["limitTokens"] = max_per_user_;
        window["remainingTokens"] = in_window >= max_per_user_ ? 0 : max_per_user_ - in_window;
    } else {
        window["limitTokens"] = nullptr;
    }
    return {{"userId", std::string(user)},
            {"streams", u.streams},
            {"inputTokens", u.input},
            {"outputTokens", u.output},
            {"totalTokens", u.input + u.output},
            {"window", std::move(window)}};
}

void token_ledger::append_metrics(std::string& out) const {
    out +=
        "# HELP eventcast_chat_tokens_total Chat tokens by provider, model and direction (input: "
        "the prompt; output: the answer). Estimated at 4 bytes a token when the provider did "
        "not say.\n# TYPE eventcast_chat_tokens_total counter\n";
    std::lock_guard lock(mutex_);
    for (const auto& [key, v] : by_model_) {
        const auto labels = "{provider=\"" + label_value(key.first) + "\",model=\"" +
                            label_value(key.second) + "\",direction=\"";
        out +=
            "eventcast_chat_tokens_total" + labels + "input\"} " + std::to_string(v.first) + '\n';
        out +=
            "eventcast_chat_tokens_total" + labels + "output\"} " + std::to_string(v.second) + '\n';
    }
}

}  // namespace eventcast::chat

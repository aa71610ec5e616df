// AWS_LAMBDA, self-hosted: an HTTP webhook receives what AppSync sends a Lambda authorizer
// (spec/appsync-events.md §9.5) and answers {"isAuthorized":bool,"ttlOverride":seconds}.
// Answers are cached per (token, operation, channel) for the TTL; the cache keeps SHA-256
// digests, never tokens.
#pragma once

#include "auth/modes.hpp"
#include "aws/transport.hpp"
#include "events/message.hpp"

#include <array>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace eventcast::auth {

struct lambda_request {
    std::string token;  // the Authorization value
    operation op = operation::connect;
    std::string ns;       // namespace, empty for connect
    std::string channel;  // as sent, empty for connect
    events::credentials headers;
};

/// Allowed, or why not (the webhook said no, timed out, or answered nonsense).
struct lambda_answer {
    bool allowed = false;
    std::string reason;  // for the refusal message; empty when allowed
    /// The answer's handlerContext (a JSON object text, "{}" when it gave none): what a
    /// namespace handler sees as ctx.identity.handlerContext.
    std::string handler_context = "{}";
};

/// Thread-safe.
class lambda_authorizer {
public:
    struct options {
        std::string url;
        std::chrono::milliseconds timeout{5000};
        std::chrono::seconds default_ttl{300};
        std::size_t max_cache_entries = 100'000;
    };
    lambda_authorizer(options opts, aws::transport& transport);

    /// A cached answer that has not expired, if any.
    std::optional<lambda_answer> cached(const lambda_request& req) const;

    /// Asks the webhook; `done` runs once, on the transport's thread.
    void ask(lambda_request req, std::function<void(lambda_answer)> done);

    /// The JSON body sent to the webhook (exposed for tests).
    static std::string request_body(const lambda_request& req, std::string_view request_id);
    /// Parses the webhook's answer; the TTL is ttlOverride when present, else `default_ttl`.
    static std::pair<lambda_answer, std::chrono::seconds> parse_answer(
        long status, std::string_view body, std::chrono::seconds default_ttl);

    std::uint64_t calls() const;

private:
    using digest = std::array<unsigned char, 32>;
    struct digest_hash {
        std::size_t operator()(const digest& d) const noexcept;
    };
    struct entry {
        lambda_answer answer;
        std::chrono::steady_clock::time_point expires;
    };
    static digest key_of(const lambda_request& req);
    void store(const digest& key, const lambda_answer& a, std::chrono::seconds ttl);

    options opts_;
    aws::transport& transport_;
    mutable std::mutex mutex_;
    std::unordered_map<digest, entry, digest_hash> cache_;
    std::uint64_t calls_ = 0;
};

}  // namespace eventcast::auth

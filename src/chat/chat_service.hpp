// The chat service: POST /chat becomes a provider stream, and the stream becomes AppSync Events
// on /<chat namespace>/<userId> (DESIGN.md §3): start, delta..., then end or error, with a
// gapless seq, optional delta coalescing, cancellation, status and concurrency limits.
#pragma once

#include "api/event_api.hpp"
#include "aws/transport.hpp"
#include "chat/token_ledger.hpp"
#include "core/config.hpp"
#include "llm/provider.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace eventcast::chat {

/// An HTTP answer for the net layer: status, JSON body, and x-amzn-ErrorType when an error.
struct http_answer {
    unsigned status = 200;
    std::string body;
    std::string error_type;
    std::vector<std::pair<std::string, std::string>> headers = {};  // e.g. Retry-After
};

/// What a stream publishes on its channel (--chat-event-format, or the body's "eventFormat").
enum class event_format {
    typed,   // start, delta..., end or error: each {"type":..., "streamId":..., "seq":n, ...}
    sample,  // only {"data":"<chunk>"} per delta, as the AWS sample's Lambda publishes
};

/// A validated POST /chat body.
struct chat_request {
    std::string user_id;   // a valid channel segment
    std::string provider;  // empty: the server's default
    bool wait = false;
    event_format format = event_format::typed;  // the body's "eventFormat", else the server's
    llm::completion_request completion;         // messages end with the user's prompt
};

/// Validates a POST /chat body (untrusted). "eventFormat" ("typed" or "sample") is optional;
/// without it the stream uses cfg.event_format. The error is the 400/403/413 answer, saying which
/// field was wrong and what is allowed. `token_user` non-empty: the caller's identity from a
/// token, which is the userId (a body userId must equal it). Fuzzed by
/// tests/fuzz/fuzz_chat_request.cpp.
boost::system::result<chat_request, http_answer> parse_chat_request(
    std::string_view body, const core::chat_config& cfg, std::string_view token_user = {});

class chat_stream;

/// Thread-safe. Provider callbacks arrive on the llm thread; HTTP calls on the net threads.
class chat_service {
public:
    using responder = std::function<void(http_answer)>;

    /// `providers` by name; `default_provider` must be one of them.
    chat_service(const core::config& cfg, api::event_api& api, aws::transport& transport,
                 std::map<std::string, std::unique_ptr<llm::provider>> providers,
                 std::string default_provider);
    ~chat_service();

    /// Validates a POST /chat body and starts the stream. `respond` is called exactly once, from
    /// any thread: at once on bad input or a limit, when the provider accepts (or refuses), or
    /// at the end when the body asks for "wait": true.
    /// `token_user`: the caller's identity when authenticated by token (see parse_chat_request).
    void start(std::string_view body, responder respond, std::string_view token_user = {});

    /// GET /chat/<streamId>: status and the text so far. With `token_user`, another user's
    /// stream is answered 404 as if it did not exist.
    http_answer status(std::string_view stream_id, std::string_view token_user = {});
    /// POST /chat/<streamId>/cancel, with the same rule.
    http_answer cancel(std::string_view stream_id, std::string_view token_user = {});

    /// GET /chat/usage: `user`'s tokens (token_ledger::usage_of).
    http_answer usage(std::string_view user);
    /// eventcast_chat_tokens_total.
    void append_metrics(std::string& out) const { ledger_.append_metrics(out); }

    std::size_t active_streams() const;
    const std::string& default_provider() const noexcept { return default_provider_; }

private:
    friend class chat_stream;
    void finished(const chat_stream& s);  // called by a stream once it ends
    std::shared_ptr<chat_stream> find(std::string_view stream_id) const;

    const core::config& cfg_;
    api::event_api& api_;
    aws::transport& transport_;
    std::map<std::string, std::unique_ptr<llm::provider>> providers_;
    std::string default_provider_;
    token_ledger ledger_;

    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<chat_stream>> streams_;  // by streamId
    std::unordered_map<std::string, std::size_t> active_per_user_;
    std::size_t active_ = 0;
};

}  // namespace eventcast::chat

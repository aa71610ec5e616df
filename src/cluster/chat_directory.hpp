// GET /chat/<streamId> and POST /chat/<streamId>/cancel on any node (issue #6): a chat stream
// lives on the node that started it, so a node that does not know a stream id asks the others
// over NATS request/reply, and the owner answers with what its own route would have answered.
//
// Subjects `<prefix>._chat.<op>.<streamId>`: no channel subject can collide, since '_' never
// starts a channel token. Own NATS connection, so it depends on nothing in nats_bridge.
#pragma once

#include "core/config.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct __natsConnection;
struct __natsOptions;

namespace eventcast::cluster {

struct remote_answer {
    unsigned status = 404;
    std::string body;
    std::string error_type;
};

/// Thread-safe after start().
class chat_directory {
public:
    /// What this node answers for (op, stream id, caller's identity): nullopt when the stream is
    /// not here (then this node stays silent and another may answer).
    using lookup = std::function<std::optional<remote_answer>(
        std::string_view op, std::string_view stream_id, std::string_view user)>;

    chat_directory(const core::cluster_config& cfg, lookup local);
    ~chat_directory();
    chat_directory(const chat_directory&) = delete;
    chat_directory& operator=(const chat_directory&) = delete;

    /// Connects in the background (retrying forever, like the bridge). Throws on bad options.
    void start();
    /// Stops answering and asking; pending asks complete with nullopt. Idempotent.
    void stop();

    /// Asks the other nodes. `done` runs exactly once, on a NATS thread (or this one when not
    /// connected): the owner's answer, or nullopt when nobody answered within `timeout`.
    /// `op` is "status" or "cancel"; `stream_id` must be 1..64 of [A-Za-z0-9-].
    void ask(std::string_view op, std::string_view stream_id, std::string_view user,
             std::chrono::milliseconds timeout,
             std::function<void(std::optional<remote_answer>)> done);

    /// `<prefix>._chat.<op>.<streamId>`, or "" when the op or id cannot be a subject token.
    static std::string subject(std::string_view prefix, std::string_view op,
                               std::string_view stream_id);

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace eventcast::cluster

// The `ctx` a handler receives, as AWS's context reference defines it for Event APIs, built as
// one JSON text (the engine parses it once). Pure; unit-tested per auth mode.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventcast::handlers {

enum class operation { publish, subscribe };

/// One invocation's facts. Views must outlive build_context().
struct invocation {
    operation op = operation::publish;
    std::string_view channel;  // the path (publish) or pattern (subscribe) as sent
    std::string_view ns;       // its first segment
    /// publish: the events (validated JSON texts) and the ids they go by in ctx.events
    const std::vector<std::string>* events = nullptr;
    const std::vector<std::string>* ids = nullptr;
    /// ctx.identity: a JSON text (auth::identity_json), "null" for API keys
    std::string_view identity_json = "null";
    /// ctx.request.headers: lower-case names (the connection's or request's credentials)
    const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
};

/// {"events":[{"id","payload"}...],"channel","identity","info":{"channel":{"path","segments"},
///  "channelNamespace":{"name"},"operation":"PUBLISH"|"SUBSCRIBE"},"request":{"headers",
///  "domainName":null},"stash":{}}; `events` only for publish.
std::string build_context(const invocation& inv);

}  // namespace eventcast::handlers

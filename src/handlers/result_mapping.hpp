// What a handler's answer means: the engine hands back one JSON envelope per invocation
// (js_engine.hpp), and these functions turn it into the operation's outcome by AppSync's rules.
// Pure (no engine), so every rule is unit-tested and the mapping is fuzzed on arbitrary text.
#pragma once

#include <boost/system/result.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::handlers {

/// Why an invocation failed the operation.
struct failure {
    enum class kind {
        unauthorized,  // util.unauthorized(): UnauthorizedException
        error,         // util.error(message): that message
        exception,     // the handler threw something else, or its code could not run
        timeout,       // past --handler-time-limit-ms
        memory,        // past --handler-memory-limit-mb
        bad_result,    // the return value breaks the contract (message says which rule)
    };
    kind what = kind::exception;
    std::string message;
    std::string error_type;  // util.error's second argument, when given
};

struct outgoing_event {
    std::size_t index = 0;  // of the incoming event it came from
    std::string payload;    // one JSON text
};
struct failed_event {
    std::size_t index = 0;
    std::string message;
};
/// onPublish's answer: the events to broadcast (in the order returned) and the events the
/// publisher sees in `failed`. Incoming events in neither list were dropped by the handler.
struct publish_decision {
    std::vector<outgoing_event> broadcast;
    std::vector<failed_event> failed;
};

template <class T>
using result = boost::system::result<T, failure>;

/// The envelope js_engine writes: {"ok":<value>} (the handler returned; undefined is null),
/// {"refuse":"unauthorized"}, {"refuse":"error","message":"...","type":"..."},
/// {"threw":"..."}, {"limit":"timeout"|"memory"}. Anything else is a failure(exception).
///
/// onPublish's value: null broadcasts nothing; otherwise an array whose entries are null
/// (dropped), {"id","payload"} (broadcast) or {"id","error":"message"} (failed); every id must be
/// one of `incoming_ids` and appear at most once. Any other shape fails the whole publish with
/// failure(bad_result) naming the entry and the rule.
result<publish_decision> map_publish(std::string_view envelope,
                                     const std::vector<std::string>& incoming_ids);

/// onSubscribe's value: undefined or null accepts; util.unauthorized()/util.error() refuse;
/// any other return value is accepted too (AWS ignores it). Nullopt accepts.
std::optional<failure> map_subscribe(std::string_view envelope);

}  // namespace eventcast::handlers

// The error catalogue: what went wrong, in a form each transport maps to its own shape
// (WebSocket errorType, HTTP status + x-amzn-ErrorType). spec/appsync-events.md §12.
#pragma once

#include <boost/system/result.hpp>

#include <string>

namespace eventcast::events {

enum class error_kind {
    invalid_input,      // a field is malformed or over a limit (WS InvalidInputError, HTTP 400)
    bad_request,        // the connection request itself is malformed (BadRequestException)
    unauthorized,       // bad/missing credentials or undefined namespace (UnauthorizedException)
    max_subscriptions,  // over the per-connection subscription limit
    duplicate_id,       // subscribe with an id that is live on this connection
    unknown_operation,  // unsubscribe of an id that is not live
    unsupported,        // unknown message type or binary frame
    limit_exceeded,     // a rate limit (WS LimitExceededError, HTTP 429)
    resume_too_old,     // a resume position whose following events are no longer retained
    handler_error,      // a namespace handler failed the operation (util.error, exception,
                        // time or memory limit, a malformed return): HandlerError, HTTP 400
};

struct protocol_error {
    error_kind kind;
    std::string message;  // for humans: what was wrong, where, what is allowed; empty allowed

    /// The errorType string sent over WebSocket for this kind.
    const char* ws_error_type() const noexcept;
    /// The x-amzn-ErrorType sent over HTTP for this kind.
    const char* http_error_type() const noexcept;
    /// The HTTP status code for this kind.
    unsigned http_status() const noexcept;

    static protocol_error invalid(std::string message) {
        return {error_kind::invalid_input, std::move(message)};
    }
    static protocol_error bad_request(std::string message) {
        return {error_kind::bad_request, std::move(message)};
    }
    static protocol_error unauthorized(std::string message = default_unauthorized_message) {
        return {error_kind::unauthorized, std::move(message)};
    }
    static constexpr const char* default_unauthorized_message =
        "You are not authorized to make this call.";
};

template <class T>
using result = boost::system::result<T, protocol_error>;

}  // namespace eventcast::events

// boost::system::result needs to know how to throw our error type from .value().
namespace eventcast::events {
[[noreturn]] void throw_exception_from_error(const protocol_error& e,
                                             const boost::source_location& loc);
}

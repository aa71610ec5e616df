// errorType strings and HTTP statuses per error kind. Where AWS's choice is UNCONFIRMED the
// reasoning is in docs/protocol.md.
#include "events/error.hpp"

#include <stdexcept>

namespace eventcast::events {

const char* protocol_error::ws_error_type() const noexcept {
    switch (kind) {
        case error_kind::invalid_input: return "InvalidInputError";
        case error_kind::bad_request: return "BadRequestException";
        case error_kind::unauthorized: return "UnauthorizedException";
        case error_kind::max_subscriptions: return "MaxSubscriptionsReachedError";
        case error_kind::duplicate_id: return "DuplicatedOperationError";
        case error_kind::unknown_operation: return "UnknownOperationError";
        case error_kind::unsupported: return "UnsupportedOperation";
        case error_kind::limit_exceeded: return "LimitExceededError";
        case error_kind::resume_too_old: return "ResumeWindowExceeded";
        case error_kind::handler_error: return "HandlerError";  // UNCONFIRMED (protocol.md)
    }
    return "InvalidInputError";
}

const char* protocol_error::http_error_type() const noexcept {
    switch (kind) {
        case error_kind::unauthorized: return "UnauthorizedException";
        case error_kind::limit_exceeded: return "LimitExceededException";
        case error_kind::resume_too_old: return "ResumeWindowExceeded";
        default: return "BadRequestException";
    }
}

unsigned protocol_error::http_status() const noexcept {
    switch (kind) {
        case error_kind::unauthorized: return 401;
        case error_kind::limit_exceeded: return 429;
        case error_kind::resume_too_old:
            return 410;  // Gone: the events asked for existed but are no longer kept
        default: return 400;
    }
}

void throw_exception_from_error(const protocol_error& e, const boost::source_location&) {
    throw std::runtime_error(std::string(e.ws_error_type()) + ": " + e.message);
}

}  // namespace eventcast::events

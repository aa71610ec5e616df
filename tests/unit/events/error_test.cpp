// Tests src/events/error.cpp: each error kind's WebSocket errorType, HTTP type and status
// (spec/appsync-events.md §12).
#include "events/error.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace eventcast::events {
namespace {

std::string ws_type(error_kind kind) {
    return protocol_error{kind, ""}.ws_error_type();
}

TEST(ProtocolErrorTest, MapsEveryKindToItsWebSocketErrorType) {
    EXPECT_EQ(ws_type(error_kind::invalid_input), "InvalidInputError");
    EXPECT_EQ(ws_type(error_kind::bad_request), "BadRequestException");
    EXPECT_EQ(ws_type(error_kind::unauthorized), "UnauthorizedException");
    EXPECT_EQ(ws_type(error_kind::max_subscriptions), "MaxSubscriptionsReachedError");
    EXPECT_EQ(ws_type(error_kind::duplicate_id), "DuplicatedOperationError");
    EXPECT_EQ(ws_type(error_kind::unknown_operation), "UnknownOperationError");
    EXPECT_EQ(ws_type(error_kind::unsupported), "UnsupportedOperation");
}

TEST(ProtocolErrorTest, UnauthorizedIsHttp401AndEverythingElse400) {
    const auto unauthorized = protocol_error::unauthorized();
    EXPECT_EQ(unauthorized.http_status(), 401u);
    EXPECT_STREQ(unauthorized.http_error_type(), "UnauthorizedException");
    for (auto kind :
         {error_kind::invalid_input, error_kind::bad_request, error_kind::max_subscriptions,
          error_kind::duplicate_id, error_kind::unknown_operation, error_kind::unsupported}) {
        const protocol_error e{kind, "x"};
        EXPECT_EQ(e.http_status(), 400u);
        EXPECT_STREQ(e.http_error_type(), "BadRequestException");
    }
}

TEST(ProtocolErrorTest, DefaultUnauthorizedMessageIsAwsWording) {
    EXPECT_EQ(protocol_error::unauthorized().message, "You are not authorized to make this call.");
    EXPECT_EQ(protocol_error::invalid("m").kind, error_kind::invalid_input);
    EXPECT_EQ(protocol_error::bad_request("m").kind, error_kind::bad_request);
}

TEST(ProtocolErrorTest, ValueOfAFailedResultThrowsWithTypeAndMessage) {
    result<int> r = protocol_error::invalid("bad thing");
    try {
        (void)r.value();
        FAIL() << "value() of an error must throw";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "InvalidInputError: bad thing");
    }
}

}  // namespace
}  // namespace eventcast::events

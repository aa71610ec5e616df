// AWS_LAMBDA as a verifier: any Authorization no earlier verifier claimed goes to the webhook
// (lambda_authorizer.hpp), whose cached answers decide without I/O.
#pragma once

#include "auth/verifier.hpp"

namespace eventcast::auth {

/// Null unless AWS_LAMBDA is allowed; then needs --lambda-authorizer-url and the outbound
/// transport. Register it last: it recognizes every Authorization.
std::unique_ptr<verifier> make_lambda_verifier(const verifier_setup& setup);

}  // namespace eventcast::auth

// AWS_IAM as a verifier: the SigV4 signature of the HTTP request, or of the synthetic POST
// /event that a WebSocket operation signs (iam.hpp, spec/appsync-events.md §9.3).
#pragma once

#include "auth/verifier.hpp"

namespace eventcast::auth {

/// Always made, so that a SigV4 signature is never taken for another mode's token; loads
/// --iam-keys-file when AWS_IAM is allowed (a problem when it is unset or unreadable).
std::unique_ptr<verifier> make_iam_verifier(const verifier_setup& setup);

}  // namespace eventcast::auth

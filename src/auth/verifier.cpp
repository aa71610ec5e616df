// The refusal every mode without a user identity shares.
#include "auth/verifier.hpp"

namespace eventcast::auth {

std::string verifier::no_user_identity(std::string_view ns) const {
    return "namespace '" + std::string(ns) + "' is per-user and " + mode_name(which()) +
           " carries no user identity; use a Cognito or OIDC token or an IAM principal";
}

}  // namespace eventcast::auth

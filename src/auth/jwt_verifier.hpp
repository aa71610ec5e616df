// AMAZON_COGNITO_USER_POOLS and OPENID_CONNECT as verifiers: a JWT from the configured issuer,
// checked against its key set (jwt.hpp, jwks_source.hpp). The two modes share this code and
// differ in their issuer, client ids and Cognito's token_use rule.
#pragma once

#include "auth/verifier.hpp"

namespace eventcast::auth {

/// Null unless AMAZON_COGNITO_USER_POOLS is allowed; then needs --cognito-user-pool-id (or
/// --cognito-issuer) and a loadable key set.
std::unique_ptr<verifier> make_cognito_verifier(const verifier_setup& setup);

/// Null unless OPENID_CONNECT is allowed; then needs --oidc-issuer and a loadable key set.
std::unique_ptr<verifier> make_oidc_verifier(const verifier_setup& setup);

}  // namespace eventcast::auth

// ctx.identity for namespace handlers: who a caller turned out to be, in the field names of
// AWS's "AWS AppSync Event API context reference" for each auth mode. Pure; unit-tested per mode.
#pragma once

#include "auth/modes.hpp"

#include <string>

namespace eventcast::auth {

/// One JSON text, by `who.how`:
///   API_KEY                    null
///   AMAZON_COGNITO_USER_POOLS
///   {"sub","issuer","username","claims","sourceIp","defaultAuthStrategy",
///                               "groups"}
///   OPENID_CONNECT             {"sub","issuer","claims"}
///   AWS_IAM {"accountId","cognitoIdentityPoolId","cognitoIdentityId","sourceIp",
///                               "username","userArn","cognitoIdentityAuthType",
///                               "cognitoIdentityAuthProvider"}
///   AWS_LAMBDA                 {"handlerContext":<what the authorizer returned, {} when nothing>}
/// eventcast issues no Cognito identity-pool credentials, so the cognitoIdentity* fields are
/// null; sourceIp is [] (the verifiers do not see the peer address). groups is null when the
/// token had no cognito:groups, as AWS gives it.
std::string identity_json(const identity& who);

}  // namespace eventcast::auth

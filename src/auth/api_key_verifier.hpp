// API_KEY as a verifier: the request's x-api-key against the configured keys (api_keys.hpp).
#pragma once

#include "auth/verifier.hpp"

namespace eventcast::auth {

/// Always made, even when no operation allows API_KEY, so that a refusal can still say the
/// request carried an x-api-key. Fails setup when API_KEY is allowed and no key exists.
std::unique_ptr<verifier> make_api_key_verifier(const verifier_setup& setup);

}  // namespace eventcast::auth

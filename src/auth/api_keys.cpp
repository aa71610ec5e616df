// API key check. Every configured key is compared (no early exit) with CRYPTO_memcmp so timing
// does not reveal how much of a guess matched or which key it was close to.
#include "auth/api_keys.hpp"

#include <openssl/crypto.h>

namespace eventcast::auth {

events::result<void> api_key_store::check(const events::credentials& creds,
                                          std::chrono::system_clock::time_point now) const {
    const std::string* given = creds.find("x-api-key");
    if (!given)
        return events::protocol_error::unauthorized();
    bool match = false;
    const auto keys = keys_.load();
    for (const auto& key : *keys) {
        const bool same_len = key.value.size() == given->size();
        // Compare against the key itself when lengths differ so work stays the same.
        const std::string& rhs = same_len ? *given : key.value;
        const bool eq = CRYPTO_memcmp(key.value.data(), rhs.data(), key.value.size()) == 0;
        const bool live = !key.expires || now < *key.expires;
        match |= same_len && eq && live;
    }
    if (!match)
        return events::protocol_error::unauthorized();
    return {};
}

}  // namespace eventcast::auth

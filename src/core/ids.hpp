// Random identifiers: UUIDv4 text for publish identifiers, hex tokens for generated API keys.
#pragma once

#include <string>

namespace eventcast::core {

/// A random RFC 4122 version 4 UUID in lower-case text. Thread-safe; fast (thread-local PRNG
/// seeded from the OS), not for secrets.
std::string uuid_v4();

/// A secret of `bytes` random bytes from the OS CSPRNG (OpenSSL RAND_bytes), hex-encoded.
std::string random_secret_hex(std::size_t bytes);

}  // namespace eventcast::core

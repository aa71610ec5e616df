// Identifier generation. Publish identifiers are not secrets, so they use a fast thread-local
// PRNG; API keys use OpenSSL's CSPRNG.
#include "core/ids.hpp"

#include <openssl/rand.h>

#include <cstdint>
#include <random>
#include <stdexcept>

namespace eventcast::core {

namespace {
constexpr char hex_digits[] = "0123456789abcdef";
}

std::string uuid_v4() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uint64_t hi = rng();
    std::uint64_t lo = rng();
    hi = (hi & ~0xF000ULL) | 0x4000ULL;              // version 4
    lo = (lo & ~(0xC0ULL << 56)) | (0x80ULL << 56);  // variant 10
    std::string out(36, '-');
    int pos = 0;
    auto put = [&](std::uint64_t v, int nibbles) {
        for (int i = nibbles - 1; i >= 0; --i) {
            if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
                ++pos;
            out[static_cast<std::size_t>(pos++)] = hex_digits[(v >> (i * 4)) & 0xF];
        }
    };
    put(hi, 16);
    put(lo, 16);
    return out;
}

std::string random_secret_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) {
        out.push_back(hex_digits[c >> 4]);
        out.push_back(hex_digits[c & 0xF]);
    }
    return out;
}

}  // namespace eventcast::core

// base64 / base64url codec. Small enough that a library would not pay for itself, and fuzzed
// through the handshake parser.
#include "core/base64.hpp"

#include <array>
#include <cstdint>

namespace eventcast::core {

namespace {
constexpr std::array<std::int8_t, 256> make_table() {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t)
        v = -1;
    const char* std_alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < 62; ++i)
        t[static_cast<unsigned char>(std_alpha[i])] = static_cast<std::int8_t>(i);
    t['+'] = 62;
    t['-'] = 62;
    t['/'] = 63;
    t['_'] = 63;
    return t;
}
constexpr auto decode_table = make_table();
}  // namespace

std::optional<std::string> base64_decode_any(std::string_view text) {
    while (!text.empty() && text.back() == '=')
        text.remove_suffix(1);
    if (text.size() % 4 == 1)
        return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        const auto v = decode_table[static_cast<unsigned char>(c)];
        if (v < 0)
            return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1)
        return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        // The shared table also maps '+' and '/'; base64url has neither.
        if (c == '+' || c == '/')
            return std::nullopt;
        const auto v = decode_table[static_cast<unsigned char>(c)];
        if (v < 0)
            return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    // Leftover bits (2 or 4) must be zero, or two texts would decode to the same bytes.
    if ((acc & ((1u << bits) - 1)) != 0)
        return std::nullopt;
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    static constexpr char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alpha[(acc >> bits) & 0x3F]);
        }
    }
    if (bits > 0)
        out.push_back(alpha[(acc << (6 - bits)) & 0x3F]);
    return out;
}

}  // namespace eventcast::core

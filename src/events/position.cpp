// Position text: fixed-width epoch so the string sorts and compares plainly within one epoch's
// namespace, and a strict parser so one position has one spelling (fuzzed by fuzz_ws_message).
#include "events/position.hpp"

#include <charconv>

namespace eventcast::events {

void append_position(std::string& out, const position& p) {
    static constexpr char hex[] = "0123456789abcdef";
    for (int shift = 28; shift >= 0; shift -= 4)
        out.push_back(hex[(p.epoch >> shift) & 0xF]);
    out.push_back('-');
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, p.seq);
    out.append(digits, r.ptr);
}

std::string format_position(const position& p) {
    std::string out;
    out.reserve(30);
    append_position(out, p);
    return out;
}

result<position> parse_position(std::string_view text) {
    auto bad = [&](const char* why) {
        // Shown back capped and with control characters masked: the reply is a text frame.
        std::string shown;
        for (char c : text.substr(0, 40))
            shown.push_back(static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\' ||
                                    static_cast<unsigned char>(c) >= 0x80
                                ? '?'
                                : c);
        return protocol_error::invalid("position '" + shown + "' " + why +
                                       "; expected the 'position' of a data frame, like "
                                       "\"5f3a0c1e-42\"");
    };
    if (text.size() < 10 || text[8] != '-')
        return bad("is not <8 hex digits>-<number>");
    position p;
    for (std::size_t i = 0; i < 8; ++i) {
        const char c = text[i];
        unsigned v = 0;
        if (c >= '0' && c <= '9')
            v = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = static_cast<unsigned>(c - 'a' + 10);
        else
            return bad("does not start with 8 lowercase hex digits");
        p.epoch = (p.epoch << 4) | v;
    }
    const auto digits = text.substr(9);
    if (digits.size() > 20 || (digits.size() > 1 && digits[0] == '0'))
        return bad("has a malformed number after '-'");
    for (char c : digits)
        if (c < '0' || c > '9')
            return bad("has a malformed number after '-'");
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), p.seq);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size())
        return bad("has a number after '-' that does not fit 64 bits");
    return p;
}

}  // namespace eventcast::events

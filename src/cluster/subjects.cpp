// Subject mapping. Escapes are upper-case hex and only for bytes outside [A-Za-z0-9-], so every
// byte string has exactly one encoding and decoding can refuse anything else.
#include "cluster/subjects.hpp"

#include "events/channel.hpp"

#include <vector>

namespace eventcast::cluster {

namespace {

bool plain_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;  // lower case is refused: one encoding per byte
}

std::vector<std::string_view> split_tokens(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const auto dot = s.find('.', start);
        out.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
        if (dot == std::string_view::npos)
            return out;
        start = dot + 1;
    }
}

}  // namespace

bool valid_subject_prefix(std::string_view prefix) noexcept {
    if (prefix.empty() || prefix.size() > 200)
        return false;
    bool token_empty = true;
    for (char c : prefix) {
        if (c == '.') {
            if (token_empty)
                return false;
            token_empty = true;
            continue;
        }
        if (!plain_char(c) && c != '_')
            return false;
        token_empty = false;
    }
    return !token_empty;
}

std::string encode_token(std::string_view segment) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(segment.size());
    for (char c : segment) {
        if (plain_char(c)) {
            out.push_back(c);
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        out.push_back('_');
        out.push_back(hex[u >> 4]);
        out.push_back(hex[u & 0xF]);
    }
    return out;
}

events::result<std::string> decode_token(std::string_view token) {
    if (token.empty())
        return events::protocol_error::invalid("subject has an empty token");
    std::string out;
    out.reserve(token.size());
    for (std::size_t i = 0; i < token.size(); ++i) {
        const char c = token[i];
        if (plain_char(c)) {
            out.push_back(c);
            continue;
        }
        if (c != '_' || i + 2 >= token.size())
            return events::protocol_error::invalid(
                "subject token has a byte that is neither [A-Za-z0-9-] nor an _XX escape");
        const int hi = hex_value(token[i + 1]);
        const int lo = hex_value(token[i + 2]);
        if (hi < 0 || lo < 0)
            return events::protocol_error::invalid(
                "subject token has a malformed escape; expected '_' and two of 0-9 A-F");
        const char decoded = static_cast<char>(hi * 16 + lo);
        if (plain_char(decoded))
            return events::protocol_error::invalid(
                "subject token escapes a character that needs no escape");
        out.push_back(decoded);
        i += 2;
    }
    return out;
}

std::string channel_subject(std::string_view prefix, const events::channel_path& path) {
    std::string out(prefix);
    out.reserve(prefix.size() + path.str().size() + 1);
    for (std::size_t i = 0; i < path.size(); ++i) {
        out.push_back('.');
        out += encode_token(path.segment(i));
    }
    return out;
}

std::string pattern_subject(std::string_view prefix, const events::channel_pattern& pattern) {
    auto out = channel_subject(prefix, pattern.prefix());
    if (pattern.wildcard())
        out += ".>";  // '>' is one or more tokens: any depth below, never the prefix itself
    return out;
}

events::result<events::channel_path> subject_channel(std::string_view prefix,
                                                     std::string_view subject) {
    if (subject.size() <= prefix.size() + 1 || subject.substr(0, prefix.size()) != prefix ||
        subject[prefix.size()] != '.')
        return events::protocol_error::invalid("subject is not under the cluster prefix");
    std::string path;
    for (auto token : split_tokens(subject.substr(prefix.size() + 1))) {
        auto segment = decode_token(token);
        if (!segment)
            return segment.error();
        // Each token must be one channel segment: an encoded '/' ("a_2Fb") would otherwise
        // split into two segments and the subject would not map back to itself.
        if (!events::valid_segment(*segment))
            return events::protocol_error::invalid("subject token '" +
                                                   std::string(token.substr(0, 60)) +
                                                   "' is not a channel segment");
        path.push_back('/');
        path += *segment;
    }
    return events::channel_path::parse(path);
}

bool subject_matches(std::string_view filter, std::string_view subject) noexcept {
    const auto f = split_tokens(filter);
    const auto s = split_tokens(subject);
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] == ">")
            return i + 1 == f.size() && s.size() > i;
        if (i >= s.size())
            return false;
        if (f[i] != "*" && f[i] != s[i])
            return false;
    }
    return f.size() == s.size();
}

}  // namespace eventcast::cluster

// Channel grammar. One pass over the text, no allocation beyond the normalized copy; every
// error names the rule, the position and what is allowed.
#include "events/channel.hpp"

#include <algorithm>
#include <string>

namespace eventcast::events {

namespace {

bool alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string printable(std::string_view s) {
    // Echo user text in messages safely: cap length, replace control bytes. The cap backs off to
    // a character boundary: the message goes out in a WebSocket text frame, which must stay
    // valid UTF-8 (browsers fail the connection otherwise).
    constexpr std::size_t cap = 60;
    std::size_t cut = std::min(s.size(), cap);
    while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
        --cut;
    std::string out;
    for (char c : s.substr(0, cut))
        out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
    if (s.size() > cut)
        out += "...";
    return out;
}

std::string describe_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F) {
        static constexpr char hex[] = "0123456789abcdef";
        return std::string("byte 0x") + hex[u >> 4] + hex[u & 0xF];
    }
    return std::string("'") + c + "'";
}

// Validates one segment; returns an empty string when valid, else the reason.
std::string check_segment(std::string_view seg, std::size_t index) {
    const auto pos = std::to_string(index + 1);
    if (seg.empty())
        return "segment " + pos + " is empty";
    if (seg.size() > max_segment_chars)
        return "segment " + pos + " is " + std::to_string(seg.size()) +
               " characters; the limit is " + std::to_string(max_segment_chars);
    for (std::size_t i = 0; i < seg.size(); ++i) {
        const char c = seg[i];
        if (alnum(c))
            continue;
        if (c == '-' && i != 0 && i + 1 != seg.size())
            continue;
        if (c == '-')
            return "segment " + pos + " ('" + printable(seg) +
                   "') starts or ends with '-'; segments start and end with A-Z a-z 0-9";
        return "segment " + pos + " ('" + printable(seg) + "') has " + describe_char(c) +
               " at offset " + std::to_string(i) + "; allowed: A-Z a-z 0-9 and '-'";
    }
    return {};
}

struct split_result {
    std::string_view body;  // without the optional leading/trailing '/'
    std::string error;
};

split_result strip(std::string_view text) {
    if (text.empty())
        return {{}, "channel is empty; expected 1 to 5 segments like /namespace/name"};
    std::string_view body = text;
    if (body.front() == '/')
        body.remove_prefix(1);
    if (!body.empty() && body.back() == '/')
        body.remove_suffix(1);
    if (body.empty())
        return {{},
                "channel '" + printable(text) +
                    "' has no segments; expected 1 to 5 like "
                    "/namespace/name"};
    return {body, {}};
}

}  // namespace

bool valid_segment(std::string_view s) noexcept {
    if (s.empty() || s.size() > max_segment_chars || !alnum(s.front()) || !alnum(s.back()))
        return false;
    for (char c : s)
        if (!alnum(c) && c != '-')
            return false;
    return true;
}

result<channel_path> channel_path::parse(std::string_view text) {
    auto [body, err] = strip(text);
    if (!err.empty())
        return protocol_error::invalid(std::move(err));
    return parse_body(body, text);
}

result<channel_path> channel_path::parse_body(std::string_view body, std::string_view text) {
    channel_path p;
    std::size_t start = 0;
    while (true) {
        const auto slash = body.find('/', start);
        const auto seg =
            body.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (p.count_ == max_segments)
            return protocol_error::invalid("channel '" + printable(text) + "' has more than " +
                                           std::to_string(max_segments) +
                                           " segments; the limit is 5, namespace included");
        if (seg == "*")
            return protocol_error::invalid(
                "channel '" + printable(text) +
                "' contains the wildcard '*'; publish needs a concrete channel");
        auto why = check_segment(seg, p.count_);
        if (!why.empty())
            return protocol_error::invalid("channel '" + printable(text) + "': " + why);
        p.seg_[p.count_++] = {static_cast<std::uint16_t>(start),
                              static_cast<std::uint16_t>(seg.size())};
        if (slash == std::string_view::npos)
            break;
        start = slash + 1;
    }
    p.text_ = std::string(body);
    return p;
}

result<channel_pattern> channel_pattern::parse(std::string_view text) {
    auto [body, err] = strip(text);
    if (!err.empty())
        return protocol_error::invalid(std::move(err));
    channel_pattern pat;
    std::string_view concrete = body;
    if (body == "*")
        return protocol_error::invalid("channel '" + printable(text) +
                                       "' is only a wildcard; it must start with a namespace, "
                                       "like /namespace/*");
    if (body.size() >= 2 && body.substr(body.size() - 2) == "/*") {
        pat.wildcard_ = true;
        concrete = body.substr(0, body.size() - 2);
    }
    if (concrete.find('*') != std::string_view::npos)
        return protocol_error::invalid("channel '" + printable(text) +
                                       "': '*' is allowed only as the whole last segment, "
                                       "like /namespace/a/*");
    if (concrete.empty())
        return protocol_error::invalid("channel '" + printable(text) +
                                       "' has an empty segment before the wildcard");
    auto prefix = channel_path::parse_body(concrete, text);
    if (!prefix)
        return prefix.error();
    if (pat.wildcard_ && prefix->size() + 1 > max_segments)
        return protocol_error::invalid("channel '" + printable(text) +
                                       "' has more than 5 segments; the wildcard counts as one");
    pat.prefix_ = std::move(*prefix);
    return pat;
}

bool channel_pattern::matches(const channel_path& path) const noexcept {
    if (wildcard_) {
        if (path.size() <= prefix_.size())
            return false;
    } else if (path.size() != prefix_.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix_.size(); ++i)
        if (path.segment(i) != prefix_.segment(i))
            return false;
    return true;
}

}  // namespace eventcast::events

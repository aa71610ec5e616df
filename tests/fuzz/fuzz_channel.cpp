// libFuzzer target: channel_path::parse and channel_pattern::parse on arbitrary bytes, checked
// against an independent reading of the grammar (spec/appsync-events.md §7) and the matching
// invariants: a path matches its own exact pattern and the wildcard of every proper prefix,
// never the wildcard of itself.
#include "events/channel.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace eventcast;
using fuzz::check;

bool alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The grammar written out plainly, without the parser's single pass: strip one optional '/' at
// each end, split, 1..5 segments of 1..50 [A-Za-z0-9-] with alphanumeric ends.
std::vector<std::string_view> reference_segments(std::string_view text, bool& ok) {
    ok = false;
    if (!text.empty() && text.front() == '/')
        text.remove_prefix(1);
    if (!text.empty() && text.back() == '/')
        text.remove_suffix(1);
    std::vector<std::string_view> segs;
    if (text.empty())
        return segs;
    std::size_t start = 0;
    while (true) {
        const auto slash = text.find('/', start);
        segs.push_back(text.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
        if (slash == std::string_view::npos)
            break;
        start = slash + 1;
    }
    ok = true;
    return segs;
}

bool reference_segment_ok(std::string_view s) {
    if (s.empty() || s.size() > 50 || !alnum(s.front()) || !alnum(s.back()))
        return false;
    for (char c : s)
        if (!alnum(c) && c != '-')
            return false;
    return true;
}

bool reference_path_ok(std::string_view text) {
    bool split_ok = false;
    const auto segs = reference_segments(text, split_ok);
    if (!split_ok || segs.empty() || segs.size() > 5)
        return false;
    for (auto s : segs)
        if (!reference_segment_ok(s))
            return false;
    return true;
}

bool reference_pattern_ok(std::string_view text, bool& wildcard) {
    bool split_ok = false;
    auto segs = reference_segments(text, split_ok);
    wildcard = split_ok && !segs.empty() && segs.back() == "*";
    if (!split_ok || segs.empty() || segs.size() > 5)
        return false;
    if (wildcard) {
        segs.pop_back();
        if (segs.empty())
            return false;
    }
    for (auto s : segs)
        if (!reference_segment_ok(s))
            return false;
    return true;
}

std::string join(const events::channel_path& p, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        if (i)
            out += '/';
        out += p.segment(i);
    }
    return out;
}

void check_error(const events::protocol_error& e, std::string_view text) {
    check(e.kind == events::error_kind::invalid_input, "channel errors are InvalidInputError");
    check(!e.message.empty(), "channel errors say what is wrong");
    if (fuzz::valid_utf8(text))
        check(fuzz::valid_utf8(e.message), "error message stays valid UTF-8 for valid input");
}

void check_path(const events::channel_path& p) {
    check(p.size() >= 1 && p.size() <= events::max_segments, "1..5 segments");
    for (std::size_t i = 0; i < p.size(); ++i)
        check(events::valid_segment(p.segment(i)), "every segment is valid");
    check(p.str() == join(p, p.size()), "str() is the segments joined by '/'");

    auto again = events::channel_path::parse(p.str());
    check(again.has_value() && again->str() == p.str() && again->size() == p.size(),
          "the normalized path parses to itself");

    auto exact = events::channel_pattern::parse(p.str());
    check(exact.has_value() && !exact->wildcard(), "a path is a valid exact pattern");
    check(exact->matches(p), "a path matches its own exact pattern");

    for (std::size_t k = 1; k < p.size(); ++k) {
        const auto prefix = join(p, k);
        auto wild = events::channel_pattern::parse(prefix + "/*");
        check(wild.has_value() && wild->wildcard(), "prefix/* of a proper prefix is valid");
        check(wild->matches(p), "a path matches the wildcard of each proper prefix");
        auto shorter = events::channel_pattern::parse(prefix);
        check(shorter.has_value() && !shorter->matches(p),
              "an exact pattern of a proper prefix does not match");
    }
    if (p.size() < events::max_segments) {
        auto own_wild = events::channel_pattern::parse(p.str() + "/*");
        check(own_wild.has_value() && !own_wild->matches(p),
              "path/* does not match the path itself");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    auto path = events::channel_path::parse(text);
    check(path.has_value() == reference_path_ok(text), "path parse agrees with the grammar");
    if (path)
        check_path(*path);
    else
        check_error(path.error(), text);

    bool wildcard = false;
    const bool pattern_ok = reference_pattern_ok(text, wildcard);
    auto pattern = events::channel_pattern::parse(text);
    check(pattern.has_value() == pattern_ok, "pattern parse agrees with the grammar");
    if (!pattern) {
        check_error(pattern.error(), text);
        return 0;
    }
    check(pattern->wildcard() == wildcard, "wildcard exactly when the last segment is '*'");
    check(pattern->prefix().size() + (wildcard ? 1 : 0) <= events::max_segments,
          "the wildcard counts as a segment");
    check(pattern->matches(pattern->prefix()) == !wildcard,
          "exact patterns match their prefix, wildcards never do");
    auto again = events::channel_pattern::parse(pattern->str());
    check(again.has_value() && again->str() == pattern->str() &&
              again->wildcard() == pattern->wildcard(),
          "the normalized pattern parses to itself");
    check(path.has_value() == !wildcard, "a pattern without wildcard is a publishable path");
    if (path)
        check(pattern->matches(*path), "exact pattern and path of one text match");
    return 0;
}

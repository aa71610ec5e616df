// Channel paths and subscribe patterns: the AppSync Events grammar (spec/appsync-events.md §7).
// A path is 1..5 segments of 1..50 characters [A-Za-z0-9-], alphanumeric at both ends; a leading
// and a trailing '/' are optional. A pattern may end in "/*", which matches every channel at any
// depth below its prefix (never the prefix itself); '*' counts as one of the 5 segments.
#pragma once

#include "events/error.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace eventcast::events {

inline constexpr std::size_t max_segments = 5;
inline constexpr std::size_t max_segment_chars = 50;

/// A validated concrete channel (no wildcard). Holding one means it is valid.
class channel_path {
public:
    /// Parses untrusted text. The error (invalid_input) says which rule broke and where.
    static result<channel_path> parse(std::string_view text);

    /// Normalized form without leading/trailing '/': "ns/a/b".
    const std::string& str() const noexcept { return text_; }
    std::size_t size() const noexcept { return count_; }
    std::string_view segment(std::size_t i) const noexcept {
        return std::string_view(text_).substr(seg_[i].first, seg_[i].second);
    }
    std::string_view namespace_name() const noexcept { return segment(0); }

private:
    friend class channel_pattern;
    channel_path() = default;
    // `body` is stripped of its optional slashes; `text` is what the client sent, for messages.
    static result<channel_path> parse_body(std::string_view body, std::string_view text);
    std::string text_;
    std::array<std::pair<std::uint16_t, std::uint16_t>, max_segments> seg_{};
    std::size_t count_ = 0;
};

/// A validated subscribe target: a concrete prefix and whether it ends in the wildcard.
class channel_pattern {
public:
    static result<channel_pattern> parse(std::string_view text);

    /// The concrete segments (the '*' excluded).
    const channel_path& prefix() const noexcept { return prefix_; }
    bool wildcard() const noexcept { return wildcard_; }
    std::string_view namespace_name() const noexcept { return prefix_.namespace_name(); }
    /// "ns/a/*" or "ns/a".
    std::string str() const { return wildcard_ ? prefix_.str() + "/*" : prefix_.str(); }

    /// True when a publish to `path` reaches this pattern.
    bool matches(const channel_path& path) const noexcept;

private:
    channel_path prefix_;
    bool wildcard_ = false;
};

/// True for a valid namespace or segment name: 1..50 of [A-Za-z0-9-], alphanumeric at both ends.
bool valid_segment(std::string_view s) noexcept;

}  // namespace eventcast::events

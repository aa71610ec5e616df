// Small text helpers shared by the parsers of headers, tokens and config files. No allocation.
#pragma once

#include <string_view>

namespace eventcast::core {

/// True for the bytes trim() removes: space, tab, CR, LF (HTTP's optional whitespace plus the
/// line ends that a file or an obs-folded header leaves behind).
constexpr bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/// `s` without leading and trailing is_space() bytes.
std::string_view trim(std::string_view s) noexcept;

/// `s` without leading and trailing optional whitespace as HTTP lists define it (RFC 7230 §3.2.3
/// OWS: space and tab only). For items of a header's #rule list, where a CR or LF is data, not
/// padding.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// ASCII case-insensitive equality ("Bearer" == "bEARER").
bool iequals(std::string_view a, std::string_view b) noexcept;

/// A bearer token without its scheme: trims `value`, then drops a leading "Bearer" (any case,
/// RFC 7235 §2.1) followed by whitespace, and trims again. A value without the scheme comes back
/// trimmed, so a bare token (what Amplify sends for Cognito and OIDC) works too.
std::string_view strip_bearer(std::string_view value) noexcept;

}  // namespace eventcast::core

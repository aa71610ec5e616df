// Text helpers. Kept out of line so every user gets the same rules from one place.
#include "core/strings.hpp"

#include <algorithm>

namespace eventcast::core {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    const auto lower = [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [&](char x, char y) { return lower(x) == lower(y); });
}

std::string_view strip_bearer(std::string_view value) noexcept {
    value = trim(value);
    constexpr std::string_view scheme = "bearer";
    if (value.size() > scheme.size() && iequals(value.substr(0, scheme.size()), scheme) &&
        is_space(value[scheme.size()]))
        value = trim(value.substr(scheme.size()));
    return value;
}

}  // namespace eventcast::core

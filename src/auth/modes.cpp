#include "auth/modes.hpp"

#include <array>

namespace eventcast::auth {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

}  // namespace

std::string mode_set::describe() const {
    std::string out;
    for (std::size_t i = 0; i < mode_count; ++i) {
        const auto m = static_cast<mode>(i);
        if (!has(m))
            continue;
        if (!out.empty())
            out += ", ";
        out += mode_name(m);
    }
    return out.empty() ? "none" : out;
}

const char* mode_name(mode m) noexcept {
    switch (m) {
        case mode::api_key: return "API_KEY";
        case mode::iam: return "AWS_IAM";
        case mode::cognito: return "AMAZON_COGNITO_USER_POOLS";
        case mode::oidc: return "OPENID_CONNECT";
        case mode::lambda: return "AWS_LAMBDA";
    }
    return "?";
}

std::optional<mode> parse_mode(std::string_view text) noexcept {
    struct alias {
        std::string_view name;
        mode m;
    };
    static constexpr std::array<alias, 10> aliases{{
        {"API_KEY", mode::api_key},
        {"apiKey", mode::api_key},
        {"AWS_IAM", mode::iam},
        {"iam", mode::iam},
        {"AMAZON_COGNITO_USER_POOLS", mode::cognito},
        {"userPool", mode::cognito},
        {"OPENID_CONNECT", mode::oidc},
        {"oidc", mode::oidc},
        {"AWS_LAMBDA", mode::lambda},
        {"lambda", mode::lambda},
    }};
    for (const auto& a : aliases)
        if (iequals(a.name, text))
            return a.m;
    return std::nullopt;
}

std::optional<namespace_rule> split_namespace_rule(std::string_view text) {
    const auto colon = text.find(':');
    const auto eq = text.find('=');
    if (colon == std::string_view::npos || eq == std::string_view::npos || eq < colon)
        return std::nullopt;
    namespace_rule r{std::string(text.substr(0, colon)),
                     std::string(text.substr(colon + 1, eq - colon - 1)),
                     {}};
    const auto rest = text.substr(eq + 1);
    for (std::size_t start = 0;;) {
        const auto bar = rest.find('|', start);
        r.modes.emplace_back(rest.substr(start, bar - start));
        if (bar == std::string_view::npos)
            break;
        start = bar + 1;
    }
    return r;
}

const char* operation_name(operation op) noexcept {
    switch (op) {
        case operation::connect: return "connect";
        case operation::subscribe: return "subscribe";
        case operation::publish: return "publish";
        case operation::chat: return "chat";
    }
    return "?";
}

}  // namespace eventcast::auth

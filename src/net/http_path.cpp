// Only slashes are collapsed: resolving "..", decoding %2F or folding case would make two
// different targets reach one route, and the route table's answers (404 lists, 405 Allow) are
// about the path as sent. API Gateway does the same one rewrite.
#include "net/http_path.hpp"

namespace eventcast::net {

std::string_view target_path(std::string_view target) noexcept {
    return target.substr(0, target.find('?'));
}

std::string normalize_path(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    for (const char c : path) {
        if (c == '/' && !out.empty() && out.back() == '/')
            continue;
        out += c;
    }
    return out;
}

}  // namespace eventcast::net

// The demo web app's files, embedded in the binary at build time (cmake/embed_assets.cmake).
#pragma once

#include <span>
#include <string_view>

namespace eventcast::net {

struct static_asset {
    std::string_view path;  // "/index.html", "/app.js"
    std::string_view content_type;
    std::string_view body;
};

/// Every embedded file; empty when the web app was not built in.
std::span<const static_asset> static_assets();

}  // namespace eventcast::net

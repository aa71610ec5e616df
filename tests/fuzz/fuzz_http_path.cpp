// libFuzzer target: net::normalize_path and net::target_path on arbitrary bytes, checked against
// what they promise: the output is the input with only '/' bytes removed, it has no "//", it is
// a fixed point, every non-slash byte is kept in order, and a path without "//" is unchanged.
// The CORS header-list parser (net::requested_headers) gets the same bytes: its output must be
// a clean list of lower-case tokens.
#include "net/cors.hpp"
#include "net/http_path.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace eventcast;
using fuzz::check;

std::string without_slashes(std::string_view s) {
    std::string out;
    for (const char c : s)
        if (c != '/')
            out += c;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    const auto path = net::target_path(in);
    check(path.size() <= in.size() && in.substr(0, path.size()) == path,
          "target_path is a prefix of the target");
    check(path.find('?') == std::string_view::npos, "target_path has no '?'");

    const auto out = net::normalize_path(in);
    check(out.size() <= in.size(), "normalised path is not longer");
    check(out.find("//") == std::string::npos, "normalised path has no '//'");
    check(net::normalize_path(out) == out, "normalisation is idempotent");
    check(without_slashes(out) == without_slashes(in), "only slashes are removed");
    check(in.empty() == out.empty(), "empty only when the input is");
    check(in.empty() || (in.front() == '/') == (out.front() == '/'), "a leading '/' is kept");
    check(in.empty() || (in.back() == '/') == (out.back() == '/'), "a trailing '/' is kept");
    if (in.find("//") == std::string_view::npos)
        check(out == in, "a path without '//' is unchanged");

    const auto headers = net::requested_headers(in);
    for (const char c : headers) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ',' || c == ' ' ||
                        std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        check(ok, "requested_headers yields lower-case tokens, ', ' separated");
    }
    check(headers.find(",,") == std::string::npos && headers.find("  ") == std::string::npos,
          "requested_headers has no empty items");
    return 0;
}

// libFuzzer target: the WebSocket upgrade (events::parse_upgrade) with fuzzed
// Sec-WebSocket-Protocol values and query string, and the base64 codec it relies on.
// Input layout: the first line is the query string; each further line is one
// Sec-WebSocket-Protocol header value.
#include "core/base64.hpp"
#include "events/handshake.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace eventcast;
using fuzz::check;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Splits the header values into list items, as RFC 7230 #rule lists.
std::vector<std::string_view> items(const std::vector<std::string_view>& values) {
    std::vector<std::string_view> out;
    for (auto v : values) {
        std::size_t start = 0;
        while (true) {
            const auto comma = v.find(',', start);
            out.push_back(trim(v.substr(
                start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
            if (comma == std::string_view::npos)
                break;
            start = comma + 1;
        }
    }
    return out;
}

void check_base64(std::string_view bytes) {
    const auto encoded = core::base64url_encode(bytes);
    check(encoded.find_first_of("+/=") == std::string::npos, "base64url without padding");
    const auto round = core::base64_decode_any(encoded);
    check(round && *round == bytes, "decode(encode(x)) == x");

    const auto decoded = core::base64_decode_any(bytes);
    if (decoded) {
        check(decoded->size() <= bytes.size(), "decoding never grows the text");
        const auto again = core::base64_decode_any(core::base64url_encode(*decoded));
        check(again && *again == *decoded, "what decodes re-encodes to the same bytes");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_base64(input);

    const auto newline = input.find('\n');
    const std::string_view query = input.substr(0, newline);
    std::vector<std::string_view> protocols;
    if (newline != std::string_view::npos) {
        std::string_view rest = input.substr(newline + 1);
        while (true) {
            const auto nl = rest.find('\n');
            protocols.push_back(rest.substr(0, nl));
            if (nl == std::string_view::npos)
                break;
            rest = rest.substr(nl + 1);
        }
    }

    events::credentials headers;
    headers.add("X-Api-Key", "from-request-headers");
    const auto auth = events::parse_upgrade(protocols, query, headers);

    check(auth.offered_subprotocols == !protocols.empty(), "offered iff a header value came");
    bool appsync = false;
    bool header_protocol = false;
    for (auto item : items(protocols)) {
        appsync |= item == events::appsync_subprotocol;
        header_protocol |= item.size() > 7 && item.substr(0, 7) == "header-";
    }
    check(auth.offered_appsync == appsync, "aws-appsync-event-ws found exactly when listed");
    if (auth.error) {
        check(auth.error->kind == events::error_kind::bad_request, "bad header is BadRequest");
        check(!auth.error->message.empty(), "the error says what is wrong");
        check(fuzz::valid_utf8(auth.error->message), "error message is valid UTF-8");
    }
    const bool query_may_carry_header =
        query.find("header") != std::string_view::npos || query.find('%') != std::string_view::npos;
    if (!header_protocol && !query_may_carry_header) {
        const auto* key = auth.creds.find("x-api-key");
        check(!auth.error && key && *key == "from-request-headers",
              "without header- or ?header= the request headers are the credentials");
    }
    return 0;
}

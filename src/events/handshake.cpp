// Upgrade parsing. The header- value is base64url JSON without padding in Amplify, but the docs'
// wscat example and other clients vary, so both alphabets and optional padding are accepted.
#include "events/handshake.hpp"

#include "core/base64.hpp"
#include "core/strings.hpp"

#include <boost/url/parse_query.hpp>

#include <string>

namespace eventcast::events {

namespace {

using core::trim_ows;

std::optional<protocol_error> decode_into(std::string_view b64, std::string_view where,
                                          credentials& out) {
    auto json = core::base64_decode_any(b64);
    if (!json)
        return protocol_error::bad_request(std::string(where) +
                                           " is not base64url: expected the base64url encoding "
                                           "of a JSON object like {\"x-api-key\":\"...\"}");
    auto creds = parse_credentials_json(*json);
    if (!creds)
        return protocol_error::bad_request(std::string(where) + ": " + creds.error().message);
    out = std::move(*creds);
    return std::nullopt;
}

}  // namespace

upgrade_auth parse_upgrade(const std::vector<std::string_view>& protocol_values,
                           std::string_view query, const credentials& headers) {
    upgrade_auth out;
    bool have_creds = false;
    for (auto value : protocol_values) {
        out.offered_subprotocols = true;
        while (!value.empty()) {
            const auto comma = value.find(',');
            const auto item = trim_ows(value.substr(0, comma));
            value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
            if (item == appsync_subprotocol) {
                out.offered_appsync = true;
            } else if (item.size() > 7 && item.substr(0, 7) == "header-" && !have_creds) {
                have_creds = true;
                if (auto err = decode_into(item.substr(7), "the header- subprotocol", out.creds))
                    out.error = std::move(err);
            }
        }
    }
    if (!have_creds && !query.empty()) {
        // A NUL-terminated copy: Boost.URL 1.81's parse_query measures its input with strlen
        // (boostorg/url#946), which would read past the end of a view into a larger buffer.
        const std::string query_text(query);
        auto params = boost::urls::parse_query(query_text);
        if (params) {
            for (auto p : *params) {
                // Clients that build the query with a URL encoder (Go's url.Values,
                // URLSearchParams) escape base64's '=' '+' '/', so decode %XX first. '+' stays
                // '+': it is a base64 character here, not a form-encoded space.
                if (p.key.decode() == "header" && p.has_value) {
                    have_creds = true;
                    if (auto err =
                            decode_into(p.value.decode(), "the header query parameter", out.creds))
                        out.error = std::move(err);
                    break;
                }
            }
        }
    }
    if (!have_creds)
        out.creds = headers;
    return out;
}

}  // namespace eventcast::events

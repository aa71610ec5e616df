// libFuzzer target: the POST /chat body parser. Invariants: a refusal is a 4xx JSON answer with
// a message; an accepted request has a valid user id and ends with a non-empty user turn.
#include "chat/chat_service.hpp"
#include "events/channel.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const eventcast::core::chat_config cfg;
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    auto r = eventcast::chat::parse_chat_request(body, cfg);
    if (!r) {
        const auto& a = r.error();
        if (a.status < 400 || a.status >= 500)
            std::abort();
        boost::json::error_code ec;
        auto v = boost::json::parse(a.body, ec);
        if (ec || !v.is_object() || !v.as_object().contains("message"))
            std::abort();
        return 0;
    }
    if (!eventcast::events::valid_segment(r->user_id))
        std::abort();
    const auto& msgs = r->completion.messages;
    if (msgs.empty() || msgs.back().role != "user")
        std::abort();
    return 0;
}

// libFuzzer target: what a namespace handler returns is user code's output, so its mapping to a
// publish or subscribe outcome (handlers/result_mapping.hpp) must hold for any envelope text.
// Each input is mapped as it is, and wrapped as {"ok":<input>} (what the engine writes when the
// handler returns) so the fuzzer reaches the onPublish rules without finding the envelope first.
// Invariants: no crash; every broadcast or failed index names one incoming event, at most once;
// every broadcast payload is one JSON text; a bad return fails with a message saying why.
#include "fuzz_check.hpp"
#include "handlers/result_mapping.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace eventcast::handlers;
namespace json = boost::json;

namespace {

const std::vector<std::string> ids{"a", "b", "c", "00000000-0000-4000-8000-000000000000"};

void check_publish(std::string_view envelope) {
    auto decision = map_publish(envelope, ids);
    if (!decision) {
        const auto& f = decision.error();
        if (f.what == failure::kind::bad_result || f.what == failure::kind::exception)
            eventcast::fuzz::check(!f.message.empty(), "a failed publish says why");
        return;
    }
    std::set<std::size_t> seen;
    for (const auto& e : decision->broadcast) {
        eventcast::fuzz::check(e.index < ids.size(), "broadcast index names an incoming event");
        eventcast::fuzz::check(seen.insert(e.index).second, "an event is decided once");
        boost::system::error_code ec;
        (void)json::parse(e.payload, ec);
        eventcast::fuzz::check(!ec, "a broadcast payload is one JSON text");
    }
    for (const auto& f : decision->failed) {
        eventcast::fuzz::check(f.index < ids.size(), "failed index names an incoming event");
        eventcast::fuzz::check(seen.insert(f.index).second, "an event is decided once");
    }
}

void check_subscribe(std::string_view envelope) {
    if (auto refused = map_subscribe(envelope)) {
        if (refused->what == failure::kind::exception)
            eventcast::fuzz::check(!refused->message.empty(), "a failed subscribe says why");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_publish(text);
    check_subscribe(text);
    boost::system::error_code ec;
    (void)json::parse(text, ec);
    if (ec)
        return 0;
    const std::string wrapped = "{\"ok\":" + std::string(text) + "}";
    check_publish(wrapped);
    check_subscribe(wrapped);
    return 0;
}

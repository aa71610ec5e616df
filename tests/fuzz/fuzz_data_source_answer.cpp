// libFuzzer target: what a data source or directly integrated Lambda function answers is outside
// input. The input is parsed as JSON (as outbound::invoke_lambda does) and mapped as a direct
// integration's publish and subscribe answer, and as data source and integration specs.
// Invariants: no crash; every broadcast or failed index names one incoming event, at most once;
// every broadcast payload is one JSON text; a refusal always has a message kind it may have.
#include "fuzz_check.hpp"
#include "handlers/data_source.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace eventcast::handlers;
namespace json = boost::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)parse_data_source(text);
    (void)parse_direct_lambda(text);
    boost::system::error_code ec;
    auto answer = json::parse(text, ec);
    if (ec)
        return 0;
    const std::vector<std::string> ids{"a", "b", "c", "00000000-0000-4000-8000-000000000000"};
    auto decision = map_direct_publish(answer, ids);
    if (decision) {
        std::set<std::size_t> seen;
        for (const auto& e : decision->broadcast) {
            eventcast::fuzz::check(e.index < ids.size(), "broadcast index names an incoming event");
            eventcast::fuzz::check(seen.insert(e.index).second, "an event is decided once");
            boost::system::error_code pec;
            (void)json::parse(e.payload, pec);
            eventcast::fuzz::check(!pec, "a broadcast payload is one JSON text");
        }
        for (const auto& f : decision->failed) {
            eventcast::fuzz::check(f.index < ids.size(), "failed index names an incoming event");
            eventcast::fuzz::check(seen.insert(f.index).second, "an event is decided once");
        }
    } else {
        const auto k = decision.error().what;
        eventcast::fuzz::check(k == failure::kind::error || k == failure::kind::bad_result ||
                                   k == failure::kind::exception,
                               "a publish answer fails as error or bad_result");
    }
    if (auto refused = map_direct_subscribe(answer))
        eventcast::fuzz::check(refused->what == failure::kind::error,
                               "a subscribe answer refuses as error");
    return 0;
}

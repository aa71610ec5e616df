// libFuzzer target: the SSE parser on arbitrary bytes, and OpenAI-compatible chunk parsing on
// every event it yields. Invariants: the events (and any error) do not depend on how the body is
// split (whole, 2-3 pieces at positions derived from the input, byte by byte for short inputs);
// events respect the limits; chat_stream_parser agrees with parse_stream_data on each event's
// data; error bodies always parse to something.
#include "llm/openai_stream.hpp"
#include "llm/sse.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace eventcast::llm;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
        std::abort();
    }
}

struct outcome {
    std::vector<sse_event> events;
    std::string error;
};

std::string describe(const outcome& o) {
    std::string out;
    for (const auto& e : o.events) {
        for (const std::string* field : {&e.event, &e.data, &e.id, &e.error})
            out += std::to_string(field->size()) + ":" + *field;
        out += "|";
    }
    return out + "error=" + o.error;
}

outcome parse(std::string_view body, const std::vector<std::size_t>& cuts,
              const sse_limits& limits) {
    sse_parser parser(limits);
    outcome o;
    std::size_t from = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : body.size();
        const bool failed_before = parser.failed();
        auto got = parser.feed(body.substr(from, to - from));
        check(!failed_before || got.empty(), "nothing is parsed after an error");
        o.events.insert(o.events.end(), got.begin(), got.end());
        from = to;
    }
    auto rest = parser.finish();
    o.events.insert(o.events.end(), rest.begin(), rest.end());
    check(parser.finish().empty(), "a second finish() yields nothing");
    if (parser.error())
        check(!parser.error()->message.empty(), "an error says what is wrong");
    o.error = parser.error() ? parser.error()->message : "";
    return o;
}

std::string describe(const openai::stream_item& item) {
    if (std::holds_alternative<openai::done>(item))
        return "done";
    if (const auto* e = std::get_if<openai::api_error>(&item))
        return "error " + e->type + "/" + e->code + "/" + e->message;
    const auto& c = std::get<openai::chunk>(item);
    return "chunk " + c.content + "/" + c.reasoning + "/" + c.role.value_or("-") + "/" +
           c.finish_reason.value_or("-") + "/" +
           (c.usage ? std::to_string(c.usage->prompt_tokens) + "," +
                          std::to_string(c.usage->completion_tokens) + "," +
                          std::to_string(c.usage->total_tokens)
                    : std::string("-"));
}

std::vector<std::string> chat_items(std::string_view body, const std::vector<std::size_t>& cuts,
                                    std::string& error) {
    openai::chat_stream_parser parser;
    std::vector<std::string> items;
    std::size_t from = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : body.size();
        for (const auto& item : parser.feed(body.substr(from, to - from)))
            items.push_back(describe(item));
        from = to;
    }
    for (const auto& item : parser.finish())
        items.push_back(describe(item));
    error = parser.error() ? parser.error()->message : "";
    return items;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    std::uint64_t seed = 1469598103934665603ull;  // FNV-1a: cut positions follow the content
    for (const char c : body)
        seed = (seed ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    std::vector<std::size_t> cuts;
    const std::size_t first = body.empty() ? 0 : seed % (body.size() + 1);
    cuts.push_back(first);
    if (seed & 0x100)
        cuts.push_back(first + (body.size() - first) * ((seed >> 9) & 0xFF) / 255);

    for (const sse_limits limits : {sse_limits{}, sse_limits{40, 64}}) {
        const outcome whole = parse(body, {}, limits);
        const std::string expected = describe(whole);
        check(describe(parse(body, cuts, limits)) == expected,
              "the same events however the body is split in 2-3 pieces");
        if (body.size() <= 512) {
            std::vector<std::size_t> every;
            for (std::size_t i = 1; i < body.size(); ++i)
                every.push_back(i);
            check(describe(parse(body, every, limits)) == expected,
                  "the same events fed byte by byte");
        }
        for (const auto& e : whole.events) {
            check(e.data.size() + e.error.size() < limits.max_event_bytes,
                  "event data stays within the event limit");
            check(e.event.size() <= limits.max_line_bytes && e.id.size() <= limits.max_line_bytes,
                  "fields stay within the line limit");
            check(e.id.find('\0') == std::string::npos, "ids never contain NUL");
        }
    }

    // Chunk parsing on each event: never crashes, errors say something.
    const outcome events = parse(body, {}, {});
    for (const auto& e : events.events) {
        auto item = openai::parse_stream_data(e.data);
        if (!item)
            check(!item.error().message.empty(), "a chunk error says what is wrong");
        (void)openai::parse_error_body(0, e.data);
    }
    const openai::api_error body_error = openai::parse_error_body(500, body);
    check(body_error.http_status == 500, "the status is kept");
    check(body_error.message.size() <= body.size(), "the message comes from the body");

    std::string whole_error, split_error;
    const auto whole_items = chat_items(body, {}, whole_error);
    check(chat_items(body, cuts, split_error) == whole_items && split_error == whole_error,
          "chat items do not depend on the split");
    return 0;
}

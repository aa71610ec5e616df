// Incremental Server-Sent Events (text/event-stream) parser, WHATWG rules as summarised in
// spec/model-providers.md §6.2: lines end in LF, CRLF or CR (a CRLF may be split across
// feeds); `field: value` with one optional space after the colon; data lines joined with LF;
// ':' starts a comment; a blank line dispatches; one leading UTF-8 BOM is dropped. Not
// thread-safe: one parser per response, used by one thread.
#pragma once

#include "llm/wire_error.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::llm {

/// One dispatched event.
struct sse_event {
    std::string event;  // the `event:` field; empty means the default type "message"
    std::string data;   // `data:` lines joined with '\n' (no trailing '\n')
    std::string id;     // the last event id seen so far (persists across events, per WHATWG)
    /// Non-standard `error:` field lines, joined like data. Old llama.cpp servers sent
    /// mid-stream errors this way (§6.4); a WHATWG parser would drop them silently.
    std::string error;
};

struct sse_limits {
    /// Longest line kept while waiting for its end. An OpenAI chunk is a few hundred bytes; a
    /// tool-call or long-reasoning chunk a few KiB. Past this the stream is not SSE we can use.
    std::size_t max_line_bytes = 1024 * 1024;
    /// Largest data (plus error) of one event, summed over its lines.
    std::size_t max_event_bytes = 4 * 1024 * 1024;
};

/// Parses a text/event-stream body fed in pieces split anywhere.
///
/// Fields other than data, event, id and error are ignored (`retry` included: the client does
/// not reconnect). An event with neither data nor error lines is not dispatched. A line or an
/// event over its limit sets a sticky error ("SSE line exceeds 1048576 bytes ...").
class sse_parser {
public:
    sse_parser() = default;
    explicit sse_parser(sse_limits limits) : limits_(limits) {}

    /// Consumes `bytes` and returns the events they complete, in order. After an error, returns
    /// the events completed before it, and nothing on later calls.
    std::vector<sse_event> feed(std::string_view bytes);

    /// End of stream. Unlike WHATWG (which discards an unterminated event), the last line is
    /// processed even without its line end and a pending event is dispatched, because some
    /// servers end with `data: [DONE]` and no blank line (§6.2). Later feed() calls are errors.
    std::vector<sse_event> finish();

    const std::optional<wire_error>& error() const noexcept { return error_; }
    bool failed() const noexcept { return error_.has_value(); }

private:
    void process_line(std::string_view line, std::vector<sse_event>& out);
    void dispatch(std::vector<sse_event>& out);
    void fail(std::string message);

    sse_limits limits_;
    std::string line_;  // an unterminated line, carried to the next feed()
    std::string data_;  // each data line followed by '\n'
    std::string error_field_;
    std::string event_type_;
    std::string last_id_;
    std::size_t bom_matched_ = 0;  // bytes of a leading BOM seen; 3 once the check is over
    bool after_cr_ = false;        // the last byte was CR: a following LF ends nothing
    bool finished_ = false;
    std::optional<wire_error> error_;
};

}  // namespace eventcast::llm

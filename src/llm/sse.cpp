// SSE parsing. Complete lines are processed straight from the input; only a line cut by the end
// of a feed() is copied, so a large chunk costs no extra copy and the carry-over is bounded by
// max_line_bytes.
#include "llm/sse.hpp"

#include <utility>

namespace eventcast::llm {
namespace {

constexpr std::string_view bom = "\xEF\xBB\xBF";

}  // namespace

void sse_parser::fail(std::string message) {
    error_ = wire_error{std::move(message)};
    line_.clear();
    data_.clear();
    error_field_.clear();
}

void sse_parser::dispatch(std::vector<sse_event>& out) {
    if (data_.empty() && error_field_.empty()) {
        event_type_.clear();
        return;
    }
    if (!data_.empty())
        data_.pop_back();  // every data line was followed by '\n'; the last one is not part of it
    if (!error_field_.empty())
        error_field_.pop_back();
    out.push_back(
        sse_event{std::move(event_type_), std::move(data_), last_id_, std::move(error_field_)});
    event_type_.clear();
    data_.clear();
    error_field_.clear();
}

void sse_parser::process_line(std::string_view line, std::vector<sse_event>& out) {
    if (line.empty())
        return dispatch(out);
    if (line.front() == ':')
        return;  // comment, e.g. ": keep-alive" or OpenRouter's ": PROCESSING"
    const std::size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);

    if (field == "data" || field == "error") {
        if (data_.size() + error_field_.size() + value.size() + 1 > limits_.max_event_bytes)
            return fail("SSE event data exceeds " + std::to_string(limits_.max_event_bytes) +
                        " bytes; the limit bounds memory per event");
        std::string& buffer = field == "data" ? data_ : error_field_;
        buffer.append(value).push_back('\n');
    } else if (field == "event") {
        event_type_.assign(value);
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos)
            last_id_.assign(value);
    }
}

std::vector<sse_event> sse_parser::feed(std::string_view bytes) {
    std::vector<sse_event> out;
    if (error_)
        return out;
    if (finished_) {
        fail("SSE data fed after finish()");
        return out;
    }
    // A leading BOM may itself arrive split; bytes that turn out not to be one are content.
    while (bom_matched_ < bom.size() && !bytes.empty()) {
        if (bytes.front() == bom[bom_matched_]) {
            ++bom_matched_;
            bytes.remove_prefix(1);
            continue;
        }
        line_.append(bom.substr(0, bom_matched_));
        bom_matched_ = bom.size();
    }

    while (!bytes.empty() && !error_) {
        if (after_cr_) {
            after_cr_ = false;
            if (bytes.front() == '\n') {
                bytes.remove_prefix(1);
                continue;
            }
        }
        const std::size_t end = bytes.find_first_of("\r\n");
        const std::string_view piece = bytes.substr(0, end);
        if (line_.size() + piece.size() > limits_.max_line_bytes) {
            fail("SSE line exceeds " + std::to_string(limits_.max_line_bytes) +
                 " bytes without a line end");
            break;
        }
        if (end == std::string_view::npos) {
            line_.append(piece);
            break;
        }
        if (line_.empty()) {
            process_line(piece, out);
        } else {
            line_.append(piece);
            process_line(line_, out);
            line_.clear();
        }
        after_cr_ = bytes[end] == '\r';
        bytes.remove_prefix(end + 1);
    }
    return out;
}

std::vector<sse_event> sse_parser::finish() {
    std::vector<sse_event> out;
    if (error_ || finished_)
        return out;
    finished_ = true;
    if (bom_matched_ < bom.size()) {
        line_.append(bom.substr(0, bom_matched_));  // the stream was shorter than a BOM
        bom_matched_ = bom.size();
    }
    if (!line_.empty()) {
        const std::string last = std::move(line_);
        line_.clear();
        process_line(last, out);
    }
    if (!error_)
        dispatch(out);
    return out;
}

}  // namespace eventcast::llm

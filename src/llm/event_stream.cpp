// Event-stream decoding. The prelude CRC is checked before its lengths are trusted (a corrupted
// length would otherwise make us wait for, or buffer, bytes that never come), then the message
// CRC before any header is parsed; header parsing still bounds-checks every length, since a CRC
// only detects accidents.
#include "llm/event_stream.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>
#include <zlib.h>

namespace eventcast::llm {
namespace {

constexpr std::size_t prelude_bytes = 12;  // total_length, headers_length, prelude CRC
constexpr std::size_t crc_bytes = 4;

std::uint32_t read_u32(std::string_view s, std::size_t at) noexcept {
    const auto byte = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i]));
    };
    return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

std::uint64_t read_uint(std::string_view s, std::size_t at, std::size_t width) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i)
        v = v << 8 | static_cast<unsigned char>(s[at + i]);
    return v;
}

std::uint32_t crc32_of(std::string_view s) noexcept {
    // zlib takes uInt lengths; a message is at most max_message_bytes (far below 4 GiB).
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

std::string hex32(std::uint32_t v) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08" PRIx32, v);
    return text;
}

// Printable form of a header name for an error message (names are ASCII in practice).
std::string printable(std::string_view name) {
    std::string out;
    for (const char c : name.substr(0, 64))
        out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    return out;
}

}  // namespace

const event_stream_header* event_stream_message::find_header(std::string_view name) const noexcept {
    for (const auto& h : headers) {
        if (h.name == name)
            return &h;
    }
    return nullptr;
}

std::optional<std::string_view> event_stream_message::string_header(
    std::string_view name) const noexcept {
    const event_stream_header* h = find_header(name);
    if (h == nullptr || h->type != header_type::string)
        return std::nullopt;
    return std::string_view(h->bytes);
}

void event_stream_decoder::fail(std::string message) {
    message += " (message at stream offset " + std::to_string(message_start_) + ")";
    error_ = wire_error{std::move(message)};
    buffer_.clear();
    buffer_.shrink_to_fit();
}

std::optional<std::uint32_t> event_stream_decoder::check_prelude(std::string_view bytes) {
    const std::uint32_t total = read_u32(bytes, 0);
    const std::uint32_t headers = read_u32(bytes, 4);
    const std::uint32_t wire_crc = read_u32(bytes, 8);
    const std::uint32_t crc = crc32_of(bytes.substr(0, 8));
    if (crc != wire_crc) {
        fail("Prelude checksum mismatch: frame says " + hex32(wire_crc) + ", computed " +
             hex32(crc));
        return std::nullopt;
    }
    if (total < min_message_bytes) {
        fail("event-stream total_length " + std::to_string(total) + " is below the minimum 16");
        return std::nullopt;
    }
    if (total > limits_.max_message_bytes) {
        fail("event-stream total_length " + std::to_string(total) + " exceeds the limit " +
             std::to_string(limits_.max_message_bytes));
        return std::nullopt;
    }
    if (headers > limits_.max_headers_bytes) {
        fail("event-stream headers_length " + std::to_string(headers) + " exceeds the limit " +
             std::to_string(limits_.max_headers_bytes));
        return std::nullopt;
    }
    if (headers > total - min_message_bytes) {
        fail("event-stream headers_length " + std::to_string(headers) +
             " does not fit in total_length " + std::to_string(total));
        return std::nullopt;
    }
    return total;
}

std::optional<event_stream_message> event_stream_decoder::decode_message(std::string_view frame) {
    event_stream_message msg;
    msg.total_length = read_u32(frame, 0);
    msg.headers_length = read_u32(frame, 4);
    msg.prelude_crc = read_u32(frame, 8);
    msg.message_crc = read_u32(frame, frame.size() - crc_bytes);
    const std::uint32_t crc = crc32_of(frame.substr(0, frame.size() - crc_bytes));
    if (crc != msg.message_crc) {
        fail("Message checksum mismatch: frame says " + hex32(msg.message_crc) + ", computed " +
             hex32(crc));
        return std::nullopt;
    }

    const std::string_view section = frame.substr(prelude_bytes, msg.headers_length);
    std::size_t pos = 0;
    while (pos < section.size()) {
        const std::size_t start = pos;
        const std::size_t name_length = static_cast<unsigned char>(section[pos++]);
        if (name_length == 0) {
            fail("event-stream header at offset " + std::to_string(start) + " has an empty name");
            return std::nullopt;
        }
        if (section.size() - pos < name_length + 1) {
            fail("event-stream header at offset " + std::to_string(start) +
                 ": name and type run past the headers section");
            return std::nullopt;
        }
        event_stream_header header;
        header.name.assign(section.substr(pos, name_length));
        pos += name_length;
        const auto type = static_cast<unsigned char>(section[pos++]);
        const std::size_t left = section.size() - pos;
        std::size_t width = 0;  // fixed-width integer value
        switch (type) {
            case 0:
            case 1: break;
            case 2: width = 1; break;
            case 3: width = 2; break;
            case 4: width = 4; break;
            case 5:
            case 8: width = 8; break;
            case 9: width = 16; break;
            case 6:
            case 7: width = 2; break;  // the length prefix
            default:
                fail("event-stream header '" + printable(header.name) +
                     "' has unknown value type " + std::to_string(type) + "; allowed 0..9");
                return std::nullopt;
        }
        if (left < width) {
            fail("event-stream header '" + printable(header.name) + "' value needs " +
                 std::to_string(width) + " bytes, " + std::to_string(left) +
                 " left in the headers section");
            return std::nullopt;
        }
        header.type = static_cast<header_type>(type);
        const std::uint64_t raw = read_uint(section, pos, width == 16 ? 0 : width);
        switch (header.type) {
            case header_type::bool_true:
            case header_type::bool_false: break;
            case header_type::byte:  // type 2 is a signed byte: sign-extend it
                header.integer = static_cast<std::int64_t>(static_cast<std::int8_t>(raw));
                break;
            case header_type::int16: header.integer = static_cast<std::int16_t>(raw); break;
            case header_type::int32: header.integer = static_cast<std::int32_t>(raw); break;
            case header_type::int64:
            case header_type::timestamp: header.integer = static_cast<std::int64_t>(raw); break;
            case header_type::uuid: header.bytes.assign(section.substr(pos, 16)); break;
            case header_type::byte_array:
            case header_type::string: {
                const std::size_t length = raw;
                if (left - width < length) {
                    fail("event-stream header '" + printable(header.name) + "' value of " +
                         std::to_string(length) + " bytes runs past the headers section (" +
                         std::to_string(left - width) + " left)");
                    return std::nullopt;
                }
                header.bytes.assign(section.substr(pos + width, length));
                pos += length;
                break;
            }
        }
        pos += width;
        msg.headers.push_back(std::move(header));
    }

    const std::size_t payload_start = prelude_bytes + msg.headers_length;
    msg.payload.assign(frame.substr(payload_start, frame.size() - crc_bytes - payload_start));
    return msg;
}

std::vector<event_stream_message> event_stream_decoder::feed(std::string_view bytes) {
    std::vector<event_stream_message> out;
    if (error_)
        return out;
    consumed_ += bytes.size();
    const auto take = [&](std::size_t want) {
        const std::size_t n = std::min(want, bytes.size());
        buffer_.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
    };
    const auto deliver = [&](std::string_view frame) {
        std::optional<event_stream_message> msg = decode_message(frame);
        if (!msg)
            return false;
        message_start_ += frame.size();
        out.push_back(std::move(*msg));
        return true;
    };

    // Finish the buffered message first: copy only the bytes it still lacks.
    if (!buffer_.empty()) {
        if (expected_ == 0) {
            take(prelude_bytes - buffer_.size());
            if (buffer_.size() < prelude_bytes)
                return out;
            const std::optional<std::uint32_t> total = check_prelude(buffer_);
            if (!total)
                return out;
            expected_ = *total;
        }
        take(expected_ - buffer_.size());
        if (buffer_.size() < expected_)
            return out;
        const bool ok = deliver(buffer_);
        buffer_.clear();
        expected_ = 0;
        if (!ok)
            return out;
    }

    // Then decode straight from the input; only an incomplete tail is copied.
    while (!bytes.empty()) {
        if (bytes.size() < prelude_bytes) {
            buffer_.assign(bytes);
            return out;
        }
        const std::optional<std::uint32_t> total = check_prelude(bytes);
        if (!total)
            return out;
        if (bytes.size() < *total) {
            buffer_.assign(bytes);
            expected_ = *total;
            return out;
        }
        if (!deliver(bytes.substr(0, *total)))
            return out;
        bytes.remove_prefix(*total);
    }
    return out;
}

}  // namespace eventcast::llm

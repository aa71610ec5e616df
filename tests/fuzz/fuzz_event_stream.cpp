// libFuzzer target: the AWS event-stream decoder on arbitrary bytes, and the Bedrock mapping on
// what decodes. Each input is decoded twice: as is (mostly CRC failures, which is the point for
// the prelude and limit checks) and with its frames' lengths clamped and CRCs repaired, so the
// header parser and the Bedrock mapping see frames that pass the checksums. Invariants: the
// result does not depend on how the input is split (whole, 2-3 pieces at positions derived from
// the input, byte by byte for short inputs); a decoded message re-encodes to exactly the bytes
// it came from; only a partial message is buffered; errors are sticky.
#include "llm/bedrock_stream.hpp"
#include "llm/event_stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include <zlib.h>

namespace {

using namespace eventcast::llm;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
        std::abort();
    }
}

std::uint32_t read_u32(std::string_view s, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i)
        v = v << 8 | static_cast<unsigned char>(s[at + i]);
    return v;
}

void put_u32(std::string& s, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
        s[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

void append_u32(std::string& s, std::uint32_t v) {
    s.append(4, '\0');
    put_u32(s, s.size() - 4, v);
}

std::uint32_t crc_of(std::string_view s) {
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// The wire bytes of a decoded message, written independently of the decoder.
std::string encode(const event_stream_message& m) {
    std::string headers;
    for (const event_stream_header& h : m.headers) {
        headers.push_back(static_cast<char>(h.name.size()));
        headers.append(h.name);
        headers.push_back(static_cast<char>(h.type));
        const auto put_int = [&](std::size_t width) {
            for (std::size_t i = width; i-- > 0;)
                headers.push_back(
                    static_cast<char>((static_cast<std::uint64_t>(h.integer) >> (8 * i)) & 0xFF));
        };
        switch (h.type) {
            case header_type::bool_true:
            case header_type::bool_false: break;
            case header_type::byte: put_int(1); break;
            case header_type::int16: put_int(2); break;
            case header_type::int32: put_int(4); break;
            case header_type::int64:
            case header_type::timestamp: put_int(8); break;
            case header_type::uuid: headers.append(h.bytes); break;
            case header_type::byte_array:
            case header_type::string:
                headers.push_back(static_cast<char>((h.bytes.size() >> 8) & 0xFF));
                headers.push_back(static_cast<char>(h.bytes.size() & 0xFF));
                headers.append(h.bytes);
                break;
        }
    }
    std::string out;
    append_u32(out, m.total_length);
    append_u32(out, m.headers_length);
    append_u32(out, m.prelude_crc);
    out += headers;
    out += m.payload;
    append_u32(out, m.message_crc);
    return out;
}

// Clamps each frame's lengths into what is left and rewrites both CRCs; returns how many bytes
// now hold valid frames.
std::size_t repair(std::string& bytes) {
    std::size_t pos = 0;
    while (bytes.size() - pos >= 16) {
        const std::size_t left = bytes.size() - pos;
        std::uint32_t total = read_u32(bytes, pos);
        if (total < 16)
            total = 16 + total;  // keep small frames small
        if (total > left)
            total = static_cast<std::uint32_t>(16 + (total - 16) % (left - 15));
        std::uint32_t headers = read_u32(bytes, pos + 4);
        if (headers > total - 16)
            headers %= total - 16 + 1;
        put_u32(bytes, pos, total);
        put_u32(bytes, pos + 4, headers);
        put_u32(bytes, pos + 8, crc_of(std::string_view(bytes).substr(pos, 8)));
        put_u32(bytes, pos + total - 4, crc_of(std::string_view(bytes).substr(pos, total - 4)));
        pos += total;
    }
    return pos;
}

struct outcome {
    std::vector<event_stream_message> messages;
    std::string error;
};

std::string describe(const outcome& o) {
    std::string out;
    for (const auto& m : o.messages)
        out += encode(m) + "|";
    return out + "error=" + o.error;
}

outcome decode(std::string_view bytes, const std::vector<std::size_t>& cuts,
               const event_stream_limits& limits) {
    event_stream_decoder decoder(limits);
    outcome o;
    std::size_t from = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : bytes.size();
        const bool failed_before = decoder.failed();
        auto got = decoder.feed(bytes.substr(from, to - from));
        check(!failed_before || got.empty(), "nothing is decoded after an error");
        check(decoder.buffered_bytes() <= limits.max_message_bytes,
              "at most one partial message is buffered");
        o.messages.insert(o.messages.end(), got.begin(), got.end());
        from = to;
    }
    if (decoder.error()) {
        check(!decoder.error()->message.empty(), "an error says what is wrong");
        check(decoder.buffered_bytes() == 0, "a failed decoder holds no buffer");
    } else {
        check(decoder.stream_offset() == bytes.size(), "every byte is accounted for");
    }
    o.error = decoder.error() ? decoder.error()->message : "";
    return o;
}

void check_mapping(const event_stream_message& m) {
    auto converse = bedrock::map_converse_stream_message(m);
    auto invoke = bedrock::map_invoke_stream_message(m);
    const std::optional<bedrock::bedrock_error> exception = bedrock::exception_from_message(m);
    const auto type = m.string_header(":message-type");
    if (type == "exception" || type == "error") {
        check(exception.has_value(), "exception and error messages carry a bedrock_error");
        check(converse && *converse && std::holds_alternative<bedrock::bedrock_error>(**converse),
              "converse mapping reports exceptions as bedrock_error");
        check(invoke && *invoke && std::holds_alternative<bedrock::bedrock_error>(**invoke),
              "invoke mapping reports exceptions as bedrock_error");
        (void)exception->retryable();
    } else {
        check(!exception.has_value(), "only exception and error messages carry a bedrock_error");
    }
    if (!converse)
        check(!converse.error().message.empty(), "a mapping error says what is wrong");
    if (type != "event" && type != "exception" && type != "error")
        check(!converse && !invoke, "other message types are protocol errors");
}

void run(std::string_view bytes, std::uint64_t seed, bool repaired, std::size_t valid_end) {
    std::vector<std::size_t> cuts;
    const std::size_t first = bytes.empty() ? 0 : seed % (bytes.size() + 1);
    cuts.push_back(first);
    if (seed & 0x100)
        cuts.push_back(first + (bytes.size() - first) * ((seed >> 9) & 0xFF) / 255);

    for (const event_stream_limits limits : {event_stream_limits{}, event_stream_limits{96, 48}}) {
        const outcome whole = decode(bytes, {}, limits);
        const std::string expected = describe(whole);
        check(describe(decode(bytes, cuts, limits)) == expected,
              "the same messages however the input is split in 2-3 pieces");
        if (bytes.size() <= 512) {
            std::vector<std::size_t> every;
            for (std::size_t i = 1; i < bytes.size(); ++i)
                every.push_back(i);
            check(describe(decode(bytes, every, limits)) == expected,
                  "the same messages fed byte by byte");
        }

        std::size_t offset = 0;
        for (const auto& m : whole.messages) {
            check(m.total_length == 16 + m.headers_length + m.payload.size(), "lengths add up");
            check(m.total_length <= limits.max_message_bytes, "within the message limit");
            check(m.headers_length <= limits.max_headers_bytes, "within the headers limit");
            check(bytes.substr(offset, m.total_length) == encode(m),
                  "a decoded message re-encodes to its bytes");
            offset += m.total_length;
            check_mapping(m);
        }
        const bool checksum_error = whole.error.rfind("Prelude checksum mismatch", 0) == 0 ||
                                    whole.error.rfind("Message checksum mismatch", 0) == 0;
        if (repaired && checksum_error)
            check(offset >= valid_end, "repaired frames pass both checksums");

        bedrock::converse_stream_parser parser(limits);
        std::size_t from = 0;
        for (std::size_t i = 0; i <= cuts.size(); ++i) {
            const std::size_t to = i < cuts.size() ? cuts[i] : bytes.size();
            (void)parser.feed(bytes.substr(from, to - from));
            from = to;
        }
        auto finished = parser.finish();
        if (parser.error())
            check(!finished, "finish() fails after an error");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    std::uint64_t seed = 1469598103934665603ull;  // FNV-1a: cut positions follow the content
    for (const char c : bytes)
        seed = (seed ^ static_cast<unsigned char>(c)) * 1099511628211ull;

    run(bytes, seed, false, 0);
    std::string fixed(bytes);
    const std::size_t valid_end = repair(fixed);
    run(fixed, seed, true, valid_end);
    return 0;
}

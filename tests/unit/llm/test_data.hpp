// Helpers shared by the llm unit tests: reading tests/data (EVENTCAST_TEST_DATA), hex, and
// building event-stream frames with correct CRCs for cases no vector covers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <zlib.h>

#ifndef EVENTCAST_TEST_DATA
#error "EVENTCAST_TEST_DATA must name the tests/data directory"
#endif

namespace eventcast::llm::test {

inline std::string data_path(std::string_view relative) {
    return std::string(EVENTCAST_TEST_DATA) + "/" + std::string(relative);
}

/// The whole file (binary); fails the current test if it cannot be read.
inline std::string read_data(std::string_view relative) {
    const std::string path = data_path(relative);
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot read " << path;
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string from_hex(std::string_view hex) {
    const auto nibble = [](char c) {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return c - 'A' + 10;
    };
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    return out;
}

struct named_frame {
    std::string name;  // from the comment line: "messageStart", "exception", ...
    std::size_t declared_size = 0;
    std::string bytes;
};

/// generated/bedrock-eventstream-frames.hex.txt: "# name: N bytes; payload=..." then hex.
inline std::vector<named_frame> bedrock_frames() {
    std::vector<named_frame> frames;
    const std::string text = read_data("generated/bedrock-eventstream-frames.hex.txt");
    std::size_t pos = 0;
    named_frame pending;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos)
            end = text.size();
        const std::string_view line = std::string_view(text).substr(pos, end - pos);
        pos = end + 1;
        if (line.empty())
            continue;
        if (line.front() == '#') {
            const std::size_t colon = line.find(':');
            pending.name = std::string(line.substr(2, colon - 2));
            pending.declared_size = std::stoul(std::string(line.substr(colon + 2)));
            continue;
        }
        pending.bytes = from_hex(line);
        frames.push_back(std::move(pending));
        pending = {};
    }
    return frames;
}

inline void put_u32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

inline std::uint32_t crc_of(std::string_view s) {
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

/// A type-7 (string) header in wire form.
inline std::string string_header(std::string_view name, std::string_view value) {
    std::string out;
    out.push_back(static_cast<char>(name.size()));
    out.append(name);
    out.push_back(7);
    out.push_back(static_cast<char>((value.size() >> 8) & 0xFF));
    out.push_back(static_cast<char>(value.size() & 0xFF));
    out.append(value);
    return out;
}

/// A frame with correct CRCs around arbitrary (possibly malformed) header bytes.
inline std::string encode_frame(std::string_view headers, std::string_view payload) {
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(16 + headers.size() + payload.size()));
    put_u32(out, static_cast<std::uint32_t>(headers.size()));
    put_u32(out, crc_of(out));
    out.append(headers);
    out.append(payload);
    put_u32(out, crc_of(out));
    return out;
}

/// A Bedrock `event` frame with the three usual string headers.
inline std::string event_frame(std::string_view event_type, std::string_view payload) {
    return encode_frame(string_header(":event-type", event_type) +
                            string_header(":content-type", "application/json") +
                            string_header(":message-type", "event"),
                        payload);
}

}  // namespace eventcast::llm::test

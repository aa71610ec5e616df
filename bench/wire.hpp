// eventcast-bench wire helpers: client-side WebSocket framing (server frames in, masked client
// frames out), the upgrade request, the byte-level markers that carry timestamps in events, and
// the few NATS client protocol messages the NATS mode needs (parse server messages, build PUB).
// No allocation except appending to caller-owned strings; nothing here touches a socket.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace eventcast::bench {

enum class opcode : std::uint8_t {
    continuation = 0,
    text = 1,
    binary = 2,
    close = 8,
    ping = 9,
    pong = 10
};

struct frame_header {
    enum class status : std::uint8_t { need_more, ok, bad };
    status state = status::need_more;
    bool fin = false;
    opcode op = opcode::text;
    bool masked = false;
    std::uint64_t payload_len = 0;
    std::size_t header_len = 0;
    std::uint8_t mask[4] = {0, 0, 0, 0};
};

/// Parses the frame header at the start of `data` (RFC 6455 §5.2). `need_more` when `size` is
/// too short; `bad` for reserved bits, an unknown opcode or a control frame over 125 bytes.
inline frame_header parse_frame_header(const unsigned char* data, std::size_t size) {
    frame_header h;
    if (size < 2)
        return h;
    const std::uint8_t b0 = data[0];
    const std::uint8_t b1 = data[1];
    h.fin = (b0 & 0x80) != 0;
    const std::uint8_t op = b0 & 0x0f;
    h.masked = (b1 & 0x80) != 0;
    if ((b0 & 0x70) != 0 || (op > 2 && op < 8) || op > 10) {
        h.state = frame_header::status::bad;
        return h;
    }
    h.op = static_cast<opcode>(op);
    std::size_t pos = 2;
    std::uint64_t len = b1 & 0x7f;
    if (len == 126) {
        if (size < 4)
            return h;
        len = (std::uint64_t{data[2]} << 8) | data[3];
        pos = 4;
    } else if (len == 127) {
        if (size < 10)
            return h;
        len = 0;
        for (int i = 0; i < 8; ++i)
            len = (len << 8) | data[2 + i];
        pos = 10;
    }
    if (op >= 8 && (len > 125 || !h.fin)) {
        h.state = frame_header::status::bad;
        return h;
    }
    if (h.masked) {
        if (size < pos + 4)
            return h;
        std::memcpy(h.mask, data + pos, 4);
        pos += 4;
    }
    h.payload_len = len;
    h.header_len = pos;
    h.state = frame_header::status::ok;
    return h;
}

/// XORs `size` bytes at `data` with the 4-byte `mask`, starting at mask offset 0.
inline void apply_mask(char* data, std::size_t size, const std::uint8_t mask[4]) {
    std::uint64_t wide = 0;
    for (int i = 0; i < 8; ++i)
        wide |= std::uint64_t{mask[i % 4]} << (8 * i);  // little-endian: byte i gets mask[i % 4]
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, data + i, 8);
        word ^= wide;
        std::memcpy(data + i, &word, 8);
    }
    for (; i < size; ++i)
        data[i] = static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ mask[i % 4]);
}

/// Appends one masked client frame (FIN set) carrying `payload` to `out`.
inline void append_client_frame(std::string& out, opcode op, std::string_view payload,
                                std::uint32_t mask_key) {
    unsigned char header[14];
    std::size_t n = 0;
    header[n++] = static_cast<unsigned char>(0x80 | static_cast<std::uint8_t>(op));
    const std::uint64_t len = payload.size();
    if (len < 126) {
        header[n++] = static_cast<unsigned char>(0x80 | len);
    } else if (len <= 0xffff) {
        header[n++] = 0x80 | 126;
        header[n++] = static_cast<unsigned char>(len >> 8);
        header[n++] = static_cast<unsigned char>(len);
    } else {
        header[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; --i)
            header[n++] = static_cast<unsigned char>(len >> (8 * i));
    }
    std::uint8_t mask[4];
    std::memcpy(mask, &mask_key, 4);
    std::memcpy(header + n, mask, 4);
    n += 4;
    const std::size_t at = out.size();
    out.resize(at + n + payload.size());
    std::memcpy(out.data() + at, header, n);
    std::memcpy(out.data() + at + n, payload.data(), payload.size());
    apply_mask(out.data() + at + n, payload.size(), mask);
}

/// base64url without padding (RFC 4648 §5), as the AppSync `header-` subprotocol uses it.
inline std::string base64url(std::string_view in) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k]));
    };
    for (; i + 3 <= in.size(); i += 3) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (in.size() - i == 1) {
        const std::uint32_t v = byte(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (in.size() - i == 2) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out;
}

/// An HTTP upgrade request to `path`; `extra_headers` ("Name: value\r\n" lines) are added as
/// they are. With none it is what nats-server's websocket listener takes.
inline std::string plain_upgrade_request(std::string_view host, std::string_view path,
                                         std::string_view extra_headers = {}) {
    std::string req = "GET ";
    req += path;
    req += " HTTP/1.1\r\nHost: ";
    req += host;
    req +=
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    req += extra_headers;
    req += "\r\n";
    return req;
}

/// The HTTP upgrade request for /event/realtime with the AppSync subprotocols:
/// `aws-appsync-event-ws` and `header-<base64url {"host","x-api-key"}>`.
inline std::string upgrade_request(std::string_view host, std::string_view path,
                                   std::string_view api_key) {
    std::string header_json = "{\"host\":\"";
    header_json += host;
    header_json += "\",\"x-api-key\":\"";
    header_json += api_key;
    header_json += "\"}";
    return plain_upgrade_request(
        host, path,
        "Sec-WebSocket-Protocol: aws-appsync-event-ws, header-" + base64url(header_json) + "\r\n");
}

inline bool iequals_prefix(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size())
        return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        char a = text[i];
        char b = prefix[i];
        if (a >= 'A' && a <= 'Z')
            a = static_cast<char>(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = static_cast<char>(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/// Value of header `name` (case-insensitive) in an HTTP response head, or "".
inline std::string_view header_value(std::string_view head, std::string_view name) {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        const std::size_t start = pos + 2;
        const std::size_t end = head.find("\r\n", start);
        const std::string_view line =
            head.substr(start, (end == std::string_view::npos ? head.size() : end) - start);
        if (iequals_prefix(line, name) && line.size() > name.size() && line[name.size()] == ':') {
            std::string_view v = line.substr(name.size() + 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
                v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
                v.remove_suffix(1);
            return v;
        }
        pos = end;
    }
    return {};
}

// ---- markers ------------------------------------------------------------------------------
// Every benchmark event carries "~T<send ns>~<L><n>~<L><n>~" (steady_clock, CLOCK_MONOTONIC, so
// comparable across processes on one machine). '~' needs no JSON escaping and appears nowhere
// else in our events, so the receive path finds it with memchr instead of parsing JSON.

struct marker {
    std::int64_t ts = 0;
    std::int64_t a = 0;  // channel (fanout, streams) or chunk index (chat)
    std::int64_t b = 0;  // sequence number (fanout, streams) or chunk count (chat)
};

/// Finds the next marker in [p, end). On success fills `m` and returns the position after it;
/// returns nullptr when there is none (or a malformed one).
inline const char* find_marker(const char* p, const char* end, marker& m) {
    while (p < end) {
        const void* hit = std::memchr(p, '~', static_cast<std::size_t>(end - p));
        if (hit == nullptr)
            return nullptr;
        p = static_cast<const char*>(hit);
        if (p + 1 >= end || p[1] != 'T') {
            ++p;
            continue;
        }
        std::int64_t values[3] = {0, 0, 0};
        const char* q = p + 2;
        bool ok = true;
        for (int i = 0; i < 3 && ok; ++i) {
            auto [next, ec] = std::from_chars(q, end, values[i]);
            if (ec != std::errc() || next >= end || *next != '~') {
                ok = false;
                break;
            }
            q = next + 1;
            if (i < 2) {
                if (q >= end) {
                    ok = false;
                    break;
                }
                ++q;  // the letter naming the next field
            }
        }
        if (!ok) {
            p += 2;
            continue;
        }
        m.ts = values[0];
        m.a = values[1];
        m.b = values[2];
        return q;
    }
    return nullptr;
}

/// Appends a decimal number.
inline void append_number(std::string& out, std::int64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;
    out.append(buf, end);
}

/// Decimal digits of a non-negative number.
inline std::size_t decimal_digits(std::int64_t v) {
    std::size_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}

/// Size of the benchmark event's text: `event_bytes`, or its fixed part when that is longer
/// (`{"m":"~T` + `~C` + `~S` + `~","p":"` + `"}` = 22 bytes, plus the three numbers).
inline std::size_t event_text_size(std::int64_t ts, std::int64_t channel, std::int64_t seq,
                                   std::size_t event_bytes) {
    const std::size_t fixed =
        22 + decimal_digits(ts) + decimal_digits(channel) + decimal_digits(seq);
    return std::max(event_bytes, fixed);
}

/// Appends one benchmark event, `{"m":"~T<ts>~C<channel>~S<seq>~","p":"xxx"}` padded with 'x' to
/// event_text_size() bytes: as it is (a NATS payload) or, `quoted`, as the JSON string literal
/// that AppSync `events` items are.
inline void append_event(std::string& out, bool quoted, std::int64_t ts, std::int64_t channel,
                         std::int64_t seq, std::size_t event_bytes) {
    const std::string_view q = quoted ? "\\\"" : "\"";
    const std::size_t size = event_text_size(ts, channel, seq, event_bytes);
    const std::size_t start = out.size();
    auto open_value = [&](char key) {  // "<key>":"  (each quote escaped when quoted)
        out += q;
        out += key;
        out += q;
        out += ':';
        out += q;
    };
    if (quoted)
        out += '"';
    out += '{';
    open_value('m');
    out += "~T";
    append_number(out, ts);
    out += "~C";
    append_number(out, channel);
    out += "~S";
    append_number(out, seq);
    out += '~';
    out += q;
    out += ',';
    open_value('p');
    // Unescaped length so far: written, less the opening quote and 7 backslashes when quoted.
    const std::size_t text_so_far = out.size() - start - (quoted ? 8 : 0);
    out.append(size - text_so_far - 2, 'x');
    out += q;
    out += '}';
    if (quoted)
        out += '"';
}

/// The event as a JSON string literal (the form `events` items take).
inline void append_event_literal(std::string& out, std::int64_t ts, std::int64_t channel,
                                 std::int64_t seq, std::size_t event_bytes) {
    append_event(out, true, ts, channel, seq, event_bytes);
}

/// The event's text as it is, unquoted (a NATS payload).
inline void append_event_text(std::string& out, std::int64_t ts, std::int64_t channel,
                              std::int64_t seq, std::size_t event_bytes) {
    append_event(out, false, ts, channel, seq, event_bytes);
}

// ---- NATS ---------------------------------------------------------------------------------
// The client protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol) as far
// as the benchmark uses it: the server sends INFO, MSG, PING, PONG, +OK and -ERR; the client
// sends CONNECT, SUB, PUB, PING and PONG. Each message is one line ending in CRLF; MSG is
// followed by its payload and another CRLF.

enum class nats_op : std::uint8_t { msg, ping, pong, ok, err, info };

struct nats_message {
    enum class status : std::uint8_t { need_more, ok, bad };
    nats_op op = nats_op::ok;
    std::string_view payload;  // MSG: the payload; -ERR, INFO: the whole line; else empty
};

/// A protocol line longer than this is refused (INFO with many cluster URLs stays far below).
constexpr std::size_t max_nats_line = 64 * 1024;

/// Parses the server message at the start of [data, data+size). `ok`: `m` is filled and `used`
/// is its length; `need_more`: it is incomplete; `bad`: not a server message this client knows
/// (HMSG too: the client sends headers:false).
inline nats_message::status parse_nats_message(const char* data, std::size_t size, nats_message& m,
                                               std::size_t& used) {
    const void* nl = std::memchr(data, '\n', std::min(size, max_nats_line));
    if (nl == nullptr)
        return size >= max_nats_line ? nats_message::status::bad : nats_message::status::need_more;
    const auto line_end = static_cast<std::size_t>(static_cast<const char*>(nl) - data);
    std::size_t len = line_end;
    if (len > 0 && data[len - 1] == '\r')
        --len;
    const std::string_view line(data, len);
    used = line_end + 1;
    m.payload = {};
    if (line.size() > 4 && line.compare(0, 4, "MSG ") == 0) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        const std::size_t space = line.rfind(' ');
        std::size_t n = 0;
        const auto [end, ec] =
            std::from_chars(line.data() + space + 1, line.data() + line.size(), n);
        if (ec != std::errc() || end != line.data() + line.size() || space < 4)
            return nats_message::status::bad;
        if (n > size || size - used < n + 2)
            return nats_message::status::need_more;
        if (data[used + n] != '\r' || data[used + n + 1] != '\n')
            return nats_message::status::bad;
        m.op = nats_op::msg;
        m.payload = std::string_view(data + used, n);
        used += n + 2;
        return nats_message::status::ok;
    }
    if (line == "PING")
        m.op = nats_op::ping;
    else if (line == "PONG")
        m.op = nats_op::pong;
    else if (line == "+OK")
        m.op = nats_op::ok;
    else if (line.compare(0, 4, "-ERR") == 0)
        m.op = nats_op::err;
    else if (line.compare(0, 5, "INFO ") == 0)
        m.op = nats_op::info;
    else
        return nats_message::status::bad;
    if (m.op == nats_op::err || m.op == nats_op::info)
        m.payload = line;
    return nats_message::status::ok;
}

/// An AppSync channel as a NATS subject: `/default/fanout` -> `default.fanout`.
inline std::string nats_subject(std::string_view channel) {
    if (!channel.empty() && channel.front() == '/')
        channel.remove_prefix(1);
    std::string s(channel);
    std::replace(s.begin(), s.end(), '/', '.');
    return s;
}

/// What a NATS connection of the benchmark sends first: CONNECT (no echo, no verbose +OK, no
/// headers), SUB to `subject` with sid 1 unless it is empty, and a PING whose PONG says both
/// were processed.
inline std::string nats_hello(std::string_view subject) {
    std::string m =
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,\"protocol\":1,"
        "\"echo\":false,\"name\":\"eventcast-bench\",\"lang\":\"c++\",\"version\":\"0\"}\r\n";
    if (!subject.empty()) {
        m += "SUB ";
        m += subject;
        m += " 1\r\n";
    }
    m += "PING\r\n";
    return m;
}

/// Appends `PUB <subject> <n>\r\n<event text>\r\n`: one benchmark event as a NATS payload.
inline void append_nats_pub(std::string& out, std::string_view subject, std::int64_t ts,
                            std::int64_t channel, std::int64_t seq, std::size_t event_bytes) {
    out += "PUB ";
    out += subject;
    out += ' ';
    append_number(out, static_cast<std::int64_t>(event_text_size(ts, channel, seq, event_bytes)));
    out += "\r\n";
    append_event_text(out, ts, channel, seq, event_bytes);
    out += "\r\n";
}

}  // namespace eventcast::bench

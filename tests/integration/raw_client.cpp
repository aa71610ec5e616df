// Byte-level clients: raw_conn (TCP or TLS), HTTP response parsing, raw WebSocket frames.
#include "raw_client.hpp"

#include <dirent.h>

#include <fstream>
#include <random>

namespace eventcast::testing {

raw_conn::raw_conn(std::uint16_t port, bool tls) {
    const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    if (tls) {
        ssl_.set_verify_mode(asio::ssl::verify_none);
        tls_.emplace(ioc_, ssl_);
        tls_->next_layer().connect(ep);
        tls_->handshake(asio::ssl::stream_base::client);
    } else {
        plain_.emplace(ioc_);
        plain_->connect(ep);
    }
}

bool raw_conn::write(std::string_view bytes) {
    boost::system::error_code ec;
    if (plain_)
        asio::write(*plain_, asio::buffer(bytes.data(), bytes.size()), ec);
    else
        asio::write(*tls_, asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
}

bool raw_conn::read_more(std::chrono::milliseconds timeout) {
    if (eof_)
        return false;
    std::array<char, 16 * 1024> chunk;
    bool done = false;
    boost::system::error_code ec;
    std::size_t n = 0;
    auto on_read = [&](boost::system::error_code e, std::size_t got) {
        ec = e;
        n = got;
        done = true;
    };
    if (plain_)
        plain_->async_read_some(asio::buffer(chunk), on_read);
    else
        tls_->async_read_some(asio::buffer(chunk), on_read);
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done) {
        // Cancel and let the handler run so `chunk` is no longer referenced.
        if (plain_)
            plain_->cancel();
        else
            tls_->next_layer().cancel();
        ioc_.restart();
        ioc_.run();
        buffer_.append(chunk.data(), n);
        return n > 0;
    }
    buffer_.append(chunk.data(), n);
    if (ec) {
        eof_ = true;
        return n > 0;
    }
    return true;
}

bool raw_conn::read_until(std::string_view needle, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (buffer_.find(needle) == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0 || eof_)
            return false;
        read_more(left);
    }
    return true;
}

bool raw_conn::read_to_eof(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        read_more(left);
    }
    return true;
}

void raw_conn::shutdown_send() {
    boost::system::error_code ec;
    if (plain_)
        plain_->shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    else
        tls_->next_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

std::vector<raw_response> parse_responses(std::string_view bytes) {
    std::vector<raw_response> out;
    while (!bytes.empty()) {
        http::response_parser<http::string_body> p;
        p.eager(true);
        boost::system::error_code ec;
        std::size_t used = 0;
        while (!p.is_done()) {
            const auto n = p.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
            used += n;
            if (ec || n == 0)
                break;
        }
        if (!p.is_done())
            break;
        auto res = p.release();
        raw_response r;
        r.status = res.result_int();
        r.body = res.body();
        r.keep_alive = res.keep_alive();
        for (const auto& f : res)
            r.headers.insert(f.name_string(), f.value());
        out.push_back(std::move(r));
        bytes.remove_prefix(used);
    }
    return out;
}

std::vector<raw_response> exchange(std::uint16_t port, std::string_view request,
                                   std::chrono::milliseconds timeout, bool tls) {
    raw_conn c(port, tls);
    c.write(request);
    c.read_to_eof(timeout);
    return parse_responses(c.buffer());
}

std::string publish_request(const std::string& api_key, const std::string& channel,
                            const std::string& event, std::string_view content_type) {
    json::object o;
    o["channel"] = channel;
    o["events"] = json::array{json::value(event)};
    const auto body = json::serialize(o);
    return "POST /event HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + api_key +
           "\r\nContent-Type: " + std::string(content_type) +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string encode_frame(unsigned opcode, std::string_view payload, bool fin, unsigned rsv,
                         bool mask) {
    std::string out;
    out.push_back(static_cast<char>((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)));
    const unsigned char m = mask ? 0x80 : 0;
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(m | payload.size()));
    } else if (payload.size() <= 0xffff) {
        out.push_back(static_cast<char>(m | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xff));
    } else {
        out.push_back(static_cast<char>(m | 127));
        for (int i = 7; i >= 0; --i)
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(payload.size()) >>
                                             (8 * i)) & 0xff));
    }
    static thread_local std::mt19937 rng(12345);
    std::array<unsigned char, 4> key{};
    if (mask) {
        for (auto& k : key)
            k = static_cast<unsigned char>(rng());
        out.append(reinterpret_cast<const char*>(key.data()), 4);
    }
    const std::size_t at = out.size();
    out.append(payload);
    if (mask)
        for (std::size_t i = 0; i < payload.size(); ++i)
            out[at + i] = static_cast<char>(out[at + i] ^ key[i % 4]);
    return out;
}

raw_ws::raw_ws(std::uint16_t port, const std::string& api_key, options opt)
    : conn_(port, opt.tls) {
    std::string req = "GET /event/realtime HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                      opt.key + "\r\nSec-WebSocket-Protocol: aws-appsync-event-ws," +
                      header_subprotocol(api_key) + "\r\n\r\n";
    conn_.write(req + opt.extra);
    conn_.read_until("\r\n\r\n");
    auto& buf = conn_.buffer();
    const auto end = buf.find("\r\n\r\n");
    if (end == std::string::npos) {
        upgrade_response_ = buf;
        buf.clear();
    } else {
        upgrade_response_ = buf.substr(0, end + 4);
        buf.erase(0, end + 4);
    }
    upgraded_ = upgrade_response_.rfind("HTTP/1.1 101", 0) == 0;
    if (opt.expect_101 && !upgraded_)
        throw std::runtime_error("upgrade refused: " + upgrade_response_);
}

bool raw_ws::send_frame(unsigned opcode, std::string_view payload, bool fin, unsigned rsv,
                        bool mask) {
    return conn_.write(encode_frame(opcode, payload, fin, rsv, mask));
}

std::optional<ws_frame> raw_ws::next_frame(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    auto& buf = conn_.buffer();
    while (true) {
        if (buf.size() >= 2) {
            const auto b0 = static_cast<unsigned char>(buf[0]);
            const auto b1 = static_cast<unsigned char>(buf[1]);
            std::uint64_t len = b1 & 0x7f;
            std::size_t head = 2;
            bool have_len = true;
            if (len == 126) {
                have_len = buf.size() >= 4;
                if (have_len)
                    len = (static_cast<std::uint64_t>(static_cast<unsigned char>(buf[2])) << 8) |
                          static_cast<unsigned char>(buf[3]);
                head = 4;
            } else if (len == 127) {
                have_len = buf.size() >= 10;
                if (have_len) {
                    len = 0;
                    for (int i = 0; i < 8; ++i)
                        len = (len << 8) | static_cast<unsigned char>(buf[2 + i]);
                }
                head = 10;
            }
            if (have_len && buf.size() >= head + len) {
                ws_frame f;
                f.fin = (b0 & 0x80) != 0;
                f.rsv = (b0 >> 4) & 7;
                f.opcode = b0 & 0x0f;
                f.payload = buf.substr(head, len);
                buf.erase(0, head + len);
                return f;
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0 || conn_.eof())
            return std::nullopt;
        conn_.read_more(left);
    }
}

std::optional<json::object> raw_ws::next_json(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return std::nullopt;
        auto f = next_frame(left);
        if (!f)
            return std::nullopt;
        if (f->opcode == 0x8) {
            close_payload_ = f->payload;
            return std::nullopt;
        }
        if (f->opcode != 0x1)
            continue;
        boost::system::error_code ec;
        auto v = json::parse(f->payload, ec);
        if (ec || !v.is_object())
            continue;
        if (v.as_object().at("type").as_string() == "ka")
            continue;
        return v.as_object();
    }
}

std::optional<json::object> raw_ws::expect_type(const std::string& type,
                                                std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return std::nullopt;
        auto o = next_json(left);
        if (!o)
            return std::nullopt;
        if (o->at("type").as_string() == type)
            return o;
    }
}

int raw_ws::wait_close(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return -1;
        auto f = next_frame(left);
        if (!f)
            return -1;
        if (f->opcode != 0x8)
            continue;
        close_payload_ = f->payload;
        if (f->payload.size() < 2)
            return 0;
        return (static_cast<unsigned char>(f->payload[0]) << 8) |
               static_cast<unsigned char>(f->payload[1]);
    }
}

std::string auth_object(const std::string& api_key) {
    json::object o;
    o["host"] = "127.0.0.1";
    o["x-api-key"] = api_key;
    return json::serialize(o);
}

std::string subscribe_text(const std::string& api_key, const std::string& id,
                           const std::string& channel) {
    return R"({"type":"subscribe","id":")" + id + R"(","channel":")" + channel +
           R"(","authorization":)" + auth_object(api_key) + "}";
}

std::string publish_text(const std::string& api_key, const std::string& id,
                         const std::string& channel, const std::vector<std::string>& events) {
    json::object o;
    o["type"] = "publish";
    o["id"] = id;
    o["channel"] = channel;
    json::array arr;
    for (const auto& e : events)
        arr.emplace_back(e);
    o["events"] = std::move(arr);
    o["authorization"] = json::parse(auth_object(api_key));
    return json::serialize(o);
}

std::size_t rss_kb(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stoul(line.substr(6));
    return 0;
}

std::size_t open_fds(int pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    std::size_t n = 0;
    if (DIR* d = opendir(dir.c_str())) {
        while (const dirent* e = readdir(d))
            if (e->d_name[0] != '.')
                ++n;
        closedir(d);
    }
    return n;
}

}  // namespace eventcast::testing

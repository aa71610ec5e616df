// The chat client speaks to a running server exactly as any app would: the AppSync Events
// WebSocket for the answer, POST /chat for the question. Blocking Beast calls; one stream.
#include "app/chat_client.hpp"

#include "core/base64.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>

namespace eventcast::app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;

namespace {

// SNI; SSL_set_tlsext_host_name is a macro with a C cast, so call what it expands to.
template <class SslStream>
void set_sni(SslStream& s, const std::string& host) {
    SSL_ctrl(s.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             static_cast<void*>(const_cast<char*>(host.c_str())));
}

struct endpoint {
    bool tls = false;
    std::string host;
    std::string port;
};

// Plain or TLS stream behind one interface, so the protocol code is written once.
template <class Stream>
int converse(Stream& ws_next, const endpoint& ep, asio::io_context& ioc, asio::ssl::context& ssl,
             const std::string& cred_name, const std::string& cred_value, const std::string& user,
             const std::string& ns, const json::object& chat_body) {
    websocket::stream<Stream&> ws(ws_next);
    // x-api-key, or Authorization with a Cognito/OIDC token or a Lambda authorizer's token.
    const std::string auth =
        json::serialize(json::object{{"host", ep.host + ":" + ep.port}, {cred_name, cred_value}});
    ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
        req.set(http::field::sec_websocket_protocol,
                "aws-appsync-event-ws,header-" + core::base64url_encode(auth));
    }));
    ws.handshake(ep.host + ":" + ep.port, "/event/realtime");
    ws.text(true);
    auto send = [&](const json::object& o) { ws.write(asio::buffer(json::serialize(o))); };
    beast::flat_buffer buf;
    auto next = [&]() -> json::object {
        buf.consume(buf.size());
        ws.read(buf);
        return json::parse(beast::buffers_to_string(buf.data())).as_object();
    };
    send({{"type", "connection_init"}});
    const std::string channel = ns + "/" + user;
    send({{"type", "subscribe"},
          {"id", "chat-cli"},
          {"channel", channel},
          {"authorization", json::parse(auth)}});
    while (true) {
        auto m = next();
        const auto type = m.at("type").as_string();
        if (type == "subscribe_success")
            break;
        if (type == "connection_error" || type == "subscribe_error" || type == "error") {
            std::cerr << "eventcast chat: " << json::serialize(m) << "\n";
            return 1;
        }
    }

    // POST /chat on a second connection of the same kind.
    http::request<http::string_body> req{http::verb::post, "/chat", 11};
    req.set(http::field::host, ep.host + ":" + ep.port);
    req.set(cred_name, cred_value);
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(chat_body);
    req.prepare_payload();
    http::response<http::string_body> res;
    asio::ip::tcp::resolver resolver(ioc);
    const auto addrs = resolver.resolve(ep.host, ep.port);
    beast::flat_buffer hbuf;
    if (ep.tls) {
        beast::ssl_stream<beast::tcp_stream> s(ioc, ssl);
        beast::get_lowest_layer(s).connect(addrs);
        set_sni(s, ep.host);
        s.handshake(asio::ssl::stream_base::client);
        http::write(s, req);
        http::read(s, hbuf, res);
    } else {
        beast::tcp_stream s(ioc);
        s.connect(addrs);
        http::write(s, req);
        http::read(s, hbuf, res);
    }
    if (res.result_int() != 200) {
        std::cerr << "eventcast chat: POST /chat answered " << res.result_int() << ": "
                  << res.body() << "\n";
        return 1;
    }
    const auto stream_id = std::string(json::parse(res.body()).at("streamId").as_string());

    while (true) {
        auto m = next();
        if (m.at("type").as_string() != "data")
            continue;
        auto ev = json::parse(m.at("event").as_string()).as_object();
        if (ev.at("streamId").as_string() != stream_id)
            continue;
        const auto type = ev.at("type").as_string();
        if (type == "start") {
            std::cerr << "[" << json::value_to<std::string>(ev.at("provider")) << " "
                      << json::value_to<std::string>(ev.at("model")) << "]\n";
        } else if (type == "delta") {
            std::cout << std::string_view(ev.at("data").as_string()) << std::flush;
        } else if (type == "end") {
            std::cout << "\n";
            std::cerr << "[" << std::string_view(ev.at("stopReason").as_string());
            if (const auto* u = ev.if_contains("usage"))
                std::cerr << ", usage " << json::serialize(*u);
            std::cerr << "]\n";
            return 0;
        } else if (type == "error") {
            std::cout << "\n";
            std::cerr << "eventcast chat: " << std::string_view(ev.at("errorType").as_string())
                      << ": " << std::string_view(ev.at("message").as_string()) << "\n";
            return 1;
        }
    }
}

}  // namespace

int run_chat_client(int argc, const char* const* argv) {
    CLI::App app{"eventcast chat: ask the server's model and print the answer as it streams",
                 "chat"};
    std::string prompt;
    std::string url = "http://127.0.0.1:8080";
    std::string key;
    std::string user;
    std::string ns = "BedrockChat";
    std::string provider;
    std::string model;
    std::string system;
    std::int64_t max_tokens = 0;
    std::string cacert;
    bool insecure = false;
    app.add_option("prompt", prompt, "what to ask")->required();
    app.add_option("--url", url, "server URL (http:// or https://)")
        ->envname("EVENTCAST_URL")
        ->capture_default_str();
    app.add_option("--api-key", key, "API key")->envname("EVENTCAST_API_KEY");
    std::string token;
    app.add_option("--token", token,
                   "Authorization token instead of an API key (Cognito/OIDC JWT, Lambda token); "
                   "--user must then be the token's identity")
        ->envname("EVENTCAST_TOKEN");
    app.add_option("--user", user, "user id, the last channel segment (default: $USER)");
    app.add_option("--chat-namespace", ns, "chat namespace")->capture_default_str();
    app.add_option("--provider", provider, "demo, bedrock or openai (default: the server's)");
    app.add_option("--model", model, "model id");
    app.add_option("--system", system, "system prompt");
    app.add_option("--max-tokens", max_tokens, "answer length cap");
    app.add_option("--cacert", cacert, "PEM to trust for https (e.g. the self-signed one)");
    app.add_flag("--insecure", insecure, "https without certificate verification");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (key.empty() && token.empty()) {
        std::cerr << "eventcast chat: give --api-key (EVENTCAST_API_KEY) or --token "
                     "(EVENTCAST_TOKEN)\n";
        return 2;
    }
    const std::string cred_name = token.empty() ? "x-api-key" : "Authorization";
    const std::string cred_value = token.empty() ? key : token;
    if (user.empty()) {
        const char* u = std::getenv("USER");
        user = u && *u ? u : "me";
    }
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https")) {
        std::cerr << "eventcast chat: --url " << url << " is not an http(s) URL\n";
        return 2;
    }
    endpoint ep;
    ep.tls = parsed->scheme() == "https";
    ep.host = std::string(parsed->host());
    ep.port = parsed->has_port() ? std::string(parsed->port()) : (ep.tls ? "443" : "80");
    json::object body{{"userId", user}, {"prompt", prompt}};
    if (!provider.empty())
        body["provider"] = provider;
    if (!model.empty())
        body["model"] = model;
    if (!system.empty())
        body["system"] = system;
    if (max_tokens > 0)
        body["maxTokens"] = max_tokens;
    try {
        asio::io_context ioc;
        asio::ssl::context ssl(asio::ssl::context::tls_client);
        if (insecure) {
            ssl.set_verify_mode(asio::ssl::verify_none);
        } else {
            ssl.set_default_verify_paths();
            if (!cacert.empty())
                ssl.load_verify_file(cacert);
            ssl.set_verify_mode(asio::ssl::verify_peer);
            ssl.set_verify_callback(asio::ssl::host_name_verification(ep.host));
        }
        asio::ip::tcp::resolver resolver(ioc);
        const auto addrs = resolver.resolve(ep.host, ep.port);
        if (ep.tls) {
            beast::ssl_stream<beast::tcp_stream> s(ioc, ssl);
            beast::get_lowest_layer(s).connect(addrs);
            set_sni(s, ep.host);
            s.handshake(asio::ssl::stream_base::client);
            return converse(s, ep, ioc, ssl, cred_name, cred_value, user, ns, body);
        }
        beast::tcp_stream s(ioc);
        s.connect(addrs);
        return converse(s, ep, ioc, ssl, cred_name, cred_value, user, ns, body);
    } catch (const std::exception& e) {
        std::cerr << "eventcast chat: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace eventcast::app

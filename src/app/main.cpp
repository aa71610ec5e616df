// eventcast: command line entry. `eventcast serve` reads config, wires the components and runs
// until SIGTERM/SIGINT.
#include "api/event_api.hpp"
#include "app/chat_client.hpp"
#include "auth/authorizer.hpp"
#include "chat/chat_service.hpp"
#include "cluster/jetstream_history.hpp"
#include "core/config.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "aws/aws_credentials.hpp"
#include "llm/demo_provider.hpp"
#include "llm/http_providers.hpp"
#include "aws/transport.hpp"
#include "net/server.hpp"
#include "net/tls.hpp"
#include "pubsub/broker.hpp"

#include <curl/curl.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sys/resource.h>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: eventcast serve [options]   run the server (eventcast serve --help for options)\n"
    "       eventcast chat \"prompt\"      ask the server's model, print the answer as it streams\n"
    "       eventcast --version\n";

// Every connection is a file descriptor, and Debian's default soft limit is 1,024, so a server
// left at it refuses connections (accept: EMFILE) long before memory runs out. Raise the soft
// limit to the hard one, as Go's runtime and nginx's worker_rlimit_nofile do, and say so.
void raise_fd_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    const rlim_t before = lim.rlim_cur;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            lim.rlim_cur = before;
    }
    eventcast::log::info("open files limit {} (was {}, hard {}): about that many connections",
                         static_cast<unsigned long long>(lim.rlim_cur),
                         static_cast<unsigned long long>(before),
                         static_cast<unsigned long long>(lim.rlim_max));
    if (lim.rlim_cur < 4096)
        eventcast::log::warn(
            "open files limit {} caps the connections this process can hold; raise the hard "
            "limit (LimitNOFILE= in a systemd unit, or ulimit -Hn) for more",
            static_cast<unsigned long long>(lim.rlim_cur));
}

int serve(int argc, const char* const* argv) {
    using namespace eventcast;
    auto loaded = core::load_config(argc, argv);
    if (!loaded) {
        const auto& problems = loaded.error();
        if (problems.size() == 1 && problems[0].rfind("help:", 0) == 0) {
            std::cout << problems[0].substr(5);
            return 0;
        }
        for (const auto& p : problems)
            std::cerr << "eventcast: " << p << "\n";
        return 2;
    }
    core::config cfg = std::move(*loaded);
    log::level level{};
    log::parse_level(cfg.log_level, level);
    log::init(level, cfg.log_json);
    raise_fd_limit();

    if (cfg.api_keys.empty() && auth::config_allows(cfg.auth, auth::mode::api_key)) {
        cfg.api_keys.push_back({"ec-" + core::random_secret_hex(16), std::nullopt});
        cfg.api_key_generated = true;
    }

    try {
        net::tls_setup tls;
        net::make_tls(cfg, tls);
        pubsub::broker broker;
        core::stats stats;
        // The outbound HTTP thread: model providers, and the Lambda authorizer webhook.
        aws::transport transport;
        auto authz = auth::authorizer::create(cfg, &transport);
        if (!authz) {
            for (const auto& p : authz.error())
                std::cerr << "eventcast: " << p << "\n";
            return 2;
        }
        // Cluster mode keeps history in NATS JetStream, so that every node can serve a resume.
        std::shared_ptr<history::store> history;
        if (!cfg.cluster.urls.empty())
            history = std::make_shared<cluster::jetstream_history>(cfg);
        api::event_api api(cfg, broker, stats, **authz, history);
        std::map<std::string, std::unique_ptr<llm::provider>> providers;
        providers["demo"] = std::make_unique<llm::demo_provider>(transport, cfg.chat.demo_pace,
                                                                 cfg.chat.demo_words_per_chunk);
        std::string default_provider = cfg.chat.provider;
        if (!cfg.chat.openai_base_url.empty()) {
            llm::openai_settings os;
            os.base_url = cfg.chat.openai_base_url;
            os.api_key = cfg.chat.openai_api_key;
            os.default_model =
                cfg.chat.openai_model.empty() ? "gpt-4o-mini" : cfg.chat.openai_model;
            os.max_tokens_field = cfg.chat.openai_max_tokens_field;
            os.connect_timeout = cfg.chat.connect_timeout;
            os.idle_timeout = cfg.chat.idle_timeout;
            log::info("chat: openai-compatible provider at {} (model {})", os.base_url,
                      os.default_model);
            providers["openai"] = std::make_unique<llm::openai_provider>(transport, std::move(os));
            if (default_provider.empty())
                default_provider = "openai";
        }
        // Bedrock is on when asked for, or when AWS credentials and a region are at hand. IMDS is
        // consulted only when Bedrock was asked for, so start-up never waits on the network.
        const bool want_bedrock = cfg.chat.provider == "bedrock";
        aws::environment aws_env;
        aws::credential_chain aws_chain(aws_env);
        if (auto bs = llm::bedrock_settings_from(cfg.chat, aws_env, aws_chain, want_bedrock)) {
            log::info("chat: bedrock provider, region {}, endpoint {}, model {}, auth {}",
                      bs->region, bs->endpoint, bs->default_model,
                      bs->bearer_token.empty() ? "SigV4" : "bearer token");
            providers["bedrock"] =
                std::make_unique<llm::bedrock_provider>(transport, std::move(*bs), aws_chain);
            if (default_provider.empty())
                default_provider = "bedrock";
        } else if (want_bedrock) {
            throw std::runtime_error("--chat-provider bedrock: " + bs.error());
        }
        if (default_provider.empty())
            default_provider = "demo";
        if (!providers.count(default_provider))
            throw std::runtime_error("--chat-provider " + default_provider +
                                     " is not available in this build");
        if (default_provider == "demo")
            log::info(
                "chat: no model provider configured; POST /chat uses the offline demo "
                "model (deterministic text, not a real LLM). Configure --openai-base-url "
                "or AWS credentials and --bedrock-region for a real one.");
        else
            log::info("chat: default provider {}", default_provider);
        chat::chat_service chat(cfg, api, transport, std::move(providers), default_provider);

        net::server srv(cfg, api, &chat, tls);

        const auto port = srv.port();
        std::string ns_list;
        for (const auto& ns : cfg.namespaces)
            ns_list += (ns_list.empty() ? "" : ",") + ns;
        log::info("eventcast {} listening on {}:{} (http, https, ws, wss) threads={} namespaces={}",
                  EVENTCAST_VERSION, cfg.host, port, cfg.threads, ns_list);
        if (tls.self_signed)
            log::info("tls: generated a self-signed certificate for localhost, sha256 {}{}",
                      tls.fingerprint_sha256,
                      cfg.tls_self_signed_out.empty()
                          ? std::string(" (--tls-self-signed-out FILE saves it to trust)")
                          : " written to " + cfg.tls_self_signed_out);
        if (cfg.api_key_generated) {
            // The one place a key is printed: it was generated here and the operator needs it.
            // stdout, not the log, so log shipping does not pick it up.
            std::cout << "eventcast: no --api-key given; generated API key: "
                      << cfg.api_keys.front().value << std::endl;
        }
        log::info("endpoint https://{}:{}/event  realtime wss://{}:{}/event/realtime", cfg.host,
                  port, cfg.host, port);
        if (!cfg.port_file.empty()) {
            const std::string tmp = cfg.port_file + ".tmp";
            std::ofstream(tmp) << port << "\n";
            std::rename(tmp.c_str(), cfg.port_file.c_str());  // readers never see a partial file
        }
        const int rc = srv.run();
        transport.stop();  // ends provider transfers while the chat service still exists
        return rc;
    } catch (const std::exception& e) {
        log::error("eventcast: {}", e.what());
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Before any thread starts (STYLE.md §6).
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc >= 2 && std::strcmp(argv[1], "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "chat") == 0)
        return eventcast::app::run_chat_client(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
        std::cout << "eventcast " << EVENTCAST_VERSION << "\n";
        return 0;
    }
    std::cerr << usage;
    return argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0)
               ? 0
               : 2;
}

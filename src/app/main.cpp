// eventcast: command line entry. `eventcast serve` reads config, wires the components and runs
// until SIGTERM/SIGINT.
#include "api/event_api.hpp"
#include "core/config.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "net/server.hpp"
#include "net/tls.hpp"
#include "pubsub/broker.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: eventcast serve [options]   run the server (eventcast serve --help for options)\n"
    "       eventcast --version\n";

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

    if (cfg.api_keys.empty()) {
        cfg.api_keys.push_back({"ec-" + core::random_secret_hex(16), std::nullopt});
        cfg.api_key_generated = true;
    }

    try {
        net::tls_setup tls;
        net::make_tls(cfg, tls);
        pubsub::broker broker;
        core::stats stats;
        api::event_api api(cfg, broker, stats);
        net::server srv(cfg, api, tls);

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
        return srv.run();
    } catch (const std::exception& e) {
        log::error("eventcast: {}", e.what());
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
        std::cout << "eventcast " << EVENTCAST_VERSION << "\n";
        return 0;
    }
    std::cerr << usage;
    return argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0)
               ? 0
               : 2;
}

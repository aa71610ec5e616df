// eventcast: command line entry. `eventcast serve` reads config, has app/components build and
// wire the components, and runs the server until SIGTERM/SIGINT.
#include "app/chat_client.hpp"
#include "app/components.hpp"
#include "core/config.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "net/server.hpp"
#include "net/tls.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
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
        auto built = app::components::build(cfg);
        if (!built) {
            for (const auto& p : built.error())
                std::cerr << "eventcast: " << p << "\n";
            return 2;
        }
        auto& parts = **built;
        net::server srv(cfg, parts.api(), parts.chat(), tls, parts.cluster_parts());

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
        if (!cfg.admin_listen.empty())
            log::info("admin listener on {} (port {}): /metrics /healthz /readyz", cfg.admin_listen,
                      srv.admin_port());
        if (!cfg.port_file.empty()) {
            const std::string tmp = cfg.port_file + ".tmp";
            std::ofstream(tmp) << port << "\n";
            std::rename(tmp.c_str(), cfg.port_file.c_str());  // readers never see a partial file
        }
        // SIGHUP: the configuration (flags, environment, --config file) is read again. A file
        // with problems keeps the running configuration. Applied at once: the log level, the
        // API keys (open connections keep what they were authorized for) and the certificate
        // files, read again even when their names did not change (rotation); other changed
        // options are named, as they take effect only with a restart.
        srv.on_reload([&cfg, &parts, &tls, argc, argv, running = cfg]() mutable {
            auto again = core::load_config(argc, argv);
            if (!again) {
                std::string why;
                for (const auto& p : again.error())
                    why += (why.empty() ? "" : "; ") + p;
                log::error("reload: the configuration has problems, the running one is kept: {}",
                           why);
                return;
            }
            if (cfg.api_key_generated && again->api_keys.empty())
                again->api_keys = running.api_keys;  // the generated key is not in any file
            auto changed = core::changed_options(running, *again);
            auto take = [&](std::string_view name) {
                const auto it = std::find(changed.begin(), changed.end(), name);
                if (it == changed.end())
                    return false;
                changed.erase(it);
                return true;
            };
            bool failed = false;
            if (take("log-level")) {
                log::level lv{};
                log::parse_level(again->log_level, lv);
                log::set_level(lv);
                running.log_level = again->log_level;
                log::warn("reload: log level is now {}", again->log_level);
            }
            if (take("api-key")) {
                if (auto problems = parts.reload(*again); !problems.empty()) {
                    failed = true;
                    for (const auto& p : problems)
                        log::error("reload: {}", p);
                } else {
                    running.api_keys = again->api_keys;
                    log::warn("reload: {} API keys now", again->api_keys.size());
                }
            }
            // A configured certificate is rotated; a self-signed one becomes a configured one
            // only by a restart (the name stays in `changed`).
            if (!tls.self_signed && !again->tls_cert_file.empty()) {
                take("tls-cert");
                take("tls-key");
                const auto before = tls.fingerprint_sha256;
                if (auto problem = tls.reload(again->tls_cert_file, again->tls_key_file);
                    !problem.empty()) {
                    failed = true;
                    log::error("reload: the certificate is kept: {}", problem);
                } else {
                    running.tls_cert_file = again->tls_cert_file;
                    running.tls_key_file = again->tls_key_file;
                    if (tls.fingerprint_sha256 != before)
                        log::warn("reload: new TLS handshakes present certificate sha256 {}",
                                  tls.fingerprint_sha256);
                }
            }
            // Namespace code is read again (a file that fails keeps the old code; it logs why).
            if (auto* code = parts.handlers()) {
                take("namespace-code");
                code->reload(again->handlers.namespace_code);
            }
            std::string restart;
            for (const auto& name : changed)
                restart += (restart.empty() ? "" : ", ") + ("--" + name);
            if (!restart.empty())
                log::warn("reload: changed, but applied only by a restart: {}", restart);
            else if (!failed)
                log::info("reload: done");
        });
        parts.start();
        const int rc = srv.run();
        parts.stop();
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

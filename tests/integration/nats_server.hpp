// A real nats-server for the cluster tests: JetStream on (-js) with its store in a temporary
// directory, on 127.0.0.1 and a free port, optionally with a configuration file (max_payload,
// tls, authorization); killed and its directory removed on destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace eventcast::testing {

/// Path of nats-server (PATH, then /usr/sbin where Debian installs it), or "" when missing.
std::string nats_server_binary();

/// The options that join a node to the nats-server at `url`, reconnecting after 50 ms and at
/// most 200 ms apart (so the tests do not wait out the defaults), then `extra`.
std::vector<std::string> cluster_node_args(const std::string& url,
                                           std::vector<std::string> extra = {});

class nats_server_process {
public:
    /// Starts on a free port. `config` (when not empty) is nats-server configuration text,
    /// written to a file in dir() and passed with -c (the address, port and store stay the
    /// command line's). Throws std::runtime_error when it does not come up.
    explicit nats_server_process(std::string config = {});
    ~nats_server_process();
    nats_server_process(const nats_server_process&) = delete;
    nats_server_process& operator=(const nats_server_process&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& scheme = "nats") const {
        return scheme + "://127.0.0.1:" + std::to_string(port_);
    }
    /// The temporary directory (store, log, configuration), for files a configuration names.
    const std::string& dir() const { return dir_; }
    /// SIGKILL, as a crash would: clients see the TCP connection drop.
    void kill_now();
    /// Starts again on the same port (and store directory). Throws when it does not come up.
    void restart();

private:
    void launch();
    int pid_ = -1;
    std::uint16_t port_ = 0;
    std::string dir_;
    std::string config_;  // path of the configuration file, or ""
};

}  // namespace eventcast::testing

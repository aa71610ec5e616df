// A TCP proxy on 127.0.0.1 for the cluster tests that can go silent: freeze() stops forwarding
// bytes in both directions while every socket stays open (a partition, a frozen server, a dead
// load balancer in between), thaw() forwards again, including what queued up meanwhile.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace eventcast::testing {

class frozen_link {
public:
    /// Listens on a free port and forwards each connection to 127.0.0.1:`upstream_port`.
    explicit frozen_link(std::uint16_t upstream_port);
    ~frozen_link();
    frozen_link(const frozen_link&) = delete;
    frozen_link& operator=(const frozen_link&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& scheme = "nats") const {
        return scheme + "://127.0.0.1:" + std::to_string(port_);
    }
    /// Stops forwarding; new connections are still accepted (and stay silent).
    void freeze() { frozen_ = true; }
    void thaw() { frozen_ = false; }
    /// Connections accepted so far.
    int connections() const { return accepted_.load(); }

private:
    void accept_loop();
    void pump(int client, int upstream);

    std::uint16_t upstream_;
    std::uint16_t port_ = 0;
    int listener_ = -1;
    std::atomic<bool> frozen_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<int> accepted_{0};
    std::mutex threads_mutex_;
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

}  // namespace eventcast::testing

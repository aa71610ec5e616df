// What every connection needs from the server: the API, the TLS context, and the registry that
// graceful shutdown walks. Outlives every session (the server joins its threads first).
#pragma once

#include "api/event_api.hpp"
#include "auth/rate_limit.hpp"

namespace eventcast::chat {
class chat_service;
}
namespace eventcast::cluster {
class nats_bridge;
class chat_directory;
}  // namespace eventcast::cluster

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace eventcast::net {

/// A connection that shutdown can close. Thread-safe: implementations hop onto their strand.
class closable {
public:
    virtual ~closable() = default;
    /// Starts closing: WebSocket sessions send close 1001 (going away), HTTP sessions close.
    virtual void shutdown() = 0;
    /// Called by the server's ticker (every keep-alive interval or lifetime, whichever is
    /// shorter): WebSocket sessions send `ka` when due and close past their lifetime. One
    /// server-wide timer instead of two per connection keeps idle connections small.
    virtual void tick(std::chrono::steady_clock::time_point now) { (void)now; }
};

/// Thread-safe set of live connections.
class session_registry {
public:
    std::uint64_t add(std::weak_ptr<closable> s) {
        std::lock_guard lock(mutex_);
        const auto id = ++next_id_;
        sessions_.emplace(id, std::move(s));
        return id;
    }
    void remove(std::uint64_t id) {
        std::lock_guard lock(mutex_);
        sessions_.erase(id);
    }
    /// Calls shutdown() on every live session, outside the lock.
    void shutdown_all() {
        for (auto& s : live())
            s->shutdown();
    }
    /// Calls tick(now) on every live session, outside the lock.
    void tick_all(std::chrono::steady_clock::time_point now) {
        for (auto& s : live())
            s->tick(now);
    }
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return sessions_.size();
    }

private:
    std::vector<std::shared_ptr<closable>> live() {
        std::vector<std::shared_ptr<closable>> out;
        std::lock_guard lock(mutex_);
        out.reserve(sessions_.size());
        for (auto& [id, w] : sessions_)
            if (auto s = w.lock())
                out.push_back(std::move(s));
        return out;
    }

    mutable std::mutex mutex_;
    std::uint64_t next_id_ = 0;
    std::unordered_map<std::uint64_t, std::weak_ptr<closable>> sessions_;
};

struct server_context {
    api::event_api& api;
    chat::chat_service* chat;  // null: /chat answers 404
    const core::config& cfg;
    boost::asio::ssl::context& ssl;
    session_registry& registry;
    std::atomic<bool> stopping{false};
    auth::connection_counter per_ip;                    // --max-connections-per-ip
    const cluster::nats_bridge* cluster = nullptr;      // null: single node (no --cluster)
    cluster::chat_directory* chat_directory = nullptr;  // asks other nodes for chat streams
};

}  // namespace eventcast::net

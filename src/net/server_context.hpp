// What every connection needs from the server: the API, the TLS context, the route table and
// the registry that graceful shutdown walks. Outlives every session (the server joins its
// threads first). What net knows of cluster mode is the two interfaces below; app/ builds the
// cluster's components and adapts them (net includes nothing from cluster/).
#pragma once

#include "api/event_api.hpp"
#include "auth/rate_limit.hpp"
#include "chat/chat_service.hpp"

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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
    /// The live sessions, to walk outside the lock.
    std::vector<std::shared_ptr<closable>> live() {
        std::vector<std::shared_ptr<closable>> out;
        std::lock_guard lock(mutex_);
        out.reserve(sessions_.size());
        for (auto& [id, w] : sessions_)
            if (auto s = w.lock())
                out.push_back(std::move(s));
        return out;
    }

private:
    mutable std::mutex mutex_;
    std::uint64_t next_id_ = 0;
    std::unordered_map<std::uint64_t, std::weak_ptr<closable>> sessions_;
};

/// Cluster mode as /readyz and /metrics see it. Thread-safe.
class cluster_status {
public:
    virtual ~cluster_status() = default;
    virtual bool connected() const = 0;
    /// "connecting", "connected", "reconnecting" or "closed".
    virtual std::string state() const = 0;
    /// The cluster's own metrics, in Prometheus text format.
    virtual void append_metrics(std::string& out) const = 0;
};

/// Asks the other nodes about a chat stream this node does not run (GET /chat/<id>, cancel).
/// Thread-safe.
class remote_chat {
public:
    virtual ~remote_chat() = default;
    /// `op` is "status" or "cancel". `done` runs once, from another thread: the owner's answer,
    /// or nullopt when no node answered within `timeout`.
    virtual void ask(std::string_view op, std::string_view stream_id, std::string_view user,
                     std::chrono::milliseconds timeout,
                     std::function<void(std::optional<chat::http_answer>)> done) = 0;
};

class router;

/// What one listening port serves: the client port has the whole route table and WebSocket
/// upgrades; --admin-listen has /metrics, /healthz and /readyz only.
struct port_role {
    const router* routes = nullptr;
    bool upgrades = true;  // WebSocket upgrades to /event/realtime
};

struct server_context {
    api::event_api& api;
    chat::chat_service* chat;  // null: /chat answers 404
    const core::config& cfg;
    boost::asio::ssl::context& ssl;
    session_registry& registry;
    std::atomic<bool> stopping{false};        // SIGTERM came: /readyz 503 (the drain has begun)
    auth::connection_counter per_ip;          // --max-connections-per-ip
    const router* routes = nullptr;           // the HTTP route table (net/http_routes.cpp)
    const router* admin_routes = nullptr;     // --admin-listen's table; null without it
    const cluster_status* cluster = nullptr;  // null: single node (no --cluster)
    remote_chat* chat_directory = nullptr;    // cluster mode with chat: the other nodes' streams
};

}  // namespace eventcast::net

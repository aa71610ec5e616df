// What every connection needs from the server: the API, the TLS context, and the registry that
// graceful shutdown walks. Outlives every session (the server joins its threads first).
#pragma once

#include "api/event_api.hpp"

namespace eventcast::chat {
class chat_service;
}

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace eventcast::net {

/// A connection that shutdown can close. Thread-safe: implementations hop onto their strand.
class closable {
public:
    virtual ~closable() = default;
    /// Starts closing: WebSocket sessions send close 1001 (going away), HTTP sessions close.
    virtual void shutdown() = 0;
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
        std::vector<std::shared_ptr<closable>> live;
        {
            std::lock_guard lock(mutex_);
            for (auto& [id, w] : sessions_)
                if (auto s = w.lock())
                    live.push_back(std::move(s));
        }
        for (auto& s : live)
            s->shutdown();
    }
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return sessions_.size();
    }

private:
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
};

}  // namespace eventcast::net

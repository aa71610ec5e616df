// What eventcast knows about one namespace, built once at start and found once per operation:
// the namespace's order lock (positions, history and fan-out in one order) and, as namespaces
// gain them, its handler code. An operation looks its namespace up once (event_api) and passes
// the state down, instead of every layer finding it again by name.
#pragma once

#include "auth/verifier.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace eventcast::api {

struct namespace_state {
    explicit namespace_state(std::string n) : name(std::move(n)) {}
    const std::string name;
    // Who may publish and subscribe here, and whether it is per-user (set by event_api from
    // the authorizer at start; read-only after).
    const auth::namespace_policy* auth = nullptr;
    // Serialises position assignment, history append and live fan-out, so that delivery order
    // is position order and a resume sees each event once (docs/protocol.md).
    std::mutex order;
    // For the per-namespace metrics: publish requests accepted, their events, and the data
    // frames queued to subscribers (one relaxed add per publish, not per delivery).
    std::atomic<std::uint64_t> publishes{0};
    std::atomic<std::uint64_t> events_in{0};
    std::atomic<std::uint64_t> deliveries{0};
};

/// The namespaces this server defines (--namespace), fixed at start. Thread-safe: read-only
/// after construction (a namespace_state's own lock is its own).
class namespace_table {
public:
    explicit namespace_table(const std::vector<std::string>& names) {
        for (const auto& n : names)
            by_name_.emplace(n, std::make_unique<namespace_state>(n));
    }
    template <class F>
    void for_each(F f) {
        for (auto& [name, state] : by_name_)
            f(*state);
    }
    template <class F>
    void for_each(F f) const {
        for (const auto& [name, state] : by_name_)
            f(static_cast<const namespace_state&>(*state));
    }
    /// Null when `ns` is not defined. Looked up by string_view: no allocation.
    namespace_state* find(std::string_view ns) const noexcept {
        auto it = by_name_.find(ns);
        return it == by_name_.end() ? nullptr : it->second.get();
    }

private:
    struct sv_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, std::unique_ptr<namespace_state>, sv_hash, std::equal_to<>>
        by_name_;
};

}  // namespace eventcast::api

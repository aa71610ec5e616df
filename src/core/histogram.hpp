// A fixed-bucket latency histogram, updated lock-free from any thread and rendered in the
// Prometheus text format. Buckets are upper bounds in seconds.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace eventcast::core {

class histogram {
public:
    static constexpr std::array<double, 14> bounds = {
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

    void observe(std::chrono::nanoseconds d) noexcept {
        const double s = std::chrono::duration<double>(d).count();
        std::size_t i = 0;
        while (i < bounds.size() && s > bounds[i])
            ++i;
        buckets_[i].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(static_cast<std::uint64_t>(d.count()), std::memory_order_relaxed);
    }

    /// Appends `name_bucket{le=...}`, `name_sum`, `name_count` lines (HELP/TYPE included).
    void render(std::string& out, const std::string& name, const std::string& help) const {
        out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < bounds.size(); ++i) {
            cumulative += buckets_[i].load(std::memory_order_relaxed);
            out += name + "_bucket{le=\"" + format(bounds[i]) + "\"} " +
                   std::to_string(cumulative) + "\n";
        }
        cumulative += buckets_[bounds.size()].load(std::memory_order_relaxed);
        out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
        out += name + "_sum " + format(static_cast<double>(sum_ns_.load()) / 1e9) + "\n";
        out += name + "_count " + std::to_string(cumulative) + "\n";
    }

private:
    static std::string format(double v) {
        std::string s = std::to_string(v);
        while (s.size() > 1 && s.back() == '0')
            s.pop_back();
        if (!s.empty() && s.back() == '.')
            s.pop_back();
        return s;
    }
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace eventcast::core

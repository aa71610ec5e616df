// eventcast-bench latency histogram: log-linear buckets in the HdrHistogram style (64 linear
// sub-buckets per power of two, so any value is reported within 1.6%), fixed size, no
// allocation after construction. One per worker thread; merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace eventcast::bench {

class latency_histogram {
public:
    static constexpr int sub_bits = 6;
    static constexpr std::int64_t sub_count = std::int64_t{1} << sub_bits;
    static constexpr std::size_t bucket_count =
        static_cast<std::size_t>((64 - sub_bits + 1) * sub_count);

    /// Records one value in nanoseconds; negative values (clock skew between processes cannot
    /// happen with CLOCK_MONOTONIC, but a bug might) count as 0 and are tallied in negatives().
    void record(std::int64_t ns) {
        if (ns < 0) {
            ++negatives_;
            ns = 0;
        }
        ++counts_[index_of(ns)];
        ++count_;
        sum_ += static_cast<double>(ns);
        max_ = std::max(max_, ns);
    }

    void merge(const latency_histogram& other) {
        for (std::size_t i = 0; i < bucket_count; ++i)
            counts_[i] += other.counts_[i];
        count_ += other.count_;
        sum_ += other.sum_;
        max_ = std::max(max_, other.max_);
        negatives_ += other.negatives_;
    }

    void reset() { *this = latency_histogram{}; }

    std::uint64_t count() const { return count_; }
    std::uint64_t negatives() const { return negatives_; }
    std::int64_t max() const { return max_; }
    double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

    /// The value at quantile q (0..1): the middle of the bucket holding the ceil(q*count)-th
    /// smallest value, capped at the largest value seen. 0 when empty.
    std::int64_t quantile(double q) const {
        if (count_ == 0)
            return 0;
        const auto rank =
            static_cast<std::uint64_t>(std::max(1.0, std::ceil(q * static_cast<double>(count_))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            seen += counts_[i];
            if (seen >= rank)
                return std::min(max_, middle_of(i));
        }
        return max_;
    }

    static std::size_t index_of(std::int64_t v) {
        const auto u = static_cast<std::uint64_t>(v);
        if (u < static_cast<std::uint64_t>(sub_count))
            return static_cast<std::size_t>(u);
        const int exponent = 63 - std::countl_zero(u);  // >= sub_bits
        const int shift = exponent - sub_bits;
        const auto mantissa = (u >> shift) & static_cast<std::uint64_t>(sub_count - 1);
        return static_cast<std::size_t>((shift + 1) * sub_count +
                                        static_cast<std::int64_t>(mantissa));
    }

    static std::int64_t lower_of(std::size_t index) {
        const auto i = static_cast<std::int64_t>(index);
        if (i < sub_count)
            return i;
        const std::int64_t shift = i / sub_count - 1;
        const std::int64_t mantissa = i % sub_count;
        return (sub_count + mantissa) << shift;
    }

    static std::int64_t middle_of(std::size_t index) {
        const auto i = static_cast<std::int64_t>(index);
        if (i < sub_count)
            return i;
        const std::int64_t shift = i / sub_count - 1;
        return lower_of(index) + ((std::int64_t{1} << shift) >> 1);
    }

private:
    std::array<std::uint64_t, bucket_count> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t negatives_ = 0;
    double sum_ = 0;
    std::int64_t max_ = 0;
};

}  // namespace eventcast::bench

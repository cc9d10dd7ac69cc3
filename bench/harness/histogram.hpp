// histogram.hpp — a small log-linear latency histogram in the style of HdrHistogram.
//
// Values are unsigned 64-bit quantities (here: nanoseconds). Values below 2^kSubBits (256) are
// counted exactly; above that, every power of two is split into 2^(kSubBits - 1) (128) buckets of
// equal width, so a bucket's width is at most 1/128 of its lowest value: a quantile is reported as
// the highest value of its bucket, at most 0.8 % above the true sample. Values at or above
// 2^kMaxBits (about 73 minutes in ns) are counted in the last bucket; min() and max() stay exact.
//
// Recording is a count-leading-zeros, a shift and an increment into a fixed array (36 KiB): no
// allocation, no locks. Not thread-safe: keep one histogram per thread and merge() them at the end.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace pushpoll::harness {

class LatencyHistogram {
  // 128-bit: 2^42 ns values times 2^64 counts cannot overflow it; an integer add keeps record()
  // free of a floating-point dependency chain.
  __extension__ typedef unsigned __int128 Sum;

 public:
  static constexpr unsigned kSubBits = 8;                                // exact below 256
  static constexpr unsigned kMaxBits = 42;                               // clamp at 2^42 - 1
  static constexpr std::uint64_t kHalf = std::uint64_t{1} << (kSubBits - 1);  // buckets per octave
  static constexpr std::uint64_t kMaxTrackable = (std::uint64_t{1} << kMaxBits) - 1;
  static constexpr std::size_t kBuckets =
      static_cast<std::size_t>((kMaxBits - kSubBits + 1) * kHalf + kHalf);

  static_assert(kSubBits >= 2 && kSubBits < kMaxBits && kMaxBits < 64, "log-linear layout");
  static_assert(kBuckets == static_cast<std::size_t>(kHalf * (kMaxBits - kSubBits + 2)),
                "one octave of kHalf buckets per power of two above 2^kSubBits, plus the exact range");

  /// Index of the bucket that counts `v` (clamped to kMaxTrackable).
  [[nodiscard]] static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    if (v > kMaxTrackable) v = kMaxTrackable;
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v | 1u));
    const unsigned shift = msb >= kSubBits ? msb - (kSubBits - 1) : 0u;
    return static_cast<std::size_t>(shift * kHalf + (v >> shift));
  }
  /// Lowest value counted by bucket `i`.
  [[nodiscard]] static constexpr std::uint64_t bucket_low(std::size_t i) noexcept {
    const auto idx = static_cast<std::uint64_t>(i);
    if (idx < 2 * kHalf) return idx;
    const std::uint64_t shift = idx / kHalf - 1;
    return (idx - shift * kHalf) << shift;
  }
  /// Highest value counted by bucket `i` (HdrHistogram's "highest equivalent value").
  [[nodiscard]] static constexpr std::uint64_t bucket_high(std::size_t i) noexcept {
    const auto idx = static_cast<std::uint64_t>(i);
    if (idx < 2 * kHalf) return idx;
    const std::uint64_t shift = idx / kHalf - 1;
    return bucket_low(i) + (std::uint64_t{1} << shift) - 1;
  }

  void record(std::uint64_t v) noexcept { record_n(v, 1); }
  void record_n(std::uint64_t v, std::uint64_t n) noexcept {
    if (n == 0) return;
    counts_[bucket_of(v)] += n;
    count_ += n;
    sum_ += static_cast<Sum>(v) * n;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  /// Smallest and largest recorded values, exact; 0 when empty.
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  /// Mean of the recorded values (exact up to double rounding); 0 when empty.
  [[nodiscard]] double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  /// The value at quantile q in [0, 1]: the highest value of the bucket holding the sample of rank
  /// ceil(q * count), clamped into [min(), max()]. q = 0 gives min(), q = 1 gives max(); 0 when empty.
  [[nodiscard]] std::uint64_t value_at_quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    if (!(q > 0.0)) return min();
    if (q >= 1.0) return max_;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(bucket_high(i), min(), max_);
    }
    return max_;
  }
  /// value_at_quantile(p / 100).
  [[nodiscard]] std::uint64_t percentile(double p) const noexcept { return value_at_quantile(p / 100.0); }

  /// Adds every count of `other` into this histogram.
  void merge(const LatencyHistogram& other) noexcept {
    if (other.count_ == 0) return;
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  /// Recording from a hot loop: keeps the running count, sum, min, max and the current run of equal
  /// buckets in locals (registers), and adds them to the histogram at flush() or destruction. Values
  /// measured against one clock read per batch change slowly from one message to the next, so runs
  /// are long and the histogram's memory is touched once per run instead of five times per value.
  class Accumulator {
   public:
    explicit Accumulator(LatencyHistogram& h) noexcept : h_(h) {}
    Accumulator(const Accumulator&) = delete;
    Accumulator& operator=(const Accumulator&) = delete;
    ~Accumulator() { flush(); }

    void record(std::uint64_t v) noexcept {
      // Inside the current run's bucket: two compares, no bucket computation.
      if (v - run_low_ > run_width_) {
        if (run_count_ != 0) h_.counts_[run_index_] += run_count_;
        run_index_ = bucket_of(v);
        run_low_ = bucket_low(run_index_);
        run_width_ = bucket_high(run_index_) - run_low_;
        run_count_ = 0;
      }
      ++run_count_;
      ++count_;
      sum_ += v;
      min_ = std::min(min_, v);
      max_ = std::max(max_, v);
    }
    /// Adds what was recorded so far to the histogram.
    void flush() noexcept {
      if (count_ == 0) return;
      h_.counts_[run_index_] += run_count_;
      h_.count_ += count_;
      h_.sum_ += sum_;
      h_.min_ = std::min(h_.min_, min_);
      h_.max_ = std::max(h_.max_, max_);
      run_count_ = count_ = 0;
      sum_ = 0;
      min_ = std::numeric_limits<std::uint64_t>::max();
      max_ = 0;
    }

   private:
    LatencyHistogram& h_;
    std::size_t run_index_ = kBuckets - 1;
    // The run's bucket is [run_low_, run_low_ + run_width_]; v - run_low_ wraps for v < run_low_.
    // It starts as the last bucket, whose values all clamp into it.
    std::uint64_t run_low_ = bucket_low(kBuckets - 1), run_width_ = ~std::uint64_t{0} - bucket_low(kBuckets - 1);
    std::uint64_t run_count_ = 0, count_ = 0;
    Sum sum_ = 0;
    std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max(), max_ = 0;
  };

  /// Calls f(low, high, count) for every non-empty bucket, in increasing order.
  template <class F>
  void for_each_bucket(F&& f) const {
    for (std::size_t i = 0; i < kBuckets; ++i) {
      if (counts_[i] != 0) f(bucket_low(i), bucket_high(i), counts_[i]);
    }
  }

  /// The cumulative distribution as (value, fraction of samples <= value) points, one per
  /// non-empty bucket (value = the bucket's highest value, clamped into [min, max]).
  [[nodiscard]] std::vector<std::pair<std::uint64_t, double>> cdf() const {
    std::vector<std::pair<std::uint64_t, double>> out;
    std::uint64_t seen = 0;
    for_each_bucket([&](std::uint64_t, std::uint64_t high, std::uint64_t n) {
      seen += n;
      out.emplace_back(std::clamp(high, min(), max_),
                       static_cast<double>(seen) / static_cast<double>(count_));
    });
    return out;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  Sum sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace pushpoll::harness

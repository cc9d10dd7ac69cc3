// The load-test harness's latency histogram (bench/harness/histogram.hpp): layout, exactness where
// promised, bounded relative error elsewhere, percentiles of known distributions, merge.
#include "histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using pushpoll::harness::LatencyHistogram;

/// The bound the header promises: a reported value is at most 1/128 above the true sample.
constexpr double kRelError = 1.0 / 128.0;

void expect_near_above(std::uint64_t reported, double truth) {
  EXPECT_GE(static_cast<double>(reported), std::floor(truth)) << "truth " << truth;
  EXPECT_LE(static_cast<double>(reported), truth * (1.0 + kRelError) + 1.0) << "truth " << truth;
}

TEST(LatencyHistogram, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.percentile(100), 0u);
  EXPECT_TRUE(h.cdf().empty());
}

TEST(LatencyHistogram, BucketsAreContiguousAndRoundTrip) {
  for (std::size_t i = 0; i + 1 < LatencyHistogram::kBuckets; ++i) {
    ASSERT_EQ(LatencyHistogram::bucket_high(i) + 1, LatencyHistogram::bucket_low(i + 1)) << i;
    ASSERT_EQ(LatencyHistogram::bucket_of(LatencyHistogram::bucket_low(i)), i) << i;
    ASSERT_EQ(LatencyHistogram::bucket_of(LatencyHistogram::bucket_high(i)), i) << i;
  }
  EXPECT_EQ(LatencyHistogram::bucket_low(0), 0u);
  EXPECT_EQ(LatencyHistogram::bucket_high(LatencyHistogram::kBuckets - 1), LatencyHistogram::kMaxTrackable);
}

TEST(LatencyHistogram, BucketWidthStaysWithinTheRelativeError) {
  for (std::size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    const auto low = static_cast<double>(LatencyHistogram::bucket_low(i));
    const auto high = static_cast<double>(LatencyHistogram::bucket_high(i));
    if (low < 256) {
      EXPECT_EQ(low, high) << "values below 256 are exact";
    } else {
      EXPECT_LE((high - low + 1) / low, kRelError + 1e-12) << i;
    }
  }
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 0; v < 256; ++v) h.record(v);
  EXPECT_EQ(h.count(), 256u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 255u);
  EXPECT_EQ(h.percentile(50), 127u);  // rank 128 of 0..255
  EXPECT_EQ(h.percentile(100), 255u);
  EXPECT_DOUBLE_EQ(h.mean(), 127.5);
}

TEST(LatencyHistogram, UniformDistributionPercentiles) {
  LatencyHistogram h;
  constexpr std::uint64_t n = 1'000'000;
  for (std::uint64_t v = 1; v <= n; ++v) h.record(v);
  EXPECT_EQ(h.count(), n);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), n);
  EXPECT_DOUBLE_EQ(h.mean(), 500'000.5);
  expect_near_above(h.percentile(50), 500'000);
  expect_near_above(h.percentile(90), 900'000);
  expect_near_above(h.percentile(99), 990'000);
  expect_near_above(h.percentile(99.9), 999'000);
  EXPECT_EQ(h.percentile(100), n);
}

TEST(LatencyHistogram, ExponentialDistributionPercentiles) {
  // Deterministic samples at the quantiles of an exponential with mean 10 us.
  LatencyHistogram h;
  constexpr int n = 200'000;
  constexpr double mean = 10'000;
  for (int i = 0; i < n; ++i) {
    const double q = (i + 0.5) / n;
    h.record(static_cast<std::uint64_t>(std::llround(-std::log(1.0 - q) * mean)));
  }
  for (const double p : {50.0, 90.0, 99.0, 99.9}) {
    const double truth = -std::log(1.0 - p / 100.0) * mean;
    const auto got = static_cast<double>(h.percentile(p));
    EXPECT_NEAR(got, truth, truth * (kRelError + 0.002) + 1) << "p" << p;
  }
  EXPECT_NEAR(h.mean(), mean, mean * 0.01);
}

TEST(LatencyHistogram, BimodalTailIsSeparated) {
  LatencyHistogram h;
  h.record_n(1'000, 9'900);      // 99 %: 1 us
  h.record_n(5'000'000, 100);    // 1 %: 5 ms
  EXPECT_EQ(h.count(), 10'000u);
  expect_near_above(h.percentile(50), 1'000);
  expect_near_above(h.percentile(99), 1'000);  // rank 9,900 is the last fast one
  expect_near_above(h.percentile(99.9), 5'000'000);
  EXPECT_EQ(h.max(), 5'000'000u);
}

TEST(LatencyHistogram, RecordNMatchesRepeatedRecord) {
  LatencyHistogram a, b;
  a.record_n(12'345, 7);
  for (int i = 0; i < 7; ++i) b.record(12'345);
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.percentile(50), b.percentile(50));
  EXPECT_EQ(a.mean(), b.mean());
  a.record_n(99, 0);  // nothing
  EXPECT_EQ(a.count(), 7u);
  EXPECT_EQ(a.min(), 12'345u);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(10.0, 1.5);
  LatencyHistogram whole, left, right;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    whole.record(v);
    (i % 3 == 0 ? left : right).record(v);
  }
  LatencyHistogram merged;
  merged.merge(left);
  merged.merge(right);
  merged.merge(LatencyHistogram{});  // merging an empty one changes nothing
  EXPECT_EQ(merged.count(), whole.count());
  EXPECT_EQ(merged.min(), whole.min());
  EXPECT_EQ(merged.max(), whole.max());
  EXPECT_DOUBLE_EQ(merged.mean(), whole.mean());
  for (const double p : {1.0, 50.0, 90.0, 99.0, 99.9, 100.0}) EXPECT_EQ(merged.percentile(p), whole.percentile(p)) << p;
}

TEST(LatencyHistogram, HugeValuesClampToTheLastBucketButMaxStaysExact) {
  LatencyHistogram h;
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
  h.record(huge);
  h.record(1);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.max(), huge);
  EXPECT_EQ(h.percentile(100), huge);
  EXPECT_EQ(LatencyHistogram::bucket_of(huge), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogram, AccumulatorMatchesRecord) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(12.0, 2.0);
  LatencyHistogram direct, accumulated;
  {
    LatencyHistogram::Accumulator acc(accumulated);
    for (int i = 0; i < 50'000; ++i) {
      // Runs of nearby values (as when one clock read times a whole batch), jumps, and extremes.
      const auto base = static_cast<std::uint64_t>(dist(rng));
      const std::uint64_t v = i % 997 == 0 ? std::numeric_limits<std::uint64_t>::max() : i % 499 == 0 ? 0 : base;
      for (std::uint64_t k = 0; k < 3; ++k) {
        direct.record(v - k * (v > 3 ? 1 : 0));
        acc.record(v - k * (v > 3 ? 1 : 0));
      }
      if (i == 25'000) acc.flush();  // flushing midway changes nothing
    }
  }
  EXPECT_EQ(accumulated.count(), direct.count());
  EXPECT_EQ(accumulated.min(), direct.min());
  EXPECT_EQ(accumulated.max(), direct.max());
  EXPECT_DOUBLE_EQ(accumulated.mean(), direct.mean());
  EXPECT_EQ(accumulated.cdf(), direct.cdf());
}

TEST(LatencyHistogram, CdfIsMonotonicAndEndsAtOne) {
  LatencyHistogram h;
  for (std::uint64_t v = 100; v < 1'000'000; v += 997) h.record(v);
  const auto cdf = h.cdf();
  ASSERT_FALSE(cdf.empty());
  for (std::size_t i = 1; i < cdf.size(); ++i) {
    EXPECT_GT(cdf[i].first, cdf[i - 1].first);
    EXPECT_GT(cdf[i].second, cdf[i - 1].second);
  }
  EXPECT_DOUBLE_EQ(cdf.back().second, 1.0);
  EXPECT_EQ(cdf.back().first, h.max());
  EXPECT_GE(cdf.front().first, h.min());
}

}  // namespace

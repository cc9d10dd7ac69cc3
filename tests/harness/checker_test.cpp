// The load-test harness's delivery checks (bench/harness/workload.hpp, Checker): a broken transport
// must show up as violations, never as a clean run.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "workload.hpp"

namespace {

using pushpoll::harness::Checker;
using pushpoll::harness::Config;
using pushpoll::harness::PayloadHeader;
using pushpoll::harness::ReaderStats;

Config config(unsigned publishers, unsigned tags) {
  Config c;
  c.publishers = publishers;
  c.tags = tags;
  c.size = 64;
  c.rate_max = false;
  c.rate = 1000;
  return c;
}

std::vector<std::byte> message(unsigned publisher, std::uint64_t seq, unsigned tags, std::uint64_t send_ns = 100) {
  std::vector<std::byte> m(64);
  PayloadHeader h{};
  h.tag = static_cast<std::uint8_t>(seq % tags);
  h.publisher = static_cast<std::uint16_t>(publisher);
  h.size = 64;
  h.seq = seq;
  h.send_ns = send_ns;
  h.sent_ns = send_ns;
  std::memcpy(m.data(), &h, sizeof h);
  return m;
}

struct Fixture {
  Fixture(unsigned publishers, unsigned tags, std::vector<unsigned> ids)
      : cfg(config(publishers, tags)), ids_(std::move(ids)), check(cfg, ids_) {}
  void deliver(std::size_t l, unsigned publisher, std::uint64_t seq, std::uint64_t now = 1000) {
    const auto m = message(publisher, seq, cfg.tags);
    check.deliver(l, m.data(), m.size(), now, stats);
  }
  Config cfg;
  std::vector<unsigned> ids_;
  Checker check;
  ReaderStats stats;
};

TEST(Checker, EverythingOnceInOrderIsClean) {
  Fixture f(2, 1, {0, 1});
  for (std::uint64_t s = 0; s < 10; ++s) {
    for (std::size_t l = 0; l < 2; ++l) {
      f.deliver(l, 0, s);
      f.deliver(l, 1, s);
    }
  }
  const std::vector<std::uint64_t> published{10, 10};
  f.check.finish(published);
  const auto& t = f.check.totals();
  EXPECT_EQ(t.expected, 40u);
  EXPECT_EQ(t.received, 40u);
  EXPECT_EQ(t.skipped + t.missing + t.out_of_order + t.malformed + t.subscribers_short, 0u);
  EXPECT_EQ(f.stats.delivered, 40u);
  EXPECT_EQ(f.stats.sampled, 40u);
  EXPECT_EQ(f.stats.latency.count(), 40u);
  EXPECT_EQ(f.stats.latency.max(), 900u);  // received at 1000, sent at 100
}

TEST(Checker, DuplicateIsOutOfOrder) {
  Fixture f(1, 1, {0});
  f.deliver(0, 0, 0);
  f.deliver(0, 0, 1);
  f.deliver(0, 0, 1);
  f.check.finish(std::vector<std::uint64_t>{2});
  EXPECT_EQ(f.check.totals().out_of_order, 1u);
}

TEST(Checker, ReorderIsOutOfOrderAndGap) {
  Fixture f(1, 1, {0});
  f.deliver(0, 0, 0);
  f.deliver(0, 0, 2);  // 1 skipped...
  f.deliver(0, 0, 1);  // ...then late
  f.check.finish(std::vector<std::uint64_t>{3});
  EXPECT_EQ(f.check.totals().skipped, 1u);
  EXPECT_EQ(f.check.totals().out_of_order, 1u);
}

TEST(Checker, LossInTheMiddleIsSkippedAndAtTheEndMissing) {
  Fixture f(1, 1, {0});
  f.deliver(0, 0, 0);
  f.deliver(0, 0, 3);  // 1 and 2 lost
  f.check.finish(std::vector<std::uint64_t>{6});  // 4 and 5 never came
  const auto& t = f.check.totals();
  EXPECT_EQ(t.skipped, 2u);
  EXPECT_EQ(t.missing, 2u);
  EXPECT_EQ(t.received, 2u);
  EXPECT_EQ(t.expected, 6u);
  EXPECT_EQ(t.subscribers_short, 1u);
}

TEST(Checker, TagsFilterWhatIsDue) {
  // Three tags: subscriber 4 takes tag 1, i.e. seqs 1, 4, 7, ...
  Fixture f(1, 3, {4});
  for (std::uint64_t s = 1; s < 10; s += 3) f.deliver(0, 0, s);
  f.check.finish(std::vector<std::uint64_t>{10});
  const auto& t = f.check.totals();
  EXPECT_EQ(t.expected, 3u);
  EXPECT_EQ(t.received, 3u);
  EXPECT_EQ(t.skipped + t.missing + t.out_of_order + t.malformed, 0u);
}

TEST(Checker, WrongTagOrPublisherOrSizeIsMalformed) {
  Fixture f(1, 3, {0});  // takes tag 0
  f.deliver(0, 0, 1);    // tag 1: not for it
  f.deliver(0, 5, 0);    // no publisher 5
  const auto m = message(0, 0, 3);
  f.check.deliver(0, m.data(), 40, 1000, f.stats);  // wrong size
  f.check.finish(std::vector<std::uint64_t>{1});
  EXPECT_EQ(f.check.totals().malformed, 3u);
  EXPECT_EQ(f.check.totals().missing, 1u);
}

TEST(Checker, TopicSequenceMustGrow) {
  Fixture f(1, 1, {0});
  f.check.topic_seq(0, 5, f.stats);
  f.check.topic_seq(0, 6, f.stats);
  f.check.topic_seq(0, 6, f.stats);
  f.check.finish(std::vector<std::uint64_t>{0});
  EXPECT_EQ(f.check.totals().out_of_order, 1u);
}

TEST(Checker, AnAccountAddsUpWhenItEnds) {
  Fixture f(2, 1, {0});
  {
    Checker::Account a(f.check, 0, f.stats);
    for (std::uint64_t s = 0; s < 100; ++s) {
      const auto m0 = message(0, s, 1, 100 + s);
      const auto m1 = message(1, s, 1, 100 + s);
      a.deliver(m0.data(), m0.size(), 1000);
      a.deliver(m1.data(), m1.size(), 1000);
    }
    const auto dup = message(1, 50, 1);
    a.deliver(dup.data(), dup.size(), 1000);
    EXPECT_EQ(f.stats.delivered, 0u);  // not yet: the account holds it
  }
  EXPECT_EQ(f.stats.delivered, 201u);
  EXPECT_EQ(f.stats.latency.count(), 201u);
  EXPECT_EQ(f.stats.latency.min(), 801u);  // sent at 199, received at 1000
  EXPECT_EQ(f.stats.latency.max(), 900u);
  EXPECT_EQ(f.stats.transit.count(), 201u);  // a fixed-rate config: transit recorded too
  f.check.finish(std::vector<std::uint64_t>{100, 100});
  EXPECT_EQ(f.check.totals().received, 201u);
  EXPECT_EQ(f.check.totals().out_of_order, 1u);
  EXPECT_EQ(f.check.totals().missing, 0u);
}

TEST(Checker, UnsampledDeliveriesAreCountedButNotTimed) {
  Fixture f(1, 1, {0});
  f.deliver(0, 0, 0, /*now=*/0);
  EXPECT_EQ(f.stats.delivered, 1u);
  EXPECT_EQ(f.stats.sampled, 0u);
  EXPECT_EQ(f.stats.latency.count(), 0u);
}

}  // namespace

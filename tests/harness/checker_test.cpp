// The load-test harness's delivery checks (bench/harness/workload.hpp, Checker): a broken transport
// must show up as violations, never as a clean run.
#include <gtest/gtest.h>

#include <cstring>
#include <span>
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

TEST(Checker, HeaderSizeMustMatchTheMessageSize) {
  Fixture f(1, 1, {0});
  auto m = message(0, 0, 1);
  PayloadHeader h;
  std::memcpy(&h, m.data(), sizeof h);
  h.size = 40;  // the header lies about the size the transport delivered
  std::memcpy(m.data(), &h, sizeof h);
  f.check.deliver(0, m.data(), m.size(), 1000, f.stats);
  f.check.finish(std::vector<std::uint64_t>{1});
  EXPECT_EQ(f.check.totals().malformed, 1u);
  EXPECT_EQ(f.check.totals().received, 0u);
}

TEST(Checker, TimesOneDeliveryInTheStrideOfEachSubscriber) {
  Config c = config(1, 1);
  c.rate_max = true;  // the automatic stride: 1 in 64
  ASSERT_EQ(c.sample_stride(), 64u);
  const std::vector<unsigned> ids{0, 1};
  Checker check(c, ids);
  ReaderStats stats;
  for (std::uint64_t s = 0; s < 130; ++s) {
    const auto m = message(0, s, 1);
    check.deliver(0, m.data(), m.size(), 1000, stats);
    if (s < 10) check.deliver(1, m.data(), m.size(), 1000, stats);
  }
  // Subscriber 0: deliveries 1, 65 and 129 (ceil(130 / 64)); subscriber 1: its first.
  EXPECT_EQ(stats.sampled, 4u);
  EXPECT_EQ(stats.latency.count(), 4u);
  EXPECT_EQ(stats.delivered, 140u);

  c.sample_every = 3;
  Checker every_third(c, ids);
  ReaderStats st3;
  for (std::uint64_t s = 0; s < 10; ++s) {
    const auto m = message(0, s, 1);
    every_third.deliver(0, m.data(), m.size(), 1000, st3);
  }
  EXPECT_EQ(st3.sampled, 4u);  // deliveries 1, 4, 7, 10
  c.rate_max = false;
  c.sample_every = 0;
  EXPECT_EQ(c.sample_stride(), 1u) << "a fixed rate times every delivery by default";
}

// A stand-in for pushpoll::Batch: for_each() over messages with seq, aborted and data.
struct FakeMessage {
  std::uint64_t seq;
  bool aborted;
  std::span<const std::byte> data;
};
struct FakeBatch {
  std::vector<FakeMessage> messages;
  template <class F>
  void for_each(F&& f) const {
    for (const FakeMessage& m : messages) f(m);
  }
};

TEST(Checker, TheBatchLoopChecksWhatSingleDeliveriesCheck) {
  Fixture f(2, 1, {0});
  std::vector<std::vector<std::byte>> payloads;
  FakeBatch batch;
  auto add = [&](std::uint64_t topic_seq, std::vector<std::byte> payload, bool aborted = false) {
    payloads.push_back(std::move(payload));
    batch.messages.push_back({topic_seq, aborted, payloads.back()});
  };
  payloads.reserve(16);
  add(10, message(0, 0, 1));
  add(11, message(1, 0, 1));
  add(12, {}, /*aborted=*/true);
  add(13, message(0, 1, 1));
  add(14, message(0, 1, 1));  // a duplicate of publisher 0's seq 1
  add(13, message(0, 2, 1));  // the topic's seq went back
  add(16, message(1, 2, 1));  // publisher 1's seq 1 lost
  auto bad = message(0, 3, 1);
  bad[0] = std::byte{7};      // the wrong tag
  add(17, bad);
  {
    Checker::Account a(f.check, 0, f.stats);
    a.deliver_batch(batch, 1000);
  }
  EXPECT_EQ(f.stats.delivered, 6u);
  EXPECT_EQ(f.stats.aborted_records, 1u);
  EXPECT_EQ(f.stats.sampled, 6u) << "a fixed-rate config times every delivery";
  f.check.finish(std::vector<std::uint64_t>{3, 3});
  const auto& t = f.check.totals();
  EXPECT_EQ(t.received, 6u);
  EXPECT_EQ(t.out_of_order, 2u);  // the duplicate, and the topic's seq going back
  EXPECT_EQ(t.skipped, 1u);
  EXPECT_EQ(t.malformed, 1u);
  EXPECT_EQ(t.missing, 0u);  // both publishers reached seq 3 (the malformed one is not a delivery)
}

}  // namespace

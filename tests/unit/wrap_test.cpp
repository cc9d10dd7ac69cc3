// Wrap-around: payloads never straddle the end of the ring. A payload that does not fit the rest
// of a lap starts the next lap; the bytes skipped carry nothing (every message's index entry says
// where its payload is). These tests build each case by hand, then check random sizes over many laps
// byte by byte.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::drain;
using test::record_index;
using test::pattern;
using test::record_bytes;
using test::small_topic;

constexpr std::uint64_t kCapacity = 4096;

// The position the next claim starts at (bytes claimed so far).
std::uint64_t claim_position(const Topic& t) { return t.stats().bytes_claimed; }

// Publishes pattern messages until the next claim starts at `index` of the current lap (which must
// not be behind it). A subscriber, if given, is drained after every message so that it never
// holds the ring back.
void fill_to(Topic& t, std::uint64_t index, Subscriber* sub = nullptr) {
  const std::uint64_t pos = claim_position(t);
  ASSERT_LE(pos % kCapacity, index);
  std::uint64_t remaining = index - pos % kCapacity;
  const std::uint64_t largest = record_bytes(t.max_message());
  while (remaining != 0) {
    std::uint64_t bytes = std::min(remaining, largest);
    const std::uint64_t seq = t.head();
    t.publish(pattern(seq, bytes));
    remaining -= bytes;
    if (sub != nullptr) (void)drain(*sub);
  }
  ASSERT_EQ(claim_position(t) % kCapacity, index);
}

// Reads the next message and checks it is `seq` with its pattern; returns its header's index.
std::uint64_t read_one(Topic& t, Subscriber& sub, std::uint64_t seq) {
  Batch b = sub.poll(1);
  EXPECT_EQ(b.size(), 1u);
  if (b.empty()) return ~std::uint64_t{0};
  const Message m = *b.begin();
  EXPECT_EQ(m.seq, seq);
  EXPECT_TRUE(test::matches_pattern(m.data, seq)) << "seq " << seq;
  EXPECT_TRUE(test::inside_ring(t, m.data));
  return record_index(t, m.data);
}

TEST(WrapAround, RecordThatDoesNotFitTheLapEndStartsTheNextLap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, 4000, &sub);  // 96 bytes left in the lap
  const std::uint64_t before = claim_position(t);
  const std::uint64_t seq = t.publish(pattern(t.head(), 200));  // a 216-byte record
  EXPECT_EQ(claim_position(t), before + 96 + record_bytes(200)) << "the lap end is skipped";
  EXPECT_EQ(read_one(t, sub, seq), 0u) << "the record starts the next lap";
  // The message after it follows directly, and Start::at finds the record after the skip.
  const std::uint64_t after = t.publish(pattern(t.head(), 5));
  EXPECT_EQ(read_one(t, sub, after), record_bytes(200));
  Subscriber at = t.subscribe(Start::at(seq));
  EXPECT_EQ(read_one(t, at, seq), 0u);
}

TEST(WrapAround, EightBytesFitTheLastEightBytesAndNineSkipThem) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, kCapacity - 16, &sub);
  const std::uint64_t eight = t.publish(pattern(t.head(), 8));
  EXPECT_EQ(read_one(t, sub, eight), kCapacity - 16);
  ASSERT_EQ(claim_position(t) % kCapacity, kCapacity - 8);
  const std::uint64_t before = claim_position(t);
  const std::uint64_t seq = t.publish(pattern(t.head(), 9));  // 16 bytes: does not fit 8
  EXPECT_EQ(claim_position(t), before + 8 + record_bytes(9));
  EXPECT_EQ(read_one(t, sub, seq), 0u);
  Subscriber at = t.subscribe(Start::at(seq));
  EXPECT_EQ(read_one(t, at, seq), 0u);
  const std::uint64_t next = t.publish(pattern(t.head(), 30));
  EXPECT_EQ(read_one(t, sub, next), record_bytes(9));
}

TEST(WrapAround, EmptyMessagesTakeNoRingBytes) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  const std::uint64_t before = claim_position(t);
  for (int i = 0; i < 10; ++i) t.publish(pattern(t.head(), 0));
  EXPECT_EQ(claim_position(t), before);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 10u);
  for (const auto& m : got) EXPECT_TRUE(m.data.empty());
}

TEST(WrapAround, RecordEndingExactlyAtTheLapEndSkipsNothing) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, kCapacity - record_bytes(1024), &sub);
  const std::uint64_t last = t.publish(pattern(t.head(), 1024));
  EXPECT_EQ(claim_position(t) % kCapacity, 0u);
  EXPECT_EQ(read_one(t, sub, last), kCapacity - record_bytes(1024));
  const std::uint64_t before = claim_position(t);
  const std::uint64_t first = t.publish(pattern(t.head(), 7));
  EXPECT_EQ(claim_position(t), before + record_bytes(7)) << "nothing was skipped";
  EXPECT_EQ(read_one(t, sub, first), 0u);
}

TEST(WrapAround, BatchCrossingTheLapEndSkipsItInsideItsClaim) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, 4000, &sub);
  const std::uint64_t first = t.head();
  const auto a = pattern(first, 8), b = pattern(first + 1, 200), c = pattern(first + 2, 8);
  const std::span<const std::byte> three[] = {a, b, c};
  EXPECT_EQ(t.publish_batch(three), first + 2);
  EXPECT_EQ(read_one(t, sub, first), 4000u);
  EXPECT_EQ(read_one(t, sub, first + 1), 0u);
  EXPECT_EQ(read_one(t, sub, first + 2), record_bytes(200));
}

TEST(WrapAround, BatchWhoseFirstRecordFitsTheLapEndAndSecondDoesNotSkipsBetweenThem) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, kCapacity - 8, &sub);
  const std::uint64_t first = t.head();
  const auto a = pattern(first, 8), b = pattern(first + 1, 3);
  const std::span<const std::byte> two[] = {a, b};
  EXPECT_EQ(t.publish_batch(two), first + 1);
  EXPECT_EQ(read_one(t, sub, first), kCapacity - 8);
  EXPECT_EQ(read_one(t, sub, first + 1), 0u);
}

TEST(WrapAround, BatchWhoseFirstRecordDoesNotFitStartsTheNextLap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, 4000, &sub);
  const std::uint64_t first = t.head();
  const auto a = pattern(first, 500), b = pattern(first + 1, 3);
  const std::span<const std::byte> two[] = {a, b};
  EXPECT_EQ(t.publish_batch(two), first + 1);
  EXPECT_EQ(read_one(t, sub, first), 0u);
  EXPECT_EQ(read_one(t, sub, first + 1), record_bytes(500));
}

TEST(WrapAround, AbortedClaimAtTheLapEndKeepsTheSequenceReadable) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  fill_to(t, 4000, &sub);
  const std::uint64_t aborted = t.head();
  (void)t.claim(300);  // dropped: an aborted message whose bytes start the next lap
  const std::uint64_t next = t.publish(pattern(t.head(), 12));
  Batch b = sub.poll();
  ASSERT_EQ(b.size(), 2u);
  auto it = b.begin();
  const Message m0 = *it;
  EXPECT_EQ(m0.seq, aborted);
  EXPECT_TRUE(m0.aborted);
  EXPECT_TRUE(m0.data.empty());
  ++it;
  const Message m1 = *it;
  EXPECT_EQ(m1.seq, next);
  EXPECT_TRUE(test::matches_pattern(m1.data, next));
  EXPECT_EQ(record_index(t, m1.data), record_bytes(300)) << "the aborted record kept its bytes";
}

// Random sizes from a fixed seed, over thousands of laps of a 4 KiB ring, through every way of
// publishing, with the subscriber sometimes holding a batch while the ring fills. Every message is
// checked byte by byte and where it sits in the ring.
class RandomWrapAround : public ::testing::TestWithParam<bool> {};

TEST_P(RandomWrapAround, EveryMessageSurvivesByteForByte) {
  test::TestHub hub;
  TopicOptions opt = small_topic(kCapacity);
  opt.single_producer = GetParam();
  Topic& t = hub.topic("t", opt);
  Subscriber sub = t.subscribe();
  const std::size_t max = t.max_message();
  std::mt19937 rng(42);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  auto next_size = [&]() -> std::size_t {
    switch (uniform(0, 7)) {
      case 0: return 0;
      case 1: return max;
      case 2:
      case 3: return uniform(0, 40);
      default: return uniform(0, max);
    }
  };

  struct Expected {
    std::size_t size;  // claimed size (an aborted record keeps it)
    unsigned tag;
    bool aborted;
  };
  std::vector<Expected> expected;  // by seq
  constexpr std::uint64_t kMessages = test::kTsan ? 4000 : 50000;
  std::uint64_t next_seq = 0;     // next seq the subscriber must see
  std::uint64_t position = 0;     // where the subscriber expects the next record to end up
  std::uint64_t wrapped = 0, exact_fits = 0;

  auto check = [&](const Batch& b) {
    ASSERT_EQ(b.gap(), 0u);
    ASSERT_EQ(b.first_seq(), next_seq);
    for (const Message& m : b) {
      ASSERT_EQ(m.seq, next_seq);
      ASSERT_LT(m.seq, expected.size());
      const Expected& e = expected[m.seq];
      ASSERT_EQ(m.aborted, e.aborted) << m.seq;
      ASSERT_EQ(m.tag, e.tag) << m.seq;
      ASSERT_EQ(m.data.size(), e.aborted ? 0 : e.size) << m.seq;
      ASSERT_TRUE(test::matches_pattern(m.data, m.seq)) << "bytes of message " << m.seq;
      ASSERT_TRUE(test::inside_ring(t, m.data)) << m.seq;
      // Placement: right after the previous record, or at the start of the next lap when it would
      // not fit what is left of this one. An aborted message keeps its bytes but shows none.
      const std::uint64_t room = kCapacity - position % kCapacity;
      if (record_bytes(e.size) > room) {
        ++wrapped;
        position += room;
      } else if (room == record_bytes(e.size)) {
        ++exact_fits;
      }
      if (!e.aborted) {
        const std::uint64_t index = record_index(t, m.data);
        ASSERT_EQ(index, position % kCapacity) << "message " << m.seq << " is not where it belongs";
        ASSERT_LE(index + e.size, kCapacity) << "message " << m.seq << " straddles the lap end";
      }
      position += record_bytes(e.size);
      ++next_seq;
    }
    ASSERT_EQ(b.end_seq(), next_seq);
  };

  Batch held;
  auto catch_up = [&] {
    if (!held.release()) ADD_FAILURE() << "a held batch was overwritten in block mode";
    for (std::uint64_t polls = 0; polls < test::kPatience; ++polls) {
      Batch b = sub.poll(uniform(1, 64));
      if (b.empty()) break;
      check(b);
    }
  };

  while (t.head() < kMessages && !::testing::Test::HasFatalFailure()) {
    const std::uint64_t seq = t.head();
    const unsigned tag = static_cast<unsigned>(seq % 64);
    const unsigned op = static_cast<unsigned>(uniform(0, 9));
    if (op < 5) {  // try_publish: the ring may be full while a batch is held
      const std::size_t size = next_size();
      const auto p = pattern(seq, size);
      expected.push_back({size, tag, false});
      if (!t.try_publish(p, tag)) {
        catch_up();
        ASSERT_TRUE(t.try_publish(p, tag)) << "no room with the subscriber caught up";
      }
    } else {
      catch_up();  // the calls below wait for room: make sure there is some
      if (op < 7) {
        const std::size_t size = next_size();
        expected.push_back({size, tag, false});
        ASSERT_EQ(t.publish(pattern(seq, size), tag), seq);
      } else if (op == 7) {
        const std::size_t size = next_size();
        expected.push_back({size, tag, false});
        Claim c = t.claim(size);
        const auto p = pattern(seq, size);
        if (size != 0) std::memcpy(c.data().data(), p.data(), size);
        ASSERT_EQ(c.commit(tag), seq);
      } else if (op == 8) {
        const std::size_t n = uniform(1, 4);
        std::vector<std::vector<std::byte>> payloads;
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t size = std::min(next_size(), std::size_t{500});
          payloads.push_back(pattern(seq + i, size));
          expected.push_back({size, tag, false});
        }
        const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
        ASSERT_EQ(t.publish_batch(spans, tag), seq + n - 1);
      } else {
        const std::size_t size = next_size();
        expected.push_back({size, 0, true});
        (void)t.claim(size);  // dropped: aborted
      }
    }
    if (uniform(0, 2) == 0) {
      held = sub.poll(uniform(1, 8));  // polling releases the batch held before
      check(held);
    }
  }
  catch_up();
  EXPECT_EQ(next_seq, t.head());
  EXPECT_EQ(position, claim_position(t)) << "bytes claimed disagree with where records were found";
  // The seed must have produced every kind of lap end, or this test proves less than it claims.
  EXPECT_GT(wrapped, 0u);
  EXPECT_GT(exact_fits, 0u);
  RecordProperty("wrapped", std::to_string(wrapped));
  RecordProperty("exact_fits", std::to_string(exact_fits));
}

INSTANTIATE_TEST_SUITE_P(Producers, RandomWrapAround, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "SingleProducer" : "MultiProducer";
                         });

// Runs of equal sizes, changing at random and crossing lap ends, polled with random limits and with
// the whole backlog: every message found where it was written, with its bytes.
TEST(WrapAround, RunsOfEqualSizesAreWalkedExactlyWhereverTheSizeChanges) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity));
  Subscriber sub = t.subscribe();
  std::mt19937 rng(7);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  std::vector<std::size_t> sizes;  // by seq
  std::uint64_t next_seq = 0, size_changes_read = 0;
  std::size_t previous_read = ~std::size_t{0};
  auto read = [&](std::size_t max) {
    Batch b = sub.poll(max);
    for (const Message& m : b) {
      ASSERT_EQ(m.seq, next_seq);
      ASSERT_EQ(m.data.size(), sizes[m.seq]) << m.seq;
      ASSERT_TRUE(test::matches_pattern(m.data, m.seq)) << "bytes of message " << m.seq;
      ASSERT_TRUE(test::inside_ring(t, m.data)) << m.seq;
      if (m.data.size() != previous_read) ++size_changes_read;
      previous_read = m.data.size();
      ++next_seq;
    }
    ASSERT_EQ(b.end_seq(), next_seq);
    ASSERT_TRUE(b.release());
  };
  while (t.head() < 20000 && !::testing::Test::HasFatalFailure()) {
    const std::size_t size = uniform(0, 3) == 0 ? uniform(0, t.max_message()) : uniform(0, 48);
    const std::size_t run = uniform(1, 40);
    for (std::size_t i = 0; i < run; ++i) {
      const std::uint64_t seq = t.head();
      while (!t.try_publish(pattern(seq, size))) {
        ASSERT_LT(next_seq, seq) << "no room with the subscriber caught up";
        read(uniform(0, 1) == 0 ? uniform(1, 16) : 1'000'000);
        if (::testing::Test::HasFatalFailure()) return;
      }
      sizes.push_back(size);
    }
  }
  while (next_seq < t.head() && !::testing::Test::HasFatalFailure()) read(uniform(1, 64));
  EXPECT_EQ(next_seq, t.head());
  EXPECT_GT(size_changes_read, 500u) << "the walk must have met many changes of size";
}

// In Overflow::overwrite a batch may be overwritten while it is read. Its bytes may then change,
// but every Message handed out must still lie inside the ring (the documented "stays mapped"
// contract), whatever the overwritten entry now says.
//
// A regression test: the iterator once re-read a record's size on dereference and bounded it only
// by max_message, not by the room left in the lap, so a record at the end of a lap, overwritten,
// read as a message running past the end of the ring. The walk (detail::MessageWalk) reads each
// entry once, and refuses one that is not the expected seq's or whose payload leaves the ring.
TEST(WrapAroundOverwrite, MessageReadFromAnOverwrittenRecordStaysInsideTheRing) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(kCapacity, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  // Lap 1 ends with a 16-byte message that fills the lap exactly.
  fill_to(t, kCapacity - record_bytes(16));
  const std::uint64_t last = t.publish(pattern(t.head(), 16));
  Batch held = sub.poll(1000);
  auto it = held.begin();
  while (it != held.end() && (*it).seq != last) ++it;
  ASSERT_TRUE(it != held.end());
  ASSERT_EQ(record_index(t, (*it).data), kCapacity - record_bytes(16));
  // Later laps overwrite its bytes and, past a lap of the index, its entry.
  for (std::uint64_t i = 0; i < 2 * t.ring().index_size(); ++i) t.publish(pattern(t.head(), 40));
  const Message m = *it;
  EXPECT_TRUE(test::inside_ring(t, m.data))
      << "message " << m.seq << " of " << m.data.size() << " bytes at ring index "
      << record_index(t, m.data) << " runs past the end of the " << kCapacity << "-byte ring";
  for (const Message& rest : held) EXPECT_TRUE(test::inside_ring(t, rest.data)) << rest.seq;
  EXPECT_FALSE(held.release());
}

}  // namespace
}  // namespace pushpoll

// pushpoll/message.hpp: Message and Batch. Zero-copy views into the ring, move-only batches and
// claims, and what a batch reports about itself.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::bytes_of;
using test::drain;
using test::pattern;
using test::record_bytes;
using test::small_topic;
using test::text_of;

static_assert(!std::is_copy_constructible_v<Batch>);
static_assert(!std::is_copy_assignable_v<Batch>);
static_assert(std::is_nothrow_move_constructible_v<Batch>);
static_assert(std::is_nothrow_move_assignable_v<Batch>);
static_assert(!std::is_copy_constructible_v<Claim>);
static_assert(!std::is_copy_assignable_v<Claim>);
static_assert(std::is_nothrow_move_constructible_v<Claim>);
static_assert(std::is_nothrow_move_assignable_v<Claim>);
static_assert(std::is_same_v<decltype(Message::data), std::span<const std::byte>>,
              "readers get a read-only view");

TEST(Message, DefaultIsAnEmptyUnabortedMessage) {
  const Message m;
  EXPECT_EQ(m.seq, 0u);
  EXPECT_EQ(m.tag, 0u);
  EXPECT_FALSE(m.aborted);
  EXPECT_TRUE(m.data.empty());
}

TEST(Batch, DataPointsIntoTheRingAndIsSharedBySubscribers) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber a = t.subscribe();
  Subscriber b = t.subscribe();
  t.publish(bytes_of("zero copy"));
  t.publish(bytes_of("twice"));
  Batch ba = a.poll();
  Batch bb = b.poll();
  std::vector<const std::byte*> seen_by_a;
  for (const Message& m : ba) {
    EXPECT_TRUE(test::inside_ring(t, m.data)) << "message " << m.seq << " was copied out of the ring";
    seen_by_a.push_back(m.data.data());
  }
  std::size_t i = 0;
  for (const Message& m : bb) {
    ASSERT_LT(i, seen_by_a.size());
    EXPECT_EQ(m.data.data(), seen_by_a[i++]) << "two subscribers must read the same bytes";
  }
  EXPECT_EQ(i, 2u);
}

// What for_each() visits must be exactly what iterating yields: seq, tag, aborted flag and the very
// bytes, across lap ends, aborted claims, sizes that change and tag masks that skip records.
TEST(Batch, ForEachVisitsExactlyWhatIterationYields) {
  struct Seen {
    std::uint64_t seq;
    unsigned tag;
    bool aborted;
    const std::byte* data;
    std::size_t size;
    bool operator==(const Seen&) const = default;
  };
  auto seen = [](const Message& m) { return Seen{m.seq, m.tag, m.aborted, m.data.data(), m.data.size()}; };
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096));
  const std::uint64_t masks[] = {kAllTags, 0b1, 0b1010, std::uint64_t{1} << 63};
  std::vector<Subscriber> subs;
  for (const std::uint64_t mask : masks) subs.push_back(t.subscribe(Start::oldest, mask));
  std::uint64_t visited = 0;
  for (std::uint64_t round = 0; round < 300; ++round) {
    for (std::uint64_t i = 0; i < 7; ++i) {
      const std::uint64_t seq = t.head();
      const std::size_t size = (round % 5 == 0) ? (seq * 37) % 300 : 24;  // runs of one size
      const unsigned tag = static_cast<unsigned>(seq % 4 == 3 ? 63 : seq % 4);
      if (seq % 11 == 5) {
        (void)t.claim(size);  // dropped: an aborted record
      } else {
        t.publish(pattern(seq, size), tag);
      }
    }
    for (Subscriber& sub : subs) {
      const std::size_t max = 1 + round % 9;  // sometimes the whole backlog, sometimes part of it
      for (;;) {
        Batch b = sub.poll(max);
        if (b.empty() && b.end_seq() == b.first_seq()) break;
        std::vector<Seen> iterated, each;
        for (const Message& m : b) iterated.push_back(seen(m));
        b.for_each([&](const Message& m) { each.push_back(seen(m)); });
        ASSERT_EQ(iterated.size(), b.size());
        ASSERT_EQ(each, iterated) << "round " << round;
        for (const Seen& m : each) {
          ASSERT_TRUE(m.aborted || test::matches_pattern({m.data, m.size}, m.seq)) << m.seq;
        }
        visited += each.size();
        ASSERT_TRUE(b.release());
      }
    }
  }
  EXPECT_GT(visited, 3000u);
}

// In overwrite mode a held batch may be overwritten: for_each() stops at the first record that is
// not what the batch expects, never hands out a view outside the ring, and release() says so.
TEST(Batch, ForEachOverAnOverwrittenBatchStaysInsideTheRing) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 40; ++i) t.publish(pattern(i, 40));
  Batch held = sub.poll(1000);
  ASSERT_EQ(held.size(), 40u);
  for (std::uint64_t i = 40; i < 200; ++i) t.publish(pattern(i, 72));  // laps the held batch
  std::uint64_t n = 0;
  held.for_each([&](const Message& m) {
    EXPECT_TRUE(test::inside_ring(t, m.data)) << m.seq;
    ++n;
  });
  EXPECT_LT(n, 40u) << "the first records were overwritten: the walk must stop there";
  EXPECT_FALSE(held.release());
}

TEST(Batch, CommittedClaimIsReadAtTheAddressItWasWritten) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Claim c = t.claim(6);
  std::byte* where = c.data().data();
  std::memcpy(where, "inside", 6);
  c.commit();
  Batch b = sub.poll();
  ASSERT_EQ(b.size(), 1u);
  const Message m = *b.begin();
  EXPECT_EQ(m.data.data(), where);
  EXPECT_EQ(text_of(m.data), "inside");
}

TEST(Batch, PayloadsAreEightByteAligned) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  for (std::size_t size = 0; size < 40; ++size) {
    t.publish(pattern(size, size));
    Batch b = sub.poll();
    for (const Message& m : b) {
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.data.data()) % 8, 0u) << "size " << size;
    }
  }
}

TEST(Batch, ReportsItsSeqRangeAndTheRingBytesItCovers) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish(pattern(0, 1));
  t.publish(pattern(1, 9));
  t.publish(pattern(2, 100));
  {
    Batch first = sub.poll(1);
    EXPECT_EQ(first.first_seq(), 0u);
    EXPECT_EQ(first.end_seq(), 1u);
  }
  Batch b = sub.poll();
  EXPECT_EQ(b.first_seq(), 1u);
  EXPECT_EQ(b.end_seq(), 3u);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(b.gap(), 0u);
  EXPECT_EQ(b.span_bytes(), record_bytes(9) + record_bytes(100));
}

TEST(Batch, CanBeIteratedMoreThanOnceWhileHeld) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 4; ++i) t.publish(pattern(i, 24));
  Batch b = sub.poll();
  std::vector<std::uint64_t> first, second;
  for (const Message& m : b) first.push_back(m.seq);
  for (const Message& m : b) second.push_back(m.seq);
  EXPECT_EQ(first, (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(first, second);
}

TEST(Batch, BatchesKeepWorkingAfterBeingMovedIntoAVector) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  std::vector<Subscriber> subs;
  for (int i = 0; i < 8; ++i) subs.push_back(t.subscribe());
  for (std::uint64_t i = 0; i < 3; ++i) t.publish(pattern(i, 32));
  std::vector<Batch> batches;
  for (auto& s : subs) batches.push_back(s.poll());  // reallocates: every batch is moved
  for (auto& s : subs) EXPECT_EQ(s.cursor(), 0u) << "moving a batch must not release it";
  for (std::size_t k = 0; k < batches.size(); ++k) {
    std::uint64_t expect = 0;
    for (const Message& m : batches[k]) {
      EXPECT_EQ(m.seq, expect++);
      EXPECT_TRUE(test::matches_pattern(m.data, m.seq));
    }
    EXPECT_EQ(expect, 3u);
    EXPECT_TRUE(batches[k].release());
    EXPECT_EQ(subs[k].cursor(), 3u);
  }
}

TEST(Batch, MoveAssignmentReleasesTheBatchItReplaces) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber a = t.subscribe();
  Subscriber b = t.subscribe();
  for (std::uint64_t i = 0; i < 3; ++i) t.publish(pattern(i, 8));
  Batch held = a.poll(2);
  Batch other = b.poll(1);
  held = std::move(other);
  EXPECT_EQ(a.cursor(), 2u) << "the replaced batch was released";
  EXPECT_EQ(b.cursor(), 0u) << "the moved batch is still held";
  EXPECT_TRUE(held.release());
  EXPECT_EQ(b.cursor(), 1u);
}

TEST(Batch, MovedFromBatchIsEmptyAndReleasingItDoesNothing) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 3; ++i) t.publish(pattern(i, 8));
  Batch b = sub.poll(2);
  Batch moved = std::move(b);
  b.release();  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(sub.cursor(), 0u);
  moved.release();
  EXPECT_EQ(sub.cursor(), 2u);
}

TEST(Claim, ClaimsKeepWorkingAfterBeingMovedIntoAVector) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  std::vector<Claim> claims;
  for (std::uint64_t i = 0; i < 6; ++i) claims.push_back(t.claim(8));  // reallocates
  for (std::uint64_t i = 0; i < claims.size(); ++i) {
    const auto p = pattern(i, 8);
    std::memcpy(claims[i].data().data(), p.data(), 8);
  }
  for (std::uint64_t i = 0; i < claims.size(); ++i) EXPECT_EQ(claims[i].commit(), i);  // in claim order
  claims.clear();  // committed claims publish nothing more
  EXPECT_EQ(t.head(), 6u);
  EXPECT_EQ(t.stats().aborted, 0u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 6u);
  for (const auto& m : got) EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
}

TEST(Claim, MovedClaimCommitsOnceAndTheMovedFromOneIsInactive) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Claim a = t.claim(4);
  Claim b = std::move(a);
  EXPECT_FALSE(a.active());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.active());
  EXPECT_EQ(b.commit(), 0u);
  a = Claim{};
  EXPECT_EQ(t.head(), 1u);
  EXPECT_EQ(t.stats().aborted, 0u);
}

TEST(Claim, MoveAssignmentAbortsTheClaimItReplaces) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Claim first = t.claim(4);
  Claim second = t.claim(4);
  std::memcpy(second.data().data(), "keep", 4);
  first = std::move(second);  // the first claim is dropped: aborted, seq 0
  EXPECT_EQ(first.commit(), 1u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].aborted);
  EXPECT_FALSE(got[1].aborted);
  EXPECT_EQ(text_of(got[1].data), "keep");
}

}  // namespace
}  // namespace pushpoll

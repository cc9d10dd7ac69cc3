// pushpoll/detail/ring.hpp: the region layout, the commit index and its packed entries, the packed
// claim word, and walks over an index built by hand (a message not yet committed, an aborted one, a
// payload that would leave the ring).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <random>

#include "test_support.hpp"

namespace pushpoll::detail {
namespace {

// ---- static layout ----------------------------------------------------------------------------

static_assert(offsetof(IndexEntry, word) == 0 && offsetof(IndexEntry, info) == 8);
static_assert((kEntryAborted & kEntryNoPos) == 0 && ((kEntryAborted | kEntryNoPos) & kSeqMask) == 0,
              "entry flags are distinct bits above the seq");
static_assert(sizeof(SubscriberSlot) == kCacheLine && alignof(SubscriberSlot) == kCacheLine);
static_assert(offsetof(RingState, claim) / kCacheLine != offsetof(RingState, retire_seq) / kCacheLine,
              "claimers and readers do not share a line");
static_assert(offsetof(RingState, claim) / kCacheLine != offsetof(RingState, closed) / kCacheLine);
static_assert(offsetof(RingState, expiries_begun) / kCacheLine != offsetof(RingState, claim) / kCacheLine,
              "committers read expiries_begun from a line other producers do not write per claim");
static_assert(offsetof(RingState, full_waits) % kCacheLine == 0, "rare counters off the hot lines");

TEST(RingLayout, RecordsArePayloadsRoundedToEightBytes) {
  EXPECT_EQ(record_bytes(0), 0u);
  EXPECT_EQ(record_bytes(1), 8u);
  EXPECT_EQ(record_bytes(8), 8u);
  EXPECT_EQ(record_bytes(9), 16u);
  EXPECT_EQ(record_bytes(64), 64u) << "a 64-byte message fills one cache line, no more";
  EXPECT_EQ(record_bytes(65536), 65536u);
  for (std::uint64_t n = 0; n < 100; ++n) {
    EXPECT_EQ(record_bytes(n) % kRecordAlign, 0u);
    EXPECT_GE(record_bytes(n), n);
    EXPECT_LT(record_bytes(n), n + kRecordAlign);
  }
}

TEST(IndexInfo, PacksPositionSizeAndTagAndUnpacksThemExactly) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t pos = (rng() >> 2) & ~std::uint64_t{7};
    const std::uint64_t size = rng() % (kMaxMessage + 1);
    const unsigned tag = static_cast<unsigned>(rng() % 64);
    const std::uint64_t info = pack_info(pos, size, tag);
    ASSERT_EQ(info_size(info), size);
    ASSERT_EQ(info_tag(info), tag);
    const std::uint64_t mask = (std::uint64_t{1} << (12 + rng() % 23)) - 1;  // 4 KiB .. 16 GiB rings
    ASSERT_EQ(info_offset(info, mask), pos & mask);
    const std::uint64_t back = (rng() % kMaxCapacity) & ~std::uint64_t{7};
    ASSERT_EQ(info_pos(info, pos - std::min(pos, back)), pos);
  }
}

// ---- the claim word ---------------------------------------------------------------------------

TEST(ClaimWord, UnpacksExactlyAgainstAnyFloorWithinItsReach) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t seq = rng() >> 2;
    const std::uint64_t pos = (rng() >> 2) & ~std::uint64_t{7};
    const std::uint64_t back_seq = rng() % kMaxIndexSize;  // claims stay within an index of the retired seq
    const std::uint64_t back_pos = (rng() % kMaxCapacity) & ~std::uint64_t{7};
    const std::uint64_t w = pack_claim(seq, pos) | ((i & 1) ? kClaimBiased : 0);
    ASSERT_EQ(claim_seq(w, seq - std::min(seq, back_seq)), seq) << i;
    ASSERT_EQ(claim_pos(w, pos - std::min(pos, back_pos)), pos) << i;
  }
}

TEST(ClaimWord, TheBiasFlagChangesNeitherSeqNorPosition) {
  const std::uint64_t w = pack_claim(12345, 4096);
  EXPECT_EQ(claim_seq(w | kClaimBiased, 12000), 12345u);
  EXPECT_EQ(claim_pos(w | kClaimBiased, 0), 4096u);
}

// ---- an index and a ring built by hand --------------------------------------------------------

// A region built by hand: the ring header, a 64-entry index and a 4 KiB record area, no slots.
class HandBuiltRing : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kCapacity = 4096;
  static constexpr std::uint64_t kEntries = 64;
  static constexpr std::size_t kStateBytes = (sizeof(RingState) + kCacheLine - 1) / kCacheLine * kCacheLine;
  static constexpr std::size_t kIndexBytes = kEntries * sizeof(IndexEntry);
  struct alignas(kCacheLine) Region {
    std::byte bytes[kStateBytes + kIndexBytes + kCapacity];
  };

  void SetUp() override {
    region_ = std::make_unique<Region>();
    auto* state = new (region_->bytes) RingState{};
    state->capacity = kCapacity;
    state->mask = kCapacity - 1;
    state->index_size = kEntries;
    state->slots_offset = kStateBytes;
    state->index_offset = kStateBytes;
    state->records_offset = kStateBytes + kIndexBytes;
    state->max_message = 1024;
    state->max_subscribers = 0;
    for (std::uint64_t i = 0; i < kEntries; ++i) {
      auto* e = new (region_->bytes + kStateBytes + i * sizeof(IndexEntry)) IndexEntry{};
      e->word.store(((i - kEntries) & kSeqMask) | kEntryNoPos);
      e->info.store(0);
    }
    ring_ = RingView(region_->bytes);
  }

  /// Commits message `seq` with its payload at `pos`.
  void commit(std::uint64_t seq, std::uint64_t pos, std::uint32_t size, std::uint8_t tag = 0) {
    ring_.entry(seq).info.store(pack_info(pos, size, tag));
    ring_.entry(seq).word.store(seq & kSeqMask);
  }

  std::unique_ptr<Region> region_;
  RingView ring_;
};

TEST_F(HandBuiltRing, AFreshIndexHasNothingDone) {
  for (std::uint64_t s = 0; s < 3 * kEntries; ++s) EXPECT_FALSE(ring_.done(s)) << s;
}

TEST_F(HandBuiltRing, AnEntryIsDoneForItsSeqAndNotForTheSameSlotInOtherLaps) {
  commit(5, 0, 10);
  EXPECT_TRUE(ring_.done(5));
  EXPECT_FALSE(ring_.done(5 + kEntries)) << "a later lap's seq maps to the same entry";
  EXPECT_FALSE(ring_.done(6));
}

TEST_F(HandBuiltRing, PlacementMovesARecordThatWouldStraddleToTheNextLap) {
  EXPECT_EQ(ring_.placement(0, 64), 0u);
  EXPECT_EQ(ring_.placement(kCapacity - 64, 64), kCapacity - 64) << "ending exactly at the lap end fits";
  EXPECT_EQ(ring_.placement(kCapacity - 56, 64), kCapacity);
  EXPECT_EQ(ring_.placement(3 * kCapacity - 8, 16), 3 * kCapacity);
}

TEST_F(HandBuiltRing, AWalkReadsCommittedMessagesAndStopsAtTheFirstUncommittedOne) {
  commit(0, 0, 10, 3);
  commit(1, record_bytes(10), 0, 4);
  commit(3, 200, 5);  // 2 is claimed but not committed: 3 must not be read before it
  MessageWalk w(ring_, 0, 1024);
  RecordView r{};
  ASSERT_TRUE(w.next(r));
  EXPECT_EQ(r.size, 10u);
  EXPECT_EQ(r.tag, 3);
  EXPECT_EQ(r.payload, ring_.at(0));
  ASSERT_TRUE(w.next(r));
  EXPECT_EQ(r.size, 0u);
  EXPECT_EQ(r.tag, 4);
  EXPECT_FALSE(w.next(r));
  EXPECT_EQ(w.seq(), 2u) << "a refused step moves nowhere";
}

TEST_F(HandBuiltRing, AnAbortedEntryIsAnEmptyMessageWithNoRecord) {
  ring_.entry(0).word.store(0 | kEntryAborted | kEntryNoPos);
  MessageWalk w(ring_, 0, 1024);
  RecordView r{};
  ASSERT_TRUE(w.next(r));
  EXPECT_TRUE(r.aborted);
  EXPECT_EQ(r.size, 0u);
  EXPECT_EQ(r.tag, 0);
}

TEST_F(HandBuiltRing, AWalkRefusesAPayloadThatWouldLeaveTheRing) {
  commit(0, kCapacity - 16, 17);  // 17 bytes from 16 before the end
  MessageWalk w(ring_, 0, 1024);
  RecordView r{};
  EXPECT_FALSE(w.next(r));
  EXPECT_EQ(w.seq(), 0u);
  commit(1, kCapacity - 16, 16);  // exactly to the end: fine
  MessageWalk w1(ring_, 1, 1024);
  EXPECT_TRUE(w1.next(r));
  EXPECT_EQ(r.size, 16u);
}

// ---- the region of a real topic ---------------------------------------------------------------

TEST(RingLayout, TopicRegionIsStateThenSlotsThenTheIndexThenAPageAlignedRecordArea) {
  test::TestHub hub;
  TopicOptions opt = test::small_topic(8192);
  opt.max_subscribers = 10;
  Topic& t = hub.topic("t", opt);
  const RingView ring = t.ring();
  const RingState& s = ring.state();
  EXPECT_EQ(s.capacity, 8192u);
  EXPECT_EQ(s.mask, 8191u);
  EXPECT_EQ(s.index_size, 256u) << "capacity / 32";
  EXPECT_EQ(s.max_message, 2048u);
  EXPECT_EQ(s.max_subscribers, 10u);
  EXPECT_EQ(s.retire_chunk, 512u) << "a sixteenth of the ring";
  const auto* base = reinterpret_cast<const std::byte*>(&s);
  EXPECT_EQ(reinterpret_cast<const std::byte*>(&ring.slot(0)), base + s.slots_offset);
  EXPECT_GE(s.slots_offset, sizeof(RingState));
  EXPECT_EQ(reinterpret_cast<const std::byte*>(&ring.slot(1)) - reinterpret_cast<const std::byte*>(&ring.slot(0)),
            static_cast<std::ptrdiff_t>(kCacheLine));
  const auto* index = reinterpret_cast<const std::byte*>(&ring.entry(0));
  EXPECT_EQ(index, base + s.index_offset);
  EXPECT_LE(reinterpret_cast<const std::byte*>(&ring.slot(9) + 1), index) << "slots overlap the index";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(index) % kCacheLine, 0u) << "four entries per cache line";
  EXPECT_LE(reinterpret_cast<const std::byte*>(&ring.entry(127) + 1), ring.at(0)) << "the index overlaps the records";
  EXPECT_EQ(ring.at(0), base + s.records_offset);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ring.at(0)) % 4096, 0u);
}

TEST(RingLayout, IndexSizeDefaultsToOneEntryPer32RingBytesAndCanBeSet) {
  test::TestHub hub;
  EXPECT_EQ(hub.topic("small", test::small_topic(4096)).ring().index_size(), 128u);
  EXPECT_EQ(hub.topic("big", test::small_topic(1 << 20)).ring().index_size(), 32768u);
  TopicOptions opt = test::small_topic(1 << 20);
  opt.index_size = 1 << 16;
  EXPECT_EQ(hub.topic("set", opt).ring().index_size(), 65536u);
}

TEST(RingLayout, RetireChunkIsAtLeast256Bytes) {
  test::TestHub hub;
  EXPECT_EQ(hub.topic("small", test::small_topic(4096)).ring().state().retire_chunk, 256u);
  EXPECT_EQ(hub.topic("big", test::small_topic(1 << 20)).ring().state().retire_chunk, 65536u);
}

TEST(RingLayout, SubscriberSlotsTrackStateAndCursor) {
  test::TestHub hub;
  TopicOptions opt = test::small_topic();
  opt.max_subscribers = 2;
  Topic& t = hub.topic("t", opt);
  const RingView ring = t.ring();
  EXPECT_EQ(ring.slot(0).state.load(), kSlotFree);
  {
    Subscriber sub = t.subscribe();
    EXPECT_EQ(ring.slot(0).state.load(), kSlotAttached);
    t.publish(test::pattern(0, 10));
    t.publish(test::pattern(1, 10));
    (void)test::drain(sub);
    EXPECT_EQ(ring.slot(0).cursor_seq.load(), 2u) << "the cursor is a seq";
  }
  EXPECT_EQ(ring.slot(0).state.load(), kSlotFree);
}

}  // namespace
}  // namespace pushpoll::detail

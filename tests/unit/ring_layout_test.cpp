// pushpoll/detail/ring.hpp: the region layout, record framing, and navigation over records built
// by hand (a padding record, an implicit gap at the lap end).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "test_support.hpp"

namespace pushpoll::detail {
namespace {

// ---- static layout ----------------------------------------------------------------------------

static_assert(offsetof(RecordHeader, size) == 0);
static_assert(offsetof(RecordHeader, tag) == 4);
static_assert(offsetof(RecordHeader, flags) == 5);
static_assert(offsetof(RecordHeader, seq) == 8);
static_assert((kPadding & kAborted) == 0, "flags are distinct bits");
static_assert(sizeof(SubscriberSlot) == kCacheLine && alignof(SubscriberSlot) == kCacheLine);
static_assert(offsetof(RingState, claim_pos) / kCacheLine != offsetof(RingState, head_seq) / kCacheLine,
              "claimers and readers do not share a line");
static_assert(offsetof(RingState, retire_pos) / kCacheLine != offsetof(RingState, head_seq) / kCacheLine);
static_assert(offsetof(RingState, closed) % kCacheLine == 0);
static_assert(offsetof(RingState, full_waits) % kCacheLine == 0, "rare counters off the hot lines");

TEST(RingLayout, RecordsAreAHeaderPlusPayloadRoundedToEightBytes) {
  EXPECT_EQ(record_bytes(0), 16u);
  EXPECT_EQ(record_bytes(1), 24u);
  EXPECT_EQ(record_bytes(8), 24u);
  EXPECT_EQ(record_bytes(9), 32u);
  EXPECT_EQ(record_bytes(1024), 1040u);
  EXPECT_EQ(record_bytes(65536), 65552u);
  for (std::uint64_t n = 0; n < 100; ++n) {
    EXPECT_EQ(record_bytes(n) % kRecordAlign, 0u);
    EXPECT_GE(record_bytes(n), sizeof(RecordHeader) + n);
    EXPECT_LT(record_bytes(n), sizeof(RecordHeader) + n + kRecordAlign);
  }
}

// A region built by hand: the ring header and a 4 KiB record area, no subscriber slots.
class HandBuiltRing : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kCapacity = 4096;
  static constexpr std::size_t kStateBytes = (sizeof(RingState) + kCacheLine - 1) / kCacheLine * kCacheLine;
  struct alignas(kCacheLine) Region {
    std::byte bytes[kStateBytes + kCapacity];
  };

  void SetUp() override {
    region_ = std::make_unique<Region>();
    auto* state = new (region_->bytes) RingState{};
    state->capacity = kCapacity;
    state->mask = kCapacity - 1;
    state->slots_offset = kStateBytes;
    state->records_offset = kStateBytes;
    state->max_message = 1024;
    state->max_subscribers = 0;
    ring_ = RingView(region_->bytes);
  }
  void TearDown() override { ring_.state().~RingState(); }

  void write(std::uint64_t pos, std::uint32_t size, std::uint8_t flags, std::uint64_t seq) {
    RecordHeader& h = ring_.header_mut(pos);
    h.size = size;
    h.tag = 0;
    h.flags = flags;
    h.reserved = 0;
    h.seq = seq;
  }

  std::unique_ptr<Region> region_;
  RingView ring_;
};

TEST_F(HandBuiltRing, PositionsMapToIndexesModuloTheCapacity) {
  EXPECT_EQ(ring_.capacity(), kCapacity);
  EXPECT_EQ(ring_.mask(), kCapacity - 1);
  EXPECT_EQ(ring_.at(0), region_->bytes + kStateBytes);
  EXPECT_EQ(ring_.at(kCapacity), ring_.at(0));
  EXPECT_EQ(ring_.at(5 * kCapacity + 24), ring_.at(24));
}

TEST_F(HandBuiltRing, LapRoomIsWhatIsLeftBeforeTheEndOfTheLap) {
  EXPECT_EQ(ring_.lap_room(0), kCapacity);
  EXPECT_EQ(ring_.lap_room(4000), 96u);
  EXPECT_EQ(ring_.lap_room(kCapacity - 8), 8u);
  EXPECT_EQ(ring_.lap_room(kCapacity), kCapacity);
  EXPECT_EQ(ring_.lap_room(3 * kCapacity + 100), kCapacity - 100);
}

TEST_F(HandBuiltRing, PlacementMovesARecordThatWouldStraddleToTheNextLap) {
  EXPECT_EQ(ring_.placement(4000, 96), 4000u) << "exact fit stays";
  EXPECT_EQ(ring_.placement(4000, 104), kCapacity);
  EXPECT_EQ(ring_.placement(kCapacity - 8, 16), kCapacity);
  EXPECT_EQ(ring_.placement(kCapacity + 8, 1040), kCapacity + 8);
}

TEST_F(HandBuiltRing, SkipTailJumpsOnlyAGapSmallerThanAHeader) {
  EXPECT_EQ(ring_.skip_tail(kCapacity - 8), kCapacity);
  EXPECT_EQ(ring_.skip_tail(kCapacity - 16), kCapacity - 16);
  EXPECT_EQ(ring_.skip_tail(kCapacity), kCapacity);
  EXPECT_EQ(ring_.skip_tail(100), 100u);
}

TEST_F(HandBuiltRing, NextMessageStepsOverOneRecord) {
  write(0, 5, 0, 10);
  write(24, 100, 0, 11);
  std::uint64_t start = 99;
  EXPECT_EQ(ring_.next_message(0, start), 24u);
  EXPECT_EQ(start, 0u);
  EXPECT_EQ(ring_.next_message(24, start), 24 + record_bytes(100));
  EXPECT_EQ(start, 24u);
}

TEST_F(HandBuiltRing, NextMessageSkipsAPaddingRecordToTheNextLap) {
  write(0, 5, 0, 10);        // first record of the next lap (index 0)
  write(4000, 80, kPadding, 10);  // padding: 96 bytes up to the lap end
  std::uint64_t start = 0;
  EXPECT_EQ(ring_.next_message(4000, start), kCapacity + record_bytes(5));
  EXPECT_EQ(start, kCapacity);
  EXPECT_EQ(ring_.header(start).seq, 10u);
}

TEST_F(HandBuiltRing, NextMessageSkipsAnImplicitGapToTheNextLap) {
  write(0, 30, 0, 7);
  std::uint64_t start = 0;
  EXPECT_EQ(ring_.next_message(kCapacity - 8, start), kCapacity + record_bytes(30));
  EXPECT_EQ(start, kCapacity);
}

TEST_F(HandBuiltRing, AbortedRecordKeepsItsClaimedSize) {
  write(0, 40, kAborted, 3);
  write(record_bytes(40), 0, 0, 4);
  std::uint64_t start = 0;
  EXPECT_EQ(ring_.next_message(0, start), record_bytes(40));
  EXPECT_EQ(ring_.next_message(record_bytes(40), start), record_bytes(40) + record_bytes(0));
}

// ---- the region of a real topic ---------------------------------------------------------------

TEST(RingLayout, TopicRegionIsStateThenSlotsThenAPageAlignedRecordArea) {
  Hub hub;
  TopicOptions opt = test::small_topic(8192);
  opt.max_subscribers = 10;
  Topic& t = hub.topic("t", opt);
  const RingView ring = t.ring();
  const RingState& s = ring.state();
  EXPECT_EQ(s.capacity, 8192u);
  EXPECT_EQ(s.mask, 8191u);
  EXPECT_EQ(s.max_message, 2048u);
  EXPECT_EQ(s.max_subscribers, 10u);
  EXPECT_EQ(s.retire_chunk, 512u) << "a sixteenth of the ring";
  const auto* base = reinterpret_cast<const std::byte*>(&s);
  EXPECT_EQ(reinterpret_cast<const std::byte*>(&ring.slot(0)), base + s.slots_offset);
  EXPECT_GE(s.slots_offset, sizeof(RingState));
  EXPECT_EQ(reinterpret_cast<const std::byte*>(&ring.slot(1)) - reinterpret_cast<const std::byte*>(&ring.slot(0)),
            static_cast<std::ptrdiff_t>(kCacheLine));
  EXPECT_LE(reinterpret_cast<const std::byte*>(&ring.slot(9) + 1), ring.at(0)) << "slots overlap the records";
  EXPECT_EQ(ring.at(0), base + s.records_offset);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ring.at(0)) % 4096, 0u);
}

TEST(RingLayout, RetireChunkIsAtLeast256Bytes) {
  Hub hub;
  EXPECT_EQ(hub.topic("small", test::small_topic(4096)).ring().state().retire_chunk, 256u);
  EXPECT_EQ(hub.topic("big", test::small_topic(1 << 20)).ring().state().retire_chunk, 65536u);
}

TEST(RingLayout, SubscriberSlotsTrackStateAndCursor) {
  Hub hub;
  TopicOptions opt = test::small_topic();
  opt.max_subscribers = 2;
  Topic& t = hub.topic("t", opt);
  const RingView ring = t.ring();
  EXPECT_EQ(ring.slot(0).state.load(), kSlotFree);
  {
    Subscriber sub = t.subscribe();
    EXPECT_EQ(ring.slot(0).state.load(), kSlotAttached);
    t.publish(test::pattern(0, 10));
    (void)test::drain(sub);
    EXPECT_EQ(ring.slot(0).cursor_pos.load(), record_bytes(10)) << "the cursor is a byte position";
  }
  EXPECT_EQ(ring.slot(0).state.load(), kSlotFree);
}

}  // namespace
}  // namespace pushpoll::detail

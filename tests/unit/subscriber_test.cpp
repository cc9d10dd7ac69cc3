// pushpoll/topic.hpp, consumer side: where a Subscriber starts, poll(max), cursor() and lag(), tag
// masks, the subscriber table, and Subscriber as a move-only value.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::bytes_of;
using test::drain;
using test::pattern;
using test::small_topic;
using test::text_of;

static_assert(!std::is_copy_constructible_v<Subscriber>);
static_assert(!std::is_copy_assignable_v<Subscriber>);
static_assert(std::is_nothrow_move_constructible_v<Subscriber>);
static_assert(std::is_nothrow_move_assignable_v<Subscriber>);

void publish_numbered(Topic& t, std::uint64_t count, std::size_t size = 16) {
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t seq = t.head();
    t.publish(pattern(seq, size));
  }
}

// ---- poll -------------------------------------------------------------------------------------

TEST(Subscriber, PollReturnsAtMostMaxMessagesInOrder) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 10);
  std::uint64_t expect = 0;
  for (std::size_t max : {std::size_t{3}, std::size_t{3}, std::size_t{1}, std::size_t{100}}) {
    Batch b = sub.poll(max);
    EXPECT_EQ(b.size(), std::min<std::uint64_t>(max, 10 - expect));
    EXPECT_EQ(b.first_seq(), expect);
    for (const Message& m : b) {
      EXPECT_EQ(m.seq, expect++);
      EXPECT_TRUE(test::matches_pattern(m.data, m.seq));
    }
    EXPECT_EQ(b.end_seq(), expect);
  }
  EXPECT_EQ(expect, 10u);
  EXPECT_TRUE(sub.poll().empty());
}

TEST(Subscriber, PollOfZeroReturnsAnEmptyBatchAndKeepsTheCursor) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 3);
  Batch b = sub.poll(0);
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.begin() == b.end());
  EXPECT_TRUE(b.release());
  EXPECT_EQ(sub.cursor(), 0u);
  EXPECT_EQ(sub.poll().size(), 3u);
}

TEST(Subscriber, PollOnAnEmptyTopicIsEmptyAndNeverWaits) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Batch b = sub.poll();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.gap(), 0u);
  EXPECT_EQ(b.span_bytes(), 0u);
}

TEST(Subscriber, PollReturnsTheWholeBacklogWhenItFits) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  Subscriber sub = t.subscribe();
  publish_numbered(t, 500);
  Batch b = sub.poll(500);
  EXPECT_EQ(b.size(), 500u);
  std::uint64_t expect = 0;
  for (const Message& m : b) {
    EXPECT_EQ(m.seq, expect++);
    EXPECT_TRUE(test::matches_pattern(m.data, m.seq));
  }
  EXPECT_EQ(expect, 500u);
  EXPECT_EQ(b.span_bytes(), 500 * test::record_bytes(16));
}

TEST(Subscriber, CursorAdvancesOnlyWhenTheBatchIsReleased) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 5);
  Batch b = sub.poll(4);
  EXPECT_EQ(sub.cursor(), 0u);
  for ([[maybe_unused]] const Message& m : b) {
  }
  EXPECT_EQ(sub.cursor(), 0u);
  EXPECT_TRUE(b.release());
  EXPECT_EQ(sub.cursor(), 4u);
  EXPECT_TRUE(b.release()) << "release is idempotent";
  EXPECT_EQ(sub.cursor(), 4u);
}

TEST(Subscriber, DestroyingABatchReleasesIt) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 5);
  { Batch b = sub.poll(2); }
  EXPECT_EQ(sub.cursor(), 2u);
}

TEST(Subscriber, PollingAgainReleasesTheOutstandingBatch) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 6);
  Batch first = sub.poll(2);
  Batch second = sub.poll(2);
  EXPECT_EQ(second.first_seq(), 2u) << "the second poll did not continue after the first batch";
  EXPECT_EQ(sub.cursor(), 2u);
  EXPECT_TRUE(first.release()) << "reports the implicit release's result";
  EXPECT_EQ(sub.cursor(), 2u) << "releasing the old batch again must not move the cursor";
  Batch third = sub.poll(10);
  EXPECT_EQ(third.first_seq(), 4u);
  EXPECT_EQ(third.size(), 2u);
  EXPECT_TRUE(second.release());
  EXPECT_TRUE(third.release());
  EXPECT_EQ(sub.cursor(), 6u);
}

TEST(Subscriber, LagCountsPublishedButUnreleasedMessages) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  EXPECT_EQ(sub.lag(), 0u);
  publish_numbered(t, 10);
  EXPECT_EQ(sub.lag(), 10u);
  Batch b = sub.poll(4);
  EXPECT_EQ(sub.lag(), 10u);
  b.release();
  EXPECT_EQ(sub.lag(), 6u);
  (void)drain(sub);
  EXPECT_EQ(sub.lag(), 0u);
}

// ---- where a subscriber starts ----------------------------------------------------------------

TEST(Subscriber, StartOldestBeginsAtTheOldestRetainedMessage) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  publish_numbered(t, 200, 64);  // no subscriber: the ring laps freely
  const std::uint64_t oldest = t.oldest();
  ASSERT_GT(oldest, 0u);
  Subscriber sub = t.subscribe(Start::oldest);
  EXPECT_EQ(sub.cursor(), oldest);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 200 - oldest);
  EXPECT_EQ(got.front().seq, oldest);
  for (const auto& m : got) EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
}

TEST(Subscriber, StartLatestBeginsAtHead) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  publish_numbered(t, 200, 64);
  Subscriber sub = t.subscribe(Start::latest);
  EXPECT_EQ(sub.cursor(), t.head());
  EXPECT_EQ(sub.lag(), 0u);
  EXPECT_TRUE(sub.poll().empty());
  t.publish(bytes_of("fresh"));
  Batch b = sub.poll();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ((*b.begin()).seq, 200u);
  EXPECT_EQ(text_of((*b.begin()).data), "fresh");
}

TEST(Subscriber, StartResumeContinuesWhereItLeftOffWhileRetained) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  publish_numbered(t, 20, 64);
  Subscriber sub = t.subscribe(Start::resume(12));
  EXPECT_EQ(sub.cursor(), 12u);
  Batch b = sub.poll();
  EXPECT_EQ(b.gap(), 0u);
  EXPECT_EQ(b.first_seq(), 12u);
  EXPECT_EQ(b.size(), 8u);
  // At the head: nothing yet, then the next message.
  Subscriber at_head = t.subscribe(Start::resume(20));
  EXPECT_TRUE(at_head.poll().empty());
  t.publish(pattern(20, 64));
  EXPECT_EQ(at_head.poll().first_seq(), 20u);
}

TEST(Subscriber, StartResumeAfterTheRingMovedOnReportsTheExactGap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  publish_numbered(t, 200, 64);  // no subscriber: the ring laps freely
  const std::uint64_t oldest = t.oldest();
  ASSERT_GT(oldest, 5u);
  Subscriber sub = t.subscribe(Start::resume(5));
  Batch b = sub.poll();
  EXPECT_EQ(b.gap(), oldest - 5);
  EXPECT_EQ(b.first_seq(), oldest);
  EXPECT_TRUE(test::matches_pattern((*b.begin()).data, oldest));
  b.release();
  const auto rest = drain(sub);
  EXPECT_EQ(oldest + b.size() + rest.size(), 200u);
  // It gated from the oldest meanwhile: nothing it still had to read was retired under it.
  EXPECT_EQ(t.stats().laps, 1u);
}

TEST(Subscriber, StartResumePastTheHeadIsAnInvalidCursor) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  publish_numbered(t, 3);
  EXPECT_THROW((void)t.subscribe(Start::resume(4)), InvalidCursor);
  EXPECT_EQ(t.stats().subscribers, 0u) << "the slot was not handed back";
}

TEST(Subscriber, StartLatestOnAnEmptyTopicSeesTheFirstMessage) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest);
  EXPECT_EQ(sub.cursor(), 0u);
  t.publish(bytes_of("first"));
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 0u);
}

// A topic whose retained window spans many laps' worth of paddings and more messages than the
// table of recent positions, so that Start::at uses both the table and the walk.
class StartAt : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = &hub_.topic("t", small_topic(1 << 16));
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::size_t> size(0, 700);
    for (int i = 0; i < 2000; ++i) {
      const std::uint64_t seq = topic_->head();
      topic_->publish(pattern(seq, size(rng)));
    }
    ASSERT_GT(topic_->oldest(), 0u);
    ASSERT_GT(topic_->head() - topic_->oldest(), 100u) << "the window is too short to need a walk";
  }
  test::TestHub hub_;
  Topic* topic_ = nullptr;
};

TEST_F(StartAt, EveryRetainedSeqStartsExactlyThere) {
  Topic& t = *topic_;
  const std::uint64_t oldest = t.oldest(), head = t.head();
  for (std::uint64_t seq = oldest; seq <= head; ++seq) {
    Subscriber sub = t.subscribe(Start::at(seq));
    ASSERT_EQ(sub.cursor(), seq);
    Batch b = sub.poll(2);
    if (seq == head) {
      EXPECT_TRUE(b.empty());
      continue;
    }
    ASSERT_FALSE(b.empty()) << seq;
    const Message m = *b.begin();
    ASSERT_EQ(m.seq, seq);
    EXPECT_TRUE(test::matches_pattern(m.data, seq)) << "Start::at(" << seq << ") found the wrong record";
  }
}

TEST_F(StartAt, FarBackSubscriberReadsTheWholeTailIntact) {
  Topic& t = *topic_;
  const std::uint64_t from = t.oldest() + 1;
  Subscriber sub = t.subscribe(Start::at(from));
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), t.head() - from);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, from + i);
    EXPECT_TRUE(test::matches_pattern(got[i].data, got[i].seq)) << got[i].seq;
  }
}

TEST_F(StartAt, SeqsOutsideOldestToHeadThrowInvalidCursor) {
  Topic& t = *topic_;
  const std::uint64_t oldest = t.oldest(), head = t.head();
  EXPECT_THROW((void)t.subscribe(Start::at(head + 1)), InvalidCursor);
  EXPECT_THROW((void)t.subscribe(Start::at(head + 1000)), InvalidCursor);
  EXPECT_THROW((void)t.subscribe(Start::at(~std::uint64_t{0})), InvalidCursor);
  EXPECT_THROW((void)t.subscribe(Start::at(oldest - 1)), InvalidCursor);
  EXPECT_THROW((void)t.subscribe(Start::at(0)), InvalidCursor);
  EXPECT_EQ(t.stats().subscribers, 0u) << "a refused subscribe must not keep its slot";
}

TEST(Subscriber, StartAtOnAFreshTopicAcceptsOnlyZero) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  EXPECT_THROW((void)t.subscribe(Start::at(1)), InvalidCursor);
  Subscriber sub = t.subscribe(Start::at(0));
  t.publish(bytes_of("x"));
  EXPECT_EQ(drain(sub).size(), 1u);
}

TEST(Subscriber, RefusedStartAtLeavesTheSlotFree) {
  test::TestHub hub;
  TopicOptions opt = small_topic();
  opt.max_subscribers = 1;
  Topic& t = hub.topic("t", opt);
  for (int i = 0; i < 5; ++i) EXPECT_THROW((void)t.subscribe(Start::at(99)), InvalidCursor);
  Subscriber sub = t.subscribe();
  EXPECT_TRUE(sub.valid());
}

// ---- tag masks --------------------------------------------------------------------------------

TEST(Subscriber, TagMaskDeliversOnlyMatchingTags) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber only3 = t.subscribe(Start::oldest, std::uint64_t{1} << 3);
  Subscriber all = t.subscribe();
  for (std::uint64_t i = 0; i < 64; ++i) t.publish(pattern(i, 8), static_cast<unsigned>(i % 8));
  EXPECT_EQ(only3.tag_mask(), std::uint64_t{1} << 3);
  const auto got = drain(only3);
  ASSERT_EQ(got.size(), 8u);
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].tag, 3u);
    EXPECT_EQ(got[k].seq, 8 * k + 3);
    EXPECT_TRUE(test::matches_pattern(got[k].data, got[k].seq));
  }
  EXPECT_EQ(only3.cursor(), 64u) << "skipped tags still move the cursor";
  EXPECT_EQ(drain(all).size(), 64u);
}

TEST(Subscriber, TagMaskedPollCountsOnlyMatchingMessagesTowardsMax) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::oldest, (std::uint64_t{1} << 1) | (std::uint64_t{1} << 63));
  for (std::uint64_t i = 0; i < 40; ++i) t.publish(pattern(i, 8), i % 2 == 0 ? 0u : (i % 4 == 1 ? 1u : 63u));
  std::vector<std::uint64_t> seqs;
  for (int polls = 0; polls < 100; ++polls) {
    Batch b = sub.poll(3);
    if (b.end_seq() == b.first_seq()) break;
    EXPECT_LE(b.size(), 3u);
    std::size_t n = 0;
    for (const Message& m : b) {
      EXPECT_TRUE(m.tag == 1 || m.tag == 63);
      seqs.push_back(m.seq);
      ++n;
    }
    EXPECT_EQ(n, b.size());
  }
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 1; i < 40; i += 2) want.push_back(i);
  EXPECT_EQ(seqs, want);
}

TEST(Subscriber, ZeroTagMaskThrowsError) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  EXPECT_THROW((void)t.subscribe(Start::oldest, 0), Error);
  EXPECT_EQ(t.stats().subscribers, 0u);
}

// ---- the subscriber table ---------------------------------------------------------------------

TEST(Subscriber, FullSubscriberTableThrowsAClearErrorAndAFreedSlotMakesRoom) {
  test::TestHub hub;
  TopicOptions opt = small_topic();
  opt.max_subscribers = 4;
  Topic& t = hub.topic("t", opt);
  std::vector<Subscriber> subs;
  for (int i = 0; i < 4; ++i) subs.push_back(t.subscribe());
  std::string what;
  try {
    (void)t.subscribe();
    ADD_FAILURE() << "a fifth subscriber was accepted";
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("max_subscribers = 4"), std::string::npos) << what;
  EXPECT_EQ(t.stats().subscribers, 4u);
  subs.erase(subs.begin() + 1);
  Subscriber again = t.subscribe();
  EXPECT_TRUE(again.valid());
  t.publish(bytes_of("hello"));
  EXPECT_EQ(drain(again).size(), 1u);
  EXPECT_THROW((void)t.subscribe(), Error);
}

TEST(Subscriber, DefaultTableHoldsAtLeast16384Subscribers) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  std::vector<Subscriber> subs;
  subs.reserve(16384);
  for (int i = 0; i < 16384; ++i) subs.push_back(t.subscribe());
  EXPECT_EQ(t.stats().subscribers, 16384u);
  t.publish(bytes_of("to all"));
  EXPECT_EQ(drain(subs.front()).size(), 1u);
  EXPECT_EQ(drain(subs.back()).size(), 1u);
}

// ---- move-only values -------------------------------------------------------------------------

TEST(Subscriber, SubscribersKeepWorkingAfterBeingMovedIntoAVector) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  std::vector<Subscriber> subs;
  for (int i = 0; i < 20; ++i) subs.push_back(t.subscribe());  // reallocates several times
  publish_numbered(t, 5);
  for (auto& sub : subs) {
    ASSERT_TRUE(sub.valid());
    const auto got = drain(sub);
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got.back().seq, 4u);
  }
  EXPECT_EQ(t.stats().subscribers, 20u);
}

TEST(Subscriber, MovedFromSubscriberIsEmptyAndTheMovedToOneOwnsTheCursor) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber a = t.subscribe();
  publish_numbered(t, 4);
  Batch held = a.poll(2);
  Subscriber b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): documented moved-from state
  EXPECT_FALSE(static_cast<bool>(a));
  EXPECT_TRUE(held.release()) << "a batch survives a move of its subscriber";
  EXPECT_EQ(b.cursor(), 2u);
  EXPECT_EQ(&b.topic(), &t);
  EXPECT_EQ(drain(b).size(), 2u);
  EXPECT_EQ(t.stats().subscribers, 1u);
}

TEST(Subscriber, MoveAssignmentUnsubscribesTheOverwrittenOne) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber a = t.subscribe();
  Subscriber b = t.subscribe();
  EXPECT_EQ(t.stats().subscribers, 2u);
  a = std::move(b);
  EXPECT_EQ(t.stats().subscribers, 1u);
  a.unsubscribe();
  a.unsubscribe();  // idempotent
  EXPECT_EQ(t.stats().subscribers, 0u);
}

TEST(Subscriber, SubscribersCanBeUsedFromAnotherThread) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  publish_numbered(t, 10);
  std::vector<test::Received> got;
  std::thread other([&, s = std::move(sub)]() mutable { got = drain(s); });
  other.join();
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(t.stats().subscribers, 0u) << "the subscriber left with its thread";
}

}  // namespace
}  // namespace pushpoll

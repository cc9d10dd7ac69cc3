// pushpoll/topic.hpp, producer side: numbering, publish / try_publish / publish_batch / claim,
// aborted claims, size and tag errors, close, the two overflow policies, and stats().
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;
using test::drain;
using test::pattern;
using test::record_bytes;
using test::small_topic;
using test::text_of;

using Clock = std::chrono::steady_clock;

// ---- numbering and order ----------------------------------------------------------------------

TEST(Topic, SequenceNumbersStartAtZeroAndGrowByOne) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  EXPECT_EQ(t.head(), 0u);
  EXPECT_EQ(t.oldest(), 0u);
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(t.publish(bytes_of("m" + std::to_string(i))), i);
    EXPECT_EQ(t.head(), i + 1);
  }
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(got[i].seq, i);
    EXPECT_EQ(text_of(got[i].data), "m" + std::to_string(i));
  }
}

TEST(Topic, EveryPublishingCallSharesOneSequence) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  Subscriber sub = t.subscribe();
  EXPECT_EQ(t.publish(bytes_of("publish")), 0u);
  EXPECT_TRUE(t.try_publish(bytes_of("try_publish")));
  const std::span<const std::byte> two[] = {bytes_of("batch a"), bytes_of("batch b")};
  EXPECT_EQ(t.publish_batch(two), 3u);
  Claim c = t.claim(5);
  std::memcpy(c.data().data(), "claim", 5);
  EXPECT_EQ(c.commit(), 4u);
  EXPECT_EQ(t.head(), 5u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 5u);
  const char* want[] = {"publish", "try_publish", "batch a", "batch b", "claim"};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].seq, i);
    EXPECT_EQ(text_of(got[i].data), want[i]);
    EXPECT_FALSE(got[i].aborted);
  }
}

TEST(Topic, TagsTravelWithTheirMessages) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish(bytes_of("a"), 0);
  t.publish(bytes_of("b"), 63);
  EXPECT_TRUE(t.try_publish(bytes_of("c"), 9));
  Claim c = t.claim(0);
  c.commit(17);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].tag, 0u);
  EXPECT_EQ(got[1].tag, 63u);
  EXPECT_EQ(got[2].tag, 9u);
  EXPECT_EQ(got[3].tag, 17u);
}

// ---- publish_batch ----------------------------------------------------------------------------

TEST(Topic, PublishBatchReturnsTheSeqOfTheLastAndGivesAllTheTag) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish(bytes_of("before"));
  std::vector<std::vector<std::byte>> payloads;
  for (std::size_t i = 0; i < 5; ++i) payloads.push_back(pattern(i, i * 10));
  const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
  EXPECT_EQ(t.publish_batch(spans, 5), 5u);
  EXPECT_EQ(t.head(), 6u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 6u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i + 1].seq, i + 1);
    EXPECT_EQ(got[i + 1].tag, 5u);
    EXPECT_EQ(got[i + 1].data, payloads[i]);
  }
}

TEST(Topic, PublishBatchLargerThanTheRingIsSplitAndKeepsItsTail) {
  // Without subscribers nothing gates, so a batch worth 2.5 rings goes through; what is retained
  // afterwards is its tail, in order.
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096));
  std::vector<std::vector<std::byte>> payloads;
  for (std::size_t i = 0; i < 10; ++i) payloads.push_back(pattern(100 + i, 1000));
  const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
  EXPECT_EQ(t.publish_batch(spans), 9u);
  EXPECT_EQ(t.head(), 10u);
  const std::uint64_t oldest = t.oldest();
  EXPECT_GT(oldest, 0u);
  EXPECT_GE(oldest, 10u - 4096 / record_bytes(1000));
  Subscriber sub = t.subscribe();
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 10 - oldest);
  for (const auto& m : got) EXPECT_EQ(m.data, payloads[m.seq]) << m.seq;
}

TEST(Topic, PublishBatchOfNothingThrowsError) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  EXPECT_THROW((void)t.publish_batch({}), Error);
  EXPECT_EQ(t.head(), 0u);
}

// ---- claim / commit / abort -------------------------------------------------------------------

TEST(Topic, ClaimIsWrittenInPlaceAndInvisibleUntilCommitted) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Claim c = t.claim(11);
  ASSERT_TRUE(c.active());
  ASSERT_EQ(c.data().size(), 11u);
  EXPECT_TRUE(test::inside_ring(t, c.data()));
  std::memcpy(c.data().data(), "hello world", 11);
  EXPECT_EQ(t.head(), 0u);
  EXPECT_TRUE(sub.poll().empty());
  EXPECT_EQ(c.commit(7), 0u);
  EXPECT_FALSE(c.active());
  EXPECT_EQ(t.head(), 1u);
  Batch b = sub.poll();
  ASSERT_EQ(b.size(), 1u);
  const Message m = *b.begin();
  EXPECT_EQ(text_of(m.data), "hello world");
  EXPECT_EQ(m.tag, 7u);
  EXPECT_FALSE(m.aborted);
}

TEST(Topic, ClaimDroppedWithoutCommitBecomesAnEmptyAbortedMessage) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  {
    Claim c = t.claim(64);
    std::memset(c.data().data(), 'x', 64);
  }
  EXPECT_EQ(t.head(), 1u);
  EXPECT_EQ(t.stats().aborted, 1u);
  EXPECT_EQ(t.publish(bytes_of("next")), 1u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, 0u);
  EXPECT_TRUE(got[0].aborted);
  EXPECT_TRUE(got[0].data.empty());
  EXPECT_EQ(got[1].seq, 1u);
  EXPECT_FALSE(got[1].aborted);
  EXPECT_EQ(text_of(got[1].data), "next");
}

TEST(Topic, ClaimAbandonedByAnExceptionIsAbortedAndReadersGoOn) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  auto build = [&] {
    Claim c = t.claim(16);
    std::memset(c.data().data(), 1, 8);
    throw std::runtime_error("failed half way");
  };
  EXPECT_THROW(build(), std::runtime_error);
  t.publish(bytes_of("after"));
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].aborted);
  EXPECT_EQ(text_of(got[1].data), "after");
  EXPECT_EQ(sub.cursor(), 2u);
}

TEST(Topic, ExplicitAbortPublishesAnAbortedMessageOnce) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Claim c = t.claim(8);
  c.abort();
  EXPECT_FALSE(c.active());
  c.abort();  // idempotent
  EXPECT_THROW(c.commit(), Error);
  EXPECT_EQ(t.head(), 1u);
  EXPECT_EQ(t.stats().aborted, 1u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].aborted);
}

TEST(Topic, HeldClaimHoldsBackLaterMessagesAndDroppingItReleasesThem) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  std::optional<Claim> held(t.claim(8));
  std::thread later([&] { t.publish(bytes_of("later")); });
  // Wait until the later publish has claimed its record (bytes_claimed covers both): from then on
  // only the held claim keeps it from committing.
  const std::uint64_t both = record_bytes(8) + record_bytes(5);
  const auto deadline = Clock::now() + 10s;
  while (t.stats().bytes_claimed < both && Clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(t.stats().bytes_claimed, both) << "the later publish never claimed its record";
  std::this_thread::sleep_for(20ms);  // time for a commit that does not wait to show
  EXPECT_EQ(t.head(), 0u) << "a later message became visible before the earlier claim";
  EXPECT_TRUE(sub.poll().empty());
  held.reset();  // dropped uncommitted
  later.join();
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].aborted);
  EXPECT_EQ(got[1].seq, 1u);
  EXPECT_EQ(text_of(got[1].data), "later");
}

TEST(Topic, CommitTwiceOrOnAnEmptyClaimThrowsError) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Claim c = t.claim(1);
  c.commit();
  EXPECT_THROW(c.commit(), Error);
  Claim none;
  EXPECT_FALSE(none.active());
  EXPECT_THROW(none.commit(), Error);
  EXPECT_EQ(t.head(), 1u);
}

TEST(Topic, CommitWithATagOver63ThrowsAndTheClaimStaysActive) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  Claim c = t.claim(1);
  c.data()[0] = std::byte{'z'};
  EXPECT_THROW(c.commit(64), Error);
  EXPECT_TRUE(c.active());
  EXPECT_EQ(t.head(), 0u);
  EXPECT_EQ(c.commit(63), 0u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(got[0].aborted);
  EXPECT_EQ(got[0].tag, 63u);
}

// ---- sizes ------------------------------------------------------------------------------------

TEST(Topic, EmptyMessagesArePublishedAndReadAsEmpty) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish({});
  EXPECT_TRUE(t.try_publish({}));
  const std::span<const std::byte> empties[] = {{}, {}};
  t.publish_batch(empties);
  t.claim(0).commit();
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 5u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, i);
    EXPECT_TRUE(got[i].data.empty());
    EXPECT_FALSE(got[i].aborted);
  }
  EXPECT_EQ(t.stats().bytes_claimed, 5 * record_bytes(0));
}

TEST(Topic, MaxSizeMessagesRoundTripOverManyLaps) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096));
  ASSERT_EQ(t.max_message(), 1024u);
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 40; ++i) {  // 40 x 1040 bytes: about ten laps of a 4 KiB ring
    const auto payload = pattern(i, 1024);
    ASSERT_EQ(t.publish(payload), i);
    Batch b = sub.poll();
    ASSERT_EQ(b.size(), 1u);
    const Message m = *b.begin();
    EXPECT_EQ(m.seq, i);
    ASSERT_EQ(m.data.size(), 1024u);
    EXPECT_EQ(std::memcmp(m.data.data(), payload.data(), 1024), 0) << i;
  }
}

TEST(Topic, MessageOverMaxMessageThrowsMessageTooLargeFromEveryEntryPoint) {
  test::TestHub hub;
  TopicOptions opt = small_topic(8192);
  opt.max_message = 100;
  Topic& t = hub.topic("t", opt);
  const auto ok = pattern(1, 100);
  const auto big = pattern(2, 101);
  EXPECT_THROW(t.publish(big), MessageTooLarge);
  EXPECT_THROW((void)t.try_publish(big), MessageTooLarge);
  EXPECT_THROW((void)t.claim(101), MessageTooLarge);
  const std::span<const std::byte> mixed[] = {ok, big};
  EXPECT_THROW((void)t.publish_batch(mixed), MessageTooLarge);
  EXPECT_EQ(t.head(), 0u) << "nothing of a rejected call may be published";
  EXPECT_EQ(t.publish(ok), 0u);
  EXPECT_EQ(t.claim(100).data().size(), 100u);  // dropped: aborted, seq 1
  EXPECT_EQ(t.head(), 2u);
}

TEST(Topic, TagOver63ThrowsErrorFromEveryEntryPoint) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  const auto p = pattern(1, 8);
  EXPECT_THROW(t.publish(p, 64), Error);
  EXPECT_THROW((void)t.try_publish(p, 64), Error);
  const std::span<const std::byte> one[] = {p};
  EXPECT_THROW((void)t.publish_batch(one, 1000), Error);
  EXPECT_EQ(t.head(), 0u);
}

// ---- close ------------------------------------------------------------------------------------

TEST(Topic, AfterClosePublishingAndSubscribingThrowClosedButRetainedMessagesStayReadable) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber early = t.subscribe();
  for (int i = 0; i < 3; ++i) t.publish(bytes_of("m" + std::to_string(i)));
  EXPECT_FALSE(t.closed());
  t.close();
  t.close();  // idempotent
  EXPECT_TRUE(t.closed());
  const auto p = pattern(0, 4);
  const std::span<const std::byte> one[] = {p};
  EXPECT_THROW(t.publish(p), Closed);
  EXPECT_THROW((void)t.try_publish(p), Closed);
  EXPECT_THROW((void)t.publish_batch(one), Closed);
  EXPECT_THROW((void)t.claim(4), Closed);
  EXPECT_THROW((void)t.subscribe(), Closed);
  EXPECT_THROW((void)t.subscribe(Start::latest), Closed);
  EXPECT_EQ(t.head(), 3u);
  const auto got = drain(early);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(text_of(got[2].data), "m2");
}

TEST(Topic, ClosingWakesAPublisherBlockedOnAFullRingWithClosed) {
  test::TestHub hub;
  TopicOptions opt = small_topic();
  opt.publish_timeout = 10s;
  opt.stall_timeout = 10s;
  Topic& t = hub.topic("t", opt);
  Subscriber stalled = t.subscribe();
  const auto p = pattern(0, 200);
  (void)test::fill_ring(t, p);
  std::atomic<bool> got_closed{false};
  const auto start = Clock::now();
  std::thread blocked([&] {
    try {
      t.publish(p);
    } catch (const Closed&) {
      got_closed.store(true);
    }
  });
  // Close only once the publish waits for room: a publish that starts after close() throws Closed
  // without ever having blocked.
  const auto deadline = Clock::now() + 10s;
  while (t.stats().full_waits == 0 && Clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(t.stats().full_waits, 1u) << "the publish never waited for room";
  t.close();
  blocked.join();
  EXPECT_TRUE(got_closed.load());
  EXPECT_LT(Clock::now() - start, 5s) << "the blocked publisher did not notice close()";
}

// ---- Overflow::block --------------------------------------------------------------------------

TopicOptions blocking(std::chrono::nanoseconds publish_timeout, std::chrono::nanoseconds stall_timeout) {
  TopicOptions opt = small_topic(4096, Overflow::block);
  opt.publish_timeout = publish_timeout;
  opt.stall_timeout = stall_timeout;
  return opt;
}

TEST(TopicBlock, RingHoldsExactlyWhatFitsThenTryPublishReturnsFalse) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(50ms, 10s));
  Subscriber stalled = t.subscribe();
  const auto p = pattern(0, 64);  // 80-byte records
  std::uint64_t published = 0;
  published += test::fill_ring(t, p);
  EXPECT_EQ(published, 4096 / record_bytes(64));
  EXPECT_EQ(t.head(), published);
  EXPECT_EQ(t.stats().full_timeouts, 1u);
  EXPECT_FALSE(t.try_publish(p));
  EXPECT_EQ(t.stats().full_timeouts, 2u);
  EXPECT_EQ(t.stats().full_waits, 0u) << "try_publish never waits";
}

TEST(TopicBlock, PublishWaitsPublishTimeoutThenThrowsFull) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(50ms, 10s));
  Subscriber stalled = t.subscribe();
  const auto p = pattern(0, 64);
  (void)test::fill_ring(t, p);
  const TopicStats before = t.stats();
  const auto start = Clock::now();
  EXPECT_THROW(t.publish(p), Full);
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 5s);
  const TopicStats after = t.stats();
  EXPECT_EQ(after.full_timeouts, before.full_timeouts + 1);
  EXPECT_EQ(after.full_waits, before.full_waits + 1);
  EXPECT_EQ(after.head, before.head) << "a publish that threw Full published nothing";
  EXPECT_EQ(after.detaches, 0u);
}

TEST(TopicBlock, FullRingNeverOverwritesWhatALiveSubscriberStillNeeds) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(20ms, 10s));
  Subscriber sub = t.subscribe();
  std::uint64_t published = 0;
  published += test::fill_ring_with(t, [](std::uint64_t seq) { return pattern(seq, 64); });
  EXPECT_THROW(t.publish(pattern(published, 64)), Full);
  std::uint64_t gaps = 0;
  const auto got = drain(sub, &gaps);
  EXPECT_EQ(gaps, 0u);
  ASSERT_EQ(got.size(), published);
  for (const auto& m : got) EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
}

TEST(TopicBlock, BlockedPublishProceedsWhenTheSubscriberCatchesUp) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(10s, 10s));
  Subscriber sub = t.subscribe();
  const auto p = pattern(0, 64);
  std::uint64_t published = 0;
  published += test::fill_ring(t, p);
  const TopicStats before = t.stats();
  std::thread reader([&] {
    std::this_thread::sleep_for(30ms);
    for (std::uint64_t polls = 0; polls < test::kPatience && sub.cursor() < published; ++polls) {
      (void)sub.poll();  // each batch is released at once
    }
  });
  const auto start = Clock::now();
  EXPECT_EQ(t.publish(p), published);
  EXPECT_GE(Clock::now() - start, 20ms) << "the publish did not wait for room";
  reader.join();
  const TopicStats after = t.stats();
  EXPECT_EQ(after.full_waits, before.full_waits + 1);
  EXPECT_EQ(after.full_timeouts, before.full_timeouts);
}

TEST(TopicBlock, UnsubscribingFreesTheRingForTheProducer) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(20ms, 10s));
  Subscriber sub = t.subscribe();
  const auto p = pattern(0, 64);
  (void)test::fill_ring(t, p);
  sub.unsubscribe();
  EXPECT_FALSE(sub.valid());
  EXPECT_TRUE(t.try_publish(p));
}

TEST(TopicBlock, SubscribersStalledAtDifferentCursorsAreDetachedTogetherAfterOneStallTimeout) {
  // Eight subscribers stop at eight different cursors. They once went one after another, each
  // after its own stall_timeout (8 x 300 ms); all eight made no progress while the ring was full,
  // so all eight go when the first stall_timeout has passed.
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(10s, 300ms));
  std::vector<Subscriber> stalled;
  for (int k = 0; k < 8; ++k) stalled.push_back(t.subscribe());
  const auto p = pattern(0, 64);
  for (int k = 0; k < 8; ++k) {
    t.publish(p);
    for (int j = k; j < 8; ++j) (void)drain(stalled[static_cast<std::size_t>(j)]);  // k stops at k + 1
  }
  const auto start = Clock::now();
  for (int i = 0; i < 200; ++i) t.publish(p);  // many laps: needs every one of them detached
  const auto took = Clock::now() - start;
  EXPECT_EQ(t.stats().detaches, 8u);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 900ms) << "detached one after another";
  for (int k = 0; k < 8; ++k) {
    Batch b = stalled[static_cast<std::size_t>(k)].poll(1000);
    EXPECT_EQ(b.gap(), t.oldest() - static_cast<std::uint64_t>(k + 1)) << "subscriber " << k;
  }
}

TEST(TopicBlock, ABatchThatStaysFullSaysHowManyOfItsMessagesWentOut) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(30ms, 10s));
  Subscriber held = t.subscribe();
  std::vector<std::vector<std::byte>> payloads(100, pattern(0, 100));
  const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
  try {
    t.publish_batch(spans);  // one claim per half ring: the first fits, the ring then stays full
    FAIL() << "no Full";
  } catch (const Full& e) {
    EXPECT_GT(e.published(), 0u);
    EXPECT_LT(e.published(), 100u);
    EXPECT_EQ(t.head(), e.published()) << "exactly the first published() messages went out";
    EXPECT_NE(std::string(e.what()).find("after the first " + std::to_string(e.published())), std::string::npos)
        << e.what();
  }
  (void)test::fill_ring(t, pattern(1, 100));  // what is left of the ring, which the batch's next chunk needed more of
  try {
    t.publish(pattern(1, 100));
    FAIL() << "no Full";
  } catch (const Full& e) {
    EXPECT_EQ(e.published(), 0u);
  }
}

TEST(TopicBlock, APublishWhoseInterruptCheckSaysStopThrowsInterruptedAndPublishesNothing) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(10s, 10s));
  Subscriber held = t.subscribe();
  const std::uint64_t fitted = test::fill_ring(t, pattern(0, 64));
  int asked = 0;
  const auto start = Clock::now();
  EXPECT_THROW(t.publish(pattern(1, 64), 0, [&] { return ++asked == 3; }), Interrupted);
  EXPECT_EQ(asked, 3);
  EXPECT_LT(Clock::now() - start, 5s) << "asked about every 50 ms, not once per publish_timeout";
  EXPECT_EQ(t.head(), fitted);
  // With room, the check is never made.
  (void)drain(held);
  EXPECT_EQ(t.publish(pattern(2, 64), 0, [&] { return ++asked, true; }), fitted);
  EXPECT_EQ(asked, 3);
}

TEST(TopicBlock, TheLargestPublishTimeoutMeansForeverNotAnOverflow) {
  test::TestHub hub;
  TopicOptions opt = blocking(std::chrono::nanoseconds::max(), 1h);
  Topic& t = hub.topic("t", opt);
  Subscriber held = t.subscribe();
  (void)test::fill_ring(t, pattern(0, 64));
  std::atomic<bool> threw_closed{false}, threw_other{false};
  std::thread waiting([&] {
    try {
      t.publish(pattern(1, 64));
    } catch (const Closed&) {
      threw_closed = true;
    } catch (...) {
      threw_other = true;
    }
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(threw_other.load()) << "nanoseconds::max() overflowed into an immediate Full";
  EXPECT_FALSE(threw_closed.load());
  t.close();
  waiting.join();
  EXPECT_TRUE(threw_closed.load());
}

TEST(TopicBlock, StalledSubscriberIsDetachedAndItsNextPollReportsTheExactGap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(5s, 100ms));
  Subscriber stalled = t.subscribe();
  Subscriber live = t.subscribe();
  constexpr std::uint64_t kMessages = 200;  // about four laps of 80-byte records
  std::vector<test::Received> live_got;
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(t.publish(pattern(i, 64)), i);  // never throws Full: the stalled one is detached
    Batch b = live.poll();
    for (const Message& m : b) live_got.push_back(test::copy_of(m));
    EXPECT_EQ(b.gap(), 0u);
    EXPECT_TRUE(b.release());
  }
  EXPECT_GE(Clock::now() - start, 100ms) << "the producer did not wait stall_timeout";
  EXPECT_EQ(t.stats().detaches, 1u);

  // The live subscriber saw everything.
  ASSERT_EQ(live_got.size(), kMessages);
  for (std::uint64_t i = 0; i < kMessages; ++i) EXPECT_EQ(live_got[i].seq, i);

  // The stalled one missed exactly the messages before oldest() and resumes there.
  const std::uint64_t oldest = t.oldest();
  ASSERT_GT(oldest, 0u);
  ASSERT_EQ(stalled.cursor(), 0u);
  Batch b = stalled.poll(kMessages);
  EXPECT_EQ(b.gap(), oldest);
  EXPECT_EQ(b.first_seq(), oldest);
  std::uint64_t expect = oldest;
  for (const Message& m : b) {
    EXPECT_EQ(m.seq, expect);
    EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
    ++expect;
  }
  EXPECT_EQ(expect, kMessages);
  EXPECT_TRUE(b.release());
  EXPECT_EQ(stalled.cursor(), kMessages);
  EXPECT_EQ(t.stats().laps, 1u);
}

// The stall clock belongs to the subscribers that held the gate, not to the position: one that
// attaches at a gate already stuck for stall_timeout is not detached with the stalled one.
TEST(TopicBlock, SubscriberAttachingAtAStuckGateIsNotDetachedWithTheStalledOne) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(5s, 100ms));
  Subscriber stalled = t.subscribe();
  const auto p = pattern(0, 64);
  const std::uint64_t n = test::fill_ring(t, p);  // full against `stalled`, which never reads
  EXPECT_FALSE(t.try_publish(p));                 // the stall clock runs from here (or before)
  std::this_thread::sleep_for(150ms);             // the gate has been stuck past stall_timeout
  Subscriber late = t.subscribe(Start::oldest);    // attaches at the stuck gate
  ASSERT_EQ(late.cursor(), 0u);
  // The stalled one is detached; the late one now holds the gate on its own, for its own
  // stall_timeout: still no room.
  EXPECT_FALSE(t.try_publish(p));
  EXPECT_EQ(t.stats().detaches, 1u);
  std::uint64_t gaps = 0;
  EXPECT_EQ(drain(late, &gaps).size(), n) << "the late subscriber lost messages";
  EXPECT_EQ(gaps, 0u);
  EXPECT_TRUE(t.try_publish(p)) << "drained, the late subscriber makes room";
}

TEST(TopicBlock, ReattachedSubscriberGatesTheProducerAgain) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(5s, 50ms));
  Subscriber sub = t.subscribe();
  const auto p = pattern(0, 64);
  for (int i = 0; i < 100; ++i) t.publish(p);  // detaches `sub` once
  ASSERT_EQ(t.stats().detaches, 1u);
  (void)drain(sub);  // reattaches and catches up
  // Now it gates again: filling the ring makes try_publish fail rather than overwrite.
  std::uint64_t published = 0;
  published += test::fill_ring(t, p);
  EXPECT_EQ(published, 4096 / record_bytes(64));
  std::uint64_t gaps = 0;
  EXPECT_EQ(drain(sub, &gaps).size(), published);
  EXPECT_EQ(gaps, 0u);
}

TEST(TopicBlock, BatchHeldPastStallTimeoutIsDetachedAndReleaseReportsItOverwritten) {
  test::TestHub hub;
  Topic& t = hub.topic("t", blocking(5s, 50ms));
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 10; ++i) t.publish(pattern(i, 64));
  Batch held = sub.poll();
  ASSERT_EQ(held.size(), 10u);
  for (std::uint64_t i = 10; i < 200; ++i) t.publish(pattern(i, 64));  // overwrites the batch
  EXPECT_EQ(t.stats().detaches, 1u);
  EXPECT_FALSE(held.release());
  const std::uint64_t oldest = t.oldest();
  Batch next = sub.poll(1000);
  EXPECT_EQ(next.gap(), oldest - 10);
  EXPECT_EQ(next.first_seq(), oldest);
  EXPECT_EQ(next.end_seq(), 200u);
}

// ---- Overflow::overwrite ----------------------------------------------------------------------

TEST(TopicOverwrite, PublishNeverWaitsAndLappedSubscriberGetsTheExactGap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 10; ++i) t.publish(pattern(i, 64));
  {
    Batch b = sub.poll();
    ASSERT_EQ(b.size(), 10u);
  }
  ASSERT_EQ(sub.cursor(), 10u);
  for (std::uint64_t i = 10; i < 500; ++i) ASSERT_TRUE(t.try_publish(pattern(i, 64)));
  EXPECT_EQ(t.stats().full_waits, 0u);
  EXPECT_EQ(t.stats().full_timeouts, 0u);

  const std::uint64_t oldest = t.oldest();
  EXPECT_GT(oldest, 10u);
  EXPECT_LE(500 - oldest, 4096 / record_bytes(64)) << "retains more than fits";
  Batch b = sub.poll(1000);
  EXPECT_EQ(b.gap(), oldest - 10);
  EXPECT_EQ(b.first_seq(), oldest);
  std::uint64_t expect = oldest;
  for (const Message& m : b) {
    ASSERT_EQ(m.seq, expect);
    EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
    ++expect;
  }
  EXPECT_EQ(expect, 500u);
  EXPECT_TRUE(b.release());
  EXPECT_EQ(t.stats().laps, 1u);
}

TEST(TopicOverwrite, EverySeqIsEitherDeliveredOnceOrCountedInAGap) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  std::mt19937 rng(42);
  std::uint64_t next = 0;     // next seq the subscriber should account for
  std::uint64_t gaps = 0, delivered = 0;
  for (int round = 0; round < 300; ++round) {
    const unsigned burst = std::uniform_int_distribution<unsigned>(0, 80)(rng);
    for (unsigned i = 0; i < burst; ++i) {
      const std::uint64_t seq = t.head();
      t.publish(pattern(seq, std::uniform_int_distribution<std::size_t>(0, 300)(rng)));
    }
    const std::size_t max = std::uniform_int_distribution<std::size_t>(1, 64)(rng);
    Batch b = sub.poll(max);
    ASSERT_EQ(b.first_seq(), next + b.gap()) << "round " << round;
    gaps += b.gap();
    std::uint64_t expect = b.first_seq();
    for (const Message& m : b) {
      ASSERT_EQ(m.seq, expect++);
      EXPECT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
      ++delivered;
    }
    EXPECT_EQ(expect, b.end_seq());
    EXPECT_LE(b.size(), max);
    EXPECT_TRUE(b.release()) << "single-threaded: nothing overwrites a held batch";
    next = b.end_seq();
  }
  std::uint64_t tail_gaps = 0;
  delivered += drain(sub, &tail_gaps).size();
  EXPECT_EQ(gaps + tail_gaps + delivered, t.head());
  EXPECT_GT(gaps + tail_gaps, 0u) << "the subscriber was never lapped: the test proves nothing";
}

TEST(TopicOverwrite, ReleaseReturnsFalseWhenTheHeldBatchWasOverwritten) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 5; ++i) t.publish(pattern(i, 64));
  Batch held = sub.poll();
  ASSERT_EQ(held.size(), 5u);
  // More than a ring's worth.
  for (std::uint64_t i = 5; i < 5 + 2 * 4096 / record_bytes(64); ++i) t.publish(pattern(i, 64));
  EXPECT_FALSE(held.release());
  EXPECT_FALSE(held.release()) << "the answer is stable";
  EXPECT_EQ(sub.cursor(), 5u);
  Batch next = sub.poll(1000);
  EXPECT_EQ(next.first_seq(), t.oldest());
  EXPECT_EQ(next.gap(), t.oldest() - 5);
}

TEST(TopicOverwrite, ReleaseReturnsTrueWhenTheHeldBatchSurvived) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096, Overflow::overwrite));
  Subscriber sub = t.subscribe();
  for (std::uint64_t i = 0; i < 5; ++i) t.publish(pattern(i, 64));
  Batch held = sub.poll();
  for (std::uint64_t i = 5; i < 40; ++i) t.publish(pattern(i, 64));  // 40 x 80 < 4096: no lap
  EXPECT_EQ(t.oldest(), 0u);
  EXPECT_TRUE(held.release());
}

// ---- single producer --------------------------------------------------------------------------

TEST(Topic, SingleProducerTopicNumbersAndDeliversLikeAnyOther) {
  test::TestHub hub;
  TopicOptions opt = small_topic(4096);
  opt.single_producer = true;
  Topic& t = hub.topic("t", opt);
  Subscriber sub = t.subscribe();
  std::uint64_t seq = 0;
  std::vector<test::Received> got;
  for (int round = 0; round < 50; ++round) {  // several laps
    EXPECT_EQ(t.publish(pattern(seq, 100)), seq);
    ++seq;
    EXPECT_TRUE(t.try_publish(pattern(seq, 10)));
    ++seq;
    const auto a = pattern(seq, 30), b = pattern(seq + 1, 0);
    const std::span<const std::byte> two[] = {a, b};
    EXPECT_EQ(t.publish_batch(two), seq + 1);
    seq += 2;
    Claim c = t.claim(40);
    const auto p = pattern(seq, 40);
    std::memcpy(c.data().data(), p.data(), 40);
    EXPECT_EQ(c.commit(), seq);
    ++seq;
    for (auto& m : drain(sub)) got.push_back(std::move(m));
  }
  ASSERT_EQ(got.size(), seq);
  for (std::uint64_t i = 0; i < seq; ++i) {
    EXPECT_EQ(got[i].seq, i);
    EXPECT_TRUE(test::matches_pattern(got[i].data, i)) << i;
  }
}

// ---- stats ------------------------------------------------------------------------------------

TEST(TopicStats, FreshTopicHasAllZero) {
  test::TestHub hub;
  const TopicStats s = hub.topic("t", small_topic()).stats();
  EXPECT_EQ(s.head, 0u);
  EXPECT_EQ(s.oldest, 0u);
  EXPECT_EQ(s.bytes_claimed, 0u);
  EXPECT_EQ(s.subscribers, 0u);
  EXPECT_EQ(s.full_waits, 0u);
  EXPECT_EQ(s.full_timeouts, 0u);
  EXPECT_EQ(s.detaches, 0u);
  EXPECT_EQ(s.laps, 0u);
  EXPECT_EQ(s.retire_walks, 0u);
  EXPECT_EQ(s.gate_scans, 0u);
  EXPECT_EQ(s.aborted, 0u);
}

TEST(TopicStats, CountHeadBytesSubscribersAndAborts) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  Subscriber a = t.subscribe();
  std::optional<Subscriber> b(t.subscribe());
  EXPECT_EQ(t.stats().subscribers, 2u);
  t.publish(pattern(0, 1));
  t.publish(pattern(1, 100));
  (void)t.claim(3);  // aborted
  const TopicStats s = t.stats();
  EXPECT_EQ(s.head, 3u);
  EXPECT_EQ(s.oldest, 0u);
  EXPECT_EQ(s.bytes_claimed, record_bytes(1) + record_bytes(100) + record_bytes(3));
  EXPECT_EQ(s.aborted, 1u);
  b.reset();
  EXPECT_EQ(t.stats().subscribers, 1u);
}

TEST(TopicStats, WritersScanSubscriberCursorsOnlyWhenTheRingLooksFull) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(1 << 16));
  std::vector<Subscriber> subs;
  for (int i = 0; i < 100; ++i) subs.push_back(t.subscribe());
  const auto p = pattern(0, 48);  // 64-byte records
  // Up to a full ring: nothing to retire, no scan.
  for (std::uint64_t i = 0; i < (1 << 16) / 64; ++i) t.publish(p);
  EXPECT_EQ(t.stats().gate_scans, 0u);
  EXPECT_EQ(t.stats().retire_walks, 0u);
  // Ten more rings' worth, the subscribers keeping up: scans stay rare.
  constexpr std::uint64_t kMore = 10 * (1 << 16) / 64;
  for (std::uint64_t i = 0; i < kMore; ++i) {
    if (i % 256 == 0) {
      for (auto& s : subs) (void)drain(s);
    }
    t.publish(p);
  }
  const TopicStats s = t.stats();
  EXPECT_GT(s.gate_scans, 0u);
  EXPECT_LT(s.gate_scans, kMore / 20) << "the producer scans cursors too often";
  EXPECT_LE(s.gate_scans, 2 * s.retire_walks);
}

}  // namespace
}  // namespace pushpoll

// pushpoll/claim.hpp and the commit path: a held claim holds nobody but the readers behind it; a
// late commit makes everything committed behind it visible; claim expiry (claim_timeout) by a
// reader or by a producer needing room, before and after the ring wraps past the claim; commit
// marks against stale entries; a bias flag left up without an owner (the bias itself needs io's
// notifier: tests/io/bias_test.cpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "pushpoll/detail/commit.hpp"
#include "test_support.hpp"

namespace pushpoll {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;
using test::drain;
using test::pattern;
using test::small_topic;
using test::text_of;
using Clock = std::chrono::steady_clock;

TopicOptions expiring(std::chrono::nanoseconds claim_timeout, std::uint64_t capacity = 1 << 16,
                      Overflow overflow = Overflow::block) {
  TopicOptions opt = small_topic(capacity, overflow);
  opt.claim_timeout = claim_timeout;
  return opt;
}

/// Polls until `sub` has read `n` messages (or the patience runs out), copying them.
std::vector<test::Received> read_n(Subscriber& sub, std::size_t n, std::chrono::nanoseconds patience = 10s) {
  std::vector<test::Received> got;
  const auto until = Clock::now() + patience;
  while (got.size() < n && Clock::now() < until) {
    Batch b = sub.poll();
    for (const Message& m : b) got.push_back(test::copy_of(m));
    if (b.empty()) std::this_thread::sleep_for(1ms);
  }
  return got;
}

// ---- a held claim -----------------------------------------------------------------------------

TEST(HeldClaim, OtherPublishersDoNotWaitAndReadersSeeNothingPastIt) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(0ns, 1 << 20));  // never expires; room for all
  Subscriber sub = t.subscribe();
  Claim held = t.claim(8);
  std::memcpy(held.data().data(), "held!!!!", 8);
  const auto start = Clock::now();
  std::thread other([&] {
    for (int i = 0; i < 1000; ++i) t.publish(pattern(static_cast<std::uint64_t>(i), 64));
  });
  other.join();
  const auto took = Clock::now() - start;
  EXPECT_LT(took, 2s) << "publishes behind a held claim waited for it";
  EXPECT_EQ(t.head(), 0u) << "the frontier is the held claim";
  EXPECT_TRUE(sub.poll().empty());
  EXPECT_EQ(sub.lag(), 0u);
  EXPECT_EQ(held.commit(3), 0u);
  // The late commit makes all 1,001 visible at once, in seq order.
  EXPECT_EQ(t.head(), 1001u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 1001u);
  EXPECT_EQ(text_of(got[0].data), "held!!!!");
  EXPECT_EQ(got[0].tag, 3u);
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    ASSERT_EQ(got[i].seq, i);
    ASSERT_TRUE(test::matches_pattern(got[i].data, i - 1)) << i;
  }
}

TEST(HeldClaim, ASingleThreadMayClaimPublishAndThenCommitAndBothAreDelivered) {
  for (const bool single_producer : {false, true}) {
    SCOPED_TRACE(single_producer ? "single_producer" : "default");
    test::TestHub hub;
    TopicOptions opt = small_topic();
    opt.single_producer = single_producer;
    Topic& t = hub.topic("t", opt);
    Subscriber sub = t.subscribe();
    Claim c = t.claim(5);
    std::memcpy(c.data().data(), "first", 5);
    EXPECT_EQ(t.publish(bytes_of("second")), 1u);
    EXPECT_TRUE(sub.poll().empty()) << "the second is behind the uncommitted first";
    EXPECT_EQ(c.commit(), 0u);
    const auto got = drain(sub);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(text_of(got[0].data), "first");
    EXPECT_EQ(text_of(got[1].data), "second");
  }
}

TEST(HeldClaim, DataIsEmptyOnceCommittedAbortedOrMovedFrom) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Claim a = t.claim(16);
  EXPECT_EQ(a.data().size(), 16u);
  a.commit();
  EXPECT_TRUE(a.data().empty());
  Claim b = t.claim(16);
  b.abort();
  EXPECT_TRUE(b.data().empty());
  Claim c = t.claim(16);
  Claim d = std::move(c);
  EXPECT_TRUE(c.data().empty());  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
  EXPECT_EQ(d.data().size(), 16u);
  EXPECT_EQ(d.seq(), 2u);
}

// ---- claim expiry -----------------------------------------------------------------------------

TEST(ClaimExpiry, AReaderHeldBackForClaimTimeoutAbortsTheClaimAndItsCommitThrows) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(50ms));
  Subscriber sub = t.subscribe();
  Claim stuck = t.claim(8);
  t.publish(bytes_of("behind"));
  const auto start = Clock::now();
  const auto got = read_n(sub, 2);
  const auto took = Clock::now() - start;
  ASSERT_EQ(got.size(), 2u) << "the reader never got past the stuck claim";
  EXPECT_GE(took, 50ms) << "expired before claim_timeout";
  EXPECT_TRUE(got[0].aborted);
  EXPECT_TRUE(got[0].data.empty());
  EXPECT_EQ(got[1].seq, 1u);
  EXPECT_EQ(text_of(got[1].data), "behind");
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_EQ(t.stats().aborted, 0u) << "expired is not dropped";
  EXPECT_THROW(stuck.commit(), ClaimExpired);
  EXPECT_FALSE(stuck.active());
  EXPECT_TRUE(stuck.data().empty());
  EXPECT_TRUE(drain(sub).empty()) << "the late commit published nothing";
}

TEST(ClaimExpiry, AReaderThatIsNotHeldBackDoesNotExpireAClaimAtTheFrontier) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(20ms));
  Subscriber sub = t.subscribe();
  Claim c = t.claim(4);  // nothing after it: it holds nobody back
  const auto until = Clock::now() + 100ms;
  while (Clock::now() < until) EXPECT_TRUE(sub.poll().empty());
  EXPECT_EQ(t.stats().expired, 0u);
  std::memcpy(c.data().data(), "late", 4);
  EXPECT_EQ(c.commit(), 0u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(text_of(got[0].data), "late");
}

TEST(ClaimExpiry, ZeroClaimTimeoutNeverExpires) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(0ns));
  Subscriber sub = t.subscribe();
  Claim c = t.claim(4);
  t.publish(bytes_of("x"));
  const auto until = Clock::now() + 100ms;
  while (Clock::now() < until) EXPECT_TRUE(sub.poll().empty());
  std::memcpy(c.data().data(), "kept", 4);
  c.commit();
  EXPECT_EQ(drain(sub).size(), 2u);
  EXPECT_EQ(t.stats().expired, 0u);
}

TEST(ClaimExpiry, AProducerThatNeedsRoomExpiresTheClaimThatFillsTheRing) {
  test::TestHub hub;
  TopicOptions opt = expiring(100ms, 4096);
  opt.publish_timeout = 5s;
  Topic& t = hub.topic("t", opt);  // no subscriber: only the claim holds the ring
  Claim stuck = t.claim(100);
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < 200; ++i) t.publish(pattern(i, 64));  // several laps of 4 KiB
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 5s) << "the producer waited for publish_timeout instead";
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_GT(t.stats().held_waits, 0u);
  EXPECT_GT(t.oldest(), 1u) << "the ring moved on past the expired claim";
  EXPECT_THROW(stuck.commit(), ClaimExpired);
}

TEST(ClaimExpiry, ALateCommitAfterTheRingWrappedPastTheClaimCorruptsNothing) {
  for (const Overflow overflow : {Overflow::block, Overflow::overwrite}) {
    SCOPED_TRACE(overflow == Overflow::block ? "block" : "overwrite");
    test::TestHub hub;
    TopicOptions opt = expiring(30ms, 4096, overflow);
    Topic& t = hub.topic("t", opt);
    Subscriber sub = t.subscribe();
    Claim stuck = t.claim(64);
    t.publish(pattern(1, 64));
    ASSERT_EQ(read_n(sub, 2).size(), 2u);  // the reader expires it
    ASSERT_EQ(t.stats().expired, 1u);
    // Many laps of both the ring (4 KiB) and the index (128 entries): the claim's entry and bytes
    // now belong to later messages.
    for (std::uint64_t i = 2; i < 2000; ++i) {
      t.publish(pattern(i, 64));
      (void)drain(sub);
    }
    EXPECT_THROW(stuck.commit(7), ClaimExpired);
    // Every retained message is still exactly what was published.
    Subscriber check = t.subscribe(Start::oldest);
    std::uint64_t n = 0;
    for (const auto& m : drain(check)) {
      ASSERT_FALSE(m.aborted) << m.seq;
      ASSERT_EQ(m.tag, 0u) << m.seq;
      ASSERT_TRUE(test::matches_pattern(m.data, m.seq)) << m.seq;
      ++n;
    }
    EXPECT_GT(n, 10u);
    EXPECT_EQ(t.head(), 2000u);
  }
}

TEST(ClaimExpiry, ADroppedExpiredClaimPublishesNothingMore) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(20ms));
  Subscriber sub = t.subscribe();
  std::optional<Claim> stuck(t.claim(8));
  t.publish(bytes_of("after"));
  ASSERT_EQ(read_n(sub, 2).size(), 2u);
  stuck.reset();  // abort() of an expired claim: nothing happens
  EXPECT_EQ(t.stats().aborted, 0u);
  EXPECT_EQ(t.head(), 2u);
  EXPECT_TRUE(drain(sub).empty());
}

TEST(ClaimExpiry, APublishBatchCoversEveryMessageWithItsOwnCommit) {
  test::TestHub hub;
  Topic& t = hub.topic("t", expiring(1s));
  Subscriber sub = t.subscribe();
  std::vector<std::vector<std::byte>> payloads;
  for (std::uint64_t i = 0; i < 50; ++i) payloads.push_back(pattern(i, i));
  const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
  EXPECT_EQ(t.publish_batch(spans, 5), 49u);
  const auto got = drain(sub);
  ASSERT_EQ(got.size(), 50u);
  for (std::uint64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(got[i].tag, 5u);
    EXPECT_TRUE(test::matches_pattern(got[i].data, i)) << i;
  }
}

// ---- commit marks -----------------------------------------------------------------------------

TEST(CommitMarks, PayloadsThatLookLikeMarksOrPrefixesAreNeverReadAsCommits) {
  // Fill laps with payloads made of what a reader looks for (the seq numbers to come, record
  // prefixes of every size): a claim after them must still be invisible until it commits.
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic(4096));
  Subscriber sub = t.subscribe();
  for (std::uint64_t round = 0; round < 200; ++round) {
    std::vector<std::uint64_t> words(8);
    for (std::uint64_t k = 0; k < words.size(); ++k) words[k] = t.head() + k;
    t.publish(std::as_bytes(std::span(words)));
    (void)drain(sub);
  }
  Claim c = t.claim(64);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(sub.poll().empty());
  c.commit();
  EXPECT_EQ(drain(sub).size(), 1u);
}

// ---- the bias of a sole producer --------------------------------------------------------------

TEST(Bias, AFlagLeftUpWithoutAnOwnerIsLoweredByTheNextClaim) {
  // A thread can take the owner word, be revoked by a revoker that read the owner earlier, and
  // only then raise the flag: the flag is up and nobody owns the bias. The next claim must lower it
  // and go on (it once spun forever, every producer of the topic with it).
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish(bytes_of("before"));
  auto& s = t.ring().state();
  s.owner.store(0);
  s.claim.fetch_or(detail::kClaimBiased);
  std::thread publisher([&] { t.publish(bytes_of("after")); });
  const auto until = Clock::now() + 5s;
  while (t.head() < 2 && Clock::now() < until) std::this_thread::yield();
  if (t.head() < 2) {
    ADD_FAILURE() << "the publish never claimed: it spins on a flag nobody owns";
    std::_Exit(1);  // the publisher cannot be joined
  }
  publisher.join();
  EXPECT_EQ(s.claim.load() & detail::kClaimBiased, 0u);
  EXPECT_EQ(drain(sub).size(), 2u);
}

}  // namespace
}  // namespace pushpoll

// Core's side of the wake-up protocol, through the notifier seam (detail/notifier.hpp) and a fake
// that records what core asks: who is asked to wake, for which tags, and when; topics added, closed
// and gone; eventfds opened and closed. No syscalls: the wake-ups themselves are tests/io's.
#include <gtest/gtest.h>

#include <optional>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::bytes_of;
using test::small_topic;

std::uint64_t tag_bit(unsigned tag) { return std::uint64_t{1} << tag; }

TEST(NotifierSeam, APublishWithNobodyArmedAsksForNoWakeUp) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest);
  for (int i = 0; i < 10; ++i) t.publish(bytes_of("x"), 5);
  EXPECT_TRUE(hub.fake().calls("notify").empty());
}

TEST(NotifierSeam, APublishAfterAnArmingAsksToWakeForItsTag) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest);
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of("x"), 3);
  const auto calls = hub.fake().calls("notify");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].topic, "t");
  EXPECT_EQ(calls[0].tags, tag_bit(3));
  EXPECT_EQ(hub.wake_stats().arms, 1u);
}

TEST(NotifierSeam, ALateCommitAsksForTheTagsOfEverythingItMadeVisible) {
  // Every committer that sees someone armed asks, with the tags of its message and of every message
  // done after it (DESIGN, "What a commit makes visible"): the one behind a held claim too (it may
  // be what a racing late commit's walk missed: an early push costs a poll), and the late commit
  // for everything it released.
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest);
  Claim held = t.claim(4);
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of("behind"), 7);  // committed, invisible behind the held claim
  held.commit(2);                    // makes both visible
  const auto calls = hub.fake().calls("notify");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].tags, tag_bit(7));
  EXPECT_EQ(calls[1].tags, tag_bit(2) | tag_bit(7));
}

TEST(NotifierSeam, AnAbortedClaimAsksForTagZeroAndWhatItReleased) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest);
  std::optional<Claim> held(t.claim(4));
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of("behind"), 9);
  held.reset();  // aborted: an empty message with tag 0
  const auto calls = hub.fake().calls("notify");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].tags, tag_bit(0) | tag_bit(9));
}

TEST(NotifierSeam, TopicsAreAnnouncedClosedAndGone) {
  auto hub = std::make_unique<test::TestHub>();
  test::FakeNotifier& fake = hub->fake();
  (void)hub->topic("a", small_topic());
  (void)hub->topic("b", small_topic());
  ASSERT_EQ(fake.calls("added").size(), 2u);
  EXPECT_EQ(fake.calls("added")[0].topic, "a");
  hub->topic("a").close();
  ASSERT_EQ(fake.calls("closed").size(), 1u);
  EXPECT_EQ(fake.calls("closed")[0].topic, "a");
  hub->topic("a").close();  // idempotent: not asked again
  EXPECT_EQ(fake.calls("closed").size(), 1u);
  // The fake outlives the hub through this reference: see what the hub's end asked.
  const std::shared_ptr<detail::Notifier> notifier = hub->notifier();
  hub.reset();
  const auto& f = static_cast<const test::FakeNotifier&>(*notifier);
  EXPECT_EQ(f.calls("closed").size(), 2u) << "b is closed with the hub";
  EXPECT_EQ(f.calls("gone").size(), 2u);
}

TEST(NotifierSeam, ASubscribersEventfdIsOpenedOnFirstUseAndClosedWhenItLeaves) {
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  std::optional<Subscriber> sub(t.subscribe());
  EXPECT_EQ(hub.fake().open_fds(), 0u) << "opened before anyone needed it";
  const int fd = sub->fd();
  EXPECT_EQ(sub->fd(), fd);
  EXPECT_EQ(hub.fake().open_fds(), 1u);
  sub.reset();
  EXPECT_EQ(hub.fake().open_fds(), 0u);
  ASSERT_EQ(hub.fake().closed_fds().size(), 1u);
  EXPECT_EQ(hub.fake().closed_fds()[0], fd);
}

TEST(NotifierSeam, ASubscriberMaskedOffATagIsStillAskedForAndTheRoundDecides) {
  // Core asks for every tag published while anyone is armed; matching masks is the round's job.
  test::TestHub hub;
  Topic& t = hub.topic("t", small_topic());
  Subscriber sub = t.subscribe(Start::latest, tag_bit(1));
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of("other"), 4);
  const auto calls = hub.fake().calls("notify");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].tags, tag_bit(4));
}

}  // namespace
}  // namespace pushpoll

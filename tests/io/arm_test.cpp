// Subscriber::arm() and fd(): the edge trigger (one eventfd write per arming), when arming is refused,
// what a subscriber that only polls costs, and tag filtering of wake-ups.
#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

class Arm : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, Arm, ::testing::ValuesIn(all_configs()), ConfigName{});

TEST_P(Arm, ManyMessagesWhileParkedWriteTheEventfdOnce) {
  Hub hub(hub_options());
  Topic& t = hub.topic("edge");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sub.arm()) << "nothing is unread: arming must succeed";
  const WakeStats before = hub.wake_stats();

  std::thread publisher([&t] {
    for (std::uint64_t i = 0; i < 1000; ++i) t.publish(bytes_of(i));
  });
  publisher.join();

  // Read the counter directly: poll()/arm() would drain it.
  ASSERT_TRUE(readable(fd, 5000ms)) << "1,000 publishes to an armed subscriber wrote nothing";
  // A background notifier may still be finishing a round: give a second write time to land.
  std::this_thread::sleep_for(background() ? 50ms : 5ms);
  EXPECT_EQ(read_counter(fd), 1u) << "edge-triggered: exactly one write per arming";
  EXPECT_FALSE(readable(fd, 100ms)) << "a second write arrived after the first was read";
  EXPECT_TRUE(eventually([&] { return hub.wake_stats().wakeups_sent > before.wakeups_sent; }));
  EXPECT_EQ(hub.wake_stats().wakeups_sent - before.wakeups_sent, 1u);

  std::uint64_t expect = 0;
  for (;;) {
    Batch b = sub.poll(4096);
    if (b.empty()) break;
    for (const Message& m : b) {
      ASSERT_EQ(m.seq, expect);
      ASSERT_EQ(word_of(m), expect);
      ++expect;
    }
  }
  EXPECT_EQ(expect, 1000u);
}

TEST_P(Arm, ReturnsFalseWhileMatchingMessagesAreUnread) {
  Hub hub(hub_options());
  Topic& t = hub.topic("refuse");
  Subscriber sub = t.subscribe(Start::latest);
  t.publish(bytes_of(std::uint64_t{7}));
  const WakeStats before = hub.wake_stats();
  EXPECT_FALSE(sub.arm()) << "a message is unread: the caller must poll, not sleep";
  EXPECT_FALSE(sub.arm()) << "still unread";
  EXPECT_EQ(hub.wake_stats().arms, before.arms) << "a refused arm() must not count as armed";
  {
    Batch b = sub.poll();
    ASSERT_EQ(b.size(), 1u);
  }
  EXPECT_TRUE(sub.arm()) << "caught up: arming must succeed";
  EXPECT_EQ(hub.wake_stats().arms, before.arms + 1);
}

TEST_P(Arm, ReturnsTrueOnAnEmptyTopic) {
  Hub hub(hub_options());
  Topic& t = hub.topic("empty");
  Subscriber sub = t.subscribe(Start::oldest);
  EXPECT_TRUE(sub.arm());
}

TEST_P(Arm, ArmingTwiceCountsOnceAndStillWritesOnce) {
  Hub hub(hub_options());
  Topic& t = hub.topic("twice");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  const WakeStats before = hub.wake_stats();
  ASSERT_TRUE(sub.arm());
  ASSERT_TRUE(sub.arm()) << "already armed and nothing new: still armed";
  EXPECT_EQ(hub.wake_stats().arms - before.arms, 1u);
  t.publish(bytes_of(std::uint64_t{1}));
  t.publish(bytes_of(std::uint64_t{2}));
  ASSERT_TRUE(readable(fd, 5000ms));
  std::this_thread::sleep_for(background() ? 50ms : 5ms);
  EXPECT_EQ(read_counter(fd), 1u);
}

TEST_P(Arm, EveryArmingGetsItsOwnWakeUp) {
  Hub hub(hub_options());
  Topic& t = hub.topic("rearm");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  for (std::uint64_t round = 0; round < 20; ++round) {
    ASSERT_TRUE(sub.arm()) << "round " << round;
    t.publish(bytes_of(round));
    t.publish(bytes_of(round));
    ASSERT_TRUE(readable(fd, 5000ms)) << "round " << round << ": the re-armed subscriber was not woken";
    Batch b = sub.poll();  // drains the eventfd and clears the notification
    ASSERT_EQ(b.size(), 2u) << "round " << round;
  }
  // The notifier counts a write after making it: let a background round finish counting.
  EXPECT_TRUE(eventually([&] { return hub.wake_stats().wakeups_sent >= 20; }));
  EXPECT_EQ(hub.wake_stats().wakeups_sent, 20u);
}

TEST_P(Arm, PollDrainsTheEventfd) {
  Hub hub(hub_options());
  Topic& t = hub.topic("drain");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of(std::uint64_t{1}));
  ASSERT_TRUE(readable(fd, 5000ms));
  std::this_thread::sleep_for(background() ? 50ms : 5ms);
  const WakeStats before = hub.wake_stats();
  { Batch b = sub.poll(); EXPECT_EQ(b.size(), 1u); }
  EXPECT_FALSE(readable(fd, 0ms)) << "poll() after a wake-up must leave the eventfd drained";
  EXPECT_EQ(hub.wake_stats().subscriber_syscalls - before.subscriber_syscalls, 1u)
      << "one read() to drain it";
  { Batch b = sub.poll(); EXPECT_TRUE(b.empty()); }
  EXPECT_EQ(hub.wake_stats().subscriber_syscalls - before.subscriber_syscalls, 1u)
      << "no syscall to drain an eventfd that was not written";
}

TEST_P(Arm, FdIsNonBlockingAndCloseOnExec) {
  Hub hub(hub_options());
  Topic& t = hub.topic("flags");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(sub.fd(), fd) << "fd() opens one eventfd and keeps it";
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

TEST_P(Arm, SubscriberThatOnlyPollsCostsThePublisherNothing) {
  Hub hub(hub_options());
  Topic& t = hub.topic("spin");
  Subscriber sub = t.subscribe(Start::oldest);
  constexpr std::uint64_t kMessages = 20'000;
  std::thread publisher([&t] {
    for (std::uint64_t i = 0; i < kMessages; ++i) t.publish(bytes_of(i));
  });
  // A publisher descheduled for claim_timeout mid-publish (a loaded machine) has its message go out
  // aborted and publishes it again under the next seq: count the messages, not the seqs.
  std::uint64_t seq = 0, got = 0, aborted = 0;
  const auto deadline = Clock::now() + 30s;
  while (got < kMessages && Clock::now() < deadline) {
    for (const Message& m : sub.poll(1024)) {
      ASSERT_EQ(m.seq, seq);
      ++seq;
      ++(m.aborted ? aborted : got);
    }
  }
  publisher.join();
  EXPECT_EQ(got, kMessages);
  EXPECT_EQ(aborted, t.stats().expired);
  const WakeStats s = hub.wake_stats();
  EXPECT_EQ(s.arms, 0u);
  EXPECT_EQ(s.rounds, 0u) << "nobody armed: the publisher must not run the notifier";
  EXPECT_EQ(s.wakeups_sent, 0u);
  EXPECT_EQ(s.notifier_syscalls, 0u);
  EXPECT_EQ(s.subscriber_syscalls, 0u);
}

// ---- tags -------------------------------------------------------------------------------------

TEST_P(Arm, TagMaskedSubscriberIsWokenOnlyByItsTags) {
  Hub hub(hub_options());
  Topic& t = hub.topic("tags");
  Subscriber sub = t.subscribe(Start::latest, std::uint64_t{1} << 5);
  const int fd = sub.fd();
  ASSERT_TRUE(sub.arm());
  const WakeStats before = hub.wake_stats();
  for (std::uint64_t i = 0; i < 3; ++i) t.publish(bytes_of(i), 3);
  EXPECT_TRUE(eventually([&] { return hub.wake_stats().wakeups_skipped > before.wakeups_skipped; }))
      << "the notifier must pass over a subscriber whose mask does not meet the tags";
  EXPECT_FALSE(readable(fd, 50ms)) << "woken by tag 3 although the mask is 1 << 5";
  EXPECT_TRUE(sub.arm()) << "tag-3 messages are no news to this subscriber: it stays armed";
  EXPECT_FALSE(sub.wait(30ms)) << "only tag-3 messages are unread: wait() must time out";

  std::thread publisher([&t] {
    std::this_thread::sleep_for(20ms);
    t.publish(bytes_of(std::uint64_t{100}), 3);
    t.publish(bytes_of(std::uint64_t{105}), 5);
    t.publish(bytes_of(std::uint64_t{103}), 3);
  });
  const auto t0 = Clock::now();
  const bool pushed = sub.wait(10s);
  publisher.join();
  EXPECT_TRUE(pushed);
  EXPECT_LT(Clock::now() - t0, 5s);
  std::vector<std::uint64_t> words;
  for (;;) {
    Batch b = sub.poll();
    if (b.end_seq() == b.first_seq()) break;
    for (const Message& m : b) {
      EXPECT_EQ(m.tag, 5u) << "poll() returned a message the mask excludes (seq " << m.seq << ")";
      words.push_back(word_of(m));
    }
  }
  EXPECT_EQ(words, std::vector<std::uint64_t>{105});
}

TEST_P(Arm, TagMaskedArmConsumesMessagesItSkips) {
  Hub hub(hub_options());
  Topic& t = hub.topic("skip");
  Subscriber sub = t.subscribe(Start::latest, std::uint64_t{1} << 5);
  t.publish(bytes_of(std::uint64_t{1}), 3);
  t.publish(bytes_of(std::uint64_t{2}), 4);
  EXPECT_TRUE(sub.arm()) << "no unread message matches 1 << 5: arming must succeed";
  EXPECT_EQ(sub.cursor(), 2u) << "the skipped messages are consumed";
  t.publish(bytes_of(std::uint64_t{3}), 5);
  ASSERT_TRUE(readable(sub.fd(), 5000ms));
  EXPECT_FALSE(sub.arm()) << "a matching message is unread";
}

TEST_P(Arm, SubscribersWithDifferentMasksAreWokenSeparately) {
  Hub hub(hub_options());
  Topic& t = hub.topic("masks");
  Subscriber even = t.subscribe(Start::latest, 0x5555555555555555ull);
  Subscriber odd = t.subscribe(Start::latest, 0xAAAAAAAAAAAAAAAAull);
  const int even_fd = even.fd(), odd_fd = odd.fd();
  ASSERT_TRUE(even.arm());
  ASSERT_TRUE(odd.arm());
  t.publish(bytes_of(std::uint64_t{1}), 1);
  ASSERT_TRUE(readable(odd_fd, 5000ms));
  EXPECT_FALSE(readable(even_fd, 50ms)) << "tag 1 woke the even-tag subscriber";
  t.publish(bytes_of(std::uint64_t{2}), 2);
  ASSERT_TRUE(readable(even_fd, 5000ms)) << "the even-tag subscriber stayed armed and must wake on tag 2";
  std::this_thread::sleep_for(background() ? 50ms : 5ms);
  EXPECT_EQ(read_counter(odd_fd), 1u);
  EXPECT_EQ(read_counter(even_fd), 1u);
}

class ArmAll : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, ArmAll, ::testing::ValuesIn(all_configs()), ConfigName{});

TEST_P(ArmAll, ArmsEverySubscriberAndEachIsWokenOnce) {
  Hub hub(hub_options());
  Topic& t = hub.topic("arm-all");
  std::vector<Subscriber> subs;
  for (int i = 0; i < 8; ++i) subs.push_back(t.subscribe(Start::latest));
  std::vector<Subscriber*> set;
  for (auto& s : subs) set.push_back(&s);
  std::vector<std::size_t> ready{42};
  ASSERT_TRUE(Subscriber::arm_all(set, ready)) << "nothing is unread: every subscriber arms";
  EXPECT_TRUE(ready.empty()) << "ready is cleared and stays empty";
  EXPECT_EQ(hub.wake_stats().arms, 8u);
  t.publish(bytes_of(std::uint64_t{1}));
  t.publish(bytes_of(std::uint64_t{2}));
  for (auto& s : subs) {
    ASSERT_TRUE(readable(s.fd(), 5000ms)) << "an armed subscriber was not woken";
    std::this_thread::sleep_for(background() ? 20ms : 1ms);
    EXPECT_EQ(read_counter(s.fd()), 1u) << "one write per arming";
  }
}

TEST_P(ArmAll, ListsTheSubscribersWithUnreadMessagesAndArmsTheRest) {
  Hub hub(hub_options());
  Topic& t = hub.topic("arm-all-ready");
  Subscriber behind = t.subscribe(Start::latest);
  t.publish(bytes_of(std::uint64_t{7}));
  Subscriber caught_up = t.subscribe(Start::latest);
  Subscriber tagged = t.subscribe(Start::latest, std::uint64_t{1} << 9);
  t.publish(bytes_of(std::uint64_t{8}), 3);  // unread for `behind` and `caught_up`, skipped by `tagged`
  { Batch b = caught_up.poll(); ASSERT_EQ(b.size(), 1u); }
  const int behind_fd = behind.fd();  // open before arming, so that a wrong wake-up lands in it
  std::vector<Subscriber*> set{&behind, &caught_up, &tagged};
  std::vector<std::size_t> ready;
  EXPECT_FALSE(Subscriber::arm_all(set, ready));
  EXPECT_EQ(ready, std::vector<std::size_t>{0}) << "only the subscriber with unread messages";
  // The others are armed: a tag-9 message wakes `tagged`, not the one that only polls.
  t.publish(bytes_of(std::uint64_t{9}), 9);
  EXPECT_TRUE(readable(tagged.fd(), 5000ms));
  EXPECT_TRUE(readable(caught_up.fd(), 5000ms)) << "all tags: woken by the tag-9 message too";
  EXPECT_FALSE(readable(behind_fd, 50ms)) << "the subscriber left unarmed was woken";
}

TEST_P(ArmAll, RefusesWakeGroupMembers) {
  Hub hub(hub_options());
  Topic& t = hub.topic("arm-all-group");
  Subscriber s = t.subscribe(Start::latest);
  WakeGroup group(hub);
  group.add(s);
  std::vector<Subscriber*> set{&s};
  std::vector<std::size_t> ready;
  EXPECT_THROW(Subscriber::arm_all(set, ready), Error);
}

}  // namespace
}  // namespace pushpoll::test

// Subscriber::wait() and poll_wait(): timeouts, pushes, WaitOptions (minimum interval, spin before
// park), and shutdown (closing a topic, destroying the hub) while threads wait.
#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

class Wait : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, Wait, ::testing::ValuesIn(all_configs()), ConfigName{});

TEST_P(Wait, TimesOutWhenNothingComes) {
  Hub hub(hub_options());
  Topic& t = hub.topic("quiet");
  Subscriber sub = t.subscribe(Start::latest);
  const auto t0 = Clock::now();
  EXPECT_FALSE(sub.wait(100ms));
  const auto elapsed = Clock::now() - t0;
  EXPECT_GE(elapsed, 100ms) << "returned before the timeout";
  EXPECT_LT(elapsed, 3s) << "overslept the timeout";
}

TEST_P(Wait, TheLargestDurationMeansForeverWhereverATimeoutIsTaken) {
  // nanoseconds::max() added to now() overflows; every wait must read it as "practically forever":
  // as a wait timeout, a spin, and a wake group's timeout.
  constexpr auto kMax = std::chrono::nanoseconds::max();
  Hub hub(hub_options());
  Topic& t = hub.topic("max");
  Subscriber sub = t.subscribe(Start::latest);
  Subscriber spinner = t.subscribe(Start::latest);
  spinner.set_wait_options(WaitOptions{.spin = kMax, .min_interval = {}, .safety_net = std::chrono::seconds(1)});
  Subscriber member = t.subscribe(Start::latest);
  WakeGroup group(hub);
  group.add(member);
  Watchdog dog("Wait.TheLargestDurationMeansForeverWhereverATimeoutIsTaken");
  std::thread publisher([&] {
    std::this_thread::sleep_for(200ms);
    t.publish(bytes_of(std::uint64_t{7}));
  });
  std::atomic<bool> spun{false};
  std::thread spinning([&] { spun = spinner.wait(kMax); });
  const auto t0 = Clock::now();
  EXPECT_TRUE(sub.wait(kMax));
  EXPECT_GE(Clock::now() - t0, 150ms) << "returned before anything was published";
  const auto ids = group.wait(kMax);
  EXPECT_EQ(ids.size(), 1u);
  publisher.join();
  spinning.join();
  EXPECT_TRUE(spun.load());
  EXPECT_EQ(sub.poll().size(), 1u);
}

TEST_P(Wait, AClaimThatHoldsParkedSubscribersExpiresWhenTheRingFills) {
  // The subscribers wait (parked) at a claim in progress; the ring fills behind it. Whoever needs
  // room must expire the claim after claim_timeout: the subscribers are held by it, not slow, and
  // waiting for them (stall_timeout) or for their safety net would run past publish_timeout.
  Hub hub(hub_options());
  TopicOptions o;
  o.capacity = 4096;
  o.claim_timeout = 50ms;
  o.publish_timeout = 1500ms;
  o.stall_timeout = 60s;
  Topic& t = hub.topic("held", o);
  Subscriber sub = t.subscribe(Start::oldest);
  Claim held = t.claim(8);  // seq 0, never committed
  std::atomic<std::uint64_t> read{0};
  std::thread reader([&] {
    // Parked between polls with no timeout of its own: only its safety net (1 s) looks meanwhile.
    while (read.load() < 1001) {
      for (const Message& m : sub.poll()) {
        (void)m;
        read.fetch_add(1);
      }
      if (read.load() < 1001) (void)sub.wait(5s);
    }
  });
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < 1000; ++i) t.publish(bytes_of(i));  // many rings' worth
  const auto took = Clock::now() - start;
  EXPECT_THROW(held.commit(), ClaimExpired);
  reader.join();
  EXPECT_EQ(read.load(), 1001u);  // the expired claim (aborted) and every message
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_EQ(t.stats().detaches, 0u) << "the held subscriber was detached instead of the claim expired";
  EXPECT_LT(took, 1s);
}

TEST_P(Wait, ZeroTimeoutDoesNotBlock) {
  Hub hub(hub_options());
  Topic& t = hub.topic("zero");
  Subscriber sub = t.subscribe(Start::latest);
  const auto t0 = Clock::now();
  EXPECT_FALSE(sub.wait(0ns));
  EXPECT_LT(Clock::now() - t0, 1s);
  t.publish(bytes_of(std::uint64_t{1}));
  EXPECT_TRUE(sub.wait(0ns));
}

TEST_P(Wait, ReturnsTrueAtOnceWhenMessagesAreWaiting) {
  Hub hub(hub_options());
  Topic& t = hub.topic("waiting");
  Subscriber sub = t.subscribe(Start::latest);
  t.publish(bytes_of(std::uint64_t{1}));
  const auto t0 = Clock::now();
  EXPECT_TRUE(sub.wait(10s));
  EXPECT_TRUE(sub.wait(kForever)) << "still unread: true again, at once";
  EXPECT_LT(Clock::now() - t0, 1s) << "messages were waiting: wait() must not block";
  Batch b = sub.poll();
  EXPECT_EQ(b.size(), 1u);
}

TEST_P(Wait, ReturnsTrueWhenAPublisherPublishesLater) {
  Hub hub(hub_options());
  Topic& t = hub.topic("later");
  Subscriber sub = t.subscribe(Start::latest);
  Watchdog dog("Wait.ReturnsTrueWhenAPublisherPublishesLater");
  for (const std::chrono::nanoseconds timeout : {std::chrono::nanoseconds(10s), kForever}) {
    std::atomic<Clock::rep> published_at{0};
    std::thread publisher([&] {
      std::this_thread::sleep_for(50ms);
      published_at = Clock::now().time_since_epoch().count();
      t.publish(bytes_of(std::uint64_t{42}));
    });
    const auto t0 = Clock::now();
    const bool pushed = sub.wait(timeout);
    const auto returned = Clock::now();
    publisher.join();
    EXPECT_TRUE(pushed) << "timeout " << timeout.count();
    EXPECT_GE(returned.time_since_epoch().count(), published_at.load()) << "returned before the publish";
    EXPECT_LT(returned - t0, 5s);
    Batch b = sub.poll();
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(word_of(*b.begin()), 42u);
  }
}

TEST_P(Wait, PollWaitReturnsWhatWasPublishedWhileParked) {
  Hub hub(hub_options());
  Topic& t = hub.topic("poll_wait");
  Subscriber sub = t.subscribe(Start::latest);
  {
    Batch b = sub.poll_wait(16, 20ms);
    EXPECT_TRUE(b.empty()) << "nothing published: empty after the timeout";
  }
  std::thread publisher([&t] {
    std::this_thread::sleep_for(20ms);
    for (std::uint64_t i = 0; i < 3; ++i) t.publish(bytes_of(i));
  });
  std::vector<std::uint64_t> got;
  const auto deadline = Clock::now() + 10s;
  while (got.size() < 3 && Clock::now() < deadline) {
    for (const Message& m : sub.poll_wait(16, 5s)) got.push_back(word_of(m));
  }
  publisher.join();
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 1, 2}));
}

TEST_P(Wait, WakeGroupMemberRefusesWait) {
  Hub hub(hub_options());
  Topic& t = hub.topic("member");
  Subscriber sub = t.subscribe(Start::latest);
  WakeGroup group(hub);
  group.add(sub);
  EXPECT_THROW((void)sub.wait(1ms), Error);
  EXPECT_EQ(sub.fd(), group.fd()) << "a member's fd() is its group's eventfd";
}

// A member that the notifier woke through its group's eventfd is still `notified` when the group
// is destroyed. Its next poll() must take that notification for what it is (the write went to the
// group's eventfd, not to the member's own), and its next wait() must arm for real: a later
// publish wakes it through its own eventfd, well before the timeout.
TEST_P(Wait, AMemberNotifiedWhenItsGroupGoesIsWokenAloneAfterwards) {
  Hub hub(hub_options());
  Topic& t = hub.topic("former_member");
  Subscriber sub = t.subscribe(Start::latest);
  (void)sub.fd();  // it has an eventfd of its own before it joins
  {
    WakeGroup group(hub);
    (void)group.add(sub);
    EXPECT_TRUE(group.wait(0ns).empty()) << "a zero timeout arms the members and returns";
    t.publish(bytes_of(std::uint64_t{1}));
    ASSERT_TRUE(readable(group.fd(), 5000ms)) << "the member was woken through the group";
  }  // the group goes while its member is notified
  {
    Batch b = sub.poll();
    EXPECT_EQ(b.size(), 1u);
  }
  std::thread publisher([&t] {
    std::this_thread::sleep_for(30ms);
    t.publish(bytes_of(std::uint64_t{2}));
  });
  const auto t0 = Clock::now();
  EXPECT_TRUE(sub.wait(3s));
  const auto waited = Clock::now() - t0;
  publisher.join();
  EXPECT_LT(waited, 2s) << "the publish 30 ms in did not wake the former member: it woke at its timeout";
}

// ---- WaitOptions ------------------------------------------------------------------------------

TEST_P(Wait, MinimumIntervalSpacesWakeUpsWhileMessagesKeepComing) {
  Hub hub(hub_options());
  Topic& t = hub.topic("interval");
  Subscriber sub = t.subscribe(Start::latest);
  sub.set_wait_options(WaitOptions{.spin = 0ns, .min_interval = 50ms});
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    std::uint64_t i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      t.publish(bytes_of(i++));
      std::this_thread::sleep_for(1ms);
    }
  });
  constexpr int kWakeUps = 6;
  std::vector<Clock::time_point> called, returned;
  std::uint64_t received = 0, batches = 0;
  for (int k = 0; k < kWakeUps; ++k) {
    called.push_back(Clock::now());
    const bool pushed = sub.wait(10s);
    returned.push_back(Clock::now());
    EXPECT_TRUE(pushed);
    Batch b = sub.poll(1 << 20);
    received += b.size();
    ++batches;
  }
  stop = true;
  publisher.join();
  for (std::size_t k = 1; k < returned.size(); ++k) {
    // wake-up k - 1 happened after call k - 1 began; wake-up k at least 50 ms after wake-up k - 1.
    EXPECT_GE(returned[k] - called[k - 1], 50ms) << "wake-ups " << k - 1 << " and " << k << " were too close";
  }
  EXPECT_GT(received, batches) << "pushes inside the interval should have coalesced into one wake-up";
}

TEST_P(Wait, SpinReturnsWithoutArmingWhenAMessageArrivesInTheWindow) {
  Hub hub(hub_options());
  Topic& t = hub.topic("spin");
  Subscriber sub = t.subscribe(Start::latest);
  sub.set_wait_options(WaitOptions{.spin = 1ms, .min_interval = 0ns});
  EXPECT_EQ(sub.wait_options().spin, 1ms);
  // A publisher thread spins until the subscriber is about to wait(), then publishes at once. On a
  // loaded machine the scheduler may keep both threads on one CPU, and then the publisher only runs
  // once the subscriber parks: after 1 s of attempts with a 1 ms spin, the spin grows to 20 ms,
  // longer than a scheduler time slice. Without a spin, every attempt arms.
  std::atomic<std::uint64_t> go{0};
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    std::uint64_t done = 0;
    while (!stop.load(std::memory_order_acquire)) {
      if (go.load(std::memory_order_acquire) == done) continue;
      ++done;
      t.publish(bytes_of(done));
    }
  });
  int without_arming = 0, attempts = 0;
  const auto start = Clock::now();
  const auto deadline = start + 5s;
  while (without_arming == 0 && Clock::now() < deadline) {
    ++attempts;
    if (Clock::now() > start + 1s) sub.set_wait_options(WaitOptions{.spin = 20ms, .min_interval = 0ns});
    const std::uint64_t arms = hub.wake_stats().arms;
    go.fetch_add(1, std::memory_order_release);
    const bool pushed = sub.wait(10s);
    EXPECT_TRUE(pushed);
    if (hub.wake_stats().arms == arms) ++without_arming;
    // A background round left over from an earlier attempt may have pushed early: read on until
    // this attempt's message is in.
    std::size_t got = 0;
    for (int k = 0; k < 10 && got == 0; ++k) got += sub.poll_wait(16, 1s).size();
    EXPECT_EQ(got, 1u);
  }
  stop.store(true, std::memory_order_release);
  publisher.join();
  EXPECT_GT(without_arming, 0) << "wait() armed in all " << attempts
                               << " attempts although the message came within the spin";
}

TEST_P(Wait, SpinGivesUpAndParksWhenNothingComes) {
  Hub hub(hub_options());
  Topic& t = hub.topic("spin_park");
  Subscriber sub = t.subscribe(Start::latest);
  sub.set_wait_options(WaitOptions{.spin = 1ms, .min_interval = 0ns});
  const std::uint64_t arms = hub.wake_stats().arms;
  std::thread publisher([&t] {
    std::this_thread::sleep_for(50ms);
    t.publish(bytes_of(std::uint64_t{1}));
  });
  EXPECT_TRUE(sub.wait(10s));
  publisher.join();
  EXPECT_EQ(hub.wake_stats().arms, arms + 1) << "after the spin, wait() must arm and park";
}

// ---- shutdown ---------------------------------------------------------------------------------

TEST_P(Wait, TrueWhileUnreadMessagesRemainAfterCloseThenClosed) {
  Hub hub(hub_options());
  Topic& t = hub.topic("closing");
  Subscriber sub = t.subscribe(Start::latest);
  for (std::uint64_t i = 0; i < 3; ++i) t.publish(bytes_of(i));
  t.close();
  EXPECT_TRUE(sub.wait(kForever)) << "unread messages after close: true";
  {
    Batch b = sub.poll(2);
    EXPECT_EQ(b.size(), 2u);
  }
  EXPECT_TRUE(sub.wait(1s)) << "one message still unread";
  {
    Batch b = sub.poll();
    EXPECT_EQ(b.size(), 1u);
  }
  EXPECT_THROW((void)sub.wait(kForever), Closed);
  EXPECT_THROW((void)sub.wait(10ms), Closed) << "a timeout does not turn Closed into false";
  EXPECT_FALSE(sub.arm()) << "nothing to arm for on a closed topic";
}

TEST_P(Wait, CloseWakesEveryThreadWaitingWithoutTimeout) {
  Hub hub(hub_options());
  Topic& t = hub.topic("close_wakes");
  constexpr int kWaiters = 4;
  Watchdog dog("Wait.CloseWakesEveryThreadWaitingWithoutTimeout");
  std::atomic<int> closed{0}, pushes{0};
  std::vector<std::thread> threads;
  const std::uint64_t arms = hub.wake_stats().arms;
  for (int i = 0; i < kWaiters; ++i) {
    // Each waiter owns its subscriber and drops it as soon as it sees Closed, while the closing
    // round may still be writing the other waiters' eventfds.
    threads.emplace_back([&, sub = t.subscribe(Start::latest)]() mutable {
      try {
        for (;;) {
          if (sub.wait(kForever)) pushes.fetch_add(1);
          Batch b = sub.poll();
        }
      } catch (const Closed&) {
        closed.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return hub.wake_stats().arms >= arms + kWaiters; }, 10s));
  std::this_thread::sleep_for(20ms);  // let them reach the blocking call
  t.close();
  for (auto& th : threads) th.join();
  EXPECT_EQ(closed.load(), kWaiters) << "every waiter must end with Closed";
  EXPECT_LE(pushes.load(), kWaiters) << "nothing was published: at most the close's own push each";
}

TEST_P(Wait, ThreadsWaitingOnUnreadMessagesDrainThemAfterClose) {
  Hub hub(hub_options());
  Topic& t = hub.topic("close_drain");
  constexpr int kWaiters = 3;
  constexpr std::uint64_t kMessages = 5;
  Watchdog dog("Wait.ThreadsWaitingOnUnreadMessagesDrainThemAfterClose");
  std::atomic<std::uint64_t> received{0};
  std::atomic<int> closed{0};
  std::atomic<bool> go{false};
  std::vector<Subscriber> subs;
  for (int i = 0; i < kWaiters; ++i) subs.push_back(t.subscribe(Start::latest));
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      Subscriber& sub = subs[static_cast<std::size_t>(i)];
      while (!go.load()) std::this_thread::yield();
      try {
        for (;;) {
          if (!sub.wait(kForever)) continue;
          Batch b = sub.poll(1);  // one at a time: wait() must keep saying true while any remain
          received.fetch_add(b.size());
        }
      } catch (const Closed&) {
        closed.fetch_add(1);
      }
    });
  }
  for (std::uint64_t i = 0; i < kMessages; ++i) t.publish(bytes_of(i));
  t.close();
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(closed.load(), kWaiters);
  EXPECT_EQ(received.load(), kWaiters * kMessages) << "Closed came before every message was read";
}

TEST_P(Wait, DestroyingTheHubWakesAWaiterThatOwnsItsSubscriber) {
  auto hub = std::make_unique<Hub>(hub_options());
  Topic& t = hub->topic("hub_gone");
  Watchdog dog("Wait.DestroyingTheHubWakesAWaiterThatOwnsItsSubscriber");
  std::atomic<bool> subscribed{false}, closed{false};
  std::atomic<int> pushes{0};
  std::thread waiter([&] {
    Subscriber sub = t.subscribe(Start::latest);
    subscribed = true;
    try {
      for (;;) {
        if (sub.wait(kForever)) {
          pushes.fetch_add(1);
          Batch b = sub.poll();
        }
      }
    } catch (const Closed&) {
      closed = true;
    }
    // The hub is gone here: the subscriber keeps its topic alive and unsubscribes cleanly.
    EXPECT_TRUE(sub.topic().closed());
  });
  ASSERT_TRUE(eventually([&] { return subscribed.load() && hub->wake_stats().arms >= 1; }, 10s));
  std::this_thread::sleep_for(20ms);
  hub.reset();
  waiter.join();
  EXPECT_TRUE(closed.load()) << "the waiter must see Closed";
  EXPECT_LE(pushes.load(), 1) << "at most the close's own push before Closed";
}

TEST_P(Wait, DestroyingTheHubEndsAWaitWithTimeoutToo) {
  auto hub = std::make_unique<Hub>(hub_options());
  Topic& t = hub->topic("hub_gone_timeout");
  Watchdog dog("Wait.DestroyingTheHubEndsAWaitWithTimeoutToo");
  std::atomic<bool> ready{false}, closed{false};
  std::chrono::nanoseconds waited{0};
  std::thread waiter([&] {
    Subscriber sub = t.subscribe(Start::latest);
    ready = true;
    const auto t0 = Clock::now();
    try {
      for (;;) (void)sub.wait(30s);
    } catch (const Closed&) {
      closed = true;
    }
    waited = Clock::now() - t0;
  });
  ASSERT_TRUE(eventually([&] { return ready.load() && hub->wake_stats().arms >= 1; }, 10s));
  hub.reset();
  waiter.join();
  EXPECT_TRUE(closed.load());
  EXPECT_LT(waited, 10s) << "the waiter slept through the close until its timeout";
}

TEST_P(Wait, DestroyingASubscriberWhileAnotherThreadWaitsOnItWakesThatThreadWithClosed) {
  // Against [owner], but caught: once a use-after-free of the subscriber's state.
  Hub hub(hub_options());
  Topic& t = hub.topic("destroyed_under_a_waiter");
  Watchdog dog("Wait.DestroyingASubscriberWhileAnotherThreadWaitsOnIt");
  for (const auto timeout : {kForever, std::chrono::nanoseconds(30s)}) {
    std::optional<Subscriber> sub(t.subscribe(Start::latest));
    Subscriber* target = &*sub;
    std::atomic<int> outcome{0};  // 1: returned, 2: Closed
    std::string message;
    std::thread waiter([&] {
      try {
        (void)target->wait(timeout);
        outcome = 1;
      } catch (const Closed& e) {
        message = e.what();
        outcome = 2;
      }
    });
    ASSERT_TRUE(eventually([&] { return hub.wake_stats().arms >= 1; }, 10s));
    std::this_thread::sleep_for(20ms);  // parked in the kernel
    const auto start = Clock::now();
    sub.reset();
    const auto took = Clock::now() - start;
    waiter.join();
    EXPECT_EQ(outcome.load(), 2) << "the waiter must see Closed";
    EXPECT_NE(message.find("destroyed by another thread"), std::string::npos) << message;
    EXPECT_LT(took, 500ms) << "the destructor waited for the safety net, not a push";
    EXPECT_EQ(t.stats().subscribers, 0u);
    t.publish(bytes_of(std::uint64_t(1)));  // nobody left to wake: no stale slot or fd
    (void)hub.wake_stats();
  }
}

}  // namespace
}  // namespace pushpoll::test

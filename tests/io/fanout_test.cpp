// Fan-out: thousands of subscribers served by a few threads, through epoll on their eventfds (edge
// and level triggered) or through wake groups. Every subscriber must see every message, in order.
#include <sys/epoll.h>

#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

class FanOut : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, FanOut, ::testing::ValuesIn(all_configs()), ConfigName{});

/// Shared bookkeeping of a fan-out run. The publisher publishes message k only when every
/// subscriber has read message k - 1, so each message finds (nearly) all of them parked.
struct FanOutRun {
  explicit FanOutRun(std::size_t subscribers) : next(subscribers, 0) {}
  std::vector<std::uint64_t> next;  // next expected seq, per subscriber (owned by its thread)
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<bool> failed{false};
  std::mutex first_error_mutex;
  std::string first_error;

  void error(std::string what) {
    errors.fetch_add(1);
    std::lock_guard lock(first_error_mutex);
    if (first_error.empty()) first_error = std::move(what);
  }

  /// Polls subscriber `i` until it is empty. Returns true once it has all `messages`.
  bool drain(Subscriber& sub, std::size_t i, std::uint64_t messages) {
    for (;;) {
      Batch b = sub.poll(256);
      if (b.gap() != 0) error("subscriber " + std::to_string(i) + " saw a gap");
      if (b.end_seq() == b.first_seq()) return next[i] == messages;
      for (const Message& m : b) {
        if (m.seq != next[i] || word_of(m) != m.seq) {
          error("subscriber " + std::to_string(i) + " expected seq " + std::to_string(next[i]) +
                ", got seq " + std::to_string(m.seq) + " carrying " + std::to_string(word_of(m)));
        }
        next[i] = m.seq + 1;
        delivered.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
};

/// Publishes `messages` messages, each when the previous one reached all `subscribers`.
void publish_paced(Topic& t, FanOutRun& run, std::size_t subscribers, std::uint64_t messages,
                   Watchdog& dog) {
  for (std::uint64_t k = 0; k < messages; ++k) {
    const std::uint64_t want = k * subscribers;
    while (run.delivered.load() < want && !run.failed.load()) std::this_thread::sleep_for(50us);
    if (run.failed.load()) return;
    dog.note(k);
    dog.tick();
    t.publish(bytes_of(k));
  }
}

/// One serving thread: epoll over its subscribers' eventfds, poll the ready ones and re-arm.
void serve_with_epoll(std::vector<Subscriber>& subs, std::size_t begin, std::size_t end,
                      std::uint64_t messages, bool edge, FanOutRun& run, Watchdog& dog) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    run.error(std::string("epoll_create1: ") + std::strerror(errno));
    run.failed = true;
    return;
  }
  std::vector<std::uint32_t> ready;
  for (std::size_t i = begin; i < end; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN | (edge ? EPOLLET : 0u);
    ev.data.u32 = static_cast<std::uint32_t>(i);
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd(), &ev) != 0) {
      run.error(std::string("epoll_ctl: ") + std::strerror(errno));
      run.failed = true;
      ::close(ep);
      return;
    }
    ready.push_back(static_cast<std::uint32_t>(i));
  }
  std::size_t remaining = end - begin;
  std::vector<bool> finished(end - begin, false);
  std::vector<epoll_event> events(512);
  const auto deadline = Clock::now() + 60s;
  while (remaining != 0 && !run.failed.load()) {
    for (const std::uint32_t i : ready) {
      if (finished[i - begin]) continue;
      // Handle the work, then arm; arm() == false means more came meanwhile: handle it too.
      for (;;) {
        if (run.drain(subs[i], i, messages)) {
          finished[i - begin] = true;
          --remaining;
          dog.tick();
          break;
        }
        if (subs[i].arm()) break;
      }
    }
    ready.clear();
    if (remaining == 0) break;
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) {
      run.error(std::string("epoll_wait: ") + std::strerror(errno));
      run.failed = true;
      break;
    }
    for (int k = 0; k < n; ++k) ready.push_back(events[static_cast<std::size_t>(k)].data.u32);
    if (Clock::now() > deadline) {
      run.error("a serving thread gave up with " + std::to_string(remaining) +
                " subscribers still missing messages");
      run.failed = true;
    }
  }
  ::close(ep);
}

void fan_out_through_epoll(const HubOptions& options, std::size_t subscribers, std::size_t threads,
                           std::uint64_t messages, bool edge) {
  Hub hub(options);
  Topic& t = hub.topic("fanout");
  std::vector<Subscriber> subs;
  subs.reserve(subscribers);
  for (std::size_t i = 0; i < subscribers; ++i) subs.push_back(t.subscribe(Start::latest));
  FanOutRun run(subscribers);
  Watchdog dog("FanOut through epoll, " + std::to_string(subscribers) + " subscribers");
  std::vector<std::thread> servers;
  for (std::size_t k = 0; k < threads; ++k) {
    const std::size_t begin = subscribers * k / threads, end = subscribers * (k + 1) / threads;
    servers.emplace_back([&, begin, end] { serve_with_epoll(subs, begin, end, messages, edge, run, dog); });
  }
  publish_paced(t, run, subscribers, messages, dog);
  for (auto& th : servers) th.join();
  EXPECT_EQ(run.errors.load(), 0u) << run.first_error;
  EXPECT_EQ(run.delivered.load(), subscribers * messages);
  for (std::size_t i = 0; i < subscribers; ++i) {
    ASSERT_EQ(run.next[i], messages) << "subscriber " << i << " stopped early";
  }
}

TEST_P(FanOut, ThousandSubscribersOnEdgeTriggeredEpollSeeEveryMessage) {
  if (const std::string why = ensure_descriptors(1100); !why.empty()) GTEST_SKIP() << why;
  fan_out_through_epoll(hub_options(), 1000, 2, kTsan ? 10 : 30, /*edge=*/true);
}

TEST_P(FanOut, ThousandSubscribersOnLevelTriggeredEpollSeeEveryMessage) {
  if (const std::string why = ensure_descriptors(1100); !why.empty()) GTEST_SKIP() << why;
  fan_out_through_epoll(hub_options(), 1000, 4, kTsan ? 10 : 30, /*edge=*/false);
}

TEST_P(FanOut, TenThousandSubscribersOnEpollSeeEveryMessage) {
  if (const std::string why = ensure_descriptors(10'100); !why.empty()) GTEST_SKIP() << why;
  fan_out_through_epoll(hub_options(), 10'000, 4, kTsan ? 2 : 4, /*edge=*/true);
}

// ---- wake groups ------------------------------------------------------------------------------

/// One serving thread with a wake group of subscribers [begin, end). The group is created by the
/// test and handed to the thread.
void serve_with_group(WakeGroup& group, std::vector<Subscriber>& subs, std::size_t begin,
                      std::size_t end, std::uint64_t messages, FanOutRun& run, Watchdog& dog) {
  for (std::size_t i = begin; i < end; ++i) {
    const std::uint32_t id = group.add(subs[i]);
    if (id != i - begin) run.error("group ids are not 0, 1, 2, ...");
  }
  std::size_t remaining = end - begin;
  std::vector<bool> finished(end - begin, false);
  const auto deadline = Clock::now() + 60s;
  while (remaining != 0 && !run.failed.load()) {
    for (const std::uint32_t id : group.wait(100ms)) {
      const std::size_t i = begin + id;
      if (finished[id]) continue;
      if (run.drain(subs[i], i, messages)) {
        finished[id] = true;
        --remaining;
        group.remove(subs[i]);
        dog.tick();
      }
    }
    if (Clock::now() > deadline) {
      run.error("a group thread gave up with " + std::to_string(remaining) + " members behind");
      run.failed = true;
    }
  }
}

TEST_P(FanOut, ThousandSubscribersInTwoWakeGroupsSeeEveryMessage) {
  if (const std::string why = ensure_descriptors(1100); !why.empty()) GTEST_SKIP() << why;
  Hub hub(hub_options());
  Topic& t = hub.topic("groups");
  constexpr std::size_t kSubscribers = 1000;
  const std::uint64_t messages = kTsan ? 10 : 30;
  std::vector<Subscriber> subs;
  for (std::size_t i = 0; i < kSubscribers; ++i) subs.push_back(t.subscribe(Start::latest));
  FanOutRun run(kSubscribers);
  Watchdog dog("FanOut through wake groups");
  WakeGroup group_a(hub), group_b(hub);
  std::thread a([&] { serve_with_group(group_a, subs, 0, kSubscribers / 2, messages, run, dog); });
  std::thread b([&] { serve_with_group(group_b, subs, kSubscribers / 2, kSubscribers, messages, run, dog); });
  publish_paced(t, run, kSubscribers, messages, dog);
  a.join();
  b.join();
  EXPECT_EQ(run.errors.load(), 0u) << run.first_error;
  EXPECT_EQ(run.delivered.load(), kSubscribers * messages);
}

TEST_P(FanOut, WakingThousandParkedSubscribersInTwoGroupsCostsTwoWrites) {
  Hub hub(hub_options());
  Topic& t = hub.topic("group_cost");
  constexpr std::size_t kSubscribers = 1000;
  std::vector<Subscriber> subs;
  for (std::size_t i = 0; i < kSubscribers; ++i) subs.push_back(t.subscribe(Start::latest));
  Watchdog dog("FanOut.WakingThousandParkedSubscribersInTwoGroupsCostsTwoWrites");
  std::atomic<std::size_t> woken[2] = {0, 0};
  WakeGroup groups[2] = {WakeGroup(hub), WakeGroup(hub)};
  const WakeStats before = hub.wake_stats();
  auto serve = [&](int g, std::size_t begin, std::size_t end) {
    WakeGroup& group = groups[g];
    for (std::size_t i = begin; i < end; ++i) (void)group.add(subs[i]);
    std::size_t seen = 0;
    while (seen < end - begin) {
      const auto ids = group.wait(10s);
      if (ids.empty()) break;
      for (const std::uint32_t id : ids) {
        Batch batch = subs[begin + id].poll();
        if (batch.size() == 1) ++seen;
      }
    }
    woken[g] = seen;
  };
  std::thread a(serve, 0, 0, kSubscribers / 2);
  std::thread b(serve, 1, kSubscribers / 2, kSubscribers);
  // Parked: every member armed (each arming counts once).
  ASSERT_TRUE(eventually([&] { return hub.wake_stats().arms - before.arms >= kSubscribers; }, 20s));
  std::this_thread::sleep_for(20ms);
  const WakeStats parked = hub.wake_stats();
  t.publish(bytes_of(std::uint64_t{1}));
  a.join();
  b.join();
  // The notifier counts a write after making it: let a background round finish counting.
  settle(t);
  const WakeStats after = hub.wake_stats();
  EXPECT_EQ(woken[0].load(), kSubscribers / 2);
  EXPECT_EQ(woken[1].load(), kSubscribers / 2);
  EXPECT_LE(after.wakeups_sent - parked.wakeups_sent, 2u)
      << "one eventfd write per group, not one per subscriber";
  EXPECT_GE(after.wakeups_sent - parked.wakeups_sent, 1u);
  EXPECT_GE(after.wakeups_coalesced - parked.wakeups_coalesced, kSubscribers - 2);
}

TEST_P(FanOut, WakeGroupWaitTimesOutAndReportsMembersWithUnreadMessages) {
  Hub hub(hub_options());
  Topic& t = hub.topic("group_wait");
  std::vector<Subscriber> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(t.subscribe(Start::latest, std::uint64_t{1} << i));
  WakeGroup group(hub);
  for (auto& s : subs) (void)group.add(s);
  EXPECT_EQ(group.size(), 3u);
  const auto t0 = Clock::now();
  EXPECT_TRUE(group.wait(50ms).empty());
  EXPECT_GE(Clock::now() - t0, 50ms);
  t.publish(bytes_of(std::uint64_t{1}), 1);  // only member 1 wants tag 1
  {
    const auto ids = group.wait(5s);
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(ids[0], 1u);
  }
  {
    const auto ids = group.wait(5s);  // member 1 has not polled: still news
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(ids[0], 1u);
  }
  Batch b = subs[1].poll();
  EXPECT_EQ(b.size(), 1u);
  b.release();
  // Nothing unread: the wait times out. A background round still serving the earlier publish may
  // push member 1 once more (a spurious push: allowed, with nothing to poll).
  std::size_t spurious = 0;
  for (;;) {
    const auto ids = group.wait(20ms);
    if (ids.empty()) break;
    ASSERT_LT(++spurious, 2u) << "woken again and again with nothing unread";
    for (const std::uint32_t id : ids) {
      Batch again = subs[id].poll();
      EXPECT_TRUE(again.empty()) << "member " << id;
    }
  }
  group.remove(subs[1]);
  EXPECT_EQ(group.size(), 2u);
}

TEST_P(FanOut, AWakeGroupWhoseMembersAreAllClosedAndReadThrowsClosed) {
  // Members of two topics; one closes with a message unread, the other without. A closed and
  // fully read member is never reported; once every member is, wait() throws Closed (it once
  // blocked forever on a group whose members could never be woken again).
  Hub hub(hub_options());
  Topic& a = hub.topic("a");
  Topic& b = hub.topic("b");
  Subscriber sa = a.subscribe(Start::latest);
  Subscriber sb = b.subscribe(Start::latest);
  WakeGroup group(hub);
  (void)group.add(sa);
  (void)group.add(sb);
  a.publish(bytes_of(std::uint64_t{1}));
  a.close();
  {
    const auto ids = group.wait(5s);
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(ids[0], 0u) << "the closed member with an unread message is news";
  }
  EXPECT_EQ(sa.poll().size(), 1u);
  EXPECT_TRUE(group.wait(20ms).empty()) << "a closed and read member is not reported";
  std::atomic<bool> closed{false};
  std::thread waiter([&] {
    try {
      (void)group.wait(kForever);
    } catch (const Closed&) {
      closed = true;
    }
  });
  std::this_thread::sleep_for(50ms);
  b.close();  // wakes the group; now every member is closed and read
  waiter.join();
  EXPECT_TRUE(closed.load());
  EXPECT_THROW((void)group.wait(0ns), Closed);
}

TEST_P(FanOut, WaitingForeverOnAnEmptyWakeGroupIsAnError) {
  Hub hub(hub_options());
  WakeGroup group(hub);
  EXPECT_THROW((void)group.wait(kForever), Error);
  EXPECT_TRUE(group.wait(10ms).empty());
}

}  // namespace
}  // namespace pushpoll::test

// fork(): a child that inherits a hub must leave the parent's wake-ups working, whatever it does
// with the inherited hub, and gets a working hub of its own. Real processes: the child runs the
// case and reports through its exit status (no GoogleTest assertion runs in a child).
//
// What a child did wrong before: submitted to the io_uring it shares with the parent (the
// parent's next publish then spun on a full submission queue, or its wake-ups went missing),
// unregistered an inherited subscriber's eventfd from the shared table (every later wake-up of
// the parent's subscriber took the one-second safety net), or waited forever for a background
// notifier thread that only exists in the parent.
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <optional>

#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

class Fork : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, Fork, ::testing::ValuesIn(all_configs()), ConfigName{});

/// Runs `body` in a forked child; returns its exit code (-1: killed, or no exit within 20 s).
int in_child(const std::function<int()>& body) { return run_child(body).code; }

/// A thread of `sub`'s owner waits for one message while `publish` publishes it after 20 ms:
/// returns how long the wait took (with a failure if the message did not arrive).
std::chrono::nanoseconds round_trip(Subscriber& sub, const std::function<void()>& publish) {
  std::atomic<bool> got{false};
  const auto start = Clock::now();
  std::thread waiter([&] {
    for (int i = 0; i < 100 && !got; ++i) {
      if (!sub.poll().empty()) {
        got = true;
        break;
      }
      (void)sub.wait(5s);
    }
  });
  std::this_thread::sleep_for(20ms);
  publish();
  waiter.join();
  EXPECT_TRUE(got.load()) << "the message never arrived";
  return Clock::now() - start;
}

/// The parent's side after a child has used the inherited hub: its subscribers, one waiting
/// through wait() and one armed beforehand, are woken promptly by its next publishes, each time.
void expect_parent_unaffected(Hub& hub, Topic& t, Subscriber& waiting, Subscriber& armed) {
  for (int i = 0; i < 10; ++i) {
    const auto took = round_trip(waiting, [&] { t.publish(bytes_of(std::uint64_t(100 + i))); });
    EXPECT_LT(took, 700ms) << "round " << i << ": woken by the safety net, not by a push";
  }
  EXPECT_TRUE(readable(armed.fd(), 2s)) << "the subscriber armed before the fork was not pushed";
  EXPECT_EQ(hub.wake_stats().wakeups_recovered, 0u);
}

TEST_P(Fork, AChildPublishingWhileParentSubscribersAreArmedLeavesTheParentWorking) {
  Hub hub(hub_options());
  Topic& t = hub.topic("t");
  Subscriber waiting = t.subscribe(Start::latest);
  Subscriber armed = t.subscribe(Start::latest);
  ASSERT_TRUE(waiting.arm());
  ASSERT_TRUE(armed.arm());
  EXPECT_EQ(in_child([&] {
              for (int i = 0; i < 200; ++i) t.publish(bytes_of(std::uint64_t(i)));  // armed: rounds run
              return 0;
            }),
            0);
  (void)read_counter(waiting.fd());  // the child's writes reached the shared eventfds: hints only
  (void)read_counter(armed.fd());
  (void)waiting.poll();
  ASSERT_TRUE(armed.arm() || !armed.poll().empty());
  expect_parent_unaffected(hub, t, waiting, armed);
}

TEST_P(Fork, AChildDroppingAnInheritedSubscriberAndClosingTheHubLeavesTheParentWorking) {
  Hub hub(hub_options());
  Topic& t = hub.topic("t");
  std::optional<Subscriber> dropped(t.subscribe(Start::latest));
  Subscriber waiting = t.subscribe(Start::latest);
  Subscriber armed = t.subscribe(Start::latest);
  (void)dropped->fd();  // opened (and registered with the io_uring) before the fork
  (void)waiting.fd();
  ASSERT_TRUE(armed.arm());
  EXPECT_EQ(in_child([&] {
              dropped.reset();  // closes the inherited eventfd (it used to unregister it)
              t.publish(bytes_of(std::uint64_t(1)));
              hub.close();
              return 0;
            }),
            0);
  (void)read_counter(armed.fd());
  (void)armed.poll();
  (void)waiting.poll();
  ASSERT_TRUE(armed.arm());
  expect_parent_unaffected(hub, t, waiting, armed);
}

TEST_P(Fork, AChildDestroyingEveryInheritedObjectLeavesTheParentWorking) {
  // The way a child leaves through exit() and static destructors: every inherited object is
  // destroyed, the hub last (its notifier handle names a background thread of the parent).
  std::optional<Hub> hub(std::in_place, hub_options());
  Topic& t = hub->topic("t");
  std::optional<Subscriber> waiting(t.subscribe(Start::latest));
  std::optional<Subscriber> armed(t.subscribe(Start::latest));
  ASSERT_TRUE(armed->arm());
  (void)waiting->fd();
  EXPECT_EQ(in_child([&] {
              {
                Hub own(hub_options());  // and a hub of its own, made and destroyed in the child
                Subscriber s = own.topic("mine").subscribe(Start::latest);
                (void)s.fd();
                own.topic("mine").publish(bytes_of(std::uint64_t(1)));
              }
              waiting.reset();
              armed.reset();
              hub.reset();
              return 0;
            }),
            0);
  expect_parent_unaffected(*hub, t, *waiting, *armed);
}

TEST_P(Fork, AChildGetsAWorkingHub) {
  Hub hub(hub_options());
  Topic& t = hub.topic("t");
  Subscriber parent_sub = t.subscribe(Start::latest);
  Subscriber parent_armed = t.subscribe(Start::latest);
  (void)parent_sub.fd();
  ASSERT_TRUE(parent_armed.arm());
  EXPECT_EQ(in_child([&] {
              // Inherited topic and a new one, both woken promptly (no background thread here).
              for (Topic* topic : {&t, &hub.topic("new in the child")}) {
                Subscriber sub = topic->subscribe(Start::latest);
                std::atomic<bool> got{false};
                std::thread waiter([&] {
                  for (int i = 0; i < 50 && !got; ++i) {
                    if (!sub.poll().empty()) {
                      got = true;
                    } else {
                      (void)sub.wait(5s);
                    }
                  }
                });
                std::this_thread::sleep_for(20ms);
                const auto start = Clock::now();
                topic->publish(bytes_of(std::uint64_t(7)));
                waiter.join();
                if (!got) return 1;
                if (Clock::now() - start > 700ms) return 2;  // the safety net, not a push
              }
              return hub.wake_stats().wakeups_recovered == 0 ? 0 : 3;
            }),
            0);
  (void)read_counter(parent_armed.fd());  // the child's publish reached the shared eventfd
  (void)parent_armed.poll();
  (void)parent_sub.poll();
  ASSERT_TRUE(parent_armed.arm());
  expect_parent_unaffected(hub, t, parent_sub, parent_armed);
}

TEST_P(Fork, AChildForkedWhileAnotherThreadRunsRoundsCanCloseTheTopic) {
  // A round running on another thread at the fork never finishes in the child. Closing waits for
  // running rounds: it must not wait for that one. Forks land at random points of a loop that
  // keeps rounds running; some land inside one.
  Hub hub(hub_options());
  Topic& t = hub.topic("t");
  std::vector<Subscriber> subs;
  for (int i = 0; i < 32; ++i) subs.push_back(t.subscribe(Start::latest));
  for (auto& s : subs) (void)s.fd();
  std::atomic<bool> stop{false};
  std::thread rounds([&] {
    while (!stop.load()) {
      for (auto& s : subs) {
        (void)s.poll();
        (void)s.arm();
      }
      t.publish(bytes_of(std::uint64_t(1)));
    }
  });
  int hung = 0;
  for (int i = 0; i < 40; ++i) {
    if (in_child([&] {
          t.close();
          return t.closed() ? 0 : 1;
        }) != 0) {
      ++hung;
    }
  }
  stop = true;
  rounds.join();
  EXPECT_EQ(hung, 0) << "children that could not close an inherited topic";
  EXPECT_EQ(hub.wake_stats().wakeups_recovered, 0u);
}

}  // namespace
}  // namespace pushpoll::test

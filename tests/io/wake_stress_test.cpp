// Lost wake-up stress: publishes racing subscribers that arm and sleep WITHOUT a timeout. A lost
// wake-up leaves every thread asleep; the watchdog then aborts the run with a message, so a hang
// is a failure, never a stuck CI job.
//
// Litmus style (RoundStart, most tests): each round, publishers and subscribers leave a start line
// together, pinned to different CPUs; the subscriber polls, arms, re-checks and sleeps while the
// publisher publishes after a random delay of 0 to 2 us (sometimes more), so the publish lands
// before, inside or after the subscriber's arming. Paced style (TagMaskedSubscribersParked...):
// the publisher publishes once the subscribers have read what came before, so they stay parked
// and armed through publishes of tags they skip. CloseRacing...: close() at a random moment.
//
// Allowed: a wait() that returns true with nothing new (a spurious push); an empty poll after it.
// Forbidden: any thread asleep while a message it matches is unread (the watchdog fires); a message
// seen twice, out of order, or with a tag outside the subscriber's mask.
//
// Rounds: 20,000 for one publisher and one subscriber, 5,000 with more threads (half of that
// under ThreadSanitizer, and half with the background notifier), times PUSHPOLL_STRESS_SCALE.
#include <sys/epoll.h>

#include <random>

#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

class WakeStress : public WakeTest {
 protected:
  /// Rounds for this configuration: a background notifier sleeps its coalescing window after each
  /// round, so it gets half as many.
  [[nodiscard]] std::uint64_t rounds_for(std::uint64_t base) const {
    return std::max<std::uint64_t>(scaled(background() ? base / 2 : base), 1);
  }
};
INSTANTIATE_TEST_SUITE_P(Backends, WakeStress, ::testing::ValuesIn(all_configs()), ConfigName{});

/// A short random delay: none, up to 2 us (where a subscriber's poll -> arm -> re-check runs), up
/// to 20 us, or a yield.
class Jitter {
 public:
  explicit Jitter(std::uint64_t seed) : rng_(seed) {}
  void operator()() {
    const auto r = static_cast<std::uint32_t>(rng_() % 20);
    if (r < 5) return;
    if (r == 19) {
      std::this_thread::yield();
      return;
    }
    const std::uint32_t max_ns = r < 17 ? 2'000 : 20'000;
    const auto until = Clock::now() + std::chrono::nanoseconds(rng_() % max_ns);
    while (Clock::now() < until) {
    }
  }

 private:
  std::mt19937 rng_;
};

/// Lines threads up at the start of each round: every party calls arrive(round), and all return
/// at nearly the same instant. They spin, then yield, so an oversubscribed machine still progresses.
class RoundStart {
 public:
  explicit RoundStart(std::uint64_t parties) : parties_(parties) {}
  void arrive(std::uint64_t round) {
    const std::uint64_t target = (round + 1) * parties_;
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    unsigned spins = 0;
    while (arrived_.load(std::memory_order_acquire) < target) {
      if (++spins < 1024) {
        detail::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  std::uint64_t parties_;
  std::atomic<std::uint64_t> arrived_{0};
};

/// Waits (yielding) until `value` reaches `target`, ticking nothing: the watchdog sees the stall.
inline void await_at_least(const std::atomic<std::uint64_t>& value, std::uint64_t target) {
  unsigned spins = 0;
  while (value.load(std::memory_order_acquire) < target) {
    if (++spins < 64) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

TEST_P(WakeStress, PublishRacingAnArmingSubscriberIsNeverLost) {
  const std::uint64_t rounds = rounds_for(20'000);
  Hub hub(hub_options());
  Topic& t = hub.topic("one_one");
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.PublishRacingAnArmingSubscriberIsNeverLost/" + config_name(GetParam()));
  Subscriber sub = t.subscribe(Start::latest);
  RoundStart start(2);
  std::thread subscriber([&] {
    PinToCpu pin(1);
    Jitter jitter(11);
    std::uint64_t next = 0;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      start.arrive(i);
      if (i % 4 == 0) jitter();
      while (next <= i) {  // poll -> wait() without timeout -> poll, until message i is in
        Batch b = sub.poll();
        if (b.empty()) {
          b.release();
          (void)sub.wait(kForever);
          continue;
        }
        for (const Message& m : b) {
          if (m.seq != next || word_of(m) != next) errors.fetch_add(1);
          ++next;
        }
      }
      dog.tick();
    }
  });
  PinToCpu pin(0);
  Jitter jitter(1);
  for (std::uint64_t i = 0; i < rounds; ++i) {
    start.arrive(i);
    dog.note(i);
    jitter();
    t.publish(bytes_of(i));
  }
  subscriber.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u);
  const WakeStats s = hub.wake_stats();
  // The publish must have raced the arming in many rounds, or the test proves little.
  EXPECT_GT(s.arms, rounds / 4) << "the subscriber rarely armed: the race was not exercised";
  EXPECT_GT(s.wakeups_sent, 0u) << "the subscriber never slept: the race was not exercised";
  RecordProperty("arms", std::to_string(s.arms));
  RecordProperty("wakeups_sent", std::to_string(s.wakeups_sent));
}

TEST_P(WakeStress, PublishRacingAnExternalLoopBlockedOnTheEventfdIsNeverLost) {
  const std::uint64_t rounds = rounds_for(20'000);
  Hub hub(hub_options());
  Topic& t = hub.topic("external");
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.PublishRacingAnExternalLoopBlockedOnTheEventfdIsNeverLost/" +
               config_name(GetParam()));
  Subscriber sub = t.subscribe(Start::latest);
  RoundStart start(2);
  std::thread subscriber([&] {
    PinToCpu pin(1);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, sub.fd(), &ev);
    std::uint64_t next = 0;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      start.arrive(i);
      while (next <= i) {
        Batch b = sub.poll();
        if (b.empty()) {
          b.release();
          // Armed means: the next publish writes fd() once. Sleep on it without a timeout.
          if (sub.arm()) {
            epoll_event out{};
            while (::epoll_wait(ep, &out, 1, -1) < 0 && errno == EINTR) {
            }
          }
          continue;
        }
        for (const Message& m : b) {
          if (m.seq != next) errors.fetch_add(1);
          ++next;
        }
      }
      dog.tick();
    }
    ::close(ep);
  });
  PinToCpu pin(0);
  Jitter jitter(2);
  for (std::uint64_t i = 0; i < rounds; ++i) {
    start.arrive(i);
    dog.note(i);
    jitter();
    t.publish(bytes_of(i));
  }
  subscriber.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u);
  const WakeStats s = hub.wake_stats();
  EXPECT_GT(s.arms, rounds / 4) << "the subscriber rarely armed: the race was not exercised";
  RecordProperty("arms", std::to_string(s.arms));
  RecordProperty("wakeups_sent", std::to_string(s.wakeups_sent));
}

TEST_P(WakeStress, PublishersRacingArmingSubscribersLoseNothing) {
  // Each round, two publishers each publish one message (publisher, round) after their own random
  // delays, racing each other's commits and two subscribers' armings; each subscriber reads on
  // (sleeping without timeout) until it has both, in per-publisher order.
  constexpr std::uint32_t kPublishers = 2, kSubscribers = 2;
  const std::uint64_t rounds = rounds_for(5'000);
  Hub hub(hub_options());
  Topic& t = hub.topic("many_many");
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.PublishersRacingArmingSubscribersLoseNothing/" + config_name(GetParam()));
  std::vector<Subscriber> subs;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) subs.push_back(t.subscribe(Start::latest));
  RoundStart start(kPublishers + kSubscribers);
  std::vector<std::thread> threads;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&, s] {
      PinToCpu pin(s);
      Subscriber& sub = subs[s];
      std::array<std::uint64_t, kPublishers> next{};
      for (std::uint64_t i = 0; i < rounds; ++i) {
        start.arrive(i);
        for (std::uint32_t got = 0; got < kPublishers;) {
          Batch b = sub.poll();
          if (b.empty()) {
            b.release();
            (void)sub.wait(kForever);
            continue;
          }
          for (const Message& m : b) {
            const std::uint64_t w = word_of(m);
            const auto p = static_cast<std::uint32_t>(w >> 32);
            if (p >= kPublishers || (w & 0xffffffffu) != next[p] || next[p] != i) {
              errors.fetch_add(1);
              continue;
            }
            ++next[p];
            ++got;
          }
        }
        if (s == 0) dog.tick();
      }
    });
  }
  for (std::uint32_t p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&, p] {
      PinToCpu pin(p + 1);
      Jitter jitter(100 + p);
      for (std::uint64_t i = 0; i < rounds; ++i) {
        start.arrive(i);
        if (p == 0) dog.note(i);
        jitter();
        t.publish(bytes_of((std::uint64_t{p} << 32) | i));
      }
    });
  }
  for (auto& th : threads) th.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u) << "a message out of per-publisher order, twice, or unknown";
  EXPECT_GT(hub.wake_stats().arms, rounds / 4) << "the subscribers rarely armed: the race was not exercised";
  // wait()'s safety net would hide a lost wake-up behind a one-second delay: none may happen.
  EXPECT_EQ(hub.wake_stats().wakeups_recovered, 0u) << "a push was lost and the safety net found the message";
}

TEST_P(WakeStress, TagMaskedSubscriberRacingSkippedTagsIsWokenByItsOwn) {
  // Each round the publisher publishes a tag-3 message, then a tag-5 one, each after a random
  // delay. Subscriber A takes only tag 5: it arms, the tag-3 publish passes it over (it stays
  // armed), and the tag-5 publish must wake it. Subscriber B takes every tag.
  const std::uint64_t rounds = rounds_for(5'000);
  Hub hub(hub_options());
  Topic& t = hub.topic("tag_race");
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.TagMaskedSubscriberRacingSkippedTagsIsWokenByItsOwn/" +
               config_name(GetParam()));
  Subscriber only5 = t.subscribe(Start::latest, std::uint64_t{1} << 5);
  Subscriber every = t.subscribe(Start::latest);
  RoundStart start(3);
  // Reads until `want` messages of round i are in; checks tags and order.
  auto serve = [&](Subscriber& sub, std::uint64_t mask, std::uint32_t want, unsigned cpu) {
    PinToCpu pin(cpu);
    std::uint64_t last = ~std::uint64_t{0};
    for (std::uint64_t i = 0; i < rounds; ++i) {
      start.arrive(i);
      for (std::uint32_t got = 0; got < want;) {
        Batch b = sub.poll();
        if (b.empty()) {
          b.release();
          (void)sub.wait(kForever);
          continue;
        }
        for (const Message& m : b) {
          const std::uint64_t w = word_of(m);  // 2 * round + (tag == 5)
          if (((mask >> m.tag) & 1u) == 0 || w / 2 != i || (m.tag == 5) != (w % 2 == 1) ||
              (last != ~std::uint64_t{0} && w <= last)) {
            errors.fetch_add(1);
          }
          last = w;
          ++got;
        }
      }
      if (want == 1) dog.tick();
    }
  };
  std::thread a([&] { serve(only5, std::uint64_t{1} << 5, 1, 1); });
  std::thread b([&] { serve(every, kAllTags, 2, 0); });
  {
    PinToCpu pin(0);
    Jitter jitter(7);
    for (std::uint64_t i = 0; i < rounds; ++i) {
      start.arrive(i);
      dog.note(i);
      jitter();
      t.publish(bytes_of(2 * i), 3);
      jitter();
      t.publish(bytes_of(2 * i + 1), 5);
    }
  }
  a.join();
  b.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u) << "a message outside the mask, out of order, or from another round";
  // A background notifier may serve both publishes of a round in one pass (tags 3|5 together), so
  // only a notifier in the publishing thread is sure to meet the tag-5 subscriber with tag 3 alone.
  if (hub_options().mode == NotifyMode::publisher) {
    EXPECT_GT(hub.wake_stats().wakeups_skipped, 0u) << "no tag-3 publish met the tag-5 subscriber armed";
  }
}

TEST_P(WakeStress, TagMaskedSubscribersParkedThroughSkippedTagsAreWokenByTheirOwn) {
  // Tags cycle 0..5. Subscriber 0 takes tags {0, 1}, subscriber 1 tag {2}, subscriber 2 every tag.
  // Tags 3..5 are noise for the first two: the notifier passes over them and they stay armed.
  constexpr std::uint32_t kSubscribers = 3;
  constexpr unsigned kTags = 6;
  const std::uint64_t masks[kSubscribers] = {0b11, 0b100, kAllTags};
  const std::uint64_t rounds = rounds_for(20'000);
  Hub hub(hub_options());
  Topic& t = hub.topic("tags");
  std::array<std::atomic<std::uint64_t>, kSubscribers> read{};  // matching messages read
  for (auto& v : read) v.store(0);
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.TagMaskedSubscribersParkedThroughSkippedTagsAreWokenByTheirOwn/" + config_name(GetParam()));
  auto matching_before = [&](std::uint32_t s, std::uint64_t i) {  // matching messages among 0..i-1
    std::uint64_t n = 0;
    for (unsigned tag = 0; tag < kTags; ++tag) {
      if ((masks[s] >> tag) & 1u) n += i / kTags + (tag < i % kTags ? 1 : 0);
    }
    return n;
  };
  std::vector<Subscriber> subs;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) subs.push_back(t.subscribe(Start::latest, masks[s]));
  std::vector<std::thread> threads;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&, s] {
      Subscriber& sub = subs[s];
      const std::uint64_t want = matching_before(s, rounds);
      std::uint64_t got = 0, last = 0;
      bool first = true;
      while (got < want) {
        Batch b = sub.poll();
        if (b.empty()) {
          b.release();
          (void)sub.wait(kForever);
          continue;
        }
        for (const Message& m : b) {
          const std::uint64_t i = word_of(m);
          if (((masks[s] >> m.tag) & 1u) == 0 || m.tag != i % kTags || (!first && i <= last)) {
            errors.fetch_add(1);
          }
          first = false;
          last = i;
          ++got;
        }
        b.release();
        read[s].store(got, std::memory_order_release);
        dog.tick();
      }
    });
  }
  Jitter jitter(3);
  for (std::uint64_t i = 0; i < rounds; ++i) {
    const unsigned tag = static_cast<unsigned>(i % kTags);
    // Message i goes out once every subscriber has read the messages before it that it matches.
    for (std::uint32_t s = 0; s < kSubscribers; ++s) await_at_least(read[s], matching_before(s, i));
    dog.note(i);
    jitter();
    t.publish(bytes_of(i), tag);
  }
  for (auto& th : threads) th.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u) << "a message outside the mask, or out of order";
  for (std::uint32_t s = 0; s < kSubscribers; ++s) EXPECT_EQ(read[s].load(), matching_before(s, rounds));
  EXPECT_GT(hub.wake_stats().wakeups_skipped, 0u) << "the noise tags never met an armed subscriber";
}

TEST_P(WakeStress, PublishRacingWakeGroupsArmingTheirMembersIsNeverLost) {
  // Two threads, each serving a wake group with WakeGroup::wait() without a timeout. Each group
  // has 3 members: member 0 on a topic of its own, which gets one message per round, and members
  // 1 and 2 on a quiet topic shared by both groups, armed all along. So each round, one arming in
  // each group (member 0's, after it read the last message) races the publish that must wake it.
  constexpr std::uint32_t kThreads = 2, kMembers = 3;
  const std::uint64_t rounds = rounds_for(5'000);
  Hub hub(hub_options());
  Topic& quiet = hub.topic("quiet");
  std::array<Topic*, kThreads> own{};
  std::atomic<std::uint64_t> errors{0};
  Watchdog dog("WakeStress.PublishRacingWakeGroupsArmingTheirMembersIsNeverLost/" +
               config_name(GetParam()));
  std::array<std::vector<Subscriber>, kThreads> subs_of;
  std::vector<std::unique_ptr<WakeGroup>> groups;
  for (std::uint32_t k = 0; k < kThreads; ++k) {
    own[k] = &hub.topic("group" + std::to_string(k));
    groups.push_back(std::make_unique<WakeGroup>(hub));
    for (std::uint32_t m = 0; m < kMembers; ++m) {
      subs_of[k].push_back((m == 0 ? *own[k] : quiet).subscribe(Start::latest));
      if (groups[k]->add(subs_of[k].back()) != m) errors.fetch_add(1);
    }
  }
  RoundStart start(kThreads + 1);
  std::vector<std::thread> threads;
  for (std::uint32_t k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      PinToCpu pin(k + 1);
      WakeGroup& group = *groups[k];
      std::vector<Subscriber>& subs = subs_of[k];
      std::uint64_t next = 0;
      for (std::uint64_t i = 0; i < rounds; ++i) {
        start.arrive(i);
        while (next <= i) {
          for (const std::uint32_t id : group.wait(kForever)) {
            for (const Message& m : subs[id].poll()) {
              if (id != 0 || m.seq != next || word_of(m) != next) errors.fetch_add(1);
              next = m.seq + 1;
            }
          }
        }
        if (k == 0) dog.tick();
      }
    });
  }
  {
    PinToCpu pin(0);
    Jitter jitter(4);
    for (std::uint64_t i = 0; i < rounds; ++i) {
      start.arrive(i);
      dog.note(i);
      for (std::uint32_t k = 0; k < kThreads; ++k) {
        jitter();
        own[k]->publish(bytes_of(i));
      }
    }
  }
  for (auto& th : threads) th.join();
  for (Topic* topic : own) settle(*topic);
  groups.clear();
  EXPECT_EQ(errors.load(), 0u) << "a quiet member was reported, or a message came twice or out of order";
}

TEST_P(WakeStress, ProducersStalledAndExpiredMidClaimLoseNoMessageAndNoWakeUp) {
  // Three producers build every message in place (claim, write, commit). Now and then one stalls
  // mid-claim for longer than claim_timeout, or drops its claim; the subscribers behind it (parked
  // in wait() without timeout, or polling) expire the stalled claim and read on. A producer whose
  // commit throws ClaimExpired, or who dropped its claim, publishes that message again: every
  // (producer, n) must reach both subscribers exactly once, in each producer's order, and no
  // subscriber may sleep through a message (the watchdog; wakeups_recovered == 0).
  constexpr std::uint32_t kProducers = 3, kSubscribers = 2;
  const std::uint64_t per_producer = scaled(5'000);
  Hub hub(hub_options());
  TopicOptions opt;
  opt.capacity = 1 << 16;
  opt.claim_timeout = kTsan ? 60ms : 20ms;
  Topic& t = hub.topic("stalls", opt);
  std::atomic<std::uint64_t> errors{0}, expired_commits{0}, dropped{0};
  Watchdog dog("WakeStress.ProducersStalledAndExpiredMidClaimLoseNoMessageAndNoWakeUp/" +
               config_name(GetParam()));
  std::vector<Subscriber> subs;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) subs.push_back(t.subscribe(Start::oldest));
  std::vector<std::thread> threads;
  for (std::uint32_t s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&, s] {
      Subscriber& sub = subs[s];
      std::array<std::uint64_t, kProducers> next{};
      std::uint64_t got = 0;
      while (got < kProducers * per_producer) {
        Batch b = sub.poll();
        if (b.gap() != 0) errors.fetch_add(1);
        if (b.empty()) {
          b.release();
          (void)sub.wait(kForever);
          continue;
        }
        for (const Message& m : b) {
          if (m.aborted) continue;  // a dropped or expired claim
          const std::uint64_t w = word_of(m);
          const auto p = static_cast<std::uint32_t>(w >> 32);
          if (p >= kProducers || (w & 0xffffffffu) != next[p]) {
            errors.fetch_add(1);
            continue;
          }
          ++next[p];
          ++got;
        }
        if (s == 0) dog.tick();
      }
    });
  }
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::mt19937 rng(300 + p);
      for (std::uint64_t n = 0; n < per_producer; ++n) {
        const std::uint64_t word = (std::uint64_t{p} << 32) | n;
        const auto r = rng() % 1000;
        Claim c = t.claim(sizeof word);
        std::memcpy(c.data().data(), &word, sizeof word);
        if (r == 0) {
          c.abort();  // dropped: publish it again
          dropped.fetch_add(1);
          t.publish(bytes_of(word));
          continue;
        }
        if (r == 1) std::this_thread::sleep_for(opt.claim_timeout * 3 / 2);  // stalled mid-claim
        if (p == 0 && n == 10) {
          // At least one stall that surely expires, however slow the machine (under TSan the
          // others may not fill the ring within a short stall): held until someone expired it.
          // The subscribers then wait at this claim, so whoever needs room must expire it rather
          // than wait for them (stall_timeout).
          const auto until = std::chrono::steady_clock::now() + 5s;
          while (t.stats().expired == 0 && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(1ms);
          }
        }
        if (r % 2 == 0) std::this_thread::sleep_for(20us);  // paced: others publish through a stall
        try {
          c.commit();
        } catch (const ClaimExpired&) {
          expired_commits.fetch_add(1);
          t.publish(bytes_of(word));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  settle(t);
  EXPECT_EQ(errors.load(), 0u) << "a message lost, twice, out of its producer's order, or a gap";
  EXPECT_GT(dropped.load(), 0u);
  EXPECT_EQ(t.stats().expired, expired_commits.load()) << "every expiry must fail exactly one commit";
  EXPECT_GT(expired_commits.load(), 0u) << "no claim expired: the test proved less than it claims";
  RecordProperty("expired", std::to_string(expired_commits.load()));
  EXPECT_EQ(hub.wake_stats().wakeups_recovered, 0u) << "a push was lost and the safety net found the message";
}

TEST_P(WakeStress, CloseRacingSubscribersThatGoToSleep) {
  // Each round: a fresh topic, subscribers heading into wait() without timeout, and a close() at a
  // random moment. Every subscriber must end with Closed.
  const std::uint64_t rounds = rounds_for(1'000);
  constexpr int kSubscribers = 2;
  Hub hub(hub_options());
  Watchdog dog("WakeStress.CloseRacingSubscribersThatGoToSleep/" + config_name(GetParam()));
  Jitter jitter(5);
  std::atomic<int> closed{0};
  TopicOptions small;  // one topic per round, all kept by the hub: keep them small
  small.capacity = 4096;
  small.max_subscribers = 4;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    Topic& t = hub.topic("close" + std::to_string(round), small);
    std::vector<std::thread> threads;
    for (int s = 0; s < kSubscribers; ++s) {
      // Each waiter drops its subscriber as soon as it sees Closed, while the closing round may
      // still be writing the other's eventfd.
      threads.emplace_back([&, sub = t.subscribe(Start::latest)]() mutable {
        try {
          for (;;) {
            (void)sub.wait(kForever);
            Batch b = sub.poll();
          }
        } catch (const Closed&) {
          closed.fetch_add(1);
        }
      });
    }
    jitter();
    if (round % 2 == 0) t.publish(bytes_of(round));
    jitter();
    t.close();
    for (auto& th : threads) th.join();
    dog.note(round);
    dog.tick();
  }
  EXPECT_EQ(closed.load(), static_cast<int>(rounds) * kSubscribers);
}

}  // namespace
}  // namespace pushpoll::test

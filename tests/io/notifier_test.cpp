// The notifier (pushpoll::io): backend choice and fallback, its counters, descriptors (no leaks, the
// RLIMIT_NOFILE error), and what it writes when a round races with subscribers going away.
#include <sys/mman.h>
#include <sys/wait.h>

#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

// ---- backend choice ---------------------------------------------------------------------------

/// HubOptions with `backend` (and SQPOLL if asked), the rest default.
HubOptions with_backend(Backend backend, bool sqpoll = false) {
  HubOptions o;
  o.backend = backend;
  o.sqpoll = sqpoll;
  return o;
}

TEST(NotifierBackend, ForcedSyscallIsUsed) {
  Hub hub(with_backend(Backend::syscall));
  EXPECT_EQ(hub.backend(), Backend::syscall);
  EXPECT_EQ(to_string(hub.backend()), "syscall");
}

TEST(NotifierBackend, AutomaticFallsBackToSyscallWhenDisabledByEnvironment) {
  ScopedEnv off("PUSHPOLL_IO_URING", "off");
  std::string why;
  EXPECT_FALSE(io::io_uring_available(&why));
  EXPECT_NE(why.find("PUSHPOLL_IO_URING"), std::string::npos) << why;
  Hub hub(with_backend(Backend::automatic));
  EXPECT_EQ(hub.backend(), Backend::syscall);
  // And the fallback wakes subscribers.
  Topic& t = hub.topic("fallback");
  Subscriber sub = t.subscribe(Start::latest);
  ASSERT_TRUE(sub.arm());
  t.publish(bytes_of(std::uint64_t{1}));
  EXPECT_TRUE(readable(sub.fd(), 5000ms));
  EXPECT_EQ(hub.wake_stats().wakeups_sent, 1u);
}

TEST(NotifierBackend, AutomaticUsesIoUringWhereAvailable) {
  if (io_uring_refusal()) GTEST_SKIP() << "io_uring unavailable: " << *io_uring_refusal();
  Hub hub;
  EXPECT_EQ(hub.backend(), Backend::io_uring);
  Hub explicit_hub(with_backend(Backend::io_uring));
  EXPECT_EQ(explicit_hub.backend(), Backend::io_uring);
}

TEST(NotifierBackend, SqpollHubWakesSubscribers) {
  if (io_uring_refusal()) GTEST_SKIP() << "io_uring unavailable: " << *io_uring_refusal();
  // SQPOLL may be refused (privileges, kernel): the hub then uses plain io_uring. Either way it wakes.
  Hub hub(with_backend(Backend::io_uring, /*sqpoll=*/true));
  EXPECT_EQ(hub.backend(), Backend::io_uring);
  Topic& t = hub.topic("sqpoll");
  Subscriber sub = t.subscribe(Start::latest);
  const int fd = sub.fd();
  for (std::uint64_t round = 0; round < 10; ++round) {
    ASSERT_TRUE(sub.arm());
    t.publish(bytes_of(round));
    ASSERT_TRUE(readable(fd, 5000ms)) << "round " << round;
    Batch b = sub.poll();
    ASSERT_EQ(b.size(), 1u);
  }
  EXPECT_EQ(hub.wake_stats().wakeups_sent, 10u);
}

// ---- counters ---------------------------------------------------------------------------------

class NotifierStats : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, NotifierStats, ::testing::ValuesIn(all_configs()), ConfigName{});

TEST_P(NotifierStats, CountOneRoundOfWritesToEveryArmedSubscriber) {
  constexpr std::size_t kSubscribers = 100;
  Hub hub(hub_options());
  Topic& t = hub.topic("round");
  std::vector<Subscriber> subs;
  for (std::size_t i = 0; i < kSubscribers; ++i) {
    subs.push_back(t.subscribe(Start::latest));
    (void)subs.back().fd();
    ASSERT_TRUE(subs.back().arm());
  }
  const WakeStats before = hub.wake_stats();
  EXPECT_EQ(before.wakeups_sent, 0u);
  t.publish(bytes_of(std::uint64_t{1}));
  for (auto& s : subs) ASSERT_TRUE(readable(s.fd(), 5000ms));
  // The counters are bumped after the writes take effect: give the notifier time to finish.
  EXPECT_TRUE(eventually([&] { return hub.wake_stats().wakeups_sent - before.wakeups_sent >= kSubscribers; }));
  std::this_thread::sleep_for(5ms);
  const WakeStats mid = hub.wake_stats();
  EXPECT_EQ(mid.wakeups_sent - before.wakeups_sent, kSubscribers);
  EXPECT_EQ(mid.wakeups_coalesced - before.wakeups_coalesced, 0u) << "every subscriber has its own fd";
  EXPECT_EQ(mid.rounds - before.rounds, 1u) << "one publish, one round";
  const std::uint64_t notifier = mid.notifier_syscalls - before.notifier_syscalls;
  const std::uint64_t handoff = background() ? 1 : 0;  // waking the notifier thread
  if (GetParam().backend == Backend::syscall) {
    EXPECT_GE(notifier, kSubscribers) << "one write() per eventfd";
    EXPECT_LE(notifier, kSubscribers + handoff);
  } else {
    // One io_uring submission for the whole set (chunked by the submission queue's size).
    EXPECT_GE(notifier, 1u);
    EXPECT_LE(notifier, 4u + handoff);
  }
  EXPECT_EQ(mid.subscriber_syscalls, before.subscriber_syscalls) << "nobody has drained yet";
  for (auto& s : subs) {
    Batch b = s.poll();
    EXPECT_EQ(b.size(), 1u);
  }
  EXPECT_EQ(hub.wake_stats().subscriber_syscalls - mid.subscriber_syscalls, kSubscribers)
      << "one read() per woken subscriber to drain its eventfd";
}

TEST_P(NotifierStats, CountTheSyscallsOfABlockingWait) {
  Hub hub(hub_options());
  Topic& t = hub.topic("blocking");
  Subscriber sub = t.subscribe(Start::latest);
  (void)sub.fd();
  const WakeStats before = hub.wake_stats();
  std::thread publisher([&t] {
    std::this_thread::sleep_for(30ms);
    t.publish(bytes_of(std::uint64_t{1}));
  });
  EXPECT_TRUE(sub.wait(10s));
  publisher.join();
  // The notifier counts a write after making it: let a background round finish counting.
  EXPECT_TRUE(eventually([&] { return hub.wake_stats().wakeups_sent > before.wakeups_sent; }));
  const WakeStats after = hub.wake_stats();
  EXPECT_EQ(after.arms - before.arms, 1u);
  EXPECT_EQ(after.wakeups_sent - before.wakeups_sent, 1u);
  // ppoll() and the read() that drains, plus membarrier() when the asymmetric barrier is in use.
  const std::uint64_t sub_calls = after.subscriber_syscalls - before.subscriber_syscalls;
  EXPECT_GE(sub_calls, 2u);
  EXPECT_LE(sub_calls, 3u);
  EXPECT_GE(after.notifier_syscalls - before.notifier_syscalls, 1u);
}

TEST_P(NotifierStats, SteadyStreamToASubscriberThatKeepsUpCostsFewSyscalls) {
  Hub hub(hub_options());
  Topic& t = hub.topic("stream");
  Subscriber sub = t.subscribe(Start::latest);
  constexpr std::size_t kBurst = 256;
  const std::uint64_t bursts = kTsan ? 40 : 200;
  const std::uint64_t total = bursts * kBurst;
  Watchdog dog("NotifierStats.SteadyStreamToASubscriberThatKeepsUpCostsFewSyscalls");
  const WakeStats before = hub.wake_stats();
  std::thread publisher([&] {
    std::vector<std::uint64_t> words(kBurst);
    std::vector<std::span<const std::byte>> messages(kBurst);
    for (std::uint64_t b = 0; b < bursts; ++b) {
      for (std::size_t i = 0; i < kBurst; ++i) {
        words[i] = b * kBurst + i;
        messages[i] = bytes_of(words[i]);
      }
      t.publish_batch(messages);
      std::this_thread::sleep_for(200us);
    }
  });
  std::uint64_t next = 0;
  while (next < total) {
    Batch b = sub.poll(4096);
    if (b.empty()) {
      (void)sub.wait(kForever);
      continue;
    }
    for (const Message& m : b) {
      ASSERT_EQ(m.seq, next);
      ASSERT_EQ(word_of(m), next);
      ++next;
    }
    dog.tick();
  }
  publisher.join();
  const WakeStats after = hub.wake_stats();
  const double syscalls = static_cast<double>((after.notifier_syscalls - before.notifier_syscalls) +
                                              (after.subscriber_syscalls - before.subscriber_syscalls));
  const double per_message = syscalls / static_cast<double>(total);
  EXPECT_LT(per_message, 0.05) << syscalls << " syscalls for " << total << " messages";
  EXPECT_LE(after.wakeups_sent - before.wakeups_sent, bursts) << "at most one wake-up per burst";
}

// ---- descriptors ------------------------------------------------------------------------------

class NotifierFds : public WakeTest {};
INSTANTIATE_TEST_SUITE_P(Backends, NotifierFds, ::testing::ValuesIn(all_configs()), ConfigName{});

TEST_P(NotifierFds, EverythingDestroyedLeavesNoDescriptorBehind) {
  const int before = open_fd_count();
  ASSERT_GT(before, 0);
  {
    Hub hub(hub_options());
    Topic& t = hub.topic("leak");
    Topic& other = hub.topic("leak2");
    std::vector<Subscriber> subs;
    for (int i = 0; i < 100; ++i) {
      subs.push_back((i % 2 == 0 ? t : other).subscribe(Start::latest));
      EXPECT_GE(subs.back().fd(), 0);
      EXPECT_FALSE(subs.back().wait(100us));
    }
    t.publish(bytes_of(std::uint64_t{1}));
    WakeGroup group(hub);
    std::vector<Subscriber> members;
    for (int i = 0; i < 10; ++i) {
      members.push_back(t.subscribe(Start::latest));
      (void)group.add(members.back());
    }
    EXPECT_TRUE(group.wait(1ms).empty());
    group.remove(members[0]);
    EXPECT_GE(members[0].fd(), 0) << "out of the group: its own eventfd";
    EXPECT_GT(open_fd_count(), before);
  }
  EXPECT_EQ(open_fd_count(), before) << "a hub, its subscribers and a wake group leaked descriptors";
}

TEST_P(NotifierFds, SubscribeAndUnsubscribeChurnLeavesNoDescriptorBehind) {
  Hub hub(hub_options());
  Topic& t = hub.topic("churn");
  const int before = open_fd_count();
  for (int i = 0; i < 1000; ++i) {
    Subscriber sub = t.subscribe(Start::latest);
    // A round left over from an earlier publish may push a new arming: true is allowed from wait().
    if (i % 2 == 0) {
      (void)sub.arm();
    } else {
      (void)sub.wait(0ns);
    }
    // Some are notified first, and go while the round may still be writing their eventfd.
    if (i % 3 == 0) t.publish(bytes_of(static_cast<std::uint64_t>(i)));
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST_P(NotifierFds, WakeGroupOutlivedByItsMembersClosesItsEventfd) {
  Hub hub(hub_options());
  Topic& t = hub.topic("group_first");
  std::vector<Subscriber> subs;
  for (int i = 0; i < 4; ++i) subs.push_back(t.subscribe(Start::latest));
  const int before = open_fd_count();
  {
    WakeGroup group(hub);
    for (auto& s : subs) (void)group.add(s);
    EXPECT_TRUE(group.wait(1ms).empty());  // every member armed through the group
  }
  EXPECT_EQ(open_fd_count(), before);
  // The former members work alone afterwards.
  t.publish(bytes_of(std::uint64_t{1}));
  for (auto& s : subs) {
    EXPECT_TRUE(s.wait(5s));
    Batch b = s.poll();
    EXPECT_EQ(b.size(), 1u);
  }
}

/// Runs `body` in a forked child; returns its exit code (or 128 + signal), and its stderr output.
template <class F>
std::pair<int, std::string> in_child(F&& body) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    ::dup2(pipefd[1], STDERR_FILENO);
    int code = 99;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    }
    std::fflush(stderr);
    ::_exit(code);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return {WEXITSTATUS(status), out};
  if (WIFSIGNALED(status)) return {128 + WTERMSIG(status), out};
  return {-1, out};
}

TEST_P(NotifierFds, OutOfDescriptorsThrowsAnErrorNamingTheLimit) {
  const HubOptions options = hub_options();
  const auto [code, output] = in_child([&options]() -> int {
    rlimit rl{64, 64};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
    Hub hub(options);
    Topic& t = hub.topic("scale");
    std::vector<Subscriber> subs;
    for (int i = 0; i < 200; ++i) {
      subs.push_back(t.subscribe(Start::latest));
      try {
        (void)subs.back().wait(1us);
      } catch (const Closed&) {
        std::fprintf(stderr, "Closed instead of Error\n");
        return 3;
      } catch (const Error& e) {
        // Give descriptors back first: sanitizer runtimes open files (/proc/self/maps) to check
        // the virtual call below, and fail when the process has none left.
        subs.clear();
        std::fprintf(stderr, "%s\n", e.what());
        return std::string(e.what()).find("RLIMIT_NOFILE") != std::string::npos ? 0 : 4;
      }
    }
    std::fprintf(stderr, "200 waiting subscribers under a limit of 64 descriptors: no error\n");
    return 5;
  });
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("RLIMIT_NOFILE"), std::string::npos) << output;
}

TEST_P(NotifierFds, OutOfDescriptorsRaisesTheSoftLimitTowardTheHardOne) {
  const HubOptions options = hub_options();
  const auto [code, output] = in_child([&options]() -> int {
    rlimit rl{64, 1024};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
    Hub hub(options);
    Topic& t = hub.topic("raise");
    std::vector<Subscriber> subs;
    for (int i = 0; i < 300; ++i) {
      subs.push_back(t.subscribe(Start::latest));
      (void)subs.back().wait(1us);
    }
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur <= 64 || rl.rlim_max != 1024) {
      std::fprintf(stderr, "soft limit %llu, hard %llu\n", static_cast<unsigned long long>(rl.rlim_cur),
                   static_cast<unsigned long long>(rl.rlim_max));
      return 6;
    }
    return 0;
  });
  EXPECT_EQ(code, 0) << output;
}

// The background notifier thread holds each topic for a moment (weak_ptr::lock()) while it looks
// at it. When the hub is gone and the last Subscriber lets go of its topic at that moment, the
// thread's reference is the last one: the topic, and with it the last reference to the notifier,
// go away on that thread, which must not try to join itself (std::terminate). Many rounds in a
// child process; before the fix the child died within a second or two.
TEST(NotifierBackground, LastSubscriberLeavingAfterTheHubNeverKillsTheProcess) {
  const auto [code, output] = in_child([]() -> int {
    HubOptions options;
    options.backend = Backend::syscall;
    options.mode = NotifyMode::background;
    options.coalesce_window = 0ns;
    TopicOptions small;
    small.capacity = 4096;
    small.max_subscribers = 4;
    std::uint64_t rng = 1;
    const auto deadline = Clock::now() + 3s;
    for (int round = 0; round < 30'000 && Clock::now() < deadline; ++round) {
      auto hub = std::make_unique<Hub>(options);
      Topic& t = hub->topic("t", small);
      Subscriber sub = t.subscribe(Start::latest);
      (void)sub.arm();
      t.publish(bytes_of(std::uint64_t{1}));  // wakes the background thread
      hub.reset();
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      const auto spins = static_cast<unsigned>((rng >> 33) % 20'000);
      for (unsigned i = 0; i < spins; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      sub.unsubscribe();  // the last owner of the topic, unless the background thread holds it
    }
    return 0;
  });
  EXPECT_EQ(code, 0) << "the child died (signal " << (code > 128 ? code - 128 : 0) << "): " << output;
}

// ---- a round racing with its subscribers ------------------------------------------------------

/// A round long enough to race with: `crowd` armed subscribers, then `victim` armed last, so the
/// notifier reaches the victim at the end of its pass over the armed set and writes the victim's
/// eventfd (the highest descriptor) last of all.
struct LongRound {
  explicit LongRound(const HubOptions& options, std::size_t crowd_size)
      : hub(options), topic(hub.topic("long_round")) {
    for (std::size_t i = 0; i < crowd_size; ++i) {
      crowd.push_back(topic.subscribe(Start::latest));
      (void)crowd.back().fd();
    }
    victim = topic.subscribe(Start::latest);
    victim_fd = victim.fd();
    victim_slot = static_cast<std::uint32_t>(crowd_size);  // slots are handed out in order
    for (auto& s : crowd) (void)s.arm();
    (void)victim.arm();
  }
  /// Waits until the round has made (and counted) all its writes.
  [[nodiscard]] bool round_done() const {
    return eventually([this] { return hub.wake_stats().wakeups_sent >= crowd.size() + 1; }, 10s);
  }
  /// The notifier has won the victim's arming (armed -> notified), and may not have written yet.
  [[nodiscard]] bool victim_notified() const noexcept {
    return topic.ring().slot(victim_slot).wake.load(std::memory_order_acquire) == detail::kWakeNotified;
  }
  Hub hub;
  Topic& topic;
  std::vector<Subscriber> crowd;
  Subscriber victim;
  int victim_fd = -1;
  std::uint32_t victim_slot = 0;
};

// A round reads a subscriber's eventfd number when it wins armed -> notified, and writes it once
// the whole armed set is collected. A subscriber that unsubscribes meanwhile must not close that
// eventfd before the round is done: the number would be reused by the next open() in the process
// and the notifier's 8-byte write would land in an unrelated file (a memfd here; a socket or pipe
// in real use). The same goes for a WakeGroup destroyed during a round.
TEST_P(NotifierFds, UnsubscribingDuringARoundDoesNotLetTheNotifierWriteAReusedDescriptor) {
  if (const std::string why = ensure_descriptors(8'100); !why.empty()) GTEST_SKIP() << why;
  // The race needs the notifier to be slower than this thread, which a loaded machine does not
  // always grant: several attempts, stopping at the first stray write.
  int hits = 0, tries = 0;
  for (int attempt = 0; attempt < (kTsan ? 4 : 10) && hits == 0; ++attempt) {
    LongRound r(hub_options(), 8000);
    PinToCpu pin(0);  // this thread races the notifier: keep them on different CPUs
    std::thread publisher([&r] {
      PinToCpu other(1);
      r.topic.publish(bytes_of(std::uint64_t{1}));
    });
    while (!r.victim_notified()) {
    }
    r.victim.unsubscribe();  // closes victim_fd while the round may still hold its number
    const int file = ::memfd_create("unrelated", MFD_CLOEXEC);
    publisher.join();
    ASSERT_TRUE(r.round_done());
    if (file == r.victim_fd) {
      ++tries;
      std::uint64_t written = 0;
      if (::pread(file, &written, sizeof written, 0) == static_cast<ssize_t>(sizeof written)) {
        ++hits;
        EXPECT_EQ(written, 1u) << "what landed is an eventfd increment";
      }
    }
    ::close(file);
  }
  ASSERT_GT(tries, 0) << "the descriptor number was not reused: nothing was tested";
  EXPECT_EQ(hits, 0) << "the notifier wrote 8 bytes into a file that reused a closed eventfd's number";
}

// A subscriber may take its notification (poll() or arm()) after the notifier won armed ->
// notified but before its write landed: the drain then reads nothing and the write lands later.
// That readiness must be cleared by the next poll()/arm() (fd()'s contract), or a level-triggered
// loop (epoll without EPOLLET, asyncio's add_reader) spins on it until the next real wake-up.
TEST_P(NotifierFds, ALateWriteIsDrainedByTheNextPollAndArm) {
  if (const std::string why = ensure_descriptors(8'100); !why.empty()) GTEST_SKIP() << why;
  int late = 0, stuck = 0;
  for (int attempt = 0; attempt < 20 && late == 0; ++attempt) {
    LongRound r(hub_options(), 8000);
    PinToCpu pin(0);  // this thread races the notifier: keep them on different CPUs
    std::thread publisher([&r] {
      PinToCpu other(1);
      r.topic.publish(bytes_of(std::uint64_t{1}));
    });
    while (!r.victim_notified()) {
    }
    const bool written_already = readable(r.victim_fd, 0ms);
    { Batch b = r.victim.poll(); }  // takes the notification (and drains what is there)
    { Batch b = r.victim.poll(); }
    publisher.join();
    ASSERT_TRUE(r.round_done());
    if (written_already) continue;
    ++late;
    // What a level-triggered loop does on each readiness: poll, then re-arm. Once is allowed to be
    // spurious; the readiness must not survive the cycle.
    bool still_readable = false;
    for (int cycle = 0; cycle < 3; ++cycle) {
      { Batch b = r.victim.poll(); EXPECT_TRUE(b.empty()); }
      ASSERT_TRUE(r.victim.arm()) << "nothing is unread";
      still_readable = readable(r.victim_fd, 0ms);
    }
    if (still_readable) ++stuck;
  }
  if (late == 0) GTEST_SKIP() << "the write always landed before the drain: nothing was tested";
  EXPECT_EQ(stuck, 0) << "the eventfd stays readable after poll() and arm(): a level-triggered "
                         "loop would spin";
}

}  // namespace
}  // namespace pushpoll::test

// The bias of a sole producer (detail/commit.hpp): a plain store inside a restartable sequence,
// revoked with membarrier(PRIVATE_EXPEDITED_RSEQ). Needs io's real notifier (restartable() and
// restart_sequences() are syscalls): skipped where the kernel has neither rseq nor that command.
#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <thread>

#include "pushpoll/detail/commit.hpp"
#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

TEST(Bias, ASecondProducerTakesTheBiasBackAndNothingIsLostEitherWay) {
  if (!detail::rseq_registered()) GTEST_SKIP() << "no restartable sequences in this process";
  Hub hub;
  if (!hub.notifier()->restartable()) GTEST_SKIP() << "membarrier cannot restart sequences here";
  Topic& t = hub.topic("t", small_topic(1 << 22));  // room for every message unread
  Subscriber sub = t.subscribe();
  // One thread alone earns the bias; then a second one starts, which takes it back; then the first
  // alone again; every message must arrive once, in each producer's order.
  auto publish_n = [&](std::uint64_t producer, std::uint64_t from, std::uint64_t n) {
    for (std::uint64_t i = from; i < from + n; ++i) {
      const std::uint64_t word[2] = {producer, i};
      t.publish(std::as_bytes(std::span(word)));
    }
  };
  std::uint64_t next[2] = {0, 0};
  std::uint64_t seen = 0;
  auto check = [&] {
    for (const auto& m : drain(sub)) {
      std::uint64_t word[2];
      ASSERT_EQ(m.data.size(), sizeof word);
      std::memcpy(word, m.data.data(), sizeof word);
      ASSERT_LT(word[0], 2u);
      ASSERT_EQ(word[1], next[word[0]]) << "producer " << word[0];
      ++next[word[0]];
      ++seen;
    }
  };
  publish_n(0, 0, 20000);
  check();
  std::thread other([&] { publish_n(1, 0, 20000); });
  publish_n(0, 20000, 20000);
  other.join();
  check();
  EXPECT_EQ(seen, 60000u);
  EXPECT_GE(t.stats().bias_revocations, 1u) << "the first producer never held the bias";
}

TEST(Bias, ARestartableStoreRefusedAfterTheRightIsWithdrawnNeverLands) {
  if (!detail::rseq_registered()) GTEST_SKIP() << "no restartable sequences in this process";
  Hub hub;
  detail::Notifier* n = hub.notifier().get();
  if (!n->restartable()) GTEST_SKIP() << "membarrier cannot restart sequences here";
  // A writer stores an ever-growing counter while its right holds; the contender withdraws the
  // right and restarts every sequence: from then on the counter must not move.
  for (int round = 0; round < (test::kTsan ? 10 : 200); ++round) {
    std::atomic<std::uint64_t> right{1}, other{0}, counter{0};
    std::atomic<bool> started{false};
    std::thread writer([&] {
      for (std::uint64_t v = 1;; ++v) {
        if (detail::rseq_store_if(right, 1, other, 0, counter, v) != detail::Write::done) return;
        started.store(true, std::memory_order_release);
      }
    });
    while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
    right.store(0, std::memory_order_seq_cst);
    n->restart_sequences();
    const std::uint64_t after = counter.load(std::memory_order_seq_cst);
    writer.join();
    ASSERT_EQ(counter.load(), after) << "a store landed after the right was withdrawn (round " << round << ")";
  }
}

TEST(Bias, ASoleProducerInterruptedAnywhereLeavesNoHoleBehind) {
  // A signal, a preemption or a migration restarts a sequence from its checks. A biased claim
  // that had stored the new claim word when it was interrupted found, on restarting, the word
  // moved and gave up: a seq claimed by nobody, a hole readers waited at until claim_timeout
  // expired it (while the publisher ran on, and could fill the ring and time out behind it).
  // Signals land all over a sole producer's publishes: every message must arrive, in order, none
  // aborted, nothing expired.
  if (!detail::rseq_registered()) GTEST_SKIP() << "no restartable sequences in this process";
  Hub hub;
  if (!hub.notifier()->restartable()) GTEST_SKIP() << "membarrier cannot restart sequences here";
  TopicOptions opt = small_topic(1 << 20);
  opt.claim_timeout = 50ms;  // a hole shows up soon, as an expired (aborted) message
  Topic& t = hub.topic("t", opt);
  Subscriber sub = t.subscribe();
  struct sigaction quiet {}, old {};
  quiet.sa_handler = [](int) {};
  quiet.sa_flags = SA_RESTART;
  sigemptyset(&quiet.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR2, &quiet, &old), 0);
  constexpr std::uint64_t kMessages = test::kTsan ? 20000 : 1000000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> published{0};
  std::thread producer([&] {
    // Stops early when the reader gives up. Relaxed `done` and `published`, here and below: a stop
    // flag and a pace; nothing is read through either.
    for (std::uint64_t i = 0; i < kMessages && !done.load(std::memory_order_relaxed); ++i) {
      t.publish(bytes_of(i));
      published.store(i + 1, std::memory_order_relaxed);
    }
    done.store(true, std::memory_order_relaxed);
  });
  std::thread signaller([&, target = producer.native_handle()] {
    // At most one signal per publish: a faster stream can keep the producer in its handler for good.
    while (!done.load(std::memory_order_relaxed)) {
      const std::uint64_t before = published.load(std::memory_order_relaxed);
      ::pthread_kill(target, SIGUSR2);
      while (published.load(std::memory_order_relaxed) == before && !done.load(std::memory_order_relaxed)) {
        detail::cpu_relax();
      }
    }
  });
  // The reader stops at the first message out of order (the threads must still be joined).
  std::uint64_t next = 0, aborted = 0;
  bool in_order = true;
  const auto deadline = Clock::now() + 20s;
  while (in_order && next < kMessages && Clock::now() < deadline) {
    for (const Message& m : sub.poll()) {
      if (m.aborted) {
        ++aborted;
      } else if (m.data.size() != sizeof(std::uint64_t) || word_of(m) != next) {
        in_order = false;
        break;
      } else {
        ++next;
      }
    }
  }
  done.store(true, std::memory_order_relaxed);
  signaller.join();
  producer.join();
  ::sigaction(SIGUSR2, &old, nullptr);
  EXPECT_TRUE(in_order) << "a message out of order, or of the wrong size, where message " << next << " was due";
  EXPECT_EQ(aborted, 0u) << "seqs claimed by nobody, expired after claim_timeout";
  EXPECT_EQ(t.stats().expired, 0u);
  EXPECT_EQ(next, kMessages);
}

}  // namespace
}  // namespace pushpoll::test

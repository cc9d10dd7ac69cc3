// bench_util.hpp — helpers shared by the benchmarks: thread pinning, spinning, failure reporting.
//
// Threaded benchmarks in this directory follow one shape: the benchmark's own thread produces, a
// second thread consumes, and each timed iteration ends only when the consumer has checked every
// message of that iteration. A consumer that finds a wrong message records the error and keeps
// draining (so a blocked producer cannot hang the run); the benchmark thread then reports it with
// State::SkipWithError, so a broken path shows up as an error, never as a fast row.
#pragma once
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "pushpoll/detail/ring.hpp"

namespace pushpoll::bench {

inline constexpr std::size_t kCacheLine = 64;

/// CPU relax hint for spin loops: the library's own.
using pushpoll::detail::cpu_relax;

/// Number of CPUs this process may run on.
inline int usable_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

/// Pins the calling thread to `cpu`. Returns false (and leaves the thread unpinned) when that CPU
/// is not available, e.g. on a one-core machine or inside a restricted cpuset.
inline bool pin_this_thread(int cpu_index) noexcept {
  if (cpu_index < 0 || cpu_index >= CPU_SETSIZE) return false;
  const auto cpu = static_cast<std::size_t>(cpu_index);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || !CPU_ISSET(cpu, &allowed)) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

/// Pins the calling thread for the lifetime of the object and restores its previous affinity after,
/// so that pinning the benchmark's own thread does not leak into the next benchmark.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu) noexcept {
    CPU_ZERO(&saved_);
    const bool saved = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0;
    pinned_ = saved && pin_this_thread(cpu);
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  ~ScopedPin() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
  }
  [[nodiscard]] bool pinned() const noexcept { return pinned_; }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

/// Progress and failure shared between the benchmark thread and its worker threads.
struct Shared {
  // Writer: the consumer, once per batch (release). Reader: the benchmark thread at the end of each
  // iteration (acquire), so that the consumer's checks of those messages are complete.
  alignas(kCacheLine) std::atomic<std::uint64_t> consumed{0};
  // Writer: the benchmark thread (release) once everything has been consumed. Readers: workers.
  alignas(kCacheLine) std::atomic<bool> stop{false};
  // Writer: a producer round counter for benchmarks with a second producer thread.
  alignas(kCacheLine) std::atomic<std::uint64_t> round{0};
  // Set (release) after `error` is written; read (acquire) before `error` is read.
  alignas(kCacheLine) std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;

  /// Records the first failure; later ones are dropped.
  void fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (failed.load(std::memory_order_relaxed)) return;  // relaxed: the mutex orders writers
    error = what;
    failed.store(true, std::memory_order_release);
  }
  [[nodiscard]] bool has_failed() const noexcept { return failed.load(std::memory_order_acquire); }
  [[nodiscard]] std::string error_text() {
    std::lock_guard<std::mutex> lock(error_mutex);
    return error;
  }

  /// Waits until the consumer has checked `target` messages or something failed. `yield` gives the
  /// core away while waiting (for benchmarks with more busy threads than cores).
  bool wait_consumed(std::uint64_t target, bool yield) noexcept {
    while (consumed.load(std::memory_order_acquire) < target) {
      if (has_failed()) return false;
      if (yield) {
        std::this_thread::yield();
      } else {
        cpu_relax();
      }
    }
    return !has_failed();
  }
};

/// Pauses a consumer makes after a poll that found nothing, before polling again.
inline constexpr unsigned kIdlePauses = 64;

/// The idle strategy of every consumer in these benchmarks, so that rows compare like with like.
/// A consumer that re-reads the producer's head in a tight loop pulls that cache line away from the
/// producer between two of its stores, and the producer then waits for the line on every message:
/// on a 2-core KVM guest that halves a bare ring's throughput. After an empty poll the consumer
/// therefore pauses kIdlePauses times (on the order of a microsecond; the
/// latency of a pause varies by CPU) before polling again. With
/// `may_yield` (more busy threads than cores) it also yields the core after a few empty polls.
class IdleWait {
 public:
  explicit IdleWait(bool may_yield) noexcept : may_yield_(may_yield) {}
  void idle() noexcept {
    if (may_yield_ && ++empty_polls_ >= 4) {
      empty_polls_ = 0;
      std::this_thread::yield();
      return;
    }
    for (unsigned i = 0; i < kIdlePauses; ++i) cpu_relax();
  }
  void busy() noexcept { empty_polls_ = 0; }

 private:
  bool may_yield_;
  unsigned empty_polls_ = 0;
};

/// The counter stored in the first 8 bytes of every payload (and the last byte's filler value).
inline void write_counter(std::byte* payload, std::uint64_t counter) noexcept {
  std::memcpy(payload, &counter, sizeof(counter));
}
[[nodiscard]] inline std::uint64_t read_counter(const std::byte* payload) noexcept {
  std::uint64_t counter;
  std::memcpy(&counter, payload, sizeof(counter));
  return counter;
}
inline constexpr std::byte kFiller{0x5a};

/// Two producers: the producer's id goes in the counter's top byte, its own count below.
[[nodiscard]] constexpr std::uint64_t tagged_counter(unsigned producer, std::uint64_t n) noexcept {
  return (std::uint64_t{producer} << 56) | n;
}

}  // namespace pushpoll::bench

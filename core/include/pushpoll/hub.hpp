// pushpoll/hub.hpp — the hub: owns topics by name.
//
// Lifetimes: topics live as long as their hub, or longer while subscribed (a Subscriber keeps its
// topic's memory alive, so a hub may be destroyed while threads wait) or claimed (a Claim open when
// the last reference goes keeps its topic's memory until exit: claim.hpp). Thread-safety: any thread.
#pragma once
#include <map>
#include <memory>
#include <utility>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pushpoll/memory.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/topic.hpp"
#include "pushpoll/wake.hpp"

namespace pushpoll {

/// How a hub is built.
struct HubOptions {
  /// How eventfds are written. automatic: io_uring, or write() where it is refused.
  Backend backend = Backend::automatic;
  /// Notify in the publishing thread (lowest latency) or in a background thread (no syscalls in
  /// publishers; pushes within coalesce_window are merged).
  NotifyMode mode = NotifyMode::publisher;
  std::chrono::nanoseconds coalesce_window = std::chrono::microseconds(50);
  /// io_uring with a kernel submission thread (IORING_SETUP_SQPOLL) where the kernel permits it:
  /// the publisher pays ~20 ns per wake-up; the kernel thread spins on a core while active.
  bool sqpoll = false;
  /// The arming handshake's StoreLoad barrier: true puts it all on the arming side (membarrier(),
  /// one inter-processor interrupt per arming; publishers pay a compiler barrier only); false makes
  /// every publish pay a full fence and arming cheap. Prefer false when many subscribers re-arm
  /// while publishers run hot on a VM, where interrupts are expensive.
  bool asymmetric_barrier = true;
  /// Producers write the claim word (a sole producer) and their commits inside restartable
  /// sequences, with no locked instruction per publish, where the kernel allows it (rseq, and
  /// membarrier's RSEQ command); false, or PUSHPOLL_RSEQ=off in the environment: compare-and-swap
  /// only. docs/DESIGN.md, "Restartable sequences instead of locked instructions".
  bool restartable_sequences = true;
  /// Where topic regions live; the process heap when null.
  std::shared_ptr<MemoryProvider> memory;
};

/// Owns topics by name, and the notifier that wakes their subscribers. Destroying a hub closes its
/// topics and wakes every waiter; subscribers keep their topic's memory alive, so a thread still
/// waiting sees Closed, not a crash.
class Hub {
 public:
  /// A hub whose notifier is io's (defined in pushpoll::io): eventfds, written through io_uring or
  /// write() as HubOptions::backend says.
  Hub();
  explicit Hub(HubOptions options);
  /// A hub with a notifier of the caller's: what core needs of the system comes only through it
  /// (core's own tests pass a fake). Throws Error if `notifier` is null.
  Hub(HubOptions options, std::shared_ptr<detail::Notifier> notifier);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  /// The topic called `name`, created with `options` if new. For an existing name with other
  /// options, throws Error naming both. Throws Error for invalid options, Closed after close().
  Topic& topic(std::string_view name, const TopicOptions& options);
  /// The topic called `name`: the existing one, or a new one with default options.
  Topic& topic(std::string_view name);
  /// The topic called `name`, or nullptr.
  [[nodiscard]] Topic* find(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> topic_names() const;
  /// Closes every topic (see Topic::close()); later topic() calls throw Closed. Idempotent.
  void close() noexcept;

  /// The backend in use, after any fallback.
  [[nodiscard]] Backend backend() const noexcept;
  /// What the wake-up machinery has done (all topics).
  [[nodiscard]] WakeStats wake_stats() const noexcept;
  /// Serves this hub's topics to other processes: `hub.serve(path, options)` is
  /// `pushpoll::serve(hub, path, options)` of pushpoll/remote.hpp (include it; core does not know
  /// sockets). The hub must keep its topics in shared memory (HubOptions::memory).
  template <class... Args>
  auto serve(Args&&... args) {
    return serve_hub(*this, std::forward<Args>(args)...);  // found by argument-dependent lookup
  }
  /// Where the topics' regions live (HubOptions::memory, or the heap).
  [[nodiscard]] const std::shared_ptr<MemoryProvider>& memory() const noexcept { return options_.memory; }
  /// Internal: the notifier, for WakeGroup.
  [[nodiscard]] const std::shared_ptr<detail::Notifier>& notifier() const noexcept { return notifier_; }

 private:
  Topic& create(std::string_view name, const TopicOptions& options);

  HubOptions options_;
  std::shared_ptr<detail::Notifier> notifier_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_;
  bool closed_ = false;
};

}  // namespace pushpoll

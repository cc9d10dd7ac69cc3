// pushpoll/wake.hpp — the push of push-to-poll: options and counters of data-less wake-ups.
//
// A parked subscriber is told to poll by one write to an eventfd, never one per message. The hub's
// notifier batches those writes (io_uring, or a write() loop where io_uring is refused). See
// Subscriber::arm(), Subscriber::wait(), WakeGroup and docs/DESIGN.md, "Wake-ups".
#pragma once
#include <chrono>
#include <cstdint>
#include <string_view>

namespace pushpoll {

/// How the notifier writes eventfds.
enum class Backend : std::uint8_t {
  automatic,  ///< io_uring, falling back to syscall where the kernel or a sandbox refuses it
  io_uring,   ///< one io_uring submission per round; Error if refused
  syscall,    ///< one write() per eventfd
};

/// Where the notifier runs.
enum class NotifyMode : std::uint8_t {
  publisher,   ///< in the publishing thread, right after the commit: lowest latency
  background,  ///< in a notifier thread with a coalescing window: publishers make no syscalls
};

[[nodiscard]] constexpr std::string_view to_string(Backend b) noexcept {
  switch (b) {
    case Backend::automatic: return "automatic";
    case Backend::io_uring: return "io_uring";
    case Backend::syscall: return "syscall";
  }
  return "?";
}

/// Client-side control of a subscriber's wake-ups.
struct WaitOptions {
  /// wait() first spins this long checking the log before it arms and parks: sub-microsecond
  /// latency when messages come fast, no burnt core when they don't. 0: park at once.
  std::chrono::nanoseconds spin{0};
  /// Minimum time between two wake-ups returned by wait(): pushes inside it are coalesced into one
  /// (client-side rate limiting). 0: none.
  std::chrono::nanoseconds min_interval{0};
  /// wait() re-checks the log at least this often while it blocks, whatever its timeout: the
  /// push-to-poll safety net (a push is a hint; the cursor is the truth). A wait that finds
  /// messages this way without having been pushed counts in WakeStats::wakeups_recovered.
  std::chrono::nanoseconds safety_net = std::chrono::seconds(1);
};

/// What the hub's wake-up machinery has done. Counters only grow.
struct WakeStats {
  std::uint64_t wakeups_sent = 0;       ///< eventfd writes issued (one per woken fd per round)
  std::uint64_t wakeups_coalesced = 0;  ///< subscribers woken through a write shared with others
  std::uint64_t wakeups_skipped = 0;    ///< armed subscribers passed over: no matching tag
  std::uint64_t rounds = 0;             ///< notifier rounds (each serves every armed subscriber)
  std::uint64_t notifier_syscalls = 0;  ///< write() or io_uring_enter() calls by the notifier
  std::uint64_t subscriber_syscalls = 0;  ///< eventfd reads, blocking polls and membarriers by subscribers
  std::uint64_t arms = 0;               ///< arm() calls that armed
  /// wait() calls that found messages through the safety-net re-check, not through a push.
  /// Should stay 0: anything else is a wake-up that came late or not at all.
  std::uint64_t wakeups_recovered = 0;
};

}  // namespace pushpoll

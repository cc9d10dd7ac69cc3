// pushpoll/detail/notifier.hpp — the seam between core (no syscalls) and io (every syscall).
//
// core calls it: publishers after a commit that found someone armed; subscribers to get, drain and
// block on their eventfd, and for the heavy side of the asymmetric barrier. io implements it.
#pragma once
#include <chrono>
#include <cstdint>

#include "pushpoll/wake.hpp"

namespace pushpoll {
class Topic;
namespace detail {

class Notifier {
 public:
  virtual ~Notifier() = default;

  /// Publisher side: messages with these tag bits were committed on `topic` while someone was
  /// armed. Wakes every armed subscriber whose mask meets `tags` (now, or in the background).
  virtual void notify(Topic& topic, std::uint64_t tags) noexcept = 0;
  /// Wakes every armed subscriber of a topic being closed, whatever its tags.
  virtual void topic_closed(Topic& topic) noexcept = 0;
  /// A new topic, already owned by a shared_ptr (the background thread keeps a weak_ptr).
  virtual void topic_added(Topic& topic) = 0;
  /// A topic is going away.
  virtual void topic_gone(Topic& topic) noexcept = 0;
  /// Returns once no round of `topic` is running, and serves tags left pending meanwhile (a
  /// subscriber leaving must not have its slot touched by a round after it goes).
  virtual void quiesce(Topic& topic) noexcept = 0;

  /// A new non-blocking, close-on-exec eventfd. Throws Error naming RLIMIT_NOFILE when out of fds.
  virtual int open_eventfd() = 0;
  virtual void close_fd(int fd) noexcept = 0;
  /// Makes `fd` readable (one write), outside any round: wakes a thread blocked on it.
  virtual void signal(int fd) noexcept = 0;
  /// Reads the eventfd's counter to zero (one syscall). False if it was zero.
  virtual bool drain(int fd) noexcept = 0;
  /// Blocks until `fd` is readable or the timeout passes (negative: forever). True if readable.
  virtual bool block(int fd, std::chrono::nanoseconds timeout) noexcept = 0;
  /// Heavy side of SYNC(arm): a full barrier on every thread of the process (membarrier), or a
  /// plain full fence when publishers use one themselves.
  virtual void heavy_barrier() noexcept = 0;
  /// True when publishers may use the light (compiler-only) barrier.
  [[nodiscard]] virtual bool asymmetric() const noexcept = 0;
  /// True when producers may write contested words inside restartable sequences: the process
  /// registers rseq and restart_sequences() works (detail/commit.hpp).
  [[nodiscard]] virtual bool restartable() const noexcept = 0;
  /// Restarts every restartable sequence in flight in the process
  /// (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)). Only called when restartable().
  virtual void restart_sequences() noexcept = 0;

  [[nodiscard]] virtual Backend backend() const noexcept = 0;
  [[nodiscard]] virtual WakeStats stats() const noexcept = 0;
  /// Counts a subscriber-side syscall (drain or block).
  virtual void count_subscriber_syscall() noexcept = 0;
  virtual void count_arm() noexcept = 0;
  virtual void count_recovered() noexcept = 0;
};

}  // namespace detail
}  // namespace pushpoll

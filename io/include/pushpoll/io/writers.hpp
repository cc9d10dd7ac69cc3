// pushpoll/io/writers.hpp — ways to write "1" to many eventfds. Internal to pushpoll::io.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "pushpoll/wake.hpp"

namespace pushpoll::io {

/// Counters a writer bumps (relaxed: statistics only).
struct WriterCounters {
  std::atomic<std::uint64_t> syscalls{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> errors{0};
};

class FdWriter {
 public:
  virtual ~FdWriter() = default;
  /// Adds 1 to every eventfd in `fds` (distinct, non-blocking). Thread-safe.
  virtual void write_all(std::span<const int> fds, WriterCounters& counters) noexcept = 0;
  [[nodiscard]] virtual Backend kind() const noexcept = 0;
  /// An eventfd was opened / is about to be closed (io_uring registers it as a fixed file).
  virtual void on_open(int /*fd*/) noexcept {}
  virtual void on_close(int /*fd*/) noexcept {}
};

/// One write() per eventfd.
std::unique_ptr<FdWriter> make_syscall_writer();
/// One io_uring submission per round (IORING_OP_WRITE each, CQEs skipped on success where the
/// kernel supports it). Returns null, with the reason in `why`, where io_uring is refused.
std::unique_ptr<FdWriter> make_uring_writer(bool sqpoll, std::string* why);

}  // namespace pushpoll::io

// Eventfd writers: a write() loop, and io_uring (one submission for a whole round).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "pushpoll/io/writers.hpp"

#if PUSHPOLL_HAVE_LIBURING
#include <liburing.h>
#endif

namespace pushpoll::io {
namespace {

// The value added to an eventfd's counter. Static: io_uring reads it after submission returns.
alignas(8) const std::uint64_t kOne = 1;

/// One write() per eventfd.
void write_each(std::span<const int> fds, WriterCounters& counters) noexcept {
  for (const int fd : fds) {
    // Relaxed: statistics.
    counters.syscalls.fetch_add(1, std::memory_order_relaxed);
    if (::write(fd, &kOne, sizeof kOne) == static_cast<ssize_t>(sizeof kOne)) {
      counters.writes.fetch_add(1, std::memory_order_relaxed);
    } else if (errno != EAGAIN) {  // EAGAIN: the counter is saturated, the fd readable anyway
      counters.errors.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

class SyscallWriter final : public FdWriter {
 public:
  void write_all(std::span<const int> fds, WriterCounters& counters) noexcept override {
    write_each(fds, counters);
  }
  [[nodiscard]] Backend kind() const noexcept override { return Backend::syscall; }
};

#if PUSHPOLL_HAVE_LIBURING
class UringWriter final : public FdWriter {
 public:
  UringWriter() = default;
  UringWriter(const UringWriter&) = delete;
  UringWriter& operator=(const UringWriter&) = delete;
  ~UringWriter() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  bool init(bool sqpoll, std::string* why) {
    io_uring_params params{};
    if (sqpoll) {
      params.flags |= IORING_SETUP_SQPOLL;
      params.sq_thread_idle = 1000;  // ms the kernel thread spins before it sleeps
    }
    int rc = io_uring_queue_init_params(kEntries, &ring_, &params);
    if (rc < 0 && sqpoll) {  // SQPOLL refused (privilege, kernel): plain io_uring still helps
      params = io_uring_params{};
      rc = io_uring_queue_init_params(kEntries, &ring_, &params);
    }
    if (rc < 0) {
      if (why) {
        *why = std::string("io_uring_queue_init: ") + std::strerror(-rc) +
               (rc == -EPERM || rc == -ENOSYS
                    ? " (refused by the kernel: kernel.io_uring_disabled, or a seccomp profile)"
                    : "");
      }
      return false;
    }
    ready_ = true;
    sqpoll_ = (params.flags & IORING_SETUP_SQPOLL) != 0;
    skip_cqe_ = (params.features & IORING_FEAT_CQE_SKIP) != 0;
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    const bool has_write = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_WRITE);
    if (probe) io_uring_free_probe(probe);
    if (!has_write) {
      if (why) *why = "io_uring lacks IORING_OP_WRITE on this kernel";
      return false;
    }
    // A sparse table of registered files (Linux 5.19+), as large as the descriptor limit allows.
    rlimit rl{};
    unsigned table = 0;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      table = static_cast<unsigned>(std::min<rlim_t>(rl.rlim_cur, 65536));
    }
    if (table != 0 && io_uring_register_files_sparse(&ring_, table) == 0) registered_.assign(table, false);
    return true;
  }

  void write_all(std::span<const int> fds, WriterCounters& counters) noexcept override {
    std::lock_guard lock(mutex_);  // one submission queue: one submitter at a time
    std::size_t i = 0;
    while (i < fds.size()) {
      const std::size_t chunk = i;
      unsigned queued = 0;
      for (; i < fds.size(); ++i) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;  // queue full: submit this chunk, then go on
        const int fd = fds[i];
        io_uring_prep_write(sqe, fd, &kOne, sizeof kOne, 0);
        // A registered file's table index is the descriptor itself (see on_open()).
        if (fd < static_cast<int>(registered_.size()) && registered_[static_cast<std::size_t>(fd)]) {
          sqe->flags |= IOSQE_FIXED_FILE;
        }
        if (skip_cqe_) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        ++queued;
      }
      if (queued == 0) {
        // Only with SQPOLL can the queue still be full here: the kernel thread has not consumed
        // it yet. Wait for room instead of spinning, which would starve that thread on a small
        // machine.
        if (sqpoll_) (void)io_uring_sqring_wait(&ring_);
        reap(counters);
        continue;
      }
      const int rc = io_uring_submit(&ring_);
      // With SQPOLL the kernel thread picks the entries up; a syscall happens only to wake it.
      if (!sqpoll_ || (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_NEED_WAKEUP)) {
        counters.syscalls.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
      }
      // Relaxed: statistics. Only what was submitted counts as written: entries a failed submit
      // left in the queue go out, and are counted, with the next one.
      if (rc > 0) {
        counters.writes.fetch_add(static_cast<std::uint64_t>(rc), std::memory_order_relaxed);
      } else if (rc < 0) {
        counters.errors.fetch_add(1, std::memory_order_relaxed);
        // The kernel refused the submission: its entries stay queued and would fill the queue
        // for good. Push the rest of the round with write() instead of looping on a full queue.
        // The queued entries still go out with the next submission: a second push, harmless.
        write_each(fds.subspan(chunk), counters);
        return;
      }
      reap(counters);
    }
  }

  [[nodiscard]] Backend kind() const noexcept override { return Backend::io_uring; }

  // Registered files spare the kernel a descriptor lookup per write. The table is sparse and
  // indexed by descriptor number, so a round needs no translation.
  void on_open(int fd) noexcept override {
    std::lock_guard lock(mutex_);
    if (fd < 0 || fd >= static_cast<int>(registered_.size())) return;
    if (io_uring_register_files_update(&ring_, static_cast<unsigned>(fd), &fd, 1) == 1) {
      registered_[static_cast<std::size_t>(fd)] = true;
    }
  }
  void on_close(int fd) noexcept override {
    std::lock_guard lock(mutex_);
    if (fd < 0 || fd >= static_cast<int>(registered_.size()) || !registered_[static_cast<std::size_t>(fd)]) return;
    int none = -1;
    (void)io_uring_register_files_update(&ring_, static_cast<unsigned>(fd), &none, 1);
    registered_[static_cast<std::size_t>(fd)] = false;
  }

 private:
  // Completions: only failures when CQE_SKIP_SUCCESS works; all of them otherwise.
  void reap(WriterCounters& counters) noexcept {
    io_uring_cqe* cqes[64];
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
      if (n == 0) return;
      for (unsigned k = 0; k < n; ++k) {
        if (cqes[k]->res < 0 && cqes[k]->res != -EAGAIN) {
          counters.errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
        }
      }
      io_uring_cq_advance(&ring_, n);
    }
  }

  // One submission serves a round of up to this many eventfds; larger rounds are chunked.
  static constexpr unsigned kEntries = 4096;
  io_uring ring_{};
  std::vector<bool> registered_;  // by descriptor number; empty when registration is refused
  bool ready_ = false;
  bool sqpoll_ = false;
  bool skip_cqe_ = false;
  std::mutex mutex_;
};
#endif

}  // namespace

std::unique_ptr<FdWriter> make_syscall_writer() { return std::make_unique<SyscallWriter>(); }

std::unique_ptr<FdWriter> make_uring_writer(bool sqpoll, std::string* why) {
#if PUSHPOLL_HAVE_LIBURING
  auto w = std::make_unique<UringWriter>();
  if (!w->init(sqpoll, why)) return nullptr;
  return w;
#else
  (void)sqpoll;
  if (why) *why = "pushpoll was built without liburing";
  return nullptr;
#endif
}

}  // namespace pushpoll::io

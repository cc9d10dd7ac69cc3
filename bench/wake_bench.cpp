// wake_bench.cpp — what pushpoll's wake-ups cost and how fast they arrive.
//
// Rows (issue "Wake-ups", section "Benchmarks — the bar"):
//   BM_Notifier_PerWakeup/<kind>/<N>  notifying-thread time per wake-up, N parked receivers
//   BM_WakeGroups_Wake1000/<mode>     eventfd writes and last-of-1,000 latency, with/without groups
//   BM_Stream_SyscallsPerMessage/...  syscalls per delivered message, 1,000 subscribers keeping up
//   BM_PingPong_Latency/...           publish -> observed latency of one parked (or spinning) subscriber
//   BM_PingPong_BareEventfd/...       the same with a bare eventfd write -> ppoll (the baseline)
//   BM_PingPong_BareSpin/...          an atomic store -> spinning reader (the floor of a spin row)
// After the run a summary compares the rows with the bars (ratios, PASS/FAIL).
//
// Times: notifier rows use manual time (Time = mean of the timed calls); their ns_per_wakeup is the
// median round / N, which the summary compares (robust to a round that lost its core to another
// process). Latency rows use manual time = the latency and report p50/p99/p99.9 as counters.
//
// Pinning: the benchmark's own thread (publisher, notifier) runs on CPU 0 and receivers on CPU 1;
// on a 2-core machine the rows with more threads share CPU 0 (see each row). The `pinned` counter
// is 1 when the pins took effect. Threaded rows use real or manual time, never CPU time.
//
// Checks: every receiver checks what it got (the eventfd counter is exactly 1, each message's seq is
// the next one and its payload carries that seq) and each iteration waits, with a timeout, until
// every receiver has seen its wake-up; a wrong, missing or late wake-up ends the row through
// State::SkipWithError, so a broken path shows up as an error, never as a fast row. Before a timed
// publish the publisher waits until the receivers are really parked: armed in the topic and asleep
// in the kernel (state 'S' in /proc/self/task/<tid>/stat); `unparked` counts the rounds where that
// did not happen within a second (it should be 0).
//
// `--strace-check=<io_uring|syscall>[,<messages>[,<gap_ns>]]` runs one short stream (as in
// BM_Stream, one host thread) instead of the benchmarks and prints the hub's counters;
// bench/strace_check.sh runs it under `strace -c -f` to cross-check them.
#include <benchmark/benchmark.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if PUSHPOLL_BENCH_HAVE_LIBURING
#include <liburing.h>
#endif

#include "bench_util.hpp"
#include "pushpoll/io/notifier.hpp"
#include "pushpoll/io/writers.hpp"
#include "pushpoll/pushpoll.hpp"

namespace {

using namespace std::chrono_literals;
using pushpoll::bench::cpu_relax;
using pushpoll::bench::kFiller;
using pushpoll::bench::pin_this_thread;
using pushpoll::bench::read_counter;
using pushpoll::bench::ScopedPin;
using pushpoll::bench::Shared;
using pushpoll::bench::write_counter;
using Clock = std::chrono::steady_clock;

constexpr int kPublisherCpu = 0;
constexpr int kReceiverCpu = 1;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

double to_ns(Clock::duration d) noexcept { return std::chrono::duration<double, std::nano>(d).count(); }

// ---- small tools -------------------------------------------------------------------------------

/// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

UniqueFd make_eventfd(bool nonblocking) {
  const int fd = ::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  if (fd < 0) throw std::runtime_error(errno_text("eventfd"));
  return UniqueFd(fd);
}

bool add_one(int fd) noexcept {
  const std::uint64_t one = 1;
  return ::write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one);
}

/// The scheduler state of one of our threads ('R' running, 'S' asleep in the kernel, ...).
char thread_state(pid_t tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  return (p != nullptr && p[1] == ' ') ? p[2] : '?';
}

bool asleep(pid_t tid) noexcept { return tid != 0 && thread_state(tid) == 'S'; }

/// How often one of our threads lost its core involuntarily (another task preempted it).
std::uint64_t preemptions(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/status", static_cast<int>(tid));
  std::uint64_t n = 0;
  if (std::FILE* f = std::fopen(path, "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "nonvoluntary_ctxt_switches: %" SCNu64, &n) == 1) break;
    }
    std::fclose(f);
  }
  return n;
}

/// The system call one of our threads is blocked in (from /proc/self/task/<tid>/syscall), or -1.
long syscall_of(pid_t tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[64];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* end = nullptr;
  const long nr = std::strtol(buf, &end, 10);
  return end == buf ? -1 : nr;  // "running" when it is not in a system call
}

/// Our user-space threads (io_uring's kernel threads, named iou-*, left out).
std::vector<pid_t> our_threads() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string comm_path = std::string("/proc/self/task/") + e->d_name + "/comm";
    char comm[32] = {};
    if (std::FILE* f = std::fopen(comm_path.c_str(), "r")) {
      if (std::fgets(comm, sizeof comm, f) == nullptr) comm[0] = '\0';
      std::fclose(f);
    }
    if (std::strncmp(comm, "iou-", 4) == 0) continue;
    out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  ::closedir(d);
  return out;
}

/// Waits for pred(): spins for the first 20 µs, then sleeps 20 µs between looks (frees the core for
/// receivers that share it). For waits outside the timed part.
template <class Pred>
bool await(Pred&& pred, Clock::duration timeout) {
  const auto start = Clock::now();
  while (!pred()) {
    const auto waited = Clock::now() - start;
    if (waited > timeout) return false;
    if (waited < 20us) {
      for (int i = 0; i < 32; ++i) cpu_relax();
    } else {
      std::this_thread::sleep_for(20us);
    }
  }
  return true;
}

/// Waits for pred() spinning only (the core stays busy and hot): for the latency rows.
template <class Pred>
bool await_spinning(Pred&& pred, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  unsigned n = 0;
  while (!pred()) {
    cpu_relax();
    if ((++n & 255u) == 0 && Clock::now() > deadline) return false;
  }
  return true;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};

/// Nearest-rank percentiles of `v` (in the unit of its values).
Percentiles percentiles(std::vector<std::int64_t> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  const auto at = [&v](double q) {
    auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    k = std::clamp<std::size_t>(k, 1, v.size());
    return static_cast<double>(v[k - 1]);
  };
  p.p50 = at(0.50);
  // Not nearest-rank: the sample at index n * 9 / 10 (one rank higher when 10 divides n), the rule
  // the notifier rows' ns_per_wakeup_p90 is defined by.
  p.p90 = static_cast<double>(v[(v.size() * 9) / 10]);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = static_cast<double>(v.back());
  return p;
}

/// Results the summary compares with the bars, by key; filled by rows that completed.
std::map<std::string, double>& results() {
  static std::map<std::string, double> r;
  return r;
}

/// A message that carries its seq and the time it was published.
struct Stamp {
  std::uint64_t seq;
  std::int64_t t0_ns;
};

std::span<const std::byte> bytes_of(const Stamp& s) noexcept {
  return std::as_bytes(std::span<const Stamp>(&s, 1));
}
std::span<const std::byte> bytes_of(const std::uint64_t& v) noexcept {
  return std::as_bytes(std::span<const std::uint64_t>(&v, 1));
}

/// Checks one message of a Stamp payload against the expected seq; returns an error text or "".
std::string check_stamp(const pushpoll::Message& m, std::uint64_t expected, Stamp& out) {
  if (m.data.size() != sizeof(Stamp)) return "payload of " + std::to_string(m.data.size()) + " bytes";
  std::memcpy(&out, m.data.data(), sizeof out);
  if (m.seq != expected || out.seq != m.seq) {
    return "message seq " + std::to_string(m.seq) + " (payload " + std::to_string(out.seq) + "), expected " +
           std::to_string(expected);
  }
  return {};
}

std::string check_counter(const pushpoll::Message& m, std::uint64_t expected) {
  if (m.data.size() < sizeof(std::uint64_t)) return "short payload";
  const std::uint64_t c = read_counter(m.data.data());
  if (m.seq != expected || c != m.seq) {
    return "message seq " + std::to_string(m.seq) + " (payload " + std::to_string(c) + "), expected " +
           std::to_string(expected);
  }
  return {};
}

constexpr std::uint32_t kStopKey = ~std::uint32_t{0};

/// An epoll set with a stop eventfd in it: run() blocks in epoll_wait and hands every ready key to
/// a callback until stop() (from any thread).
class Epoll {
 public:
  Epoll() : fd_(::epoll_create1(EPOLL_CLOEXEC)), stop_(make_eventfd(true)) {
    if (fd_.get() < 0) throw std::runtime_error(errno_text("epoll_create1"));
    add(stop_.get(), kStopKey);
  }
  void add(int fd, std::uint32_t key) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = key;
    if (::epoll_ctl(fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw std::runtime_error(errno_text("epoll_ctl"));
  }
  void stop() noexcept { (void)add_one(stop_.get()); }
  /// on_ready(key) for each ready key, then on_batch() after each epoll_wait.
  template <class OnReady, class OnBatch>
  void run(OnReady&& on_ready, OnBatch&& on_batch) {
    std::vector<epoll_event> events(1024);
    for (;;) {
      const int n = ::epoll_wait(fd_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(errno_text("epoll_wait"));
      }
      for (int i = 0; i < n; ++i) {
        const std::uint32_t key = events[static_cast<std::size_t>(i)].data.u32;
        if (key == kStopKey) return;
        on_ready(key);
      }
      on_batch();
    }
  }

 private:
  UniqueFd fd_;
  UniqueFd stop_;
};

// ---- 1. notifier cost per wake-up --------------------------------------------------------------

enum class WriterKind { syscall, io_uring, io_uring_sqpoll, bare_io_uring_fixed };

const char* writer_name(WriterKind k) {
  switch (k) {
    case WriterKind::syscall: return "writer_syscall";
    case WriterKind::io_uring: return "writer_io_uring";
    case WriterKind::io_uring_sqpoll: return "writer_io_uring_sqpoll";
    case WriterKind::bare_io_uring_fixed: return "bare_io_uring_fixed";
  }
  return "?";
}

#if PUSHPOLL_BENCH_HAVE_LIBURING
// The value io_uring adds to each eventfd (static: read by the kernel after submission returns).
alignas(8) const std::uint64_t kOne = 1;

/// The least an io_uring fan-out can do: the eventfds registered (IOSQE_FIXED_FILE), completions
/// skipped on success, one io_uring_submit per chunk of a 256-entry queue (the library's size).
/// The library's writer is the same without registered files.
class FixedFileUring {
 public:
  FixedFileUring() = default;
  FixedFileUring(const FixedFileUring&) = delete;
  FixedFileUring& operator=(const FixedFileUring&) = delete;
  ~FixedFileUring() {
    if (ready_) io_uring_queue_exit(&ring_);
  }
  bool init(std::span<const int> fds, std::string& why) {
    io_uring_params params{};
    int rc = io_uring_queue_init_params(kEntries, &ring_, &params);
    if (rc < 0) {
      why = std::string("io_uring_queue_init: ") + std::strerror(-rc);
      return false;
    }
    ready_ = true;
    skip_ = (params.features & IORING_FEAT_CQE_SKIP) != 0;
    rc = io_uring_register_files(&ring_, fds.data(), static_cast<unsigned>(fds.size()));
    if (rc < 0) {
      why = std::string("io_uring_register_files: ") + std::strerror(-rc);
      return false;
    }
    count_ = fds.size();
    return true;
  }
  void write_all(std::uint64_t& syscalls, std::uint64_t& errors) noexcept {
    const auto flags = static_cast<std::uint8_t>(IOSQE_FIXED_FILE | (skip_ ? IOSQE_CQE_SKIP_SUCCESS : 0));
    std::size_t i = 0;
    while (i < count_) {
      unsigned queued = 0;
      for (; i < count_; ++i) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;
        io_uring_prep_write(sqe, static_cast<int>(i), &kOne, sizeof kOne, 0);
        sqe->flags |= flags;
        ++queued;
      }
      if (queued == 0) {
        reap(errors);
        continue;
      }
      if (io_uring_submit(&ring_) < 0) ++errors;
      ++syscalls;
      reap(errors);
    }
  }

 private:
  void reap(std::uint64_t& errors) noexcept {
    io_uring_cqe* cqes[64];
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
      if (n == 0) return;
      for (unsigned k = 0; k < n; ++k) {
        if (cqes[k]->res < 0 && cqes[k]->res != -EAGAIN) ++errors;
      }
      io_uring_cq_advance(&ring_, n);
    }
  }
  static constexpr unsigned kEntries = 256;
  io_uring ring_{};
  bool ready_ = false;
  bool skip_ = false;
  std::size_t count_ = 0;
};
#endif

/// Receivers of the writer rows: one thread parked in epoll_wait on every eventfd, reading each
/// ready one (which re-arms it) and checking that its counter is exactly 1.
class Drainer {
 public:
  Drainer(std::span<const int> fds, int cpu, Shared& shared) : fds_(fds.begin(), fds.end()) {
    for (std::size_t i = 0; i < fds_.size(); ++i) epoll_.add(fds_[i], static_cast<std::uint32_t>(i));
    thread_ = std::thread([this, cpu, &shared] {
      pinned_ = pin_this_thread(cpu);
      tid_.store(::gettid(), std::memory_order_release);  // release: pinned_ is visible with it
      std::uint64_t local = 0;
      try {
        epoll_.run(
            [&](std::uint32_t key) {
              std::uint64_t value = 0;
              if (::read(fds_[key], &value, sizeof value) != static_cast<ssize_t>(sizeof value)) return;
              if (value != 1) shared.fail("eventfd counter " + std::to_string(value) + ", expected 1");
              ++local;
            },
            [&] {
              // Release: pairs with the publisher's acquire; the checks above are done.
              drained_.fetch_add(local, std::memory_order_release);
              local = 0;
            });
      } catch (const std::exception& e) {
        shared.fail(std::string("reader: ") + e.what());
      }
    });
  }
  Drainer(const Drainer&) = delete;
  Drainer& operator=(const Drainer&) = delete;
  ~Drainer() {
    epoll_.stop();
    thread_.join();
  }
  [[nodiscard]] std::uint64_t drained() const noexcept { return drained_.load(std::memory_order_acquire); }
  [[nodiscard]] pid_t tid() const noexcept { return tid_.load(std::memory_order_acquire); }
  [[nodiscard]] bool pinned() const noexcept { return tid() != 0 && pinned_; }

 private:
  std::vector<int> fds_;
  Epoll epoll_;
  bool pinned_ = false;
  std::atomic<pid_t> tid_{0};
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> drained_{0};
  std::thread thread_;
};

std::string key_of(const std::string& kind, int n) { return "notifier/" + kind + "/" + std::to_string(n); }

/// Counters of a notifier row from its timed rounds (ns each): ns_per_wakeup is the median round
/// over N (robust to a round that lost its core to another process: the machine may be shared),
/// ns_per_wakeup_mean the mean over N, p90 the 90th percentile over N. Returns the median.
double report_rounds(benchmark::State& state, const std::vector<std::int64_t>& rounds, int n) {
  double sum = 0;
  for (const std::int64_t r : rounds) sum += static_cast<double>(r);
  const Percentiles p = percentiles(rounds);
  const auto per = [n](double v) { return v / n; };
  state.SetItemsProcessed(static_cast<std::int64_t>(rounds.size()) * n);  // wake-ups
  state.counters["N"] = n;
  state.counters["ns_per_wakeup"] = per(p.p50);
  state.counters["ns_per_wakeup_mean"] = rounds.empty() ? 0 : per(sum / static_cast<double>(rounds.size()));
  state.counters["ns_per_wakeup_p90"] = per(p.p90);
  return per(p.p50);
}

// Measures the notifying thread's time per wake-up when it writes N eventfds, each with a reader
// parked in epoll (one thread on CPU 1 waits on all N): the FdWriter of pushpoll::io directly
// (write() loop, one io_uring submission, io_uring with SQPOLL), and a bare io_uring with
// registered files. Timed: the write_all() call only; then the publisher waits until the reader has
// drained every fd and is asleep in epoll_wait again. ns_per_wakeup = median timed round / N
// (also the mean and p90); the summary compares medians.
void BM_Notifier_Writer(benchmark::State& state, WriterKind kind, int n) {
  std::vector<UniqueFd> owned;
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    owned.push_back(make_eventfd(true));
    fds.push_back(owned.back().get());
  }
  std::unique_ptr<pushpoll::io::FdWriter> writer;
#if PUSHPOLL_BENCH_HAVE_LIBURING
  std::unique_ptr<FixedFileUring> bare;
#endif
  std::string why;
  switch (kind) {
    case WriterKind::syscall: writer = pushpoll::io::make_syscall_writer(); break;
    case WriterKind::io_uring: writer = pushpoll::io::make_uring_writer(false, &why); break;
    case WriterKind::io_uring_sqpoll: writer = pushpoll::io::make_uring_writer(true, &why); break;
    case WriterKind::bare_io_uring_fixed:
#if PUSHPOLL_BENCH_HAVE_LIBURING
      bare = std::make_unique<FixedFileUring>();
      if (!bare->init(fds, why)) bare.reset();
#else
      why = "built without liburing";
#endif
      break;
  }
  bool have = writer != nullptr;
#if PUSHPOLL_BENCH_HAVE_LIBURING
  have = have || bare != nullptr;
#endif
  if (!have) {
    state.SkipWithError(("writer unavailable: " + why).c_str());
    return;
  }
  pushpoll::io::WriterCounters counters;
  std::uint64_t bare_syscalls = 0, bare_errors = 0;
  const auto write_all = [&] {
    if (writer) {
      writer->write_all(fds, counters);
      return;
    }
#if PUSHPOLL_BENCH_HAVE_LIBURING
    bare->write_all(bare_syscalls, bare_errors);
#endif
  };

  Shared shared;
  Drainer reader(fds, kReceiverCpu, shared);
  ScopedPin pin(kPublisherCpu);
  std::uint64_t target = 0;
  const auto delivered = [&] {
    if (!await([&] { return reader.drained() >= target || shared.has_failed(); }, 10s)) {
      shared.fail("the reader saw " + std::to_string(reader.drained()) + " of " + std::to_string(target) +
                  " wake-ups after 10 s");
    }
    return !shared.has_failed();
  };
  std::uint64_t unparked = 0;
  const auto park = [&] {
    if (!await([&] { return asleep(reader.tid()); }, 1s)) ++unparked;
  };
  // Warm-up round, untimed.
  park();
  write_all();
  target += static_cast<std::uint64_t>(n);
  if (!delivered()) {
    state.SkipWithError(shared.error_text().c_str());
    return;
  }
  const std::uint64_t syscalls0 = counters.syscalls.load() + bare_syscalls;
  std::vector<std::int64_t> rounds;
  rounds.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    park();
    const auto t0 = Clock::now();
    write_all();
    const auto t1 = Clock::now();
    rounds.push_back(static_cast<std::int64_t>(to_ns(t1 - t0)));
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    target += static_cast<std::uint64_t>(n);
    if (!delivered()) {
      state.SkipWithError(shared.error_text().c_str());
      break;
    }
  }
  if (state.error_occurred()) return;
  const std::uint64_t errors = counters.errors.load() + bare_errors;
  if (errors != 0) {
    state.SkipWithError(("the writer reported " + std::to_string(errors) + " failed writes").c_str());
    return;
  }
  const auto iters = static_cast<double>(state.iterations());
  const double per_wakeup = report_rounds(state, rounds, n);
  state.counters["syscalls_per_round"] =
      static_cast<double>(counters.syscalls.load() + bare_syscalls - syscalls0) / iters;
  state.counters["unparked"] = static_cast<double>(unparked);
  state.counters["pinned"] = (pin.pinned() && reader.pinned()) ? 1 : 0;
  results()[key_of(writer_name(kind), n)] = per_wakeup;
}

enum class HubKind { syscall, io_uring, io_uring_sqpoll, background, background_hot };

const char* hub_name(HubKind k) {
  switch (k) {
    case HubKind::syscall: return "hub_syscall";
    case HubKind::io_uring: return "hub_io_uring";
    case HubKind::io_uring_sqpoll: return "hub_io_uring_sqpoll";
    case HubKind::background: return "hub_background";
    case HubKind::background_hot: return "hub_background_hot";
  }
  return "?";
}

/// The coalescing window of the hub_background_hot rows: longer than the receivers take to re-arm N
/// subscribers, so that the next publish lands while the notifier thread is still awake.
std::chrono::nanoseconds hot_window(int n) { return std::max<std::chrono::nanoseconds>(2ms, n * 6us); }

pushpoll::HubOptions hub_options(HubKind k, int n) {
  pushpoll::HubOptions o;
  switch (k) {
    case HubKind::syscall: o.backend = pushpoll::Backend::syscall; break;
    case HubKind::io_uring: o.backend = pushpoll::Backend::io_uring; break;
    case HubKind::io_uring_sqpoll:
      o.backend = pushpoll::Backend::io_uring;
      o.sqpoll = true;
      break;
    case HubKind::background:
      o.backend = pushpoll::Backend::io_uring;
      o.mode = pushpoll::NotifyMode::background;
      break;
    case HubKind::background_hot:
      o.backend = pushpoll::Backend::io_uring;
      o.mode = pushpoll::NotifyMode::background;
      o.coalesce_window = hot_window(n);
      break;
  }
  return o;
}

/// Receivers of the hub rows: one thread owns N subscribers, parked in epoll on their fds. On a
/// wake-up it polls the subscriber (which drains its eventfd), checks the one message, and arms it
/// again.
class HubReader {
 public:
  HubReader(std::vector<pushpoll::Subscriber> subs, int cpu, Shared& shared) : subs_(std::move(subs)) {
    thread_ = std::thread([this, cpu, &shared] {
      pinned_ = pin_this_thread(cpu);
      try {
        run(shared);
      } catch (const std::exception& e) {
        shared.fail(std::string("reader: ") + e.what());
        tid_.store(-1, std::memory_order_release);
      }
    });
  }
  HubReader(const HubReader&) = delete;
  HubReader& operator=(const HubReader&) = delete;
  ~HubReader() {
    epoll_.stop();
    thread_.join();
  }
  [[nodiscard]] std::uint64_t handled() const noexcept { return handled_.load(std::memory_order_acquire); }
  [[nodiscard]] pid_t tid() const noexcept { return tid_.load(std::memory_order_acquire); }
  [[nodiscard]] bool pinned() const noexcept { return tid() > 0 && pinned_; }
  [[nodiscard]] std::uint64_t spurious() const noexcept { return spurious_.load(std::memory_order_acquire); }

 private:
  void run(Shared& shared) {
    std::vector<int> fds;
    std::vector<std::uint64_t> expected;
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      fds.push_back(subs_[i].fd());
      expected.push_back(subs_[i].cursor());
      epoll_.add(fds.back(), static_cast<std::uint32_t>(i));
      if (!subs_[i].arm()) shared.fail("arm() found messages before any was published");
    }
    tid_.store(::gettid(), std::memory_order_release);
    std::uint64_t local = 0;
    epoll_.run(
        [&](std::uint32_t key) {
          auto& sub = subs_[key];
          bool got = false;
          do {
            pushpoll::Batch b = sub.poll();
            for (const pushpoll::Message m : b) {
              if (const std::string e = check_counter(m, expected[key]); !e.empty()) shared.fail(e);
              ++expected[key];
              ++local;
              got = true;
            }
          } while (!sub.arm());  // false: more messages already; poll them first
          if (!got) {
            // Readiness without a notification (not expected here): clear it, count it.
            std::uint64_t value;
            (void)!::read(fds[key], &value, sizeof value);
            spurious_.fetch_add(1, std::memory_order_release);
          }
        },
        [&] {
          // Release: pairs with the publisher's acquire; checks and re-arming are done.
          handled_.fetch_add(local, std::memory_order_release);
          local = 0;
        });
  }

  std::vector<pushpoll::Subscriber> subs_;
  Epoll epoll_;
  bool pinned_ = false;
  std::atomic<pid_t> tid_{0};
  std::atomic<std::uint64_t> spurious_{0};
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> handled_{0};
  std::thread thread_;
};

// Measures the same through a Hub: N subscribers of one topic, armed, each parked through its own
// eventfd in one epoll set (one thread on CPU 1); one publish wakes them all. Timed: the publish()
// call only (commit, armed-set walk, N CAS, de-duplication, the writes). With SQPOLL the kernel
// thread does the writes. With NotifyMode::background they happen in the notifier thread
// (on CPU 1 with the receiver) and the row is the publishing thread's own cost, in two cases: hub_background waits
// until that thread is parked in poll() (an idle producer: the publisher must wake it with a
// write), hub_background_hot publishes while it is still awake in its coalescing window (a hot
// producer; the window is set longer than re-arming takes; notifier_was_parked counts misses).
// Checks that wakeups_sent grows by exactly N per publish and that every subscriber got exactly
// its message.
void BM_Notifier_Hub(benchmark::State& state, HubKind kind, int n) {
  std::optional<pushpoll::Hub> hub;
  pid_t notifier_tid = 0;  // the background notifier thread, if any
  try {
    const std::vector<pid_t> before = our_threads();
    // The background notifier thread inherits this thread's affinity: CPU 1, beside the receiver
    // (parked while it runs), so that it does not preempt the publisher on CPU 0.
    ScopedPin notifier_pin(kReceiverCpu);
    hub.emplace(hub_options(kind, n));
    for (const pid_t t : our_threads()) {
      if (std::find(before.begin(), before.end(), t) == before.end()) notifier_tid = t;
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  pushpoll::TopicOptions topts;
  topts.capacity = std::uint64_t{1} << 20;
  topts.single_producer = true;
  pushpoll::Topic& topic = hub->topic("notifier", topts);
  std::vector<pushpoll::Subscriber> subs;
  for (int i = 0; i < n; ++i) subs.push_back(topic.subscribe(pushpoll::Start::latest));
  auto& ring_state = topic.ring().state();

  Shared shared;
  HubReader reader(std::move(subs), kReceiverCpu, shared);
  ScopedPin pin(kPublisherCpu);
  const auto un = static_cast<std::uint64_t>(n);
  std::uint64_t target = 0, unparked = 0;
  const auto delivered = [&] {
    if (!await([&] { return reader.handled() >= target || shared.has_failed(); }, 10s)) {
      shared.fail("subscribers saw " + std::to_string(reader.handled()) + " of " + std::to_string(target) +
                  " wake-ups after 10 s");
    }
    return !shared.has_failed();
  };
  const bool background = kind == HubKind::background || kind == HubKind::background_hot;
  if (background && notifier_tid == 0) {
    state.SkipWithError("could not find the background notifier thread");
    return;
  }
  std::uint64_t notifier_missed = 0;
  const auto park = [&] {
    // hub_background: the notifier thread parked in poll(), so the publisher must wake it.
    const bool cold = kind == HubKind::background;
    if (!await([&] {
          return ring_state.armed.load() == un && asleep(reader.tid()) &&
                 (!cold || syscall_of(notifier_tid) == SYS_poll);
        }, 1s)) {
      ++unparked;
    }
    // hub_background_hot: the notifier thread still in its coalescing window (clock_nanosleep).
    if (kind == HubKind::background_hot) {
      const long sc = syscall_of(notifier_tid);
      if (sc != SYS_clock_nanosleep && sc != SYS_nanosleep) ++notifier_missed;
    }
  };
  const auto publish_next = [&] {
    const std::uint64_t seq = topic.head();
    (void)topic.publish(bytes_of(seq));
  };
  if (!await([&] { return reader.tid() != 0; }, 60s) || reader.tid() < 0) {
    state.SkipWithError(shared.error_text().c_str());
    return;
  }
  park();
  publish_next();  // warm-up, untimed
  target += un;
  if (!delivered()) {
    state.SkipWithError(shared.error_text().c_str());
    return;
  }
  // The writer bumps its counters after submitting, so a receiver may finish before they move (the
  // background notifier shares CPU 1 with it): wait for the warm-up round's N writes to show.
  (void)await([&] { return hub->wake_stats().wakeups_sent >= un; }, 1s);
  const pushpoll::WakeStats before = hub->wake_stats();
  std::vector<std::int64_t> rounds;
  rounds.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    park();
    const std::uint64_t seq = topic.head();
    const auto t0 = Clock::now();
    (void)topic.publish(bytes_of(seq));
    const auto t1 = Clock::now();
    rounds.push_back(static_cast<std::int64_t>(to_ns(t1 - t0)));
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    target += un;
    if (!delivered()) {
      state.SkipWithError(shared.error_text().c_str());
      break;
    }
  }
  if (state.error_occurred()) return;
  const auto iters = static_cast<std::uint64_t>(state.iterations());
  (void)await([&] { return hub->wake_stats().wakeups_sent - before.wakeups_sent >= iters * un; }, 1s);
  const pushpoll::WakeStats after = hub->wake_stats();
  if (after.wakeups_sent - before.wakeups_sent != iters * un) {
    state.SkipWithError(("wakeups_sent grew by " + std::to_string(after.wakeups_sent - before.wakeups_sent) +
                         ", expected " + std::to_string(iters * un))
                            .c_str());
    return;
  }
  const double per_wakeup = report_rounds(state, rounds, n);
  state.counters["notifier_syscalls_per_publish"] =
      static_cast<double>(after.notifier_syscalls - before.notifier_syscalls) / static_cast<double>(iters);
  state.counters["sub_syscalls_per_wakeup"] =
      static_cast<double>(after.subscriber_syscalls - before.subscriber_syscalls) / static_cast<double>(iters * un);
  state.counters["unparked"] = static_cast<double>(unparked);
  if (kind == HubKind::background_hot) state.counters["notifier_was_parked"] = static_cast<double>(notifier_missed);
  state.counters["spurious"] = static_cast<double>(reader.spurious());
  state.counters["pinned"] = (pin.pinned() && reader.pinned()) ? 1 : 0;
  results()[key_of(hub_name(kind), n)] = per_wakeup;
}

// ---- 2. waking 1,000 parked subscribers --------------------------------------------------------

constexpr int kWakeSubscribers = 1000;
constexpr int kWakeHosts = 2;

// Measures one publish to 1,000 parked subscribers hosted on 2 threads (500 each; host 0 on CPU 0
// beside the publisher, host 1 on CPU 1). groups: each host parks its 500 in one WakeGroup
// (WakeGroup::wait). own_fds: each subscriber has its own eventfd and each host epoll-waits on its
// 500, polls every subscriber epoll reports and re-arms them after each epoll batch. Reported: eventfd writes per publish (hub.wake_stats().wakeups_sent; the bar: at most 2 with
// groups) and the time from just before publish() until the last of the 1,000 has polled and
// checked the message (manual time; p50/p99 over iterations). Between iterations the hosts re-arm
// everything and the publisher waits until all 1,000 are armed and both hosts asleep.
void BM_WakeGroups_Wake1000(benchmark::State& state, bool groups) {
  pushpoll::Hub hub;
  pushpoll::TopicOptions topts;
  topts.capacity = std::uint64_t{1} << 20;
  pushpoll::Topic& topic = hub.topic("wake1000", topts);
  std::vector<std::vector<pushpoll::Subscriber>> subs(kWakeHosts);
  for (int i = 0; i < kWakeSubscribers; ++i) {
    subs[static_cast<std::size_t>(i % kWakeHosts)].push_back(topic.subscribe(pushpoll::Start::latest));
  }
  auto& ring_state = topic.ring().state();
  Shared shared;
  UniqueFd done_fd = make_eventfd(false);  // the host that finishes a round last writes it
  std::atomic<int> hosts_done{0};
  std::atomic<bool> stop{false};
  std::atomic<pid_t> tids[kWakeHosts] = {0, 0};
  std::atomic<std::int64_t> done_ns[kWakeHosts] = {0, 0};
  std::atomic<int> pinned_hosts{0};
  std::vector<Epoll> epolls(groups ? 0 : kWakeHosts);

  const auto finish_round = [&](std::size_t h) {
    done_ns[h].store(now_ns(), std::memory_order_relaxed);  // ordered by the fetch_add below
    if (hosts_done.fetch_add(1, std::memory_order_acq_rel) + 1 == kWakeHosts) (void)add_one(done_fd.get());
  };
  const auto host = [&](std::size_t h) {
    if (pin_this_thread(static_cast<int>(h) % pushpoll::bench::usable_cpus())) pinned_hosts.fetch_add(1);
    auto& mine = subs[h];
    std::vector<std::uint64_t> expected;
    for (auto& s : mine) expected.push_back(s.cursor());
    std::size_t seen = 0;
    const auto take = [&](std::size_t i) {
      pushpoll::Batch b = mine[i].poll();
      for (const pushpoll::Message m : b) {
        Stamp st{};
        if (const std::string e = check_stamp(m, expected[i], st); !e.empty()) shared.fail(e);
        ++expected[i];
        ++seen;
      }
      if (seen == mine.size()) {
        seen = 0;
        finish_round(h);
      } else if (seen > mine.size()) {
        shared.fail("a host saw more messages than it has subscribers");
        seen = 0;
      }
    };
    try {
      if (groups) {
        pushpoll::WakeGroup group(hub);
        for (auto& s : mine) (void)group.add(s);
        tids[h].store(::gettid(), std::memory_order_release);
        while (!stop.load(std::memory_order_acquire)) {
          for (const std::uint32_t id : group.wait(std::chrono::nanoseconds(-1))) take(id);
        }
      } else {
        Epoll& ep = epolls[h];
        for (std::size_t i = 0; i < mine.size(); ++i) {
          ep.add(mine[i].fd(), static_cast<std::uint32_t>(i));
          if (!mine[i].arm()) shared.fail("arm() found messages before any was published");
        }
        tids[h].store(::gettid(), std::memory_order_release);
        // Poll every subscriber epoll reports, then re-arm them after the batch (an arming costs a
        // heavy barrier: it should not delay the others' polls).
        std::vector<std::uint32_t> rearm;
        ep.run(
            [&](std::uint32_t key) {
              take(key);
              rearm.push_back(key);
            },
            [&] {
              for (const std::uint32_t key : rearm) {
                while (!mine[key].arm() && !stop.load(std::memory_order_acquire)) take(key);
              }
              rearm.clear();
            });
      }
    } catch (const std::exception& e) {
      shared.fail(std::string("host: ") + e.what());
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t h = 0; h < kWakeHosts; ++h) threads.emplace_back(host, h);
  const auto stop_hosts = [&] {
    stop.store(true, std::memory_order_release);
    for (auto& ep : epolls) ep.stop();
    topic.close();  // wakes the group waiters
    for (auto& t : threads) t.join();
  };

  ScopedPin pin(kPublisherCpu);
  const auto parked = [&] {
    if (ring_state.armed.load() != static_cast<std::uint32_t>(kWakeSubscribers)) return false;
    for (auto& t : tids) {
      if (!asleep(t.load(std::memory_order_acquire))) return false;
    }
    return true;
  };
  std::vector<std::int64_t> samples;
  std::uint64_t unparked = 0, max_writes = 0, writes_total = 0, sub_syscalls = 0;
  const auto round = [&](bool timed) -> bool {
    if (!await(parked, 30s)) {
      ++unparked;
      if (shared.has_failed()) return false;
    }
    const pushpoll::WakeStats before = hub.wake_stats();
    hosts_done.store(0, std::memory_order_relaxed);
    const Stamp st{topic.head(), now_ns()};
    (void)topic.publish(bytes_of(st));
    pollfd p{done_fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) {
      shared.fail("the 1,000 subscribers did not all see the message within 10 s");
      return false;
    }
    std::uint64_t one;
    (void)!::read(done_fd.get(), &one, sizeof one);
    (void)hosts_done.load(std::memory_order_acquire);  // acquire: the hosts' done_ns stores
    const std::int64_t last = std::max(done_ns[0].load(std::memory_order_relaxed),
                                       done_ns[1].load(std::memory_order_relaxed)) -
                              st.t0_ns;
    const pushpoll::WakeStats after = hub.wake_stats();
    const std::uint64_t writes = after.wakeups_sent - before.wakeups_sent;
    if (timed) {
      samples.push_back(last);
      max_writes = std::max(max_writes, writes);
      writes_total += writes;
      state.SetIterationTime(static_cast<double>(last) * 1e-9);
    }
    if (groups && writes > 2) {
      shared.fail("waking 1,000 subscribers in 2 groups took " + std::to_string(writes) + " eventfd writes");
      return false;
    }
    return !shared.has_failed();
  };
  bool ok = round(false);  // warm-up
  const pushpoll::WakeStats s0 = hub.wake_stats();
  if (ok) {
    for (auto _ : state) {
      if (!round(true)) {
        ok = false;
        break;
      }
    }
  }
  const pushpoll::WakeStats s1 = hub.wake_stats();
  sub_syscalls = s1.subscriber_syscalls - s0.subscriber_syscalls;
  const std::uint64_t arms = s1.arms - s0.arms;
  stop_hosts();
  if (!ok || shared.has_failed()) {
    state.SkipWithError(shared.error_text().c_str());
    return;
  }
  const auto iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * kWakeSubscribers);  // deliveries
  const Percentiles p = percentiles(samples);
  const double writes_per_publish = static_cast<double>(writes_total) / iters;
  state.counters["eventfd_writes"] = writes_per_publish;
  state.counters["max_eventfd_writes"] = static_cast<double>(max_writes);
  state.counters["last_p50_us"] = p.p50 / 1e3;
  state.counters["last_p99_us"] = p.p99 / 1e3;
  state.counters["sub_syscalls_per_round"] = static_cast<double>(sub_syscalls) / iters;
  state.counters["arms_per_round"] = static_cast<double>(arms) / iters;
  state.counters["unparked"] = static_cast<double>(unparked);
  state.counters["pinned"] = (pin.pinned() && pinned_hosts.load() == kWakeHosts) ? 1 : 0;
  const std::string key = std::string("wake1000/") + (groups ? "groups" : "own_fds");
  results()[key + "/writes"] = static_cast<double>(max_writes);
  results()[key + "/p50_us"] = p.p50 / 1e3;
  results()[key + "/p99_us"] = p.p99 / 1e3;
}

// ---- 3. a steady stream to 1,000 subscribers ---------------------------------------------------

constexpr std::size_t kStreamPayload = 16;
constexpr std::size_t kStreamPollMax = 1024;

struct StreamConfig {
  pushpoll::Backend backend = pushpoll::Backend::automatic;
  int hosts = 1;
  int subscribers = 1000;
  std::int64_t gap_ns = 0;  // between publishes; 0: as fast as publish() goes
};

/// A topic streamed to `subscribers` subscribers on `hosts` threads (host h on CPU (1 + h) mod the
/// CPUs). A host polls all its subscribers in turn and checks every message; only when a whole pass
/// found nothing (caught up) does it park in its WakeGroup. The caller publishes (run()).
class StreamRig {
 public:
  explicit StreamRig(const StreamConfig& config) : config_(config), hub_(hub_opts(config)) {
    pushpoll::TopicOptions topts;
    topts.capacity = std::uint64_t{1} << 24;  // 16 MiB: an iteration's burst never fills it
    topts.single_producer = true;
    topic_ = &hub_.topic("stream", topts);
    subs_.resize(static_cast<std::size_t>(config.hosts));
    for (int i = 0; i < config.subscribers; ++i) {
      subs_[static_cast<std::size_t>(i % config.hosts)].push_back(topic_->subscribe(pushpoll::Start::latest));
    }
    next_seq_ = topic_->head();
    for (std::size_t h = 0; h < subs_.size(); ++h) threads_.emplace_back([this, h] { host(h); });
    while (ready_.load(std::memory_order_acquire) != config.hosts) std::this_thread::yield();
  }
  StreamRig(const StreamRig&) = delete;
  StreamRig& operator=(const StreamRig&) = delete;
  ~StreamRig() { stop(); }

  /// Publishes `messages` (paced by gap_ns) from the calling thread, then waits until every
  /// subscriber has checked them all. False on a failure (see shared()).
  bool run(std::uint64_t messages) {
    std::byte payload[kStreamPayload];
    std::memset(payload, static_cast<int>(kFiller), sizeof payload);
    auto next = Clock::now();
    try {
      for (std::uint64_t i = 0; i < messages; ++i) {
        if (config_.gap_ns > 0) {
          next += std::chrono::nanoseconds(config_.gap_ns);
          while (Clock::now() < next) cpu_relax();
        }
        write_counter(payload, next_seq_);
        const std::uint64_t seq = topic_->publish(payload);
        if (seq != next_seq_) {
          shared_.fail("publish returned seq " + std::to_string(seq) + ", expected " + std::to_string(next_seq_));
          return false;
        }
        ++next_seq_;
      }
    } catch (const std::exception& e) {
      shared_.fail(std::string("publish threw: ") + e.what());
      return false;
    }
    target_ += messages * static_cast<std::uint64_t>(config_.subscribers);
    const auto deadline = Clock::now() + 60s;
    while (delivered() < target_) {
      if (shared_.has_failed()) return false;
      if (Clock::now() > deadline) {
        shared_.fail("subscribers delivered " + std::to_string(delivered()) + " of " + std::to_string(target_) +
                     " after 60 s");
        return false;
      }
      std::this_thread::yield();  // the core may be a host's
    }
    if (delivered() != target_) {
      shared_.fail("delivered " + std::to_string(delivered()) + ", expected " + std::to_string(target_));
      return false;
    }
    return !shared_.has_failed();
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_.store(true, std::memory_order_release);
    topic_->close();  // wakes parked hosts
    for (auto& t : threads_) t.join();
  }

  [[nodiscard]] pushpoll::WakeStats stats() const noexcept { return hub_.wake_stats(); }
  [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_acquire); }
  [[nodiscard]] std::uint64_t parks() const noexcept { return parks_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t full_waits() const noexcept { return topic_->stats().full_waits; }
  [[nodiscard]] bool hosts_pinned() const noexcept { return pinned_.load() == config_.hosts; }
  [[nodiscard]] pushpoll::Backend backend() const noexcept { return hub_.backend(); }
  Shared& shared() noexcept { return shared_; }

 private:
  static pushpoll::HubOptions hub_opts(const StreamConfig& c) {
    pushpoll::HubOptions o;
    o.backend = c.backend;
    return o;
  }

  void host(std::size_t h) {
    const int cpus = pushpoll::bench::usable_cpus();
    if (pin_this_thread((kReceiverCpu + static_cast<int>(h)) % cpus)) pinned_.fetch_add(1);
    auto& mine = subs_[h];
    try {
      pushpoll::WakeGroup group(hub_);
      for (auto& s : mine) (void)group.add(s);
      std::vector<std::uint64_t> expected;
      for (auto& s : mine) expected.push_back(s.cursor());
      ready_.fetch_add(1, std::memory_order_release);
      while (!stop_.load(std::memory_order_acquire)) {
        std::uint64_t got = 0;
        for (std::size_t i = 0; i < mine.size(); ++i) {
          pushpoll::Batch b = mine[i].poll(kStreamPollMax);
          if (b.gap() != 0) shared_.fail("a subscriber lost " + std::to_string(b.gap()) + " messages");
          for (const pushpoll::Message m : b) {
            if (const std::string e = check_counter(m, expected[i]); !e.empty()) shared_.fail(e);
            ++expected[i];
          }
          got += b.size();
        }
        if (got != 0) {
          // Release: pairs with the publisher's acquire; the checks above are done.
          delivered_.fetch_add(got, std::memory_order_release);
        } else {
          // Caught up: park (arms every member, blocks once; a pass polls them all anyway).
          parks_.fetch_add(1, std::memory_order_relaxed);
          (void)group.wait(100ms);
        }
      }
    } catch (const std::exception& e) {
      shared_.fail(std::string("host: ") + e.what());
      ready_.fetch_add(1, std::memory_order_release);
    }
  }

  StreamConfig config_;
  pushpoll::Hub hub_;
  pushpoll::Topic* topic_ = nullptr;
  std::vector<std::vector<pushpoll::Subscriber>> subs_;
  std::vector<std::thread> threads_;
  Shared shared_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t target_ = 0;
  bool stopped_ = false;
  std::atomic<int> ready_{0}, pinned_{0};
  std::atomic<bool> stop_{false};
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> delivered_{0};
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> parks_{0};
};

// Measures a stream to 1,000 subscribers that keep up (lossless topic, hosts polling; a host parks
// in its WakeGroup only when a whole pass over its subscribers found nothing). Each iteration
// publishes `per_iteration` 16-byte messages from CPU 0 — back to back (gap_ns:0, the maximum rate)
// or paced — and ends when all 1,000 subscribers have checked all of them. Reported:
// syscalls_per_delivered = (notifier_syscalls + subscriber_syscalls) / deliveries from the hub's
// counters (the bar: < 0.05 at the maximum rate), both parts, parks per iteration, and
// items_per_second = deliveries (messages x subscribers) per second. publisher_full_waits counts
// publishes that found the ring full (their back-off sleeps are syscalls the hub does not count;
// expected 0: the ring holds an iteration).
void BM_Stream(benchmark::State& state, StreamConfig config, std::uint64_t per_iteration) {
  std::optional<StreamRig> rig;
  try {
    rig.emplace(config);  // hosts pin themselves; construct before pinning this thread
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  ScopedPin pin(kPublisherCpu);
  if (!rig->run(per_iteration / 4 + 1)) {  // warm-up
    state.SkipWithError(rig->shared().error_text().c_str());
    return;
  }
  const pushpoll::WakeStats s0 = rig->stats();
  const std::uint64_t d0 = rig->delivered(), p0 = rig->parks(), f0 = rig->full_waits();
  for (auto _ : state) {
    if (!rig->run(per_iteration)) {
      state.SkipWithError(rig->shared().error_text().c_str());
      break;
    }
  }
  const pushpoll::WakeStats s1 = rig->stats();
  const std::uint64_t d1 = rig->delivered(), p1 = rig->parks(), f1 = rig->full_waits();
  const bool pinned = rig->hosts_pinned() && pin.pinned();
  rig->stop();
  if (state.error_occurred()) return;
  const auto iters = static_cast<double>(state.iterations());
  const auto deliveries = static_cast<double>(d1 - d0);
  const auto notifier = static_cast<double>(s1.notifier_syscalls - s0.notifier_syscalls);
  const auto subscriber = static_cast<double>(s1.subscriber_syscalls - s0.subscriber_syscalls);
  const double per_delivered = (notifier + subscriber) / deliveries;
  state.SetItemsProcessed(static_cast<std::int64_t>(d1 - d0));
  state.counters["subscribers"] = config.subscribers;
  state.counters["msgs_per_s"] =
      benchmark::Counter(static_cast<double>(per_iteration) * iters, benchmark::Counter::kIsRate);
  state.counters["syscalls_per_delivered"] = per_delivered;
  state.counters["notifier_syscalls_per_iter"] = notifier / iters;
  state.counters["sub_syscalls_per_iter"] = subscriber / iters;
  state.counters["wakeups_sent_per_iter"] = static_cast<double>(s1.wakeups_sent - s0.wakeups_sent) / iters;
  state.counters["parks_per_iter"] = static_cast<double>(p1 - p0) / iters;
  state.counters["publisher_full_waits"] = static_cast<double>(f1 - f0);
  state.counters["pinned"] = pinned ? 1 : 0;
  results()["stream/hosts:" + std::to_string(config.hosts) + "/gap_ns:" + std::to_string(config.gap_ns)] =
      per_delivered;
}

// ---- 4. publish -> observed latency ------------------------------------------------------------

/// State shared by a ping-pong's two threads.
struct PingPong {
  // Writer: the receiver (release, after `latency`). Reader: the publisher (acquire).
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> ack{0};
  // Writer: the receiver, before `ack`. Reader: the publisher, after acquiring `ack`.
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::int64_t> latency{0};
  // Bare rows: the publisher's stamp (relaxed) and seq (release, after the stamp).
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::int64_t> stamp{0};
  std::atomic<std::uint64_t> seq{0};
  alignas(pushpoll::bench::kCacheLine) std::atomic<pid_t> tid{0};
  std::atomic<bool> stop{false};
  bool pinned = false;  // written before tid (release)
  Shared shared;
};

struct PingPongPlan {
  std::chrono::nanoseconds gap{50us};   // idle time between an ack and the next message
  std::chrono::nanoseconds spin{0ns};   // WaitOptions::spin (hub rows) or spinning reader (BareSpin)
};

/// The publisher's side of every ping-pong row: idle gap, make sure the receiver is where the row
/// says (ready()), send (the stamp is taken inside send()), wait for the ack, record the receiver's
/// latency; then the percentiles as counters.
template <class Send, class Ready>
void ping_pong_loop(benchmark::State& state, PingPong& pp, const PingPongPlan& plan, Send&& send,
                    Ready&& ready, const std::string& key) {
  ScopedPin pin(kPublisherCpu);
  if (!await([&] { return pp.tid.load(std::memory_order_acquire) != 0; }, 10s)) {
    state.SkipWithError("the receiver did not start");
    return;
  }
  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t sent = 0, not_ready = 0;
  const pid_t receiver = pp.tid.load(std::memory_order_acquire);
  const std::uint64_t preempted0 = preemptions(receiver);
  auto last = Clock::now();
  for (auto _ : state) {
    while (Clock::now() - last < plan.gap) cpu_relax();
    if (!await_spinning(ready, 1s)) ++not_ready;
    send(++sent);
    if (!await_spinning([&] { return pp.ack.load(std::memory_order_acquire) >= sent || pp.shared.has_failed(); },
                        10s) ||
        pp.shared.has_failed()) {
      if (!pp.shared.has_failed()) pp.shared.fail("no ack within 10 s for message " + std::to_string(sent));
      state.SkipWithError(pp.shared.error_text().c_str());
      break;
    }
    last = Clock::now();
    const std::int64_t lat = pp.latency.load(std::memory_order_relaxed);  // ordered by the ack
    samples.push_back(lat);
    state.SetIterationTime(static_cast<double>(lat) * 1e-9);
  }
  if (state.error_occurred()) return;
  state.SetItemsProcessed(static_cast<std::int64_t>(samples.size()));
  const Percentiles p = percentiles(samples);
  state.counters["p50_us"] = p.p50 / 1e3;
  state.counters["p99_us"] = p.p99 / 1e3;
  state.counters["p99.9_us"] = p.p999 / 1e3;
  state.counters["max_us"] = p.max / 1e3;
  state.counters["not_ready"] = static_cast<double>(not_ready);
  // Times another task took the receiver's core (the machine may be shared): each can cost a sample
  // a scheduler slice.
  state.counters["receiver_preempted"] = static_cast<double>(preemptions(receiver) - preempted0);
  state.counters["gap_us"] = static_cast<double>(plan.gap.count()) / 1e3;
  state.counters["pinned"] = (pin.pinned() && pp.pinned) ? 1 : 0;
  results()["pingpong/" + key + "/p50_us"] = p.p50 / 1e3;
  results()["pingpong/" + key + "/p99_us"] = p.p99 / 1e3;
  results()["pingpong/" + key + "/p99.9_us"] = p.p999 / 1e3;
}

// Measures publish -> observed latency for one subscriber on CPU 1 blocked in sub.wait() (ppoll on
// its eventfd), the publisher on CPU 0: the publisher takes a timestamp, publishes it in the payload
// and spins until the subscriber acks; the subscriber wakes, polls, checks the seq and stores
// now - stamp. Between messages: the idle gap, then the publisher checks that the subscriber is
// armed and asleep (not_ready counts misses). With spin > 0 (WaitOptions::spin) and gap < spin the
// message arrives while wait() still spins: there found_armed counts messages that found it armed
// (the spin window over; expected 0).
// Manual time = the latency; p50/p99/p99.9 in the counters.
void BM_PingPong_Latency(benchmark::State& state, pushpoll::Backend backend, PingPongPlan plan,
                         std::string key) {
  std::optional<pushpoll::Hub> hub;
  try {
    pushpoll::HubOptions o;
    o.backend = backend;
    hub.emplace(o);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  pushpoll::TopicOptions topts;
  topts.capacity = std::uint64_t{1} << 16;
  topts.single_producer = true;
  pushpoll::Topic& topic = hub->topic("pingpong", topts);
  pushpoll::Subscriber sub = topic.subscribe(pushpoll::Start::latest);
  pushpoll::WaitOptions wo;
  wo.spin = plan.spin;
  sub.set_wait_options(wo);
  auto& ring_state = topic.ring().state();
  PingPong pp;
  std::thread receiver([&pp, s = std::move(sub)]() mutable {
    pp.pinned = pin_this_thread(kReceiverCpu);
    pp.tid.store(::gettid(), std::memory_order_release);
    std::uint64_t expected = s.cursor(), count = 0;
    try {
      for (;;) {
        pushpoll::Batch b = s.poll(16);
        if (b.empty()) {
          if (pp.stop.load(std::memory_order_acquire)) break;
          (void)s.wait();
          continue;
        }
        for (const pushpoll::Message m : b) {
          Stamp st{};
          const std::string e = check_stamp(m, expected, st);
          const std::int64_t t1 = now_ns();
          if (!e.empty()) pp.shared.fail(e);
          ++expected;
          pp.latency.store(t1 - st.t0_ns, std::memory_order_relaxed);
          pp.ack.store(++count, std::memory_order_release);
        }
      }
    } catch (const pushpoll::Closed&) {
      // the teardown
    } catch (const std::exception& e) {
      pp.shared.fail(std::string("subscriber: ") + e.what());
    }
  });
  const bool parked_row = plan.spin.count() == 0;
  const auto ready = [&] {
    // Spin rows: nothing to wait for (found_armed below counts messages that missed the window).
    return !parked_row || (ring_state.armed.load() == 1 && asleep(pp.tid.load(std::memory_order_acquire)));
  };
  std::uint64_t seq = topic.head(), found_armed = 0;
  const auto send = [&](std::uint64_t) {
    if (!parked_row && ring_state.armed.load() != 0) ++found_armed;  // the spin window had ended
    const Stamp st{seq++, now_ns()};
    (void)topic.publish(bytes_of(st));
  };
  ping_pong_loop(state, pp, plan, send, ready, key);
  pp.stop.store(true, std::memory_order_release);
  topic.close();
  receiver.join();
  state.counters["spin_us"] = static_cast<double>(plan.spin.count()) / 1e3;
  if (!parked_row) state.counters["found_armed"] = static_cast<double>(found_armed);
}

// Measures the baseline of BM_PingPong_Latency: a bare eventfd (non-blocking, like the hub's) that
// the receiver on CPU 1 waits on in ppoll, the same parking mechanism as Subscriber::wait(). The
// publisher stores a timestamp and a seq, then write()s 1; the receiver returns from ppoll, read()s
// the counter (the drain pushpoll's wait() does too), checks counter == 1 and the seq, and stores
// now - stamp. Same idle gap, same "asleep" check before each message.
void BM_PingPong_BareEventfd(benchmark::State& state, PingPongPlan plan, std::string key) {
  UniqueFd efd = make_eventfd(true);
  PingPong pp;
  std::thread receiver([&pp, fd = efd.get()] {
    pp.pinned = pin_this_thread(kReceiverCpu);
    pp.tid.store(::gettid(), std::memory_order_release);
    std::uint64_t expected = 1;
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::ppoll(&p, 1, nullptr, nullptr) < 0 && errno != EINTR) {
        pp.shared.fail(errno_text("ppoll"));
        return;
      }
      std::uint64_t value = 0;
      if (::read(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) continue;
      if (pp.stop.load(std::memory_order_acquire)) return;
      const std::uint64_t seq = pp.seq.load(std::memory_order_acquire);
      const std::int64_t t0 = pp.stamp.load(std::memory_order_relaxed);
      const std::int64_t t1 = now_ns();
      if (value != 1 || seq != expected) {
        pp.shared.fail("eventfd counter " + std::to_string(value) + ", seq " + std::to_string(seq) + ", expected 1, " +
                       std::to_string(expected));
      }
      ++expected;
      pp.latency.store(t1 - t0, std::memory_order_relaxed);
      pp.ack.store(seq, std::memory_order_release);
    }
  });
  const auto ready = [&] { return asleep(pp.tid.load(std::memory_order_acquire)); };
  const auto send = [&](std::uint64_t n) {
    pp.stamp.store(now_ns(), std::memory_order_relaxed);
    pp.seq.store(n, std::memory_order_release);
    (void)add_one(efd.get());
  };
  ping_pong_loop(state, pp, plan, send, ready, key);
  pp.stop.store(true, std::memory_order_release);
  (void)add_one(efd.get());
  receiver.join();
}

// Measures the floor under the spin-before-park rows: the receiver on CPU 1 spins on an atomic seq
// (no pushpoll, no syscall); the publisher stores a timestamp and the seq. Same gap as the spin row.
void BM_PingPong_BareSpin(benchmark::State& state, PingPongPlan plan, std::string key) {
  PingPong pp;
  std::thread receiver([&pp] {
    pp.pinned = pin_this_thread(kReceiverCpu);
    pp.tid.store(::gettid(), std::memory_order_release);
    std::uint64_t expected = 1;
    for (;;) {
      std::uint64_t seq;
      while ((seq = pp.seq.load(std::memory_order_acquire)) < expected) {
        if (pp.stop.load(std::memory_order_acquire)) return;
        cpu_relax();
      }
      const std::int64_t t0 = pp.stamp.load(std::memory_order_relaxed);
      const std::int64_t t1 = now_ns();
      if (seq != expected) pp.shared.fail("seq " + std::to_string(seq) + ", expected " + std::to_string(expected));
      expected = seq + 1;
      pp.latency.store(t1 - t0, std::memory_order_relaxed);
      pp.ack.store(seq, std::memory_order_release);
    }
  });
  const auto ready = [] { return true; };
  const auto send = [&](std::uint64_t n) {
    pp.stamp.store(now_ns(), std::memory_order_relaxed);
    pp.seq.store(n, std::memory_order_release);
  };
  ping_pong_loop(state, pp, plan, send, ready, key);
  pp.stop.store(true, std::memory_order_release);
  receiver.join();
}

// ---- registration, summary, strace check -------------------------------------------------------

constexpr int kFanOuts[] = {1, 16, 256, 1024, 4096};

benchmark::IterationCount notifier_iterations(int n) {
  return std::clamp<benchmark::IterationCount>(20000 / n, 100, 3000);
}

void register_all() {
  for (const int n : kFanOuts) {
    for (const WriterKind k : {WriterKind::syscall, WriterKind::io_uring, WriterKind::io_uring_sqpoll,
                               WriterKind::bare_io_uring_fixed}) {
      const std::string name = std::string("BM_Notifier_PerWakeup/") + writer_name(k) + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), BM_Notifier_Writer, k, n)
          ->UseManualTime()
          ->Iterations(notifier_iterations(n))
          ->Unit(benchmark::kMicrosecond);
    }
    for (const HubKind k : {HubKind::syscall, HubKind::io_uring, HubKind::io_uring_sqpoll, HubKind::background,
                            HubKind::background_hot}) {
      const std::string name = std::string("BM_Notifier_PerWakeup/") + hub_name(k) + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), BM_Notifier_Hub, k, n)
          ->UseManualTime()
          ->Iterations(k == HubKind::background_hot ? std::min<benchmark::IterationCount>(notifier_iterations(n), 300)
                                                     : notifier_iterations(n))
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (const bool groups : {true, false}) {
    const std::string name = std::string("BM_WakeGroups_Wake1000/") + (groups ? "groups" : "own_fds");
    benchmark::RegisterBenchmark(name.c_str(), BM_WakeGroups_Wake1000, groups)
        ->UseManualTime()
        ->Iterations(300)
        ->Unit(benchmark::kMicrosecond);
  }
  struct StreamRow {
    int hosts;
    std::int64_t gap_ns;
    std::uint64_t per_iteration;
  };
  for (const StreamRow r : {StreamRow{1, 0, 20000}, StreamRow{2, 0, 20000}, StreamRow{1, 10'000, 2000},
                            StreamRow{1, 100'000, 200}}) {
    StreamConfig c;
    c.hosts = r.hosts;
    c.gap_ns = r.gap_ns;
    const std::string name = "BM_Stream_SyscallsPerMessage/subs:1000/hosts:" + std::to_string(r.hosts) +
                             "/gap_ns:" + std::to_string(r.gap_ns);
    benchmark::RegisterBenchmark(name.c_str(), BM_Stream, c, r.per_iteration)
        ->UseRealTime()
        ->MinTime(1.0)
        ->Unit(benchmark::kMillisecond);
  }
  constexpr benchmark::IterationCount kPingPongs = 20000;
  const PingPongPlan parked{50us, 0ns};
  const PingPongPlan spinning{20us, 100us};
  benchmark::RegisterBenchmark("BM_PingPong_Latency/io_uring/parked/gap_us:50", BM_PingPong_Latency,
                               pushpoll::Backend::io_uring, parked, std::string("io_uring/parked"))
      ->UseManualTime()->Iterations(kPingPongs)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_PingPong_Latency/syscall/parked/gap_us:50", BM_PingPong_Latency,
                               pushpoll::Backend::syscall, parked, std::string("syscall/parked"))
      ->UseManualTime()->Iterations(kPingPongs)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_PingPong_BareEventfd/ppoll/gap_us:50", BM_PingPong_BareEventfd, parked,
                               std::string("bare_eventfd/parked"))
      ->UseManualTime()->Iterations(kPingPongs)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_PingPong_Latency/io_uring/spin_us:100/gap_us:20", BM_PingPong_Latency,
                               pushpoll::Backend::io_uring, spinning, std::string("io_uring/spin"))
      ->UseManualTime()->Iterations(kPingPongs)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_PingPong_BareSpin/gap_us:20", BM_PingPong_BareSpin, spinning,
                               std::string("bare_spin"))
      ->UseManualTime()->Iterations(kPingPongs)->Unit(benchmark::kMicrosecond);
}

std::optional<double> result(const std::string& key) {
  const auto it = results().find(key);
  if (it == results().end()) return std::nullopt;
  return it->second;
}

std::string fmt(std::optional<double> v, const char* spec = "%.1f") {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, *v);
  return buf;
}

std::string ratio(std::optional<double> num, std::optional<double> den) {
  if (!num || !den || *den <= 0) return "-";
  return fmt(*num / *den, "%.2fx");
}

const char* verdict(bool pass) { return pass ? "PASS" : "FAIL"; }

/// Prints the rows' key numbers next to the bars of the issue.
void print_summary(std::ostream& out) {
  char line[512];
  out << "\n==== Summary against the bars ====\n";
  out << "\n1a. Notifier cost per wake-up, FdWriter level: median ns per wake-up, N receivers parked in epoll\n"
         "    (ratio = loop / other: above 1 means cheaper than the write() loop)\n";
  std::snprintf(line, sizeof line, "%6s %10s %10s %10s %10s %11s %11s %11s\n", "N", "loop", "io_uring",
                "fixed", "sqpoll", "loop/uring", "loop/fixed", "loop/sqpoll");
  out << line;
  for (const int n : kFanOuts) {
    const auto loop = result(key_of("writer_syscall", n));
    const auto uring = result(key_of("writer_io_uring", n));
    const auto fixed = result(key_of("bare_io_uring_fixed", n));
    const auto sq = result(key_of("writer_io_uring_sqpoll", n));
    std::snprintf(line, sizeof line, "%6d %10s %10s %10s %10s %11s %11s %11s\n", n, fmt(loop).c_str(),
                  fmt(uring).c_str(), fmt(fixed).c_str(), fmt(sq).c_str(), ratio(loop, uring).c_str(),
                  ratio(loop, fixed).c_str(), ratio(loop, sq).c_str());
    out << line;
  }
  out << "\n1b. Notifier cost per wake-up, Hub level (publish() time / N), same receivers\n";
  std::snprintf(line, sizeof line, "%6s %10s %10s %10s %10s %10s %11s %11s %11s %11s\n", "N", "loop", "io_uring",
                "sqpoll", "bg_parked", "bg_hot", "loop/uring", "loop/sqpoll", "loop/bg", "loop/bg_hot");
  out << line;
  for (const int n : kFanOuts) {
    const auto loop = result(key_of("hub_syscall", n));
    const auto uring = result(key_of("hub_io_uring", n));
    const auto sq = result(key_of("hub_io_uring_sqpoll", n));
    const auto bg = result(key_of("hub_background", n));
    const auto hot = result(key_of("hub_background_hot", n));
    std::snprintf(line, sizeof line, "%6d %10s %10s %10s %10s %10s %11s %11s %11s %11s\n", n, fmt(loop).c_str(),
                  fmt(uring).c_str(), fmt(sq).c_str(), fmt(bg).c_str(), fmt(hot).c_str(), ratio(loop, uring).c_str(),
                  ratio(loop, sq).c_str(), ratio(loop, bg).c_str(), ratio(loop, hot).c_str());
    out << line;
  }
  out << "\n   bar: inline io_uring no slower than the loop from N = 256 up (expect 1.2-1.8x cheaper):\n";
  for (const int n : kFanOuts) {
    if (n < 256) continue;
    const auto wl = result(key_of("writer_syscall", n));
    const auto wu = result(key_of("writer_io_uring", n));
    const auto hl = result(key_of("hub_syscall", n));
    const auto hu = result(key_of("hub_io_uring", n));
    std::snprintf(line, sizeof line, "     N=%-5d writer %s %s | hub %s %s\n", n, ratio(wl, wu).c_str(),
                  (wl && wu) ? verdict(*wu <= *wl) : "-", ratio(hl, hu).c_str(), (hl && hu) ? verdict(*hu <= *hl) : "-");
    out << line;
  }
  out << "   bar: with SQPOLL or the background notifier, the publishing thread's own cost >= 5x below the loop:\n";
  for (const int n : kFanOuts) {
    const auto wl = result(key_of("writer_syscall", n));
    const auto wsq = result(key_of("writer_io_uring_sqpoll", n));
    const auto hl = result(key_of("hub_syscall", n));
    const auto hsq = result(key_of("hub_io_uring_sqpoll", n));
    const auto bg = result(key_of("hub_background", n));
    const auto hot = result(key_of("hub_background_hot", n));
    const auto v = [](std::optional<double> loop, std::optional<double> other) {
      return (loop && other) ? verdict(*loop >= 5 * *other) : "-";
    };
    std::snprintf(line, sizeof line,
                  "     N=%-5d writer sqpoll %s %s | hub sqpoll %s %s | background: notifier parked %s %s, awake %s %s\n",
                  n, ratio(wl, wsq).c_str(), v(wl, wsq), ratio(hl, hsq).c_str(), v(hl, hsq), ratio(hl, bg).c_str(),
                  v(hl, bg), ratio(hl, hot).c_str(), v(hl, hot));
    out << line;
  }

  out << "\n2. Waking 1,000 parked subscribers on 2 threads\n";
  for (const char* mode : {"groups", "own_fds"}) {
    const std::string k = std::string("wake1000/") + mode;
    const auto writes = result(k + "/writes");
    std::snprintf(line, sizeof line, "   %-8s max eventfd writes per publish %6s   last-of-1000 p50 %8s us  p99 %8s us %s\n",
                  mode, fmt(writes, "%.0f").c_str(), fmt(result(k + "/p50_us")).c_str(),
                  fmt(result(k + "/p99_us")).c_str(),
                  std::string(mode) == "groups" ? (writes ? (*writes <= 2 ? "[bar <= 2 writes: PASS]" : "[bar <= 2 writes: FAIL]") : "") : "");
    out << line;
  }

  out << "\n3. Stream to 1,000 subscribers: syscalls per delivered message (both sides)\n";
  for (const auto& [key, value] : results()) {
    if (key.rfind("stream/", 0) != 0) continue;
    const bool max_rate = key.find("gap_ns:0") != std::string::npos;
    std::snprintf(line, sizeof line, "   %-28s %.3g %s\n", key.c_str(), value,
                  max_rate ? (value < 0.05 ? "[bar < 0.05: PASS]" : "[bar < 0.05: FAIL]") : "(paced: information)");
    out << line;
  }

  out << "\n4. Publish -> observed latency, 1 subscriber (us)\n";
  for (const char* k : {"io_uring/parked", "syscall/parked", "bare_eventfd/parked", "io_uring/spin", "bare_spin"}) {
    const std::string base = std::string("pingpong/") + k;
    std::snprintf(line, sizeof line, "   %-22s p50 %7s  p99 %7s  p99.9 %7s\n", k,
                  fmt(result(base + "/p50_us"), "%.2f").c_str(), fmt(result(base + "/p99_us"), "%.2f").c_str(),
                  fmt(result(base + "/p99.9_us"), "%.2f").c_str());
    out << line;
  }
  const auto bare = result("pingpong/bare_eventfd/parked/p50_us");
  for (const char* k : {"io_uring/parked", "syscall/parked"}) {
    const auto hub = result(std::string("pingpong/") + k + "/p50_us");
    std::snprintf(line, sizeof line, "   p50 %s / bare eventfd = %s %s\n", k, ratio(hub, bare).c_str(),
                  (hub && bare) ? (*hub <= 1.5 * *bare ? "[bar <= 1.5x: PASS]" : "[bar <= 1.5x: FAIL]") : "");
    out << line;
  }
  const auto spin = result("pingpong/io_uring/spin/p50_us");
  std::snprintf(line, sizeof line, "   spin-before-park p50 = %s us %s\n", fmt(spin, "%.3f").c_str(),
                spin ? (*spin < 1.0 ? "[bar < 1 us: PASS]" : "[bar < 1 us: FAIL]") : "");
  out << line;
  out.flush();
}

std::string read_text(const char* path) {
  std::string s;
  if (std::FILE* f = std::fopen(path, "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr) s += buf;
    std::fclose(f);
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void add_context() {
  utsname u{};
  if (::uname(&u) == 0) benchmark::AddCustomContext("kernel", std::string(u.sysname) + " " + u.release);
  benchmark::AddCustomContext("compiler", __VERSION__);
  benchmark::AddCustomContext("loadavg_at_start", read_text("/proc/loadavg"));
  std::string why;
  benchmark::AddCustomContext("io_uring", pushpoll::io::io_uring_available(&why) ? "available" : "unavailable: " + why);
  benchmark::AddCustomContext(
      "pinning", "publisher CPU " + std::to_string(kPublisherCpu) + ", receivers CPU " + std::to_string(kReceiverCpu) +
                     " (" + std::to_string(pushpoll::bench::usable_cpus()) + " usable CPUs)");
}

/// --strace-check=<io_uring|syscall>[,<messages>[,<gap_ns>]]: one stream run, then the hub's
/// counters.
int strace_check(const std::string& arg) {
  std::vector<std::string> parts;
  for (std::size_t from = 0;;) {
    const auto comma = arg.find(',', from);
    parts.push_back(arg.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  const std::string backend = parts[0];
  const std::uint64_t messages = parts.size() > 1 ? std::stoull(parts[1]) : 20000;
  StreamConfig c;
  c.hosts = 1;
  c.gap_ns = parts.size() > 2 ? std::stoll(parts[2]) : 0;
  if (backend == "io_uring") {
    c.backend = pushpoll::Backend::io_uring;
  } else if (backend == "syscall") {
    c.backend = pushpoll::Backend::syscall;
  } else {
    std::fprintf(stderr, "--strace-check: backend must be io_uring or syscall\n");
    return 2;
  }
  pushpoll::WakeStats s;
  std::uint64_t delivered = 0, parks = 0;
  bool ok = true;
  std::string error;
  {
    StreamRig rig(c);
    {
      ScopedPin pin(kPublisherCpu);
      // A few rounds: each ends with the host caught up and parked, so both sides make syscalls.
      const std::uint64_t rounds = messages == 0 ? 0 : 5;
      for (std::uint64_t r = 0; r < rounds && ok; ++r) ok = rig.run(messages / rounds + (r < messages % rounds ? 1u : 0u));
    }
    rig.stop();
    s = rig.stats();
    delivered = rig.delivered();
    parks = rig.parks();
    if (!ok) error = rig.shared().error_text();
  }
  // One write() for the whole report (the only write the harness itself makes).
  char buf[1024];
  const int len = std::snprintf(
      buf, sizeof buf,
      "backend=%s messages=%llu gap_ns=%lld subscribers=%d delivered=%llu parks=%llu ok=%d%s%s\n"
      "hub_notifier_syscalls=%llu\nhub_subscriber_syscalls=%llu\nhub_wakeups_sent=%llu\nhub_rounds=%llu\n"
      "hub_arms=%llu\n",
      backend.c_str(), static_cast<unsigned long long>(messages), static_cast<long long>(c.gap_ns), c.subscribers,
      static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(parks), ok ? 1 : 0,
      ok ? "" : " error=", error.c_str(), static_cast<unsigned long long>(s.notifier_syscalls),
      static_cast<unsigned long long>(s.subscriber_syscalls), static_cast<unsigned long long>(s.wakeups_sent),
      static_cast<unsigned long long>(s.rounds), static_cast<unsigned long long>(s.arms));
  (void)!::write(STDOUT_FILENO, buf, static_cast<std::size_t>(std::max(0, std::min(len, static_cast<int>(sizeof buf) - 1))));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool console = true, listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--strace-check=", 0) == 0) return strace_check(a.substr(std::strlen("--strace-check=")));
    if (a.rfind("--benchmark_format=", 0) == 0 && a != "--benchmark_format=console") console = false;
    if (a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true") listing = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  add_context();
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  if (!listing) print_summary(console ? std::cout : std::cerr);
  benchmark::Shutdown();
  return 0;
}

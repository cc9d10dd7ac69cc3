// Helpers for the wake-up suites: the backend x mode parameters, a watchdog that turns a hang into a
// failure, direct eventfd access, descriptor counting, environment guards, CPU pinning, and
// waiting for the notifier to settle.
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <pushpoll/io/notifier.hpp>
#include <pushpoll/pushpoll.hpp>

#include <atomic>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace pushpoll::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// wait() without a timeout.
inline constexpr std::chrono::nanoseconds kForever{-1};

/// stress_scale() times `base`, divided by `tsan_divisor` under ThreadSanitizer; at least 1.
inline std::uint64_t scaled(std::uint64_t base, std::uint64_t tsan_divisor = 2) {
  double n = static_cast<double>(base) * stress_scale();
  if (kTsan) n /= static_cast<double>(tsan_divisor);
  return n < 1.0 ? 1 : static_cast<std::uint64_t>(n);
}

/// The bytes of a value, as publish() takes them.
template <class T>
std::span<const std::byte> bytes_of(const T& value) noexcept {
  return std::as_bytes(std::span<const T>(&value, 1));
}

/// The first 8 bytes of a payload as a number (0 if shorter).
inline std::uint64_t word_of(const Message& m) noexcept {
  std::uint64_t v = 0;
  if (m.data.size() >= sizeof v) std::memcpy(&v, m.data.data(), sizeof v);
  return v;
}

// ---- backends ---------------------------------------------------------------------------------

/// One configuration of the wake-up machinery.
struct WakeConfig {
  Backend backend;
  NotifyMode mode;
};

inline std::string config_name(const WakeConfig& c) {
  std::string out = c.backend == Backend::io_uring ? "IoUring" : "Syscall";
  out += c.mode == NotifyMode::publisher ? "Publisher" : "Background";
  return out;
}

inline void PrintTo(const WakeConfig& c, std::ostream* os) { *os << config_name(c); }

inline const std::vector<WakeConfig>& all_configs() {
  static const std::vector<WakeConfig> configs = {
      {Backend::io_uring, NotifyMode::publisher},
      {Backend::io_uring, NotifyMode::background},
      {Backend::syscall, NotifyMode::publisher},
      {Backend::syscall, NotifyMode::background},
  };
  return configs;
}

/// Why io_uring cannot be used here, or nullopt if it can (asked once per process, before any test
/// touches the environment).
inline const std::optional<std::string>& io_uring_refusal() {
  static const std::optional<std::string> refusal = [] () -> std::optional<std::string> {
    std::string why;
    if (io::io_uring_available(&why)) return std::nullopt;
    return why.empty() ? std::string("unknown reason") : why;
  }();
  return refusal;
}

/// Base of the parameterised suites: skips io_uring configurations where io_uring is refused.
class WakeTest : public ::testing::TestWithParam<WakeConfig> {
 protected:
  void SetUp() override {
    if (GetParam().backend == Backend::io_uring && io_uring_refusal()) {
      GTEST_SKIP() << "io_uring unavailable: " << *io_uring_refusal();
    }
  }
  [[nodiscard]] HubOptions hub_options() const {
    HubOptions o;
    o.backend = GetParam().backend;
    o.mode = GetParam().mode;
    return o;
  }
  [[nodiscard]] bool background() const { return GetParam().mode == NotifyMode::background; }
};

struct ConfigName {
  std::string operator()(const ::testing::TestParamInfo<WakeConfig>& info) const {
    return config_name(info.param);
  }
};

// ---- eventfds ---------------------------------------------------------------------------------

/// Waits up to `timeout` for `fd` to become readable, without reading it.
inline bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  const int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return rc > 0 && (p.revents & POLLIN) != 0;
}

/// Reads an eventfd's 8-byte counter directly (draining it); 0 if nothing was written.
inline std::uint64_t read_counter(int fd) {
  std::uint64_t value = 0;
  const ssize_t n = ::read(fd, &value, sizeof value);
  return n == static_cast<ssize_t>(sizeof value) ? value : 0;
}

// ---- descriptors ------------------------------------------------------------------------------

/// Entries of /proc/self/fd (the directory's own descriptor included, the same each time).
inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

/// Makes sure `needed` more descriptors can be opened: raises the soft RLIMIT_NOFILE toward the hard
/// one. Returns an empty string, or why it cannot (the caller skips).
inline std::string ensure_descriptors(std::uint64_t needed) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return std::string("getrlimit: ") + std::strerror(errno);
  const auto in_use = static_cast<std::uint64_t>(open_fd_count());
  const std::uint64_t want = in_use + needed;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
      return "RLIMIT_NOFILE hard limit " + std::to_string(rl.rlim_max) + " is below the " +
             std::to_string(want) + " descriptors needed";
    }
    rl.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return std::string("setrlimit: ") + std::strerror(errno);
  }
  return {};
}

// ---- environment ------------------------------------------------------------------------------

/// Sets an environment variable for its lifetime, then restores the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    ::setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// ---- hangs ------------------------------------------------------------------------------------

/// Aborts the process, saying what was going on, when `progress` has not changed for `limit`: a lost
/// wake-up (every thread asleep) becomes a failed test instead of a hung CI job.
class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = 20s)
      : what_(std::move(what)), limit_(limit), thread_([this] { run(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// Call whenever work moves on.
  void tick() noexcept { progress_.fetch_add(1, std::memory_order_relaxed); }
  /// A note printed with the abort message (e.g. the round in progress).
  void note(std::uint64_t value) noexcept { note_.store(value, std::memory_order_relaxed); }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    std::uint64_t last = progress_.load(std::memory_order_relaxed);
    auto since = Clock::now();
    while (!stop_) {
      cv_.wait_for(lock, 100ms);
      if (stop_) return;
      const std::uint64_t now_progress = progress_.load(std::memory_order_relaxed);
      if (now_progress != last) {
        last = now_progress;
        since = Clock::now();
      } else if (Clock::now() - since > limit_) {
        std::fprintf(stderr,
                     "\nWATCHDOG: no progress for %lld s in \"%s\" (progress %llu, note %llu): a lost "
                     "wake-up or a hang. Aborting.\n",
                     static_cast<long long>(limit_.count()), what_.c_str(),
                     static_cast<unsigned long long>(now_progress),
                     static_cast<unsigned long long>(note_.load(std::memory_order_relaxed)));
        std::fflush(stderr);
        std::abort();
      }
    }
  }

  std::string what_;
  std::chrono::seconds limit_;
  std::atomic<std::uint64_t> progress_{0};
  std::atomic<std::uint64_t> note_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

/// Waits until no notifier round is running or pending for `topic`. A background round counts
/// its writes after making them: tests settle before they read the final counters.
inline void settle(Topic& topic) {
  auto& s = topic.ring().state();
  // A publish sets pending_tags before it returns, and a round sets `notifying` before it takes
  // them (both seq_cst): once both read 0 after the last publish, no round is left to run.
  for (int quiet = 0; quiet < 3;) {
    const bool idle = s.pending_tags.load(std::memory_order_seq_cst) == 0 &&
                      s.notifying.load(std::memory_order_seq_cst) == 0;
    quiet = idle ? quiet + 1 : 0;
    std::this_thread::yield();
  }
}


/// Spins (yielding) until `done()` or `timeout`; returns done().
template <class F>
bool eventually(F&& done, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return done();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

/// How a child process ended: its exit code, or the signal that killed it (-1 when it had not
/// ended by the deadline and was killed).
struct ChildEnd {
  int code = -1;
  int signal = 0;
  [[nodiscard]] bool exited(int expected) const noexcept { return signal == 0 && code == expected; }
};

/// Forks a child that runs `body` and exits with its return value (98 for an exception, 99 if it
/// never returned). No GoogleTest assertion runs in the child. Returns its pid, -1 if fork failed.
inline pid_t start_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 98;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

/// Waits for a child of start_child(): how it ended. A child still running after `timeout` is
/// killed, and reported with code -1 (as is a pid of -1).
inline ChildEnd wait_child(pid_t pid, std::chrono::milliseconds timeout = 20s) {
  if (pid < 0) return {};
  for (auto waited = 0ms; waited < timeout; waited += 5ms) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      if (WIFSIGNALED(status)) return {-1, WTERMSIG(status)};
      return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0};
    }
    std::this_thread::sleep_for(5ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return {};
}

/// Runs `body` in a forked child (start_child()) and waits for it (wait_child()).
/// `alongside`, if given, runs in this process once the child exists (threads a test needs beside
/// the child are best started then: forking while a thread starts or allocates can leave the
/// child a lock nobody will release, under a sanitizer's allocator above all).
inline ChildEnd run_child(const std::function<int()>& body, std::chrono::milliseconds timeout = 20s,
                          const std::function<void()>& alongside = {}) {
  const pid_t pid = start_child(body);
  if (pid < 0) return {};
  if (alongside) alongside();
  return wait_child(pid, timeout);
}

/// Pins the calling thread to the `index`-th CPU it may run on (modulo their number) for its
/// lifetime, then restores its affinity. Races between two threads need them on two CPUs at once:
/// left alone, a loaded scheduler may run both on one CPU, one after the other. No-op with one CPU.
class PinToCpu {
 public:
  explicit PinToCpu(unsigned index) {
    if (::sched_getaffinity(0, sizeof old_, &old_) != 0) return;
    std::vector<std::size_t> cpus;
    for (std::size_t c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &old_)) cpus.push_back(c);
    }
    if (cpus.size() < 2) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[index % cpus.size()], &one);
    pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
  }
  PinToCpu(const PinToCpu&) = delete;
  PinToCpu& operator=(const PinToCpu&) = delete;
  ~PinToCpu() {
    if (pinned_) (void)::sched_setaffinity(0, sizeof old_, &old_);
  }

 private:
  cpu_set_t old_{};
  bool pinned_ = false;
};

}  // namespace pushpoll::test

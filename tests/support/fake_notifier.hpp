// A notifier for core's own tests: no syscalls, no eventfds, no threads. It records what core asked
// of it (which topics to wake, for which tags; topics closed, added and gone; descriptors opened,
// signalled and closed) and answers the rest as the plainest real notifier would: symmetric
// barriers, no restartable sequences. Descriptors are numbers from 1,000,000 up, never real files;
// block() waits on a condition variable until signal() or a timeout. It runs no rounds: an armed
// subscriber stays armed, and core's side of the wake-up protocol (who is asked to wake, when) is
// what tests check through it. The wake-ups themselves are the integration suites' (tests/io).
#pragma once
#include <pushpoll/pushpoll.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pushpoll::test {

class FakeNotifier final : public detail::Notifier {
 public:
  struct Call {
    std::string what;   // "notify", "closed", "added", "gone"
    std::string topic;  // the topic's name
    std::uint64_t tags = 0;
  };

  void notify(Topic& topic, std::uint64_t tags) noexcept override { record("notify", topic, tags); }
  void topic_closed(Topic& topic) noexcept override { record("closed", topic, ~std::uint64_t{0}); }
  void topic_added(Topic& topic) override { record("added", topic, 0); }
  void topic_gone(Topic& topic) noexcept override { record("gone", topic, 0); }
  void quiesce(Topic&) noexcept override {}

  int open_eventfd() override {
    std::lock_guard lock(mutex_);
    const int fd = next_fd_++;
    readable_[fd] = 0;
    return fd;
  }
  void close_fd(int fd) noexcept override {
    std::lock_guard lock(mutex_);
    readable_.erase(fd);
    closed_fds_.push_back(fd);
  }
  void signal(int fd) noexcept override {
    {
      std::lock_guard lock(mutex_);
      ++readable_[fd];
    }
    cv_.notify_all();
  }
  bool drain(int fd) noexcept override {
    std::lock_guard lock(mutex_);
    const bool was = readable_[fd] != 0;
    readable_[fd] = 0;
    return was;
  }
  bool block(int fd, std::chrono::nanoseconds timeout) noexcept override {
    std::unique_lock lock(mutex_);
    const auto ready = [&] { return readable_[fd] != 0; };
    if (timeout.count() < 0) {
      cv_.wait(lock, ready);
      return true;
    }
    return cv_.wait_for(lock, timeout, ready);
  }
  void heavy_barrier() noexcept override { std::atomic_thread_fence(std::memory_order_seq_cst); }
  [[nodiscard]] bool asymmetric() const noexcept override { return false; }
  [[nodiscard]] bool restartable() const noexcept override { return false; }
  void restart_sequences() noexcept override {}
  [[nodiscard]] Backend backend() const noexcept override { return Backend::syscall; }
  [[nodiscard]] WakeStats stats() const noexcept override {
    WakeStats s;
    s.subscriber_syscalls = subscriber_syscalls_.load();
    s.arms = arms_.load();
    s.wakeups_recovered = recovered_.load();
    return s;
  }
  void count_subscriber_syscall() noexcept override { subscriber_syscalls_.fetch_add(1); }
  void count_arm() noexcept override { arms_.fetch_add(1); }
  void count_recovered() noexcept override { recovered_.fetch_add(1); }

  /// What core asked so far, in order.
  [[nodiscard]] std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  /// The calls of one kind.
  [[nodiscard]] std::vector<Call> calls(const std::string& what) const {
    std::vector<Call> out;
    for (const Call& c : calls()) {
      if (c.what == what) out.push_back(c);
    }
    return out;
  }
  [[nodiscard]] std::vector<int> closed_fds() const {
    std::lock_guard lock(mutex_);
    return closed_fds_;
  }
  /// Descriptors opened and not closed.
  [[nodiscard]] std::size_t open_fds() const {
    std::lock_guard lock(mutex_);
    return readable_.size();
  }

 private:
  void record(const char* what, Topic& topic, std::uint64_t tags) noexcept {
    try {
      std::lock_guard lock(mutex_);
      calls_.push_back({what, topic.name(), tags});
    } catch (...) {  // out of memory in a test: the call goes unrecorded, and the test says so
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  std::map<int, std::uint64_t> readable_;
  std::vector<int> closed_fds_;
  int next_fd_ = 1'000'000;
  std::atomic<std::uint64_t> subscriber_syscalls_{0}, arms_{0}, recovered_{0};
};

/// A hub whose notifier is a FakeNotifier: what core's unit tests use (they link core alone).
class TestHub : public Hub {
 public:
  explicit TestHub(HubOptions options = {}) : TestHub(std::move(options), std::make_shared<FakeNotifier>()) {}
  [[nodiscard]] FakeNotifier& fake() const noexcept { return *fake_; }

 private:
  TestHub(HubOptions options, std::shared_ptr<FakeNotifier> fake)
      : Hub(std::move(options), fake), fake_(std::move(fake)) {}
  std::shared_ptr<FakeNotifier> fake_;
};

}  // namespace pushpoll::test

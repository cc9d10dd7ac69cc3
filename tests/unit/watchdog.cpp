// A per-test time bound for the unit suite: a test still running after 60 s aborts the process with
// its name, so that a hang fails the run instead of stalling it.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

class TestWatchdog final : public ::testing::EmptyTestEventListener {
 public:
  static constexpr std::chrono::seconds kLimit{60};

  TestWatchdog() : thread_([this] { run(); }) {}
  TestWatchdog(const TestWatchdog&) = delete;
  TestWatchdog& operator=(const TestWatchdog&) = delete;
  ~TestWatchdog() override {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void OnTestStart(const ::testing::TestInfo& info) override {
    std::lock_guard lock(mutex_);
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    deadline_ = std::chrono::steady_clock::now() + kLimit;
    armed_ = true;
    cv_.notify_one();
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard lock(mutex_);
    armed_ = false;
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr, "\nwatchdog: %s is still running after %lld s; aborting\n", name_.c_str(),
                     static_cast<long long>(kLimit.count()));
        std::fflush(stderr);
        std::abort();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::string name_;
  std::chrono::steady_clock::time_point deadline_{};
  bool armed_ = false;
  bool quit_ = false;
  std::thread thread_;
};

// Registered before gtest_main runs the tests; googletest owns (and deletes) the listener.
const bool kRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new TestWatchdog);
  return true;
}();

}  // namespace

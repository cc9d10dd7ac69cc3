// pushpoll/detail/deadline.hpp — a point in time a wait gives up at, with "never" and saturation.
//
// Not part of the public API. Every timeout in pushpoll is a std::chrono::nanoseconds where a
// negative value means "no timeout"; the largest value means "practically forever" too: adding it
// to now() would overflow, so the sum saturates instead.
#pragma once
#include <chrono>

namespace pushpoll::detail {

class Deadline {
 public:
  using clock = std::chrono::steady_clock;

  /// `timeout` from now; negative: never.
  [[nodiscard]] static Deadline after(std::chrono::nanoseconds timeout) noexcept {
    return after(timeout, clock::now());
  }
  [[nodiscard]] static Deadline after(std::chrono::nanoseconds timeout, clock::time_point now) noexcept {
    if (timeout.count() < 0) return Deadline{};
    const auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::time_point::max() - now);
    return Deadline{timeout >= room ? clock::time_point::max() : now + timeout};
  }
  [[nodiscard]] static Deadline never() noexcept { return Deadline{}; }

  [[nodiscard]] bool forever() const noexcept { return at_ == clock::time_point::max(); }
  [[nodiscard]] bool passed(clock::time_point now = clock::now()) const noexcept {
    return !forever() && now >= at_;
  }
  [[nodiscard]] clock::time_point at() const noexcept { return at_; }
  /// Time left (zero once passed); negative when never.
  [[nodiscard]] std::chrono::nanoseconds left(clock::time_point now = clock::now()) const noexcept {
    if (forever()) return std::chrono::nanoseconds(-1);
    return now >= at_ ? std::chrono::nanoseconds(0)
                      : std::chrono::duration_cast<std::chrono::nanoseconds>(at_ - now);
  }

 private:
  Deadline() noexcept : at_(clock::time_point::max()) {}
  explicit Deadline(clock::time_point at) noexcept : at_(at) {}
  clock::time_point at_;
};

}  // namespace pushpoll::detail

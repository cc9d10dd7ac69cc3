// pushpoll/wake_group.hpp — subscribers served by one thread share one eventfd.
//
// The notifier writes each distinct eventfd once per round, so waking 1,000 parked subscribers
// hosted on 2 threads costs 2 writes. The group tells its thread which members have news.
// Thread-safety: not thread-safe; one serving thread ([owner]).
//
//   pushpoll::WakeGroup group(hub);
//   for (auto& s : subs) group.add(s);           // ids 0, 1, 2, ...
//   for (;;) for (std::uint32_t id : group.wait(1s)) for (auto& m : subs[id].poll()) use(m);
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pushpoll/detail/cursor.hpp"
#include "pushpoll/detail/notifier.hpp"

namespace pushpoll {

class Hub;
class Subscriber;
class Topic;

class WakeGroup {
 public:
  /// A group for subscribers of `hub`'s topics.
  explicit WakeGroup(Hub& hub);
  /// A group for subscribers of the topics that share `topic`'s notifier: its hub's, or, for a
  /// topic of another process (pushpoll/remote.hpp), the topics of that connection.
  explicit WakeGroup(Topic& topic);
  /// Internal: a group whose eventfd comes from `notifier`.
  explicit WakeGroup(std::shared_ptr<detail::Notifier> notifier);
  WakeGroup(const WakeGroup&) = delete;
  WakeGroup& operator=(const WakeGroup&) = delete;
  /// Members still in the group leave it (they get their own eventfd back on next use).
  ~WakeGroup();

  /// Adds a subscriber; returns its id in the group (0, 1, 2, ...). From now on it is armed and
  /// woken through the group (its own wait() throws; its fd() is the group's).
  std::uint32_t add(Subscriber& subscriber);
  /// Takes a subscriber out of the group.
  void remove(Subscriber& subscriber) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return members_.size() - free_.size(); }
  /// The group's eventfd, for an external event loop (then call ready() after readiness).
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// Arms every member. Returns at once the ids of members with unread messages if there are any;
  /// otherwise blocks until pushed (returns the ids of the members pushed) or the timeout passes
  /// (returns an empty list). Negative timeout: no timeout. A zero timeout arms every member and
  /// returns at once: the way to arm a group for an external event loop watching fd(). A member
  /// whose topic is closed and fully read is never reported; once every member is, throws Closed
  /// (as Subscriber::wait() does for one). Throws Error for a wait without timeout on an empty group.
  [[nodiscard]] std::span<const std::uint32_t> wait(std::chrono::nanoseconds timeout);
  /// After fd() became readable in an external loop: drains it and returns the ids pushed.
  [[nodiscard]] std::span<const std::uint32_t> ready();

 private:
  friend class Subscriber;
  std::shared_ptr<detail::Notifier> notifier_;
  int fd_ = -1;
  std::vector<detail::SubscriberCore*> members_;  // by id; nullptr for a free id
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> ready_;
};

}  // namespace pushpoll

// pushpoll/subscriber.hpp — a cursor on a topic: polls batches in place, and parks until pushed.
//
// Thread-safety: [owner] for every method (one thread at a time; a Subscriber may move between
// threads). Lifetimes: a Subscriber keeps its topic's memory alive (it may outlive the Hub and then
// sees Closed). A Batch may outlive its Subscriber (it is then reported as not intact). Destroying
// a Subscriber while another thread is blocked in its wait() breaks [owner]; it is still caught:
// the waiter wakes and throws Closed, and the destructor returns once the waiter has left.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pushpoll/detail/cursor.hpp"
#include "pushpoll/message.hpp"
#include "pushpoll/wake.hpp"

namespace pushpoll {

class Topic;
class WakeGroup;

/// A cursor on a topic. Move-only; unsubscribes on destruction. [owner] for every method.
class Subscriber {
 public:
  Subscriber() = default;
  Subscriber(Subscriber&&) noexcept = default;
  Subscriber& operator=(Subscriber&& other) noexcept;
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber() { unsubscribe(); }

  /// Up to `max_messages` messages (matching the tag mask) from the cursor, in place; never waits;
  /// may be empty. Releases the outstanding batch first. The cursor advances when the batch is
  /// released. An empty poll reads one cache line that publishers write (the commit mark at the
  /// cursor) and writes nothing shared: spinning on poll() costs publishers nothing more.
  [[nodiscard]] Batch poll(std::size_t max_messages = 1024);
  /// Next seq this subscriber will read.
  [[nodiscard]] std::uint64_t cursor() const noexcept { return core_->cursor; }
  /// Messages published but not yet read (all tags). A hint: the head moves on concurrently.
  [[nodiscard]] std::uint64_t lag() const noexcept;
  [[nodiscard]] std::uint64_t tag_mask() const noexcept { return core_->tag_mask; }
  [[nodiscard]] Topic& topic() const noexcept { return *core_->topic; }
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  /// Leaves the topic (the destructor does it too). Idempotent.
  void unsubscribe() noexcept;

  // ---- wake-ups (docs/DESIGN.md, "Wake-ups") ----
  /// The subscriber's eventfd (non-blocking, close-on-exec), for epoll, io_uring or asyncio. It
  /// becomes readable once after arm() returned true and a matching message was published. Treat
  /// readiness as a hint: drain happens in the next poll()/arm(); the cursor is the truth.
  /// For a member of a WakeGroup, the group's eventfd. Throws Error when out of file descriptors.
  [[nodiscard]] int fd();
  /// "Wake me": returns false if unread matching messages exist already (poll instead); true if
  /// the next matching publish will write fd() once. Releases the outstanding batch, drains fd().
  /// Messages the tag mask skips are consumed (the cursor moves past them).
  ///
  /// Happens-before contract: if arm() returns true, every message that becomes visible at the
  /// cursor after arm()'s re-check makes the publisher that made it visible (its committer, a later
  /// committer, or whoever expired a claim in its way) see the arming and call the notifier, which
  /// writes fd() once. The only correct loop: poll until empty, arm(), and on false poll again; on
  /// true, block on fd() (or wait()), then poll. A wake-up is a hint; the cursor is the truth.
  bool arm();
  /// Arms, re-checks and blocks until pushed (true) or the timeout passes (false; negative: no
  /// timeout). True at once when matching messages are waiting. After the topic is closed: true
  /// while unread messages remain, then throws Closed. Honours WaitOptions (spin, min_interval).
  bool wait(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1));
  /// arm() for many subscribers served by the calling thread (each [owner]), behind one heavy
  /// barrier instead of one each: the way for an event loop with one eventfd per subscriber to
  /// park. Clears `ready`, then lists the indices of the subscribers that have unread matching
  /// messages (poll them; they are not armed); returns true when every subscriber is armed.
  static bool arm_all(std::span<Subscriber* const> subscribers, std::vector<std::size_t>& ready);
  /// poll(); if empty, wait(timeout) and poll again.
  [[nodiscard]] Batch poll_wait(std::size_t max_messages, std::chrono::nanoseconds timeout);
  void set_wait_options(const WaitOptions& options) noexcept { core_->wait_options = options; }
  [[nodiscard]] const WaitOptions& wait_options() const noexcept { return core_->wait_options; }
  /// The earliest time wait() returns a wake-up under WaitOptions::min_interval: the last wake-up
  /// it returned plus the interval (the clock's epoch when no limit applies). For a caller that
  /// waits in slices of its own, as the Python binding does.
  [[nodiscard]] std::chrono::steady_clock::time_point next_wake_at() const noexcept {
    const detail::SubscriberCore& c = *core_;
    if (c.wait_options.min_interval.count() <= 0 || c.last_wake == std::chrono::steady_clock::time_point{}) {
      return {};
    }
    return c.last_wake + c.wait_options.min_interval;
  }

 private:
  friend class Topic;
  friend class WakeGroup;
  explicit Subscriber(std::unique_ptr<detail::SubscriberCore> core) noexcept : core_(std::move(core)) {}
  /// Unread messages that match the tag mask? Consumes the ones it does not match.
  bool has_matching();
  /// Ends an arming that found messages (or timed out); drains if the notifier already won.
  void disarm() noexcept;
  /// Clears a notified state: drains the subscriber's own eventfd (no syscall if never written).
  void take_notification() noexcept;
  /// Detached or lapped: moves the cursor to the oldest retained message; returns the gap.
  std::uint64_t resync();
  std::unique_ptr<detail::SubscriberCore> core_;
};

// ---------------------------------------------------------------------------------------------
// The read path, inline.

inline Batch Subscriber::poll(std::size_t max_messages) {
  auto& c = *core_;
  c.release_outstanding();
  // Relaxed: our own slot; a notification seen late is drained by the next poll or arm.
  if (c.own_slot().wake.load(std::memory_order_relaxed) == detail::kWakeNotified) take_notification();
  Batch b;
  b.ring_ = c.ring;
  b.tag_mask_ = c.tag_mask;
  b.max_message_ = c.max_message;
  for (;;) {
    if (c.gapped()) [[unlikely]] b.gap_ += resync();
    const std::uint64_t from = c.cursor;
    std::uint64_t records = 0, matched = 0;
    if (c.tag_mask == kAllTags) {
      // The committed run from the cursor. Below the readers' hint another scan acquired the marks
      // already (acquire: pairs with its release); past it, acquire each mark (SYNC(commit)).
      const std::uint64_t known = c.ring.state().visible_hint.load(std::memory_order_acquire);
      if (known > from) records = known - from < max_messages ? known - from : max_messages;
      const std::uint64_t scanned_from = records;
      while (records < max_messages && c.ring.done(from + records)) ++records;
      if (records != scanned_from && !c.read_only) c.ring.raise_visible_hint(from + records);
      matched = records;
    } else {
      detail::MessageWalk walk(c.ring, from, c.max_message);
      detail::RecordView r;
      while (matched < max_messages && walk.next(r)) {
        ++records;
        if (detail::accepts(c.tag_mask, r.tag)) ++matched;
      }
    }
    if (records == 0) {
      // Nothing read, nothing to validate. An uncommitted claim in the way is timed (and expired
      // after claim_timeout) off the hot path.
      if (c.held_up() && c.held_back()) [[unlikely]] continue;
      break;
    }
    // Validate the scan: if the writers retired past the cursor meanwhile, the marks and tags it
    // read may be from a later lap.
    if (c.ring.overtaken(from)) [[unlikely]] continue;
    b.begin_seq_ = from;
    b.records_ = records;
    b.matched_ = matched;
    c.outstanding = true;
    ++c.generation;
    c.out_begin = from;
    c.out_end = from + records;
    ++c.live_batches;
    b.owner_ = &c;
    b.generation_ = c.generation;
    b.released_ = false;
    return b;
  }
  b.begin_seq_ = c.cursor;
  return b;
}

}  // namespace pushpoll

// pushpoll/detail/cursor.hpp — a subscriber's private state: its cursor, its outstanding batch, its
// wake-up settings. Heap-allocated and owned by the Subscriber handle, so that Batch handles survive
// moves of the Subscriber; kept alive past the Subscriber while a Batch still points at it.
//
// Not part of the public API.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>

#include "pushpoll/detail/ring.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/wake.hpp"

namespace pushpoll {
class Topic;
class WakeGroup;
namespace detail {

// Cache-line aligned (and so padded to whole lines): the subscriber writes it on every poll, and a
// neighbour on the heap sharing one of its lines (another thread's data) would pay for each write.
struct alignas(kCacheLine) SubscriberCore {
  Topic* topic = nullptr;
  std::shared_ptr<Topic> keep;  // the topic (and its region) outlive the hub while subscribed
  RingView ring;
  std::uint32_t max_message = 0;
  std::uint32_t slot = 0;       // its index in the topic's slot table (the armed set names it)
  // Where its slot lives: the topic's table, or `private_slot` for a subscriber of a topic mapped
  // read-only from another process (nobody gates on it there; docs/DESIGN.md, "Other processes").
  SubscriberSlot* slot_ptr = nullptr;
  std::unique_ptr<SubscriberSlot> private_slot;
  bool read_only = false;       // the region is mapped read-only: write nothing shared
  std::uint64_t tag_mask = kAllTags;
  std::uint64_t cursor = 0;  // the next seq to read
  // The outstanding batch, if any: [out_begin, out_end).
  bool outstanding = false;
  std::uint64_t generation = 0;
  std::uint64_t out_begin = 0, out_end = 0;
  // Result of the most recent release, for a Batch handle released after its subscriber re-polled.
  std::uint64_t released_generation = 0;
  bool released_intact = true;
  // Batch handles alive. A subscriber destroyed while some are leaves this core to the last of
  // them (`orphaned`), so that a Batch outliving its Subscriber stays safe to release.
  std::int32_t live_batches = 0;
  bool orphaned = false;
  // The uncommitted claim this subscriber found in its way, and since when (claim expiry).
  std::uint64_t held_seq = ~std::uint64_t{0};
  std::chrono::steady_clock::time_point held_since{};
  // Wake-ups.
  int own_fd = -1;               // this subscriber's eventfd, opened on first use
  WakeGroup* group = nullptr;    // when it is woken through a group's eventfd instead
  std::uint32_t group_id = 0;    // its id in that group
  WaitOptions wait_options{};
  std::chrono::steady_clock::time_point last_wake{};
  // A thread destroying the Subscriber while another waits on it (against [owner], but a
  // use-after-free is a poor answer): the destroyer raises `leaving`, wakes the waiter and waits
  // for `waiters` to drop to 0; the waiter throws Closed. Only wait() touches them, once per call.
  std::atomic<std::uint32_t> waiters{0};
  std::atomic<std::uint32_t> leaving{0};

  [[nodiscard]] SubscriberSlot& own_slot() const noexcept { return *slot_ptr; }

  /// Validates and releases the outstanding batch; returns whether it stayed intact.
  bool release_outstanding() noexcept {
    if (!outstanding) return true;
    outstanding = false;
    // If anything read from the batch was written by a later lap, that writer claimed after the
    // retire point passed the batch, and overtaken() sees it.
    const bool intact = !ring.overtaken(out_begin);
    cursor = out_end;
    // Release: our reads of the batch happen-before the retirer's acquire of the cursor, and so
    // before any writer reuses these bytes and entries (Overflow::block).
    own_slot().cursor_seq.store(out_end, std::memory_order_release);
    released_generation = generation;
    released_intact = intact;
    return intact;
  }
  /// Whether messages were lost before the cursor (the slot was detached, or the writers lapped
  /// it): the next poll resyncs and reports the gap. Relaxed state load: a detach seen late is
  /// seen by the next look; acquire on the retire point: pairs with SYNC(retire).
  [[nodiscard]] bool gapped() const noexcept {
    return own_slot().state.load(std::memory_order_relaxed) == kSlotDetached ||
           ring.state().retire_seq.load(std::memory_order_acquire) > cursor;
  }
  /// The message at the cursor is not done but the next one is: an uncommitted claim holds this
  /// subscriber back. Cheap: the two entries share a cache line, or the check is skipped.
  [[nodiscard]] bool held_up() const noexcept {
    const std::uint64_t next = cursor + 1;
    return (next & 3) != 0 && ring.done(next);
  }
  /// The message at the cursor is claimed but not done. Reads the producers' claim line: not for
  /// the spinning path.
  [[nodiscard]] bool claim_pending() const noexcept {
    // Relaxed: a hint; unpacked against the cursor, which is at most an index behind the claim.
    return claim_seq(ring.state().claim.load(std::memory_order_relaxed), cursor) > cursor;
  }
  /// Called when an uncommitted claim holds the cursor: keeps the time, and once the claim has held
  /// this subscriber for claim_timeout, turns it into an aborted message. True if it did (the
  /// cursor's message is done now). Defined in subscriber.cpp.
  bool held_back() noexcept;
};

}  // namespace detail
}  // namespace pushpoll

// Making room: retiring old records, gating on the slowest subscriber, detaching stalled ones, and
// expiring a claim that holds the ring back. Runs only when a claim finds the ring full (once per
// retire_chunk bytes), never on the fast path. docs/DESIGN.md, "Room".
#include <algorithm>
#include <thread>

#include "pushpoll/topic.hpp"

namespace pushpoll {

using detail::kSlotAttached;
using detail::kSlotDetached;

namespace {

void backoff(unsigned& round) {
  ++round;
  if (round < 64) {
    detail::cpu_relax();
  } else if (round < 128) {
    std::this_thread::yield();
  } else {
    const unsigned shift = std::min(round - 128, 10u);
    std::this_thread::sleep_for(std::chrono::microseconds(1u << shift));  // up to ~1 ms
  }
}

std::int64_t ticks(std::chrono::steady_clock::time_point t) { return t.time_since_epoch().count(); }

}  // namespace

bool Topic::make_room(std::uint64_t end_pos, std::uint64_t end_seq, Wait wait, detail::RoomWait& room) {
  using clock = std::chrono::steady_clock;
  auto& s = ring_.state();
  const std::uint64_t cap = ring_.capacity();
  const std::uint64_t entries = ring_.index_size();
  for (;;) {
    check_open();
    // Acquire: as in reserve().
    if (end_pos <= s.retire_pos.load(std::memory_order_acquire) + cap &&
        end_seq <= s.retire_seq.load(std::memory_order_acquire) + entries) {
      return true;
    }
    std::uint32_t idle = 0;
    // SYNC(attach): seq_cst RMW, ordered before the slot loads in gate(); a subscriber stores its
    // slot, then loads `retiring`: one of the two sees the other.
    if (!s.retiring.compare_exchange_strong(idle, 1, std::memory_order_seq_cst)) {
      // Someone else is retiring; it finishes in a bounded walk, unless it was preempted: back off
      // rather than burn the time slice it needs.
      unsigned spin = 0;
      // Acquire: pairs with its release store of 0; its retire point is then visible.
      while (s.retiring.load(std::memory_order_acquire) != 0) backoff(spin);
      continue;
    }
    std::uint64_t held = 0;
    const Retired result = retire(end_pos, end_seq, held);
    // Release: a subscriber that acquires retiring == 0 sees the retire point stored before.
    s.retiring.store(0, std::memory_order_release);
    if (result == Retired::enough) return true;
    const auto now = clock::now();
    if (result == Retired::held && options_.claim_timeout.count() > 0) {
      // An uncommitted claim holds the ring: time it, and once it has held us for claim_timeout
      // turn it into an aborted message (Aeron's "publication unblock").
      if (room.held_seq != held) {
        room.held_seq = held;
        room.held_since = now;
      } else if (now - room.held_since >= options_.claim_timeout) {
        expire(held);
        continue;
      }
    }
    // Relaxed, the counters here and in retire(): statistics.
    if (wait == Wait::no) {
      s.full_timeouts.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (!room.waiting) {
      room.waiting = true;
      room.deadline = detail::Deadline::after(options_.publish_timeout, now);
      // Waiting for subscribers to make room, or for a claim in progress at the oldest end of the
      // ring (its producer preempted: overwrite mode too must not write over it).
      (result == Retired::held ? s.held_waits : s.full_waits).fetch_add(1, std::memory_order_relaxed);
    } else if (room.deadline.passed(now)) {
      s.full_timeouts.fetch_add(1, std::memory_order_relaxed);
      throw Full("pushpoll: topic '" + name_ + "' stayed full for publish_timeout (" +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    options_.publish_timeout).count()) +
                 " ms): a subscriber is not keeping up");
    }
    if (room.interrupted != nullptr && now >= room.next_check) {
      room.next_check = now + std::chrono::milliseconds(50);
      if ((*room.interrupted)()) {
        throw Interrupted("pushpoll: a publish waiting for room on topic '" + name_ + "' was interrupted");
      }
    }
    backoff(room.backoff);
  }
}

Topic::Retired Topic::retire(std::uint64_t end_pos, std::uint64_t end_seq, std::uint64_t& held_seq) {
  auto& s = ring_.state();
  const std::uint64_t cap = ring_.capacity();
  const std::uint64_t entries = ring_.index_size();
  s.retire_walks.fetch_add(1, std::memory_order_relaxed);
  // Free a chunk beyond what this claim needs, so that one walk serves many claims.
  const std::uint64_t want_pos = (end_pos > cap ? end_pos - cap : 0) + s.retire_chunk;
  const std::uint64_t want_seq = (end_seq > entries ? end_seq - entries : 0) + entries / 16;
  // Relaxed: only the retirer (this thread, holding `retiring`) writes the retire point.
  const std::uint64_t old_q = s.retire_seq.load(std::memory_order_relaxed);
  const std::uint64_t old_r = s.retire_pos.load(std::memory_order_relaxed);
  std::uint64_t q = old_q, r = old_r;
  Retired why = Retired::enough;
  for (int pass = 0; pass < 2; ++pass) {
    const std::uint64_t limit = overwrite_ ? ~std::uint64_t{0} : gate();
    why = walk_index(q, r, want_pos, want_seq, limit, held_seq);
    const bool enough = end_pos <= r + cap && end_seq <= q + entries;
    if (enough || why != Retired::gated) {
      if (enough) s.stall_since.store(0, std::memory_order_relaxed);  // relaxed: under `retiring`
      why = enough ? Retired::enough : why == Retired::frontier ? Retired::gated : why;
      break;
    }
    // Full against the slowest cursor. Relaxed: stall_since is only touched here, under
    // `retiring`, whose RMW and release store order it between retirers.
    const std::int64_t now = ticks(std::chrono::steady_clock::now());
    const std::int64_t since = s.stall_since.load(std::memory_order_relaxed);
    if (since == 0) {
      begin_stall(now);
      break;
    }
    if (std::chrono::steady_clock::duration(now - since) < options_.stall_timeout || pass == 1) break;
    detach_stalled(since);
  }
  if (q != old_q || r != old_r) {
    // SYNC(retire): seq_cst stores; claimers acquire them before writing below them, and
    // subscribers attaching load them after storing their slot.
    s.retire_pos.store(r, std::memory_order_seq_cst);
    s.retire_seq.store(q, std::memory_order_seq_cst);
  }
  return why;
}

Topic::Retired Topic::walk_index(std::uint64_t& q, std::uint64_t& r, std::uint64_t want_pos,
                                 std::uint64_t want_seq, std::uint64_t limit, std::uint64_t& held_seq) {
  auto& s = ring_.state();
  // Walk the index only (the ring is not touched): each entry gives where its payload starts and
  // how long it is, so retiring message q frees every byte up to the end of q's payload.
  while (r < want_pos || q < want_seq) {
    // Acquire: pairs with SYNC(commit); the message is complete, and our read of its entry
    // happens-before the retire point's store, so before anyone reuses the entry.
    const std::uint64_t word = ring_.entry(q).word.load(std::memory_order_acquire);
    // Relaxed: the claim word only tells a claim in progress from the frontier; unpacked against
    // q, which is at most an index behind it.
    const auto claimed_not_done = [&] {
      return !detail::entry_done(word, q) && detail::claim_seq(s.claim.load(std::memory_order_relaxed), q) != q;
    };
    if (q >= limit) {
      // The slowest subscriber waits at q. When q is a claim in progress, that claim holds it
      // (nobody reads past an uncommitted message): the ring is held, not gated, and the claim
      // expires after claim_timeout instead of the subscribers being detached after stall_timeout.
      if (q == limit && claimed_not_done()) {
        held_seq = q;
        return Retired::held;
      }
      return Retired::gated;
    }
    if (!detail::entry_done(word, q)) {
      if (claimed_not_done()) {
        held_seq = q;
        return Retired::held;
      }
      const std::uint64_t w = s.claim.load(std::memory_order_relaxed);
      // The frontier: everything claimed is retired, so are all bytes claimed so far (some of
      // them belonged to expired claims, which left no position). Nothing left to retire.
      r = std::max(r, detail::claim_pos(w, r));
      return Retired::frontier;
    }
    if (!(word & detail::kEntryNoPos)) {
      // Relaxed: ordered after the acquire of the mark. Unpacked against r, at most a ring
      // behind the payload.
      const std::uint64_t info = ring_.entry(q).info.load(std::memory_order_relaxed);
      r = std::max(r, detail::info_pos(info, r) + detail::record_bytes(detail::info_size(info)));
    }
    ++q;
  }
  return Retired::enough;
}

void Topic::begin_stall(std::int64_t now) noexcept {
  // A stall begins: remember the frontier and every attached cursor, to tell later who had
  // something to read and made no progress. Relaxed stores: stall_* are only touched under
  // `retiring`. seq_cst loads, as the scan in gate().
  auto& s = ring_.state();
  s.stall_since.store(now, std::memory_order_relaxed);
  s.stall_head.store(head(), std::memory_order_relaxed);
  const std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
  for (std::uint32_t i = 0; i < high; ++i) {
    auto& slot = ring_.slot(i);
    slot.stall_cursor.store(slot.cursor_seq.load(std::memory_order_seq_cst), std::memory_order_relaxed);
  }
  // A seat's cursor as gate() counts it (clamped to the retire point; relaxed: the retirer, us,
  // is its only writer).
  const std::uint64_t oldest = s.retire_seq.load(std::memory_order_relaxed);
  for_each_seat([oldest](Seat& seat, detail::SubscriberSlot& slot) {
    seat.stall_cursor = std::max(slot.cursor_seq.load(std::memory_order_seq_cst), oldest);
  });
}

void Topic::detach_stalled(std::int64_t since) noexcept {
  // Detach, in one go, every subscriber that had messages to read when the stall began and has
  // made no progress since (and that attached before it: one that attached since has not
  // stalled): it stops gating, and its next poll reports what it missed. seq_cst, as the scan in
  // gate(); the CAS races only with the subscriber itself (unsubscribe, or re-attach after a
  // detach), and one of the two wins. Relaxed stall_*: only touched under `retiring`.
  auto& s = ring_.state();
  const std::uint64_t stall_head = s.stall_head.load(std::memory_order_relaxed);
  const std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
  for (std::uint32_t i = 0; i < high; ++i) {
    auto& slot = ring_.slot(i);
    std::uint32_t attached = kSlotAttached;
    const std::uint64_t then = slot.stall_cursor.load(std::memory_order_relaxed);
    if (then < stall_head && slot.cursor_seq.load(std::memory_order_seq_cst) == then &&
        slot.attached_at.load(std::memory_order_relaxed) <= since &&
        slot.state.compare_exchange_strong(attached, kSlotDetached, std::memory_order_seq_cst)) {
      s.detaches.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    }
  }
  // A seat's attach time is not trusted (its process writes the slot), and neither is a cursor
  // that merely changes: one whose cursor, as gate() counts it, is not past where it was when the
  // stall began is detached, however recently it says it attached. Relaxed: as in begin_stall().
  const std::uint64_t oldest = s.retire_seq.load(std::memory_order_relaxed);
  for_each_seat([&](Seat& seat, detail::SubscriberSlot& slot) {
    std::uint32_t attached = kSlotAttached;
    if (seat.stall_cursor < stall_head &&
        std::max(slot.cursor_seq.load(std::memory_order_seq_cst), oldest) <= seat.stall_cursor &&
        slot.state.compare_exchange_strong(attached, kSlotDetached, std::memory_order_seq_cst)) {
      s.detaches.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    }
  });
  // The next stall, if any, starts its own clock.
  s.stall_since.store(0, std::memory_order_relaxed);
}

std::uint64_t Topic::gate() noexcept {
  auto& s = ring_.state();
  s.gate_scans.fetch_add(1, std::memory_order_relaxed);
  // seq_cst loads: the second half of SYNC(attach), after our seq_cst RMW of `retiring`.
  const std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
  std::uint64_t gate = ~std::uint64_t{0};
  for (std::uint32_t i = 0; i < high; ++i) {
    auto& slot = ring_.slot(i);
    if (slot.state.load(std::memory_order_seq_cst) != kSlotAttached) continue;
    gate = std::min(gate, slot.cursor_seq.load(std::memory_order_seq_cst));
  }
  // A seat's cursor is untrusted. An attached subscriber's cursor is never behind the retire
  // point (attach() and gating keep it there), so one that is has nothing retained to protect:
  // it holds nothing (its next poll reports a gap). One past what was claimed holds nothing
  // either. Both are counted (TopicStats::clamped_cursors). Relaxed retire point: the retirer (us)
  // is its only writer; relaxed claim word: a bound for the report only.
  const std::uint64_t oldest = s.retire_seq.load(std::memory_order_relaxed);
  const std::uint64_t claimed = detail::claim_seq(s.claim.load(std::memory_order_relaxed), oldest);
  for_each_seat([&](Seat&, detail::SubscriberSlot& slot) {
    if (slot.state.load(std::memory_order_seq_cst) != kSlotAttached) return;
    const std::uint64_t cursor = slot.cursor_seq.load(std::memory_order_seq_cst);
    if (cursor < oldest || cursor > claimed) s.clamped.fetch_add(1, std::memory_order_relaxed);  // statistics
    if (cursor >= oldest) gate = std::min(gate, cursor);
  });
  return gate;
}

}  // namespace pushpoll

// Subscribing and leaving, attaching safely against a retirer, resynchronising a lapped or detached
// subscriber, and timing a claim that holds a reader back. Arming and waiting are in wake.cpp.
#include <cassert>
#include <chrono>
#include <thread>

#include "pushpoll/topic.hpp"

namespace pushpoll {

using detail::kSlotAttached;
using detail::kSlotFree;
using detail::kSlotReserved;

bool Topic::attach(detail::SubscriberSlot& slot, std::uint64_t seq) noexcept {
  auto& s = ring_.state();
  // SYNC(attach): store the cursor and the state, then load `retiring` and the retire point (all
  // seq_cst). A retirer takes `retiring` (seq_cst RMW) before scanning slots: either it sees this
  // slot and keeps its records, or we see its new retire point and start again.
  // Relaxed: published by the seq_cst store of cursor_seq below (see SubscriberSlot::attached_at).
  slot.attached_at.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_relaxed);
  slot.cursor_seq.store(seq, std::memory_order_seq_cst);
  slot.state.store(kSlotAttached, std::memory_order_seq_cst);
  if (!read_only_) {
    while (s.retiring.load(std::memory_order_seq_cst) != 0) detail::cpu_relax();
  } else if (owner_) {
    // A seat in another process's topic: the same handshake, but that process may have died
    // mid-walk and never let go. Past a bound, go on: no retirer runs then, or one that missed
    // this seat overtakes the cursor, which the next poll reports as a gap (never a torn read).
    for (int round = 0; round < 20000 && s.retiring.load(std::memory_order_seq_cst) != 0; ++round) {
      std::this_thread::yield();
    }
  }
  // (A private slot gates nobody: there is no retirer to wait for, only the retire point.)
  return s.retire_seq.load(std::memory_order_seq_cst) <= seq;
}

std::uint32_t Topic::take_slot() {
  auto& s = ring_.state();
  // Find a free slot, starting where the last one was found.
  const std::uint32_t n = options_.max_subscribers;
  std::uint32_t index = n;
  const std::uint32_t hint = slot_hint_.load(std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint32_t i = (hint + k) % n;
    std::uint32_t expected = kSlotFree;
    // Relaxed probe, acquire CAS: pairs with the release store of kSlotFree in unsubscribe(), so
    // the previous owner is done with the slot.
    if (ring_.slot(i).state.load(std::memory_order_relaxed) == kSlotFree &&
        ring_.slot(i).state.compare_exchange_strong(expected, kSlotReserved, std::memory_order_acquire)) {
      index = i;
      break;
    }
  }
  if (index == n) {
    throw Error("pushpoll: topic '" + name_ + "' has no free subscriber slot (max_subscribers = " +
                std::to_string(n) + "); raise TopicOptions::max_subscribers");
  }
  // Relaxed: only a hint for the next search.
  slot_hint_.store((index + 1) % n, std::memory_order_relaxed);
  // seq_cst CAS: the scan bound must be visible to a retirer no later than the slot (SYNC(attach)).
  std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
  while (high < index + 1 &&
         !s.slot_high.compare_exchange_weak(high, index + 1, std::memory_order_seq_cst)) {
  }
  return index;
}

Subscriber Topic::subscribe(Start start, std::uint64_t tag_mask) {
  check_open();
  if (tag_mask == 0) throw Error("pushpoll: a tag mask of 0 would never receive anything");
  auto core = std::make_unique<detail::SubscriberCore>();
  if (read_only_) {
    core->read_only = true;
    if (owner_) {
      core->slot_ptr = owner_->take_seat(*this);
    } else {
      core->private_slot = std::make_unique<detail::SubscriberSlot>();
      core->slot_ptr = core->private_slot.get();
    }
  } else {
    core->slot = take_slot();
    core->slot_ptr = &ring_.slot(core->slot);
  }
  detail::SubscriberSlot& slot = *core->slot_ptr;
  // Relaxed: published to the notifier by the seq_cst RMWs of the first arming.
  slot.tag_mask.store(tag_mask, std::memory_order_relaxed);
  slot.fd.store(-1, std::memory_order_relaxed);
  slot.wake.store(detail::kWakeIdle, std::memory_order_relaxed);
  std::uint64_t seq = 0;
  switch (start.kind()) {
    case Start::Kind::oldest:
      do {
        seq = oldest();
      } while (!attach(slot, seq));
      break;
    case Start::Kind::latest:
      // The frontier is never retired (a retirer stops at the first message not done), so this
      // attaches at once unless the frontier moves on meanwhile.
      do {
        seq = head();
      } while (!attach(slot, seq));
      break;
    case Start::Kind::resume:
      seq = start.seq();
      if (seq > head()) {
        const std::uint64_t hi = head();
        // Release: hands the slot back (pairs with the acquire CAS in take_slot()).
        slot.state.store(kSlotFree, std::memory_order_release);
        if (read_only_ && !core->private_slot) owner_->return_seat(*this, &slot);
        throw InvalidCursor("pushpoll: cursor " + std::to_string(seq) + " is past the head " + std::to_string(hi) +
                            " of topic '" + name_ + "'");
      }
      for (;;) {
        const std::uint64_t lo = oldest();
        if (seq >= lo) {
          if (attach(slot, seq)) break;
          continue;
        }
        // Retired meanwhile: gate from the oldest, and keep the old cursor, so that the first
        // poll finds the gap (SubscriberCore::gapped()) and reports it exactly.
        if (attach(slot, lo)) break;
      }
      break;
    case Start::Kind::at:
      seq = start.seq();
      if (seq < oldest() || seq > head() || !attach(slot, seq)) {
        const std::uint64_t lo = oldest(), hi = head();
        // Release: hands the slot back (pairs with the acquire CAS in take_slot()).
        slot.state.store(kSlotFree, std::memory_order_release);
        if (read_only_ && !core->private_slot) owner_->return_seat(*this, &slot);
        throw InvalidCursor("pushpoll: cursor " + std::to_string(seq) + " is outside [oldest " +
                            std::to_string(lo) + ", head " + std::to_string(hi) + "] of topic '" +
                            name_ + "'");
      }
      break;
  }
  core->topic = this;
  core->keep = shared_from_this();
  core->ring = ring_;
  core->max_message = max_message_;
  core->tag_mask = tag_mask;
  core->cursor = seq;
  // Relaxed: statistics.
  if (!read_only_) ring_.state().subscribers.fetch_add(1, std::memory_order_relaxed);
  return Subscriber(std::move(core));
}

void Subscriber::unsubscribe() noexcept {
  if (!core_) return;
  auto& c = *core_;
  // A thread blocked in wait() on this subscriber: wake it (it throws Closed) and let it leave.
  // seq_cst store and load: a Dekker pair with wait()'s increment of `waiters` and its load of
  // `leaving`, so that either we see the waiter or it sees us.
  c.leaving.store(1, std::memory_order_seq_cst);
  if (c.waiters.load(std::memory_order_seq_cst) != 0) {
    if (c.own_fd >= 0) c.topic->notifier_->signal(c.own_fd);
    // Acquire: pairs with the waiter's release decrement; its last access to the core is done.
    while (c.waiters.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }
  c.release_outstanding();
  if (c.group != nullptr) c.group->remove(*this);
  disarm();
  auto& slot = c.own_slot();
  // The notifier may still hold this slot in its armed set: it finds it idle (or free) and drops
  // it. Relaxed: the release store of the state below publishes it.
  slot.fd.store(-1, std::memory_order_relaxed);
  // Release: our reads of the ring happen-before the next owner's acquire CAS of the slot.
  slot.state.store(kSlotFree, std::memory_order_release);
  // Relaxed: statistics.
  if (!c.read_only) c.ring.state().subscribers.fetch_sub(1, std::memory_order_relaxed);
  if (c.read_only && !c.private_slot) c.topic->owner()->return_seat(*c.topic, &slot);
  if (c.own_fd >= 0) {
    // A round that read this fd before the store above may still write it: let it finish before
    // the number can be reused.
    c.topic->quiesce_notifier();
    c.topic->notifier_->close_fd(c.own_fd);
    c.own_fd = -1;
  }
  if (c.live_batches > 0) {
    // A Batch still points here: the last one to go frees the core (Batch::release()).
    c.orphaned = true;
    (void)core_.release();
    return;
  }
  core_.reset();
}

Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
  if (this != &other) {
    unsubscribe();
    core_ = std::move(other.core_);
  }
  return *this;
}

std::uint64_t Subscriber::resync() {
  auto& c = *core_;
  Topic& t = *c.topic;
  auto& s = c.ring.state();
  for (;;) {
    // Acquire: pairs with SYNC(retire).
    const std::uint64_t oldest = s.retire_seq.load(std::memory_order_acquire);
    if (oldest <= c.cursor) {
      // Detached, but nothing it needs was retired yet: gate again from where it is.
      if (t.attach(c.own_slot(), c.cursor)) return 0;
      continue;
    }
    if (!t.attach(c.own_slot(), oldest)) continue;
    const std::uint64_t gap = oldest - c.cursor;
    c.cursor = oldest;
    if (!c.read_only) s.laps.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    return gap;
  }
}

bool detail::SubscriberCore::held_back() noexcept {
  const auto timeout = topic->options().claim_timeout;
  if (timeout.count() <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (held_seq != cursor) {
    held_seq = cursor;
    held_since = now;
    return false;
  }
  if (now - held_since < timeout) return false;
  held_seq = ~std::uint64_t{0};
  // A read-only mapping cannot expire the claim: the owner's readers and retirer do.
  if (read_only) return false;
  return topic->expire(cursor);
}

std::uint64_t Batch::span_bytes() const noexcept {
  // From the first payload with a position to the end of the last one (expired claims have none).
  std::uint64_t first = 0, end = 0;
  bool any = false;
  for (std::uint64_t k = 0; k < records_; ++k) {
    const detail::IndexEntry& e = ring_.entry(begin_seq_ + k);
    // Acquire: pairs with SYNC(commit), as in a walk.
    const std::uint64_t word = e.word.load(std::memory_order_acquire);
    if (!detail::entry_done(word, begin_seq_ + k)) break;  // overwritten (release() says so)
    if (word & detail::kEntryNoPos) continue;
    const std::uint64_t info = e.info.load(std::memory_order_relaxed);
    const std::uint64_t p = detail::info_pos(info, any ? first : ring_.state().retire_pos.load(std::memory_order_acquire));
    if (!any) first = p;
    any = true;
    end = p + detail::record_bytes(detail::info_size(info));
  }
  return any ? end - first : 0;
}

}  // namespace pushpoll

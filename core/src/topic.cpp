// Slow paths of the ring log: construction, making room (retire, gate, detach), subscribing,
// resynchronising a lapped or detached subscriber, batches and claims. docs/DESIGN.md has the
// protocol; the memory order of each shared word is stated in detail/ring.hpp.
#include <algorithm>
#include <cassert>
#include <new>
#include <sstream>
#include <thread>

#include "pushpoll/topic.hpp"

namespace pushpoll {

using detail::kSlotAttached;
using detail::kSlotDetached;
using detail::kSlotFree;
using detail::RecordHeader;
using detail::Reservation;

namespace {
constexpr std::uint32_t kSlotReserved = 3;  // being set up by subscribe(); does not gate yet
constexpr std::size_t kRegionAlign = 4096;

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

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

std::string quote(std::string_view name) { return "'" + std::string(name) + "'"; }
}  // namespace

// ---- options ----------------------------------------------------------------------------------

void TopicOptions::validate() const {
  if (capacity < 4096 || (capacity & (capacity - 1)) != 0) {
    throw Error("pushpoll: capacity " + std::to_string(capacity) +
                " is invalid: it must be a power of two of at least 4096 bytes");
  }
  if (capacity > (std::uint64_t{1} << 40)) {
    throw Error("pushpoll: capacity " + std::to_string(capacity) + " is over the 1 TiB limit");
  }
  if (max_message != 0 && max_message > capacity / 4) {
    throw Error("pushpoll: max_message " + std::to_string(max_message) +
                " is over a quarter of the capacity (" + std::to_string(capacity / 4) + " bytes)");
  }
  if (max_subscribers == 0) throw Error("pushpoll: max_subscribers must be at least 1");
  if (publish_timeout.count() < 0 || stall_timeout.count() < 0) {
    throw Error("pushpoll: publish_timeout and stall_timeout must not be negative");
  }
}

bool TopicOptions::same_as(const TopicOptions& o) const noexcept {
  return capacity == o.capacity && effective_max_message() == o.effective_max_message() &&
         overflow == o.overflow && publish_timeout == o.publish_timeout &&
         stall_timeout == o.stall_timeout && max_subscribers == o.max_subscribers &&
         single_producer == o.single_producer;
}

std::string TopicOptions::describe() const {
  std::ostringstream out;
  out << "capacity=" << capacity << " max_message=" << effective_max_message()
      << " overflow=" << (overflow == Overflow::block ? "block" : "overwrite")
      << " publish_timeout=" << publish_timeout.count() << "ns"
      << " stall_timeout=" << stall_timeout.count() << "ns"
      << " max_subscribers=" << max_subscribers
      << " single_producer=" << (single_producer ? "true" : "false");
  return out.str();
}

void* HeapMemory::allocate(std::size_t bytes, std::size_t alignment) {
  return ::operator new(bytes, std::align_val_t{alignment});
}

void HeapMemory::deallocate(void* region, std::size_t, std::size_t alignment) noexcept {
  ::operator delete(region, std::align_val_t{alignment});
}

// ---- topic lifecycle --------------------------------------------------------------------------

Topic::Topic(std::string name, const TopicOptions& options,
             std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier)
    : name_(std::move(name)),
      options_(options),
      max_message_(options.effective_max_message()),
      memory_(std::move(memory)),
      single_producer_(options.single_producer),
      overwrite_(options.overflow == Overflow::overwrite),
      notifier_(std::move(notifier)),
      asymmetric_(notifier_ != nullptr && notifier_->asymmetric()),
      armed_set_(options.max_subscribers) {
  // The options were validated by Hub::create(), the only caller, before armed_set_ allocated.
  const std::size_t state_bytes = round_up(sizeof(detail::RingState), detail::kCacheLine);
  const std::size_t slots_bytes = sizeof(detail::SubscriberSlot) * options.max_subscribers;
  const std::size_t records_offset = round_up(state_bytes + slots_bytes, kRegionAlign);
  region_bytes_ = records_offset + static_cast<std::size_t>(options.capacity);
  region_ = static_cast<std::byte*>(memory_->allocate(region_bytes_, kRegionAlign));

  auto* state = new (region_) detail::RingState{};
  state->capacity = options.capacity;
  state->mask = options.capacity - 1;
  state->slots_offset = state_bytes;
  state->records_offset = records_offset;
  state->max_message = max_message_;
  state->max_subscribers = options.max_subscribers;
  // Free a sixteenth of the ring at a time: one retire walk (and gate scan) per that many bytes.
  state->retire_chunk = std::max<std::uint64_t>(options.capacity / 16, 256);
  for (std::uint32_t i = 0; i < options.max_subscribers; ++i) {
    new (region_ + state_bytes + i * sizeof(detail::SubscriberSlot)) detail::SubscriberSlot{};
  }
  ring_ = detail::RingView(region_);
}

Topic::~Topic() {
  // Subscribers keep their topic alive; a Claim must not outlive it.
  // Relaxed: every Claim was committed or dropped by threads the destroying thread synchronised
  // with (joined), or the program is already wrong; this only reports it.
  assert(live_handles_.load(std::memory_order_relaxed) == 0 && "a Claim outlived its Hub: commit or drop it first");
  if (notifier_) notifier_->topic_gone(*this);
  memory_->deallocate(region_, region_bytes_, kRegionAlign);
}

void Topic::close() noexcept {
  // seq_cst: a subscriber arming checks `closed` after its seq_cst arming (SYNC(arm)), so that
  // either it sees the close or topic_closed() below sees it armed.
  if (ring_.state().closed.exchange(1, std::memory_order_seq_cst) != 0) return;
  if (notifier_) notifier_->topic_closed(*this);
}

void Topic::quiesce_notifier() noexcept {
  auto& s = ring_.state();
  // seq_cst, as every access to `notifying`: we take the flag as a round would, so no round is
  // running once we hold it; a publisher that finds it taken leaves its tags in pending_tags,
  // which we serve after letting go.
  while (s.notifying.exchange(1, std::memory_order_seq_cst) != 0) std::this_thread::yield();
  s.notifying.store(0, std::memory_order_seq_cst);
  if (notifier_ && s.pending_tags.load(std::memory_order_seq_cst) != 0) notifier_->notify(*this, 0);
}

void Topic::wake(std::uint64_t tag_bits) noexcept {
  if (notifier_) notifier_->notify(*this, tag_bits);
}

void Topic::check_open() const {
  if (closed()) throw Closed("pushpoll: topic " + quote(name_) + " is closed");
}

void Topic::check_size(std::size_t size) const {
  if (size > max_message_) {
    throw MessageTooLarge("pushpoll: message of " + std::to_string(size) +
                          " bytes is over max_message (" + std::to_string(max_message_) +
                          " bytes) of topic " + quote(name_));
  }
}

// ---- making room ------------------------------------------------------------------------------

bool Topic::make_room(std::uint64_t end, Wait wait, std::chrono::steady_clock::time_point& deadline) {
  auto& s = ring_.state();
  const std::uint64_t cap = ring_.capacity();
  bool waited = false;
  unsigned round = 0;
  for (;;) {
    check_open();
    // Acquire: as in reserve().
    if (end <= s.retire_pos.load(std::memory_order_acquire) + cap) return true;
    std::uint32_t idle = 0;
    // SYNC(attach): seq_cst RMW, ordered before the slot loads in retire(); a subscriber stores
    // its slot, then loads `retiring`: one of the two sees the other.
    if (s.retiring.compare_exchange_strong(idle, 1, std::memory_order_seq_cst)) {
      const bool enough = retire(end);
      // Release: a subscriber that acquires retiring == 0 sees the retire_pos stored before.
      s.retiring.store(0, std::memory_order_release);
      if (enough) return true;
    } else {
      // Someone else is retiring; it finishes in a bounded walk, unless it was preempted: back off
      // rather than burn the time slice it needs.
      unsigned spin = 0;
      // Acquire: pairs with its release store of 0; its retire_pos is then visible.
      while (s.retiring.load(std::memory_order_acquire) != 0) backoff(spin);
      continue;
    }
    // Relaxed, the counters here and in retire(): statistics.
    if (wait == Wait::no) {
      s.full_timeouts.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!waited) {
      waited = true;
      deadline = now + options_.publish_timeout;
      s.full_waits.fetch_add(1, std::memory_order_relaxed);
    } else if (now >= deadline) {
      s.full_timeouts.fetch_add(1, std::memory_order_relaxed);
      throw Full("pushpoll: topic " + quote(name_) + " stayed full for publish_timeout (" +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    options_.publish_timeout).count()) +
                 " ms): a subscriber is not keeping up");
    }
    backoff(round);
  }
}

bool Topic::retire(std::uint64_t end) {
  auto& s = ring_.state();
  const std::uint64_t need = end - ring_.capacity();
  s.retire_walks.fetch_add(1, std::memory_order_relaxed);
  // Acquire: pairs with the committers' release of head_pos; records below it are complete.
  std::uint64_t limit = s.head_pos.load(std::memory_order_acquire);
  if (!overwrite_) {
    for (int pass = 0; pass < 2; ++pass) {
      s.gate_scans.fetch_add(1, std::memory_order_relaxed);
      // seq_cst loads: the second half of SYNC(attach), after our seq_cst RMW of `retiring`.
      const std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
      std::uint64_t gate = limit;
      for (std::uint32_t i = 0; i < high; ++i) {
        auto& slot = ring_.slot(i);
        if (slot.state.load(std::memory_order_seq_cst) != kSlotAttached) continue;
        gate = std::min(gate, slot.cursor_pos.load(std::memory_order_seq_cst));
      }
      if (gate >= need) {
        limit = gate;
        break;
      }
      // The ring is full against the slowest cursor. Relaxed: stuck_* are only touched here,
      // under `retiring`, whose RMW and release store order them between retirers.
      const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
      if (s.stuck_gate.load(std::memory_order_relaxed) != gate) {
        s.stuck_gate.store(gate, std::memory_order_relaxed);
        s.stuck_since.store(now, std::memory_order_relaxed);
        limit = gate;
        break;
      }
      const std::int64_t since = s.stuck_since.load(std::memory_order_relaxed);
      const auto stuck_for = std::chrono::steady_clock::duration(now - since);
      // (Pass 1 never gets here, since pass 0 reset stuck_gate; the test keeps the gate a gate even
      // if that changed: never retire past a subscriber that was not detached.)
      if (stuck_for < options_.stall_timeout || pass == 1) {
        limit = gate;
        break;
      }
      // Detach every subscriber that has held the gate here for stall_timeout (attached before
      // the stall began: one that attached at the stuck gate since has not stalled): it stops
      // gating, and its next poll reports what it missed. seq_cst, as the scan above; the CAS races only
      // with the subscriber itself (unsubscribe, or re-attach after a detach), and one of the two
      // wins. The next pass finds stuck_gate reset and starts a new stall clock.
      for (std::uint32_t i = 0; i < high; ++i) {
        auto& slot = ring_.slot(i);
        std::uint32_t attached = kSlotAttached;
        if (slot.cursor_pos.load(std::memory_order_seq_cst) == gate &&
            slot.attached_at.load(std::memory_order_relaxed) <= since &&
            slot.state.compare_exchange_strong(attached, kSlotDetached, std::memory_order_seq_cst)) {
          s.detaches.fetch_add(1, std::memory_order_relaxed);
        }
      }
      s.stuck_gate.store(~std::uint64_t{0}, std::memory_order_relaxed);
    }
  }
  // Relaxed: only the retirer (this thread, holding `retiring`) writes retire_pos and retire_seq.
  const std::uint64_t old = s.retire_pos.load(std::memory_order_relaxed);
  std::uint64_t pos = old;
  std::uint64_t seq = s.retire_seq.load(std::memory_order_relaxed);
  const std::uint64_t want = need + s.retire_chunk;
  std::uint64_t stride = 0;
  while (pos < limit && pos < want) {
    std::uint64_t start;
    pos = ring_.next_message(pos, start, stride);  // complete: pos < limit <= head_pos
    ++seq;
  }
  if (pos != old) {
    // Release, before retire_pos: retire_point() reads the pair (see there).
    s.retire_seq.store(seq, std::memory_order_release);
    // SYNC(retire): seq_cst; claimers acquire it before overwriting below it, and subscribers
    // attaching load it after storing their slot.
    s.retire_pos.store(pos, std::memory_order_seq_cst);
  }
  return pos >= need;
}

// ---- locating records -------------------------------------------------------------------------

void Topic::locate_head(std::uint64_t& seq, std::uint64_t& pos) const noexcept {
  auto& s = ring_.state();
  for (;;) {
    // Acquire: as in RingView::recent_position(), which validates the entry against it.
    const std::uint64_t h = s.head_seq.load(std::memory_order_acquire);
    if (ring_.recent_position(h, pos)) {
      seq = h;
      return;
    }
  }
}

void Topic::retire_point(std::uint64_t& seq, std::uint64_t& pos) const noexcept {
  auto& s = ring_.state();
  for (;;) {
    // The retirer changes the pair only while it holds `retiring`, storing retire_seq (release)
    // before retire_pos. Acquire loads: if we read a new retire_seq with an old retire_pos, the
    // retirer's CAS of `retiring` is visible to the re-check (it is 1, or retire_pos moved).
    if (s.retiring.load(std::memory_order_acquire) != 0) {
      detail::cpu_relax();
      continue;
    }
    const std::uint64_t p = s.retire_pos.load(std::memory_order_acquire);
    const std::uint64_t q = s.retire_seq.load(std::memory_order_acquire);
    if (s.retiring.load(std::memory_order_acquire) == 0 &&
        s.retire_pos.load(std::memory_order_acquire) == p) {
      seq = q;
      pos = p;
      return;
    }
  }
}

bool Topic::locate(std::uint64_t seq, std::uint64_t from_seq, std::uint64_t from_pos,
                   std::uint64_t& pos) const noexcept {
  std::uint64_t hs, hp;
  locate_head(hs, hp);
  if (seq == hs) {
    pos = hp;
    return true;
  }
  if (hs - seq < detail::kRecentPositions - 2 && ring_.recent_position(seq, pos)) return true;
  // Walk from the boundary the caller's slot holds: in block mode nothing from there on is retired
  // while the slot is attached at it.
  std::uint64_t p = from_pos, stride = 0;
  for (std::uint64_t cur = from_seq; cur < seq; ++cur) {
    std::uint64_t start;
    p = ring_.next_message(p, start, stride);
  }
  // Overwrite mode does not gate: validate the walk (read-validate, as in poll()).
  if (ring_.overtaken(from_pos)) return false;
  pos = p;
  return true;
}

std::uint64_t Topic::oldest() const noexcept {
  std::uint64_t seq, pos;
  retire_point(seq, pos);
  return seq;
}

TopicStats Topic::stats() const noexcept {
  auto& s = ring_.state();
  TopicStats out;
  out.head = head();
  out.oldest = oldest();
  // Relaxed: statistics; no ordering with anything else is promised.
  out.bytes_claimed = s.claim_pos.load(std::memory_order_relaxed);
  out.subscribers = s.subscribers.load(std::memory_order_relaxed);
  out.full_waits = s.full_waits.load(std::memory_order_relaxed);
  out.full_timeouts = s.full_timeouts.load(std::memory_order_relaxed);
  out.detaches = s.detaches.load(std::memory_order_relaxed);
  out.laps = s.laps.load(std::memory_order_relaxed);
  out.retire_walks = s.retire_walks.load(std::memory_order_relaxed);
  out.gate_scans = s.gate_scans.load(std::memory_order_relaxed);
  out.aborted = s.aborted.load(std::memory_order_relaxed);
  return out;
}

// ---- subscribing ------------------------------------------------------------------------------

bool Topic::attach(std::uint32_t slot_index, std::uint64_t pos) noexcept {
  auto& s = ring_.state();
  auto& slot = ring_.slot(slot_index);
  // SYNC(attach): store the cursor and the state, then load `retiring` and retire_pos (all
  // seq_cst). A retirer takes `retiring` (seq_cst RMW) before scanning slots: either it sees this
  // slot and keeps its records, or we see its new retire_pos and start again.
  // Relaxed: published by the seq_cst store of cursor_pos below (see SubscriberSlot::attached_at).
  slot.attached_at.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_relaxed);
  slot.cursor_pos.store(pos, std::memory_order_seq_cst);
  slot.state.store(kSlotAttached, std::memory_order_seq_cst);
  while (s.retiring.load(std::memory_order_seq_cst) != 0) detail::cpu_relax();
  return s.retire_pos.load(std::memory_order_seq_cst) <= pos;
}

Subscriber Topic::subscribe(Start start, std::uint64_t tag_mask) {
  check_open();
  if (tag_mask == 0) throw Error("pushpoll: a tag mask of 0 would never receive anything");
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
    throw Error("pushpoll: topic " + quote(name_) + " has no free subscriber slot (max_subscribers = " +
                std::to_string(n) + "); raise TopicOptions::max_subscribers");
  }
  // Relaxed: only a hint for the next search.
  slot_hint_.store((index + 1) % n, std::memory_order_relaxed);
  // seq_cst CAS: the scan bound must be visible to a retirer no later than the slot (SYNC(attach)).
  std::uint32_t high = s.slot_high.load(std::memory_order_seq_cst);
  while (high < index + 1 &&
         !s.slot_high.compare_exchange_weak(high, index + 1, std::memory_order_seq_cst)) {
  }

  auto core = std::make_unique<detail::SubscriberCore>();
  core->topic = this;
  core->keep = shared_from_this();
  {
    auto& slot = ring_.slot(index);
    // Relaxed: published to the notifier by the seq_cst RMWs of the first arming.
    slot.tag_mask.store(tag_mask, std::memory_order_relaxed);
    slot.fd.store(-1, std::memory_order_relaxed);
    slot.wake.store(detail::kWakeIdle, std::memory_order_relaxed);
  }
  core->ring = ring_;
  core->slot = index;
  core->tag_mask = tag_mask;
  std::uint64_t seq = 0, pos = 0;
  switch (start.kind()) {
    case Start::Kind::oldest:
      do {
        retire_point(seq, pos);
      } while (!attach(index, pos));
      break;
    case Start::Kind::latest:
      do {
        locate_head(seq, pos);
      } while (!attach(index, pos));
      break;
    case Start::Kind::at: {
      // Attach at the oldest retained message first: in block mode that keeps everything from
      // there on in place while we look for `seq`; then move the cursor forward to it.
      std::uint64_t oldest_seq, oldest_pos;
      do {
        retire_point(oldest_seq, oldest_pos);
      } while (!attach(index, oldest_pos));
      seq = start.seq();
      if (seq < oldest_seq || seq > head() || !locate(seq, oldest_seq, oldest_pos, pos)) {
        // Release: hands the slot back (pairs with the acquire CAS above).
        ring_.slot(index).state.store(kSlotFree, std::memory_order_release);
        throw InvalidCursor("pushpoll: cursor " + std::to_string(seq) + " is outside [oldest " +
                            std::to_string(oldest()) + ", head " + std::to_string(head()) +
                            "] of topic " + quote(name_));
      }
      // Release: as a batch release, the cursor only moves forward.
      ring_.slot(index).cursor_pos.store(pos, std::memory_order_release);
      break;
    }
  }
  core->cursor_seq = seq;
  core->cursor_pos = pos;
  // Relaxed: statistics and the debug lifetime check.
  s.subscribers.fetch_add(1, std::memory_order_relaxed);
  return Subscriber(std::move(core));
}

void Subscriber::unsubscribe() noexcept {
  if (!core_) return;
  auto& c = *core_;
  assert(c.live_batches == 0 && "a Batch outlived its Subscriber");
  c.release_outstanding();
  if (c.group != nullptr) c.group->remove(*this);
  disarm();
  auto& s = c.ring.state();
  auto& slot = c.ring.slot(c.slot);
  // The notifier may still hold this slot in its armed set: it finds it idle (or free) and drops
  // it. Relaxed: the release store of the state below publishes it.
  slot.fd.store(-1, std::memory_order_relaxed);
  // Release: our reads of the ring happen-before the next owner's acquire CAS of the slot.
  slot.state.store(kSlotFree, std::memory_order_release);
  s.subscribers.fetch_sub(1, std::memory_order_relaxed);
  if (c.own_fd >= 0 && c.topic->notifier_) {
    // A round that read this fd before the store above may still write it: let it finish before
    // the number can be reused.
    c.topic->quiesce_notifier();
    c.topic->notifier_->close_fd(c.own_fd);
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
    const std::uint64_t r = s.retire_pos.load(std::memory_order_acquire);
    if (r <= c.cursor_pos) {
      // Detached, but nothing it needs was overwritten yet: gate again from where it is.
      if (t.attach(c.slot, c.cursor_pos)) return 0;
      continue;
    }
    std::uint64_t seq, rp;
    t.retire_point(seq, rp);
    if (!t.attach(c.slot, rp)) continue;
    const std::uint64_t gap = seq - c.cursor_seq;
    c.cursor_seq = seq;
    c.cursor_pos = rp;
    s.laps.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    return gap;
  }
}

// ---- batches and claims -----------------------------------------------------------------------

std::uint64_t Topic::publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag) {
  check_tag(tag);
  check_open();
  if (messages.empty()) throw Error("pushpoll: publish_batch needs at least one message");
  for (const auto& m : messages) check_size(m.size());
  // One claim per chunk of at most half the ring, so that a chunk always fits with its padding.
  const std::uint64_t limit = ring_.capacity() / 2;
  std::uint64_t last = 0;
  std::size_t i = 0;
  while (i < messages.size()) {
    std::size_t j = i;
    std::uint64_t bytes = 0;
    while (j < messages.size() && (j == i || bytes + detail::record_bytes(messages[j].size()) <= limit)) {
      bytes += detail::record_bytes(messages[j].size());
      ++j;
    }
    last = publish_chunk(messages.subspan(i, j - i), tag);
    after_commit(std::uint64_t{1} << tag);
    i = j;
  }
  return last;
}

std::uint64_t Topic::publish_chunk(std::span<const std::span<const std::byte>> messages, unsigned tag) {
  Reservation r;
  reserve(
      [this, messages](std::uint64_t p) noexcept {
        std::uint64_t q = p, first = p;
        for (std::size_t k = 0; k < messages.size(); ++k) {
          const std::uint64_t bytes = detail::record_bytes(messages[k].size());
          const std::uint64_t start = ring_.placement(q, bytes);
          if (k == 0) first = start;
          q = start + bytes;
        }
        return std::pair<std::uint64_t, std::uint64_t>{first, q};
      },
      Wait::yes, r);
  std::uint64_t q = r.pos;
  for (const auto& m : messages) {
    const std::uint64_t bytes = detail::record_bytes(m.size());
    const std::uint64_t start = ring_.placement(q, bytes);
    write_padding(Reservation{q, start, start + bytes});
    write_record(start, m, tag);
    q = start + bytes;
  }
  return commit(r, messages.size()) + messages.size() - 1;
}

Claim Topic::claim(std::size_t size) {
  check_size(size);
  check_open();
  Reservation r;
  reserve_one(detail::record_bytes(size), Wait::yes, r);
  write_padding(r);
  auto& h = ring_.header_mut(r.start);
  h.size = static_cast<std::uint32_t>(size);
  h.tag = 0;
  h.flags = 0;
  h.reserved = 0;
#ifndef NDEBUG
  live_handles_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for the lifetime check
#endif
  return Claim(this, r, std::span<std::byte>(ring_.at(r.start) + sizeof(RecordHeader), size));
}

std::uint64_t Claim::commit(unsigned tag) {
  if (topic_ == nullptr) throw Error("pushpoll: commit() on a claim that is no longer active");
  Topic::check_tag(tag);
  topic_->ring_.header_mut(r_.start).tag = static_cast<std::uint8_t>(tag);
  Topic* t = topic_;
  topic_ = nullptr;
  const std::uint64_t seq = t->commit(r_, 1);
  t->after_commit(std::uint64_t{1} << tag);
#ifndef NDEBUG
  t->live_handles_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as in claim()
#endif
  return seq;
}

void Claim::abort() noexcept {
  if (topic_ == nullptr) return;
  Topic* t = topic_;
  topic_ = nullptr;
  t->ring_.header_mut(r_.start).flags = detail::kAborted;
  t->commit(r_, 1);
  t->after_commit(1);  // an aborted message carries tag 0
  t->ring_.state().aborted.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
#ifndef NDEBUG
  t->live_handles_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as in claim()
#endif
}

Claim& Claim::operator=(Claim&& other) noexcept {
  if (this != &other) {
    abort();
    topic_ = other.topic_;
    r_ = other.r_;
    data_ = other.data_;
    other.topic_ = nullptr;
  }
  return *this;
}

}  // namespace pushpoll

// pushpoll/detail/ring.hpp — the shared region of one topic: layout, record framing, positions.
//
// Not part of the public API. docs/DESIGN.md explains the protocol; this file states the layout and
// the memory order of each shared word next to it.
//
// Region (one contiguous block, addressed by offsets from its start, never by pointers):
//
//   [RingState: 14 cache lines][SubscriberSlot x max_subscribers][record bytes x capacity]
//
// Positions are monotonic 64-bit byte counts; the index of a position is `position & mask`. At
// 10 GB/s a position wraps after 58 years; sequence numbers (one per message) after 585 years at
// 10^9 messages per second, so neither is ever expected to wrap.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pushpoll::detail {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint64_t kRecordAlign = 8;

/// Frame of one record. Records are 8-byte aligned and never straddle the end of the ring: a record
/// that would is preceded by a padding record (or, when fewer than sizeof(RecordHeader) bytes are
/// left, by an implicit gap that both sides compute), so every payload is contiguous.
struct RecordHeader {
  std::uint32_t size;   // payload bytes (the claimed size, also for an aborted record)
  std::uint8_t tag;     // 0..63
  std::uint8_t flags;   // kPadding | kAborted
  std::uint16_t reserved;
  std::uint64_t seq;    // written by the committer at its turn, before the head moves past it
};
static_assert(sizeof(RecordHeader) == 16, "headers are two 8-byte words");
static_assert(sizeof(RecordHeader) % kRecordAlign == 0, "payloads stay 8-byte aligned");

inline constexpr std::uint8_t kPadding = 1;  // filler up to the end of the ring; carries no message
inline constexpr std::uint8_t kAborted = 2;  // a claim dropped without commit(): an empty message

[[nodiscard]] constexpr std::uint64_t record_bytes(std::uint64_t payload) noexcept {
  return (sizeof(RecordHeader) + payload + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

/// The boundary after a record of `bytes` bytes at boundary `pos`, computed from `stride`, the
/// size of the record before it, and corrected (stride updated) when the two differ.
///
/// Walking records is pointer chasing: the next header's address is the sum of what the current
/// header says. Computed from the header, each step waits a full load latency (about 7 cycles, the
/// whole cost of a walk). Computed from the guess, the next load issues at once and a predicted
/// branch checks the guess, so consecutive headers load in parallel; a stream of equal-sized
/// messages walks about twice as fast. The empty asm hides the guess from the optimiser, which
/// could otherwise see that both paths give pos + bytes and bring the dependency back.
[[nodiscard]] inline std::uint64_t step(std::uint64_t pos, std::uint64_t bytes, std::uint64_t& stride) noexcept {
  std::uint64_t guess = stride;
  asm("" : "+r"(guess));
  std::uint64_t next = pos + guess;
  if (bytes != guess) [[unlikely]] {
    stride = bytes;
    next = pos + bytes;
  }
  return next;
}

/// Whether a subscriber's tag mask takes a record's tag. `& 63`: in overwrite mode a header may be
/// torn under a reader, and a shift by 64 or more would be undefined.
[[nodiscard]] constexpr bool accepts(std::uint64_t tag_mask, std::uint8_t tag) noexcept {
  return ((tag_mask >> (tag & 63u)) & 1u) != 0;
}

/// Subscriber slot states.
inline constexpr std::uint32_t kSlotFree = 0;
inline constexpr std::uint32_t kSlotAttached = 1;  // gates the writers (Overflow::block)
inline constexpr std::uint32_t kSlotDetached = 2;  // stalled too long; no longer gates

/// Wake states of a subscriber (the edge-triggered handshake; docs/DESIGN.md, "Wake-ups").
inline constexpr std::uint32_t kWakeIdle = 0;      // not waiting for a push
inline constexpr std::uint32_t kWakeArmed = 1;     // arm(): the next matching publish pushes once
inline constexpr std::uint32_t kWakeNotified = 2;  // the notifier won armed -> notified and writes fd

/// One subscriber's shared state, on its own cache line so that cursors never false-share.
struct alignas(kCacheLine) SubscriberSlot {
  // Writer: the owning subscriber (release, after it has finished reading a batch). Reader: the
  // retirer scanning for the gate (acquire): reads of the batch happen-before the bytes are reused.
  // SYNC(attach): on (re)attach the owner stores it seq_cst before loading the retire state.
  std::atomic<std::uint64_t> cursor_pos{0};
  // Writers: the subscriber (free <-> attached, detached -> attached) and the retirer
  // (attached -> detached, CAS). Reader: the retirer's scan.
  std::atomic<std::uint32_t> state{kSlotFree};
  // Writers: the subscriber (idle -> armed, armed -> idle by CAS, notified -> idle) and the
  // notifier (armed -> notified by CAS: only the winner writes the eventfd). seq_cst on the
  // arming side: SYNC(arm) is a Dekker pair with the publishers (see Topic::after_commit()).
  std::atomic<std::uint32_t> wake{kWakeIdle};
  // 1 while the slot is in the topic's armed set. Writers: the subscriber (exchange to 1 before
  // pushing) and the notifier (store 0 after popping, before reading `wake`): seq_cst, so that
  // either the notifier sees the new arming or the subscriber pushes again.
  std::atomic<std::uint32_t> queued{0};
  // Set by the owner before it first arms (the arming's seq_cst RMWs publish them to the notifier).
  std::atomic<std::int32_t> fd{-1};         // its eventfd, or its wake group's; -1: none yet
  std::atomic<std::uint64_t> tag_mask{~std::uint64_t{0}};
  // When the slot last attached (steady_clock ticks). Writer: the subscriber, relaxed, before its
  // seq_cst store of cursor_pos in attach(); reader: the retirer, after loading cursor_pos (which
  // makes this store visible). A stalled gate detaches only slots attached before the stall began:
  // one that attaches at a stuck gate gets a stall_timeout of its own.
  std::atomic<std::int64_t> attached_at{0};
};
static_assert(sizeof(SubscriberSlot) == kCacheLine, "one slot per cache line");

/// Recent (seq -> position) pairs, written by committers, so that Start::latest and Start::at(recent)
/// find a record boundary without walking the ring.
inline constexpr std::uint64_t kRecentPositions = 64;

/// The header of the region. Immutable fields first, then one cache line per group of hot words.
struct RingState {
  // ---- immutable after construction ----
  std::uint64_t capacity;
  std::uint64_t mask;
  std::uint64_t slots_offset;    // from the start of the region
  std::uint64_t records_offset;  // from the start of the region
  std::uint32_t max_message;
  std::uint32_t max_subscribers;
  std::uint64_t retire_chunk;    // how far ahead the retirer frees space at once

  // ---- claimers ----
  // Writer: every producer (CAS, or a plain store with single_producer). The end of the claimed
  // bytes. Relaxed is enough: a claimer only needs exclusive ownership of [old, new), which the CAS's
  // atomicity alone gives; the bytes themselves are published through head_seq.
  alignas(kCacheLine) std::atomic<std::uint64_t> claim_pos{0};

  // ---- committers -> readers ----
  // Writer: the committer whose turn it is (exactly one thread at a time). Readers: subscribers.
  // SYNC(commit): release-stored after the record's header and payload; readers acquire it before
  // reading records [cursor, head_seq).
  alignas(kCacheLine) std::atomic<std::uint64_t> head_seq{0};
  // Writer: the committer whose turn it is, after head_seq. Readers: the next committer (acquire:
  // its turn has come, and head_seq is visible), the retirer (acquire: records below are complete).
  std::atomic<std::uint64_t> head_pos{0};
  // recent[s % kRecentPositions] is the position of message s. Written (release) by the committer
  // of s-1 before it stores head_seq = s; read by RingView::recent_position (acquire), which then re-reads
  // head_seq to be sure the entry was not reused.
  std::atomic<std::uint64_t> recent[kRecentPositions];

  // ---- retirer -> claimers and readers ----
  // Writer: the retirer (holding `retiring`). Start of the oldest retained record: bytes below it
  // may be overwritten. Claimers acquire it before claiming [p, e) with e <= retire_pos + capacity.
  // Readers load it after an acquire fence (RingView::overtaken) to validate what they read: a batch starting below
  // it may have been overwritten.
  // SYNC(retire): seq_cst store; pairs with the seq_cst loads in Subscriber attach (Dekker).
  alignas(kCacheLine) std::atomic<std::uint64_t> retire_pos{0};
  // Writer: the retirer (holding `retiring`), release-stored before retire_pos. The seq of the
  // message at retire_pos, so that nobody reads a ring header to learn it. Topic::retire_point()
  // reads the pair consistently.
  std::atomic<std::uint64_t> retire_seq{0};
  // 1 while a thread walks old records to advance retire_pos: the only lock-like state, taken only
  // when a claim needs room (once per retire_chunk bytes), never on the fast path.
  // SYNC(attach): seq_cst RMW; a subscriber attaching loads it seq_cst after storing its slot.
  std::atomic<std::uint32_t> retiring{0};
  // Only touched by the retirer (under `retiring`): the gate position it last saw, and since when
  // the writers have been stuck on it (steady_clock ticks), to detach stalled subscribers.
  std::atomic<std::uint64_t> stuck_gate{~std::uint64_t{0}};
  std::atomic<std::int64_t> stuck_since{0};
  // One past the highest slot ever attached: the retirer scans [0, slot_high).
  // Writer: subscribers (fetch_max by CAS). Reader: the retirer (seq_cst, part of the attach pair).
  std::atomic<std::uint32_t> slot_high{0};

  // ---- lifecycle and wake-ups (read by every publisher; written on close and arming, and by
  // every publish while someone is armed) ----
  alignas(kCacheLine) std::atomic<std::uint32_t> closed{0};  // release on close(); acquire in checks
  // Armings not yet ended: incremented (seq_cst) by arm(), decremented by the subscriber when it
  // disarms or takes its notification, never by the notifier (so it never drops below the slots
  // armed).
  // Publishers load it after their commit: SYNC(arm), see Topic::after_commit().
  std::atomic<std::uint32_t> armed{0};
  // Tags published while someone was armed and not yet served by a notifier round. Writers:
  // publishers (fetch_or), the notifier (exchange to 0). seq_cst with `notifying`: a publisher
  // that finds a round in progress leaves its tags here, and the round's owner looks again after
  // it lets go, so no publish is left unserved.
  std::atomic<std::uint64_t> pending_tags{0};
  std::atomic<std::uint32_t> notifying{0};  // 1 while a thread runs this topic's round

  // ---- counters of rare events (relaxed: statistics only, no ordering needed) ----
  alignas(kCacheLine) std::atomic<std::uint64_t> full_waits{0};
  std::atomic<std::uint64_t> full_timeouts{0};
  std::atomic<std::uint64_t> detaches{0};
  std::atomic<std::uint64_t> laps{0};
  std::atomic<std::uint64_t> retire_walks{0};
  std::atomic<std::uint64_t> gate_scans{0};
  std::atomic<std::uint64_t> aborted{0};
  std::atomic<std::uint32_t> subscribers{0};
};
static_assert(alignof(RingState) == kCacheLine);
static_assert(sizeof(RingState) == 14 * kCacheLine, "the layout comment atop this file says 14 lines");
static_assert(offsetof(RingState, head_seq) % kCacheLine == 0, "readers' line is not shared with claimers");
static_assert(offsetof(RingState, retire_pos) % kCacheLine == 0);

// Every shared word must be lock-free, or it could not live in shared memory.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

/// Typed accessors over a region. Cheap to copy; holds no ownership.
class RingView {
 public:
  RingView() = default;
  explicit RingView(std::byte* region) noexcept
      : state_(reinterpret_cast<RingState*>(region)),
        slots_(reinterpret_cast<SubscriberSlot*>(region + state_->slots_offset)),
        records_(region + state_->records_offset),
        mask_(state_->mask),
        capacity_(state_->capacity) {}

  [[nodiscard]] RingState& state() const noexcept { return *state_; }
  [[nodiscard]] SubscriberSlot& slot(std::uint32_t i) const noexcept { return slots_[i]; }
  [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept { return records_ + (pos & mask_); }
  [[nodiscard]] std::uint64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::uint64_t mask() const noexcept { return mask_; }

  /// The header at a record boundary. The caller has established that the record is complete.
  [[nodiscard]] const RecordHeader& header(std::uint64_t pos) const noexcept {
    return *reinterpret_cast<const RecordHeader*>(at(pos));
  }
  [[nodiscard]] RecordHeader& header_mut(std::uint64_t pos) const noexcept {
    return *reinterpret_cast<RecordHeader*>(at(pos));
  }

  /// The position of message `seq` from the table of recent positions, if the table still holds
  /// it. Acquire both: recent[seq] was stored (release) by the committer of seq - 1 before it moved
  /// head_seq past it; had the entry been reused since (by the committer of seq - 1 + K), the
  /// re-read of head_seq shows a head at least K - 1 further on.
  [[nodiscard]] bool recent_position(std::uint64_t seq, std::uint64_t& pos) const noexcept {
    const std::uint64_t p = state_->recent[seq % kRecentPositions].load(std::memory_order_acquire);
    if (state_->head_seq.load(std::memory_order_acquire) - seq >= kRecentPositions - 1) return false;
    pos = p;
    return true;
  }
  /// Read-validate, a seqlock's second look: true when the writers have retired past `pos` since,
  /// so that what was read from there on may come from a later lap. The acquire fence orders our
  /// earlier reads of ring bytes before the relaxed load: if any byte came from an overwriting
  /// claim, that claimer's release fence synchronises with ours, and the retire_pos it acquired
  /// before claiming is visible here (docs/DESIGN.md, "Overwrite without silent tearing").
  [[nodiscard]] bool overtaken(std::uint64_t pos) const noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);
    return state_->retire_pos.load(std::memory_order_relaxed) > pos;
  }

  /// Bytes left before the end of the ring's lap at `pos`.
  [[nodiscard]] std::uint64_t lap_room(std::uint64_t pos) const noexcept {
    return capacity_ - (pos & mask_);
  }
  /// Where a record of `bytes` claimed at `pos` really starts: `pos`, or the start of the next lap
  /// when it would straddle the end (the skipped bytes become padding).
  [[nodiscard]] std::uint64_t placement(std::uint64_t pos, std::uint64_t bytes) const noexcept {
    const std::uint64_t room = lap_room(pos);
    return bytes <= room ? pos : pos + room;
  }
  /// A boundary normalised past an implicit gap (fewer than a header's bytes left in the lap).
  [[nodiscard]] std::uint64_t skip_tail(std::uint64_t pos) const noexcept {
    const std::uint64_t room = lap_room(pos);
    return room < sizeof(RecordHeader) ? pos + room : pos;
  }
  /// The boundary after the message record (not padding) at or after boundary `pos`, i.e. skipping
  /// an implicit gap or a padding record first. Returns the message's own start through `start`;
  /// `stride` as in step(): 0 to start, then carried from one call to the next.
  [[nodiscard]] std::uint64_t next_message(std::uint64_t pos, std::uint64_t& start,
                                           std::uint64_t& stride) const noexcept {
    pos = skip_tail(pos);
    const RecordHeader* h = &header(pos);
    if (h->flags & kPadding) [[unlikely]] {
      pos += lap_room(pos);
      h = &header(pos);
    }
    start = pos;
    return step(pos, record_bytes(h->size), stride);
  }
  /// One step on its own (no walk to predict from).
  [[nodiscard]] std::uint64_t next_message(std::uint64_t pos, std::uint64_t& start) const noexcept {
    std::uint64_t stride = 0;
    return next_message(pos, start, stride);
  }

 private:
  RingState* state_ = nullptr;
  SubscriberSlot* slots_ = nullptr;
  std::byte* records_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
};

/// A walk over the messages of a batch, from a record boundary at a known seq: what Batch's
/// iterator and Batch::for_each() share. Holds no ownership; cheap to copy. Its state is a handful
/// of words so that a loop over it keeps them in registers.
class MessageWalk {
 public:
  MessageWalk() = default;
  MessageWalk(const RingView& ring, std::uint64_t pos, std::uint64_t seq) noexcept
      : records_(ring.at(0)), mask_(ring.mask()), capacity_(ring.capacity()), pos_(pos), seq_(seq) {}

  /// Reads the message record at the walk's position (past an implicit gap or a padding record at
  /// the end of a lap): one read of its header into `h`, and where its payload starts. Moves past
  /// it. Returns false, and moves nowhere, when the header is not the expected seq's or its size
  /// would leave the ring: in overwrite mode (or after a detach) a header may be rewritten under
  /// the reader, and such a batch fails validation on release(). The lap check is what keeps every
  /// view inside the ring, whatever a rewritten header says.
  [[gnu::always_inline]] bool next(RecordHeader& h, const std::byte*& payload) noexcept {
    std::uint64_t pos = pos_, off = pos & mask_;
    if (off > capacity_ - sizeof(RecordHeader)) [[unlikely]] {  // implicit gap: the next lap
      pos += capacity_ - off;
      off = 0;
    }
    std::memcpy(&h, records_ + off, sizeof h);
    if (h.flags & kPadding) [[unlikely]] {
      pos += capacity_ - off;
      off = 0;
      std::memcpy(&h, records_, sizeof h);
    }
    const std::uint64_t bytes = record_bytes(h.size);
    if (h.seq != seq_ || bytes > capacity_ - off) [[unlikely]] return false;
    payload = records_ + off + sizeof(RecordHeader);
    pos_ = step(pos, bytes, stride_);  // off the load's critical path (see step())
    ++seq_;
    return true;
  }
  /// The seq of the next record.
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }

 private:
  const std::byte* records_ = nullptr;
  std::uint64_t mask_ = 0, capacity_ = 0;
  std::uint64_t pos_ = 0, seq_ = 0, stride_ = 0;
};

/// CPU relax hint for spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace pushpoll::detail

// pushpoll/detail/ring.hpp — the shared region of one topic: layout, the commit index, record framing.
//
// Not part of the public API. docs/DESIGN.md explains the protocol; this file states the layout and
// the memory order of each shared word next to it.
//
// Region (one contiguous block, addressed by offsets from its start, never by pointers):
//
//   [RingState][SubscriberSlot x max_subscribers][IndexEntry x index_size][record bytes x capacity]
//
// Message `seq` lives in two places: its index entry `index[seq % index_size]`, 16 bytes that say
// whether it is committed, where its payload starts, its size and its tag; and its payload in the
// byte ring, 8-byte aligned and never straddling the end of the ring (a payload that would is placed
// at the start of the next lap; the bytes skipped carry nothing). The ring holds payloads and
// nothing else, so 64-byte messages sit one to a cache line, as in a bare ring of fixed slots.
// Payload bytes can hold anything, so the commit mark lives in the index, which only ever holds
// index entries: an entry left from an earlier lap holds an older seq, and stale bytes cannot forge
// a commit.
//
// Positions are monotonic 64-bit byte counts (the index of a position is `position & mask`);
// sequence numbers are monotonic message counts. At 10 GB/s a position wraps after 58 years; a
// sequence number (62 bits in the index) after 146 years at 10^9 messages per second, so neither is
// ever expected to wrap.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pushpoll::detail {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint64_t kRecordAlign = 8;

/// Ring bytes a payload of `payload` bytes takes (rounded to 8 bytes, so that payloads stay aligned).
[[nodiscard]] constexpr std::uint64_t record_bytes(std::uint64_t payload) noexcept {
  return (payload + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// ---- the commit index ------------------------------------------------------------------------

/// One message's commit state. `word` is the commit mark: the seq of the message the entry last
/// described, with two flags; `info` packs where that message's payload starts, its size and its
/// tag (pack_info()).
///
/// Writers: the claimer of `seq` (commit) or whoever expires its claim; exactly one of them moves
/// the entry from the previous lap's message (seq - index_size) to `seq`, by a compare-and-swap of
/// both words, or inside a restartable sequence that the expirer aborts first (detail/commit.hpp).
/// Readers acquire `word`, then read `info` and the payload.
struct alignas(16) IndexEntry {
  // SYNC(commit): stored last, with release, after `info` and the payload.
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> info;
};
static_assert(sizeof(IndexEntry) == 16);

/// `info`: the payload's position in 8-byte units (low 32 bits: it is unpacked against a position
/// known to be at most a capacity before it, and its offset in the ring needs no unpacking), its
/// size (26 bits) and its tag (6 bits). Hence the limits: capacity <= 16 GiB, messages < 64 MiB.
inline constexpr std::uint64_t kInfoPosMask = (std::uint64_t{1} << 32) - 1;
inline constexpr unsigned kInfoSizeShift = 32;
inline constexpr std::uint64_t kMaxMessage = (std::uint64_t{1} << 26) - 1;
inline constexpr unsigned kInfoTagShift = 58;
[[nodiscard]] constexpr std::uint64_t pack_info(std::uint64_t pos, std::uint64_t size, unsigned tag) noexcept {
  return ((pos / kRecordAlign) & kInfoPosMask) | (size << kInfoSizeShift) |
         (std::uint64_t{tag & 63u} << kInfoTagShift);
}
[[nodiscard]] constexpr std::uint32_t info_size(std::uint64_t info) noexcept {
  return static_cast<std::uint32_t>((info >> kInfoSizeShift) & kMaxMessage);
}
[[nodiscard]] constexpr std::uint8_t info_tag(std::uint64_t info) noexcept {
  return static_cast<std::uint8_t>(info >> kInfoTagShift);
}
/// The payload's offset in a ring of `mask + 1` bytes (at most 2^35).
[[nodiscard]] constexpr std::uint64_t info_offset(std::uint64_t info, std::uint64_t mask) noexcept {
  return ((info & kInfoPosMask) * kRecordAlign) & mask;
}
/// The payload's full position, given a position at most 2^35 - 8 bytes before it.
[[nodiscard]] constexpr std::uint64_t info_pos(std::uint64_t info, std::uint64_t floor_pos) noexcept {
  constexpr std::uint64_t span = (kInfoPosMask + 1) * kRecordAlign;
  return floor_pos + (((info & kInfoPosMask) * kRecordAlign - floor_pos) & (span - 1));
}

inline constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << 62) - 1;
/// The message carries no data: a claim dropped without commit(), or expired (Message::aborted).
inline constexpr std::uint64_t kEntryAborted = std::uint64_t{1} << 62;
/// `info` is not recorded: the claim expired before its claimer said where it was.
inline constexpr std::uint64_t kEntryNoPos = std::uint64_t{1} << 63;

/// Whether an index entry's mark says `seq` is done (committed, aborted or expired).
[[nodiscard]] constexpr bool entry_done(std::uint64_t word, std::uint64_t seq) noexcept {
  return (word & kSeqMask) == (seq & kSeqMask);
}

// ---- the claim word --------------------------------------------------------------------------

/// Producers claim a seq and its bytes together with one 64-bit compare-and-swap (or, for a sole
/// producer, one store) of a packed word: the next position in 8-byte units (34 bits), the low 29
/// bits of the next seq, and the bias flag (the word may be written with a plain store by the
/// topic's `owner`; everybody else revokes the bias before claiming: detail/commit.hpp). Seq and
/// position are unpacked against full values known to be at most that far behind: the retired seq
/// (claims stay within index_size of it) and the retired position (claims stay within capacity of
/// it). Hence the limits: index_size <= 2^27, capacity <= 2^34 (the index's own packing, above).
inline constexpr unsigned kClaimPosBits = 34;
inline constexpr unsigned kClaimSeqBits = 29;
inline constexpr std::uint64_t kClaimPosMask = (std::uint64_t{1} << kClaimPosBits) - 1;
inline constexpr std::uint64_t kClaimSeqMask = (std::uint64_t{1} << kClaimSeqBits) - 1;
inline constexpr std::uint64_t kClaimBiased = std::uint64_t{1} << 63;
/// RingState::owner while a bias is being revoked (thread tokens are addresses, never 1).
inline constexpr std::uint64_t kRevoking = 1;
inline constexpr std::uint64_t kMaxCapacity = std::uint64_t{1} << 34;  // 16 GiB
inline constexpr std::uint64_t kMaxIndexSize = std::uint64_t{1} << 27;

[[nodiscard]] constexpr std::uint64_t pack_claim(std::uint64_t seq, std::uint64_t pos) noexcept {
  return ((seq & kClaimSeqMask) << kClaimPosBits) | ((pos / kRecordAlign) & kClaimPosMask);
}
/// The full seq of a claim word, given a seq at most 2^29 - 1 before it.
[[nodiscard]] constexpr std::uint64_t claim_seq(std::uint64_t word, std::uint64_t floor_seq) noexcept {
  return floor_seq + (((word >> kClaimPosBits) - floor_seq) & kClaimSeqMask);
}
/// The full position of a claim word, given a position at most 2^37 - 8 bytes before it.
[[nodiscard]] constexpr std::uint64_t claim_pos(std::uint64_t word, std::uint64_t floor_pos) noexcept {
  constexpr std::uint64_t span = (kClaimPosMask + 1) * kRecordAlign;
  return floor_pos + (((word & kClaimPosMask) * kRecordAlign - floor_pos) & (span - 1));
}
static_assert(kClaimPosBits + kClaimSeqBits + 1 == 64);
static_assert(kMaxCapacity < (kClaimPosMask + 1) * kRecordAlign, "positions unpack within a capacity");
static_assert(kMaxIndexSize < kClaimSeqMask, "seqs unpack within an index");

/// Whether a subscriber's tag mask takes a record's tag. `& 63`: in overwrite mode a prefix may be
/// torn under a reader, and a shift by 64 or more would be undefined.
[[nodiscard]] constexpr bool accepts(std::uint64_t tag_mask, std::uint8_t tag) noexcept {
  return ((tag_mask >> (tag & 63u)) & 1u) != 0;
}

// ---- subscribers -----------------------------------------------------------------------------

/// Subscriber slot states.
inline constexpr std::uint32_t kSlotFree = 0;
inline constexpr std::uint32_t kSlotAttached = 1;  // gates the writers (Overflow::block)
inline constexpr std::uint32_t kSlotDetached = 2;  // stalled too long; no longer gates
inline constexpr std::uint32_t kSlotReserved = 3;  // being set up by subscribe(); does not gate yet

/// Wake states of a subscriber (the edge-triggered handshake; docs/DESIGN.md, "Wake-ups").
inline constexpr std::uint32_t kWakeIdle = 0;      // not waiting for a push
inline constexpr std::uint32_t kWakeArmed = 1;     // arm(): the next matching publish pushes once
inline constexpr std::uint32_t kWakeNotified = 2;  // the notifier won armed -> notified and writes fd

/// One subscriber's shared state, on its own cache line so that cursors never false-share.
struct alignas(kCacheLine) SubscriberSlot {
  // Writer: the owning subscriber (release, after it has finished reading a batch). Reader: the
  // retirer scanning for the gate (acquire): reads of the batch happen-before the bytes are reused.
  // SYNC(attach): on (re)attach the owner stores it seq_cst before loading the retire state.
  std::atomic<std::uint64_t> cursor_seq{0};
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
  // seq_cst store of cursor_seq in attach(); reader: the retirer, after loading cursor_seq (which
  // makes this store visible). A stall detaches only slots attached before it began.
  std::atomic<std::int64_t> attached_at{0};
  // The cursor this slot had when the current stall began. Only touched by the retirer, under
  // `retiring` (relaxed: that flag's RMW and release store order it between retirers).
  std::atomic<std::uint64_t> stall_cursor{0};
};
static_assert(sizeof(SubscriberSlot) == kCacheLine, "one slot per cache line");

// ---- the region header -----------------------------------------------------------------------

/// The header of the region. Immutable fields first, then one cache line per group of hot words.
struct RingState {
  // ---- immutable after construction ----
  std::uint64_t capacity;
  std::uint64_t mask;
  std::uint64_t index_size;      // entries in the commit index, a power of two
  std::uint64_t slots_offset;    // from the start of the region
  std::uint64_t index_offset;    // from the start of the region
  std::uint64_t records_offset;  // from the start of the region
  std::uint32_t max_message;
  std::uint32_t max_subscribers;
  std::uint64_t retire_chunk;    // how far ahead the retirer frees bytes at once

  // ---- producers: claims (nobody else reads these lines on a hot path) ----
  // The packed (seq, position) of the next claim (pack_claim). Writers: every producer (CAS, or a
  // store by the biased owner or with single_producer). Relaxed: a claimer only needs exclusive
  // ownership of its seq and bytes, which the CAS's atomicity alone gives; what it writes is
  // published through the index.
  alignas(kCacheLine) std::atomic<std::uint64_t> claim{0};
  // The thread that may claim with a plain store (a restartable sequence that checks it and the
  // claim word's bias flag), 0, or kRevoking. Written by CAS (biasing, revoking); a revoker then
  // aborts every sequence in flight (membarrier), so that none stores after the revocation, before
  // it clears the flag. See Topic::claim_word().
  std::atomic<std::uint64_t> owner{0};
  // Who won the last claims by CAS, and how many in a row: one thread claiming alone for long
  // enough is given the bias. Relaxed: a heuristic, written by the CAS winner only.
  std::atomic<std::uint64_t> last_claimer{0};
  std::atomic<std::uint64_t> streak{0};
  // The streak that earns the bias; doubles on every revocation so that contended topics stop
  // flapping. Relaxed: a heuristic.
  std::atomic<std::uint64_t> bias_after{0};

  // ---- rarely written: read by every publish, written by expiries and long head() scans ----
  // Claim expiries begun so far. A claimer reads it (acquire) before its claim; its commit's
  // restartable sequence stores only while it is unchanged, so it need not read the index entry
  // it writes (a line other producers write too). An expirer increments it (seq_cst) and restarts
  // every sequence in flight before it takes an entry: any commit that began before then either
  // landed or restarts, finds the count moved, and takes the compare-and-swap path.
  alignas(kCacheLine) std::atomic<std::uint64_t> expiries_begun{0};

  // ---- readers: what the last scan of the index found ----
  // A lower bound of the committed frontier: every message below it was done when a reader scanned
  // it. Writers: polls and head() that scanned past it (a plain store of a larger value; two racing
  // readers may leave the smaller one, still a lower bound). Release after the scan's acquires of
  // the marks; a reader acquires it and may then read every message below it without acquiring
  // their marks again. So a thread hosting many subscribers scans each new message once, not once
  // per subscriber. Publishers never touch this line.
  alignas(kCacheLine) std::atomic<std::uint64_t> visible_hint{0};

  // ---- retirer -> claimers and readers ----
  // Writer: the retirer (holding `retiring`). The oldest retained seq, and a position at or before
  // its record (the end of the last retired record with a known size): bytes and index entries
  // below them may be reused. Claimers acquire both before claiming; readers load retire_seq after
  // an acquire fence (RingView::overtaken) to validate what they read.
  // SYNC(retire): seq_cst stores, retire_pos first; pair with the seq_cst loads in attach (Dekker).
  alignas(kCacheLine) std::atomic<std::uint64_t> retire_seq{0};
  std::atomic<std::uint64_t> retire_pos{0};
  // 1 while a thread walks old records to advance the retire point: the only lock-like state, taken
  // only when a claim needs room (once per retire_chunk bytes), never on the fast path.
  // SYNC(attach): seq_cst RMW; a subscriber attaching loads it seq_cst after storing its slot.
  std::atomic<std::uint32_t> retiring{0};
  // Only touched by the retirer (under `retiring`): since when the writers have been stuck on the
  // slowest cursor (steady_clock ticks; 0: not stuck), and the frontier then: a subscriber that had
  // messages to read then and has not moved since has stalled.
  std::atomic<std::int64_t> stall_since{0};
  std::atomic<std::uint64_t> stall_head{0};
  // One past the highest slot ever attached: the retirer scans [0, slot_high).
  // Writer: subscribers (fetch_max by CAS). Reader: the retirer (seq_cst, part of the attach pair).
  std::atomic<std::uint32_t> slot_high{0};

  // ---- lifecycle and wake-ups (read by every publisher; written on close and arming, and by
  // every publish while someone is armed) ----
  // seq_cst exchange on close(); acquire in checks, seq_cst in arming (SYNC(arm)).
  alignas(kCacheLine) std::atomic<std::uint32_t> closed{0};
  // Armings not yet ended: incremented (seq_cst) by arm(), decremented by the subscriber when it
  // disarms or takes its notification, never by the notifier (so it never drops below the slots
  // armed). Publishers load it after their commit: SYNC(arm), see Topic::after_commit().
  std::atomic<std::uint32_t> armed{0};
  // Tags published while someone was armed and not yet served by a notifier round. Writers:
  // publishers (fetch_or), the notifier (exchange to 0). seq_cst with `notifying`: a publisher
  // that finds a round in progress leaves its tags here, and the round's owner looks again after
  // it lets go, so no publish is left unserved.
  std::atomic<std::uint64_t> pending_tags{0};
  // Nonzero while a thread runs this topic's round: the notifier's owner token, which names the
  // process (fork generation), so that a child can tell a round cut off by fork() from a live one.
  std::atomic<std::uint32_t> notifying{0};

  // ---- counters of rare events (relaxed: statistics only, no ordering needed) ----
  alignas(kCacheLine) std::atomic<std::uint64_t> full_waits{0};
  std::atomic<std::uint64_t> held_waits{0};
  std::atomic<std::uint64_t> full_timeouts{0};
  std::atomic<std::uint64_t> detaches{0};
  std::atomic<std::uint64_t> laps{0};
  std::atomic<std::uint64_t> retire_walks{0};
  std::atomic<std::uint64_t> gate_scans{0};
  std::atomic<std::uint64_t> aborted{0};
  std::atomic<std::uint64_t> expired{0};
  // Expired claims whose holder has since found out (its commit or abort failed). Not statistics:
  // expired - expiries_noticed is the number of Claim objects that still point at the topic after
  // their message went out (Topic::claims_open()).
  std::atomic<std::uint64_t> expiries_noticed{0};
  std::atomic<std::uint64_t> revocations{0};
  std::atomic<std::uint64_t> clamped{0};
  std::atomic<std::uint32_t> subscribers{0};

  // ---- immutable after construction, for a process that maps the region (Topic::view()) ----
  std::uint32_t overwrite = 0;        // Overflow::overwrite
  std::uint32_t single_producer = 0;  // TopicOptions::single_producer
};
static_assert(alignof(RingState) == kCacheLine);
static_assert(offsetof(RingState, claim) % kCacheLine == 0, "claimers' line holds nothing readers poll");
static_assert(offsetof(RingState, expiries_begun) % kCacheLine == 0, "not on a line producers write per claim");
static_assert(offsetof(RingState, visible_hint) % kCacheLine == 0, "readers write it: not on a line publishers read");
static_assert(offsetof(RingState, retire_seq) % kCacheLine == 0);
static_assert(offsetof(RingState, closed) % kCacheLine == 0);
static_assert(sizeof(RingState) == 8 * kCacheLine, "DESIGN.md's region map says eight lines");

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
        index_(reinterpret_cast<IndexEntry*>(region + state_->index_offset)),
        records_(region + state_->records_offset),
        mask_(state_->mask),
        capacity_(state_->capacity),
        index_mask_(state_->index_size - 1) {}

  [[nodiscard]] RingState& state() const noexcept { return *state_; }
  [[nodiscard]] SubscriberSlot& slot(std::uint32_t i) const noexcept { return slots_[i]; }
  [[nodiscard]] IndexEntry& entry(std::uint64_t seq) const noexcept { return index_[seq & index_mask_]; }
  [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept { return records_ + (pos & mask_); }
  [[nodiscard]] std::byte* records() const noexcept { return records_; }
  [[nodiscard]] std::uint64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::uint64_t mask() const noexcept { return mask_; }
  [[nodiscard]] std::uint64_t index_size() const noexcept { return index_mask_ + 1; }

  /// Whether message `seq` is done (committed, aborted or expired). Acquire: pairs with
  /// SYNC(commit); when true, the entry's `pos` and the record it points at are complete.
  [[nodiscard]] bool done(std::uint64_t seq) const noexcept {
    return entry_done(entry(seq).word.load(std::memory_order_acquire), seq);
  }
  /// Bytes left before the end of the ring's lap at `pos`.
  [[nodiscard]] std::uint64_t lap_room(std::uint64_t pos) const noexcept {
    return capacity_ - (pos & mask_);
  }
  /// Where a payload of `bytes` claimed at `pos` starts: `pos`, or the start of the next lap when it
  /// would straddle the end (the skipped bytes carry nothing).
  [[nodiscard]] std::uint64_t placement(std::uint64_t pos, std::uint64_t bytes) const noexcept {
    return bytes <= lap_room(pos) ? pos : pos + lap_room(pos);
  }
  /// Raises the readers' hint of the committed frontier to `seq` (every message below it was
  /// acquired done by the caller). Release: see RingState::visible_hint.
  void raise_visible_hint(std::uint64_t seq) const noexcept {
    if (state_->visible_hint.load(std::memory_order_relaxed) < seq) {
      state_->visible_hint.store(seq, std::memory_order_release);
    }
  }
  /// Read-validate, a seqlock's second look: true when the writers have retired message `seq`
  /// since, so that what was read of it (and after it) may come from a later lap. The acquire fence
  /// orders our earlier reads of ring bytes and entries before the relaxed load: if any of them came
  /// from an overwriting claim, that claimer's release fence synchronises with ours, and the retire
  /// point it acquired before claiming is visible here (docs/DESIGN.md, "Overwrite without silent
  /// tearing").
  [[nodiscard]] bool overtaken(std::uint64_t seq) const noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);
    return state_->retire_seq.load(std::memory_order_relaxed) > seq;
  }

 private:
  RingState* state_ = nullptr;
  SubscriberSlot* slots_ = nullptr;
  IndexEntry* index_ = nullptr;
  std::byte* records_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t index_mask_ = 0;
};

/// One message as a walk sees it: where its payload is, or that it has none.
struct RecordView {
  const std::byte* payload;
  std::uint32_t size;
  std::uint8_t tag;
  bool aborted;
};

/// A walk over consecutive messages from a known seq: what Batch's iterator, Batch::for_each(),
/// poll()'s tag filter and the notifier's tag scan share. Holds no ownership; cheap to copy. Its
/// state is a handful of words so that a loop over it keeps them in registers.
class MessageWalk {
 public:
  MessageWalk() = default;
  MessageWalk(const RingView& ring, std::uint64_t seq, std::uint32_t max_message) noexcept
      : index_(&ring.entry(0)), records_(ring.records()), index_mask_(ring.index_size() - 1),
        mask_(ring.mask()), capacity_(ring.capacity()), seq_(seq) {
    (void)max_message;
  }

  /// Reads message seq() and moves past it. Returns false, and moves nowhere, when its entry is not
  /// done for this seq (not committed yet; or, in overwrite mode or after a detach, reused by a
  /// later lap) or its payload would leave the ring: a view never leaves the ring, whatever an
  /// overwriting writer left there, and such a batch fails validation on release(). Acquire on the
  /// mark: pairs with SYNC(commit).
  [[gnu::always_inline]] bool next(RecordView& r) noexcept {
    const IndexEntry& e = index_[seq_ & index_mask_];
    const std::uint64_t word = e.word.load(std::memory_order_acquire);
    // One test for both rare cases: not this seq's entry, or an aborted message.
    if (((word ^ seq_) & (kSeqMask | kEntryAborted)) != 0) [[unlikely]] {
      if (!entry_done(word, seq_)) return false;
      r = RecordView{nullptr, 0, 0, true};
      ++seq_;
      return true;
    }
    // Relaxed: ordered after the acquire of `word`, which was stored after it.
    const std::uint64_t info = e.info.load(std::memory_order_relaxed);
    const std::uint64_t off = info_offset(info, mask_);
    const std::uint32_t size = info_size(info);
    // Sizes are below 2^26 and offsets below the capacity: the sum cannot overflow.
    if (off + size > capacity_) [[unlikely]] return false;
    r = RecordView{records_ + off, size, info_tag(info), false};
    ++seq_;
    return true;
  }
  /// The seq of the next message.
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }

 private:
  const IndexEntry* index_ = nullptr;
  const std::byte* records_ = nullptr;
  std::uint64_t index_mask_ = 0, mask_ = 0, capacity_ = 0;
  std::uint64_t seq_ = 0;
};

/// memcpy for a payload: small sizes (the common case) with a few inlined, possibly overlapping
/// moves instead of a call, which costs as much as the rest of a publish.
[[gnu::always_inline]] inline void copy_payload(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  if (n >= 16 && n <= 64) {
    // Two to four 16-byte moves; the last may overlap the one before it.
    std::uint64_t a[2], b[2];
    std::memcpy(a, src, 16);
    std::memcpy(b, src + n - 16, 16);
    if (n > 32) {
      std::uint64_t c[2], d[2];
      std::memcpy(c, src + 16, 16);
      std::memcpy(d, src + n - 32, 16);
      std::memcpy(dst + 16, c, 16);
      std::memcpy(dst + n - 32, d, 16);
    }
    std::memcpy(dst, a, 16);
    std::memcpy(dst + n - 16, b, 16);
  } else if (n >= 8 && n < 16) {
    std::uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n != 0) {
    std::memcpy(dst, src, n);
  }
}

/// CPU relax hint for spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace pushpoll::detail

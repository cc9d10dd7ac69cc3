// pushpoll/topic.hpp — a topic (the feed): a lock-free, append-only ring log.
//
// Every message gets the next 64-bit sequence number (0, 1, 2, ... for the topic's whole life, never
// reused). Publishers append from any thread; no publisher ever waits for another: each claims its
// seq and bytes, writes, and commits its own index entry. Readers see the longest committed prefix:
// nothing past a message that is claimed but not committed, everything up to it. Each subscriber
// (subscriber.hpp) reads batches in place from its own cursor.
//
// Lifetimes: a Topic lives as long as its Hub. A Subscriber keeps its topic's memory alive (it may
// outlive the Hub and then sees Closed); so does an open Claim (claim.hpp).
//
// Thread-safety tags used below:
//   [any thread]  safe from many threads at once
//   [owner]       one thread at a time per object (objects may move between threads)
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>

#include <boost/lockfree/queue.hpp>

#include "pushpoll/claim.hpp"
#include "pushpoll/detail/commit.hpp"
#include "pushpoll/detail/deadline.hpp"
#include "pushpoll/detail/notifier.hpp"
#include "pushpoll/detail/ring.hpp"
#include "pushpoll/errors.hpp"
#include "pushpoll/memory.hpp"
#include "pushpoll/message.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/subscriber.hpp"
#include "pushpoll/wake.hpp"
#include "pushpoll/wake_group.hpp"

namespace pushpoll {

class Hub;

/// What a topic has done. Every field is a snapshot; counters only grow.
struct TopicStats {
  std::uint64_t head = 0;           ///< messages readers can see (the next seq after the committed prefix)
  std::uint64_t oldest = 0;         ///< oldest retained seq
  std::uint64_t bytes_claimed = 0;  ///< ring bytes claimed so far (framing and skipped lap ends included)
  std::uint32_t subscribers = 0;    ///< live subscribers
  std::uint64_t full_waits = 0;     ///< publishes that waited for subscribers to make room
  std::uint64_t held_waits = 0;     ///< publishes that waited for a claim in progress at the oldest end
  std::uint64_t full_timeouts = 0;  ///< publishes that gave up (Full or try_publish == false)
  std::uint64_t detaches = 0;       ///< stalled subscribers detached (Overflow::block)
  std::uint64_t laps = 0;           ///< polls that found their cursor overwritten (gap reported)
  std::uint64_t retire_walks = 0;   ///< times the writers freed old records
  std::uint64_t gate_scans = 0;     ///< times the writers scanned subscriber cursors
  std::uint64_t aborted = 0;        ///< claims dropped without commit()
  std::uint64_t expired = 0;        ///< claims aborted after holding others back for claim_timeout
  std::uint64_t bias_revocations = 0;  ///< times a sole producer's fast path was taken back
  std::uint64_t clamped_cursors = 0;   ///< cursors of other processes' subscribers found outside
                                       ///< [oldest, claimed] by the retirer, and clamped (remote.hpp)
};

namespace detail {
/// What a topic mapped from another process (Topic::view()) needs of that process, its owner: io's
/// Remote. Its subscribers keep their slots in memory shared with the owner only, seated there by
/// the owner (Topic::add_seat()) so that they gate the writers like slots of the table; the owner
/// does the half of their arming that touches what the mapping cannot write; and it publishes for
/// this process, when allowed to. Without a link, subscribers get private slots and poll.
class OwnerLink {
 public:
  virtual ~OwnerLink() = default;
  /// A slot of the caller's, registered with the owner of `topic`, state free. Throws Error.
  virtual SubscriberSlot* take_seat(Topic& topic) = 0;
  /// Unregisters and frees a slot from take_seat().
  virtual void return_seat(Topic& topic, SubscriberSlot* slot) noexcept = 0;
  /// Hands the owner the eventfd that wakes the subscriber in `slot` (the owner keeps its own
  /// descriptor of it), or, with -1, takes it back. Throws Error.
  virtual void set_wake_fd(Topic& topic, SubscriberSlot* slot, int fd) = 0;
  /// The subscriber in `slot` stored wake = armed: the owner does the rest of the arming for it
  /// (counts it, queues it, runs its barrier, re-checks; Topic::seat_armed()).
  virtual void armed(SubscriberSlot* slot) noexcept = 0;
  /// Whether the owner's process still answers. A hint: false once its connection hung up.
  [[nodiscard]] virtual bool owner_alive() const noexcept = 0;
  /// Has the owner publish `data` on `topic` (which waits for room as the owner's publish() does)
  /// and returns its seq. Throws Refused without the right, and what publish() throws.
  virtual std::uint64_t publish(Topic& topic, std::span<const std::byte> data, unsigned tag) = 0;
  /// A claim the owner holds for this process: its seq, a token naming it, and where this process
  /// writes the payload (memory it shares with the owner only, copied into the ring at commit).
  struct RemoteClaim {
    std::uint64_t seq = 0;
    std::uint64_t token = 0;
    std::span<std::byte> data;
  };
  /// Has the owner claim `size` bytes on `topic` (waiting for room as claim() does). Throws Refused
  /// without the right, and what claim() throws.
  virtual RemoteClaim claim(Topic& topic, std::size_t size) = 0;
  /// Commits (copying the payload) or aborts the owner's claim `token`; commit returns its seq and
  /// throws ClaimExpired as Claim::commit() does.
  virtual std::uint64_t commit(Topic& topic, std::uint64_t token, unsigned tag) = 0;
  virtual void abort(Topic& topic, std::uint64_t token) noexcept = 0;
};

/// What the notifier needs of an armed subscriber: its slot (null: gone), its armed-set flag, where
/// the eventfd to write is kept (for a seat, the owner's copy, never the slot's), and, for a seat,
/// the flag of its count in `armed` (which the owner keeps).
struct WakeTarget {
  SubscriberSlot* slot = nullptr;
  std::atomic<std::uint32_t>* queued = nullptr;
  std::atomic<std::int32_t>* fd = nullptr;
  std::atomic<std::uint32_t>* counted = nullptr;
};

/// What a claim got: its first seq, where its bytes start (before any lap-end skip), where they end,
/// and the count of expiries begun before it (its commits check it did not move).
struct Reservation {
  std::uint64_t seq = 0;
  std::uint64_t pos = 0;
  std::uint64_t end = 0;
  std::uint64_t epoch = 0;
};
/// A producer's state while it waits for room (Topic::make_room()).
struct RoomWait {
  const std::function<bool()>* interrupted = nullptr;  // asked about every 50 ms of waiting
  std::chrono::steady_clock::time_point next_check{};
  bool waiting = false;
  Deadline deadline = Deadline::never();
  std::uint64_t held_seq = ~std::uint64_t{0};      // the uncommitted claim the retirer stopped at
  std::chrono::steady_clock::time_point held_since{};
  unsigned backoff = 0;
};
}  // namespace detail

/// A topic: the ring log, its producers and subscribers. Created by Hub::topic(); never moves.
class Topic : public std::enable_shared_from_this<Topic> {
 public:
  Topic(const Topic&) = delete;
  Topic& operator=(const Topic&) = delete;
  ~Topic();

  /// Appends one message; returns its seq. Waits for room up to publish_timeout (Overflow::block),
  /// then throws Full. Throws MessageTooLarge, Closed. [any thread]
  std::uint64_t publish(std::span<const std::byte> data, unsigned tag = 0);
  /// claim() if there is room now; never waits for subscribers to make room (it may wait, briefly,
  /// for another retirer, as try_publish() does). False when the ring is full. [any thread]
  [[nodiscard]] bool try_claim(std::size_t size, Claim& out);
  /// Appends one message if there is room now; never waits for subscribers to make room. It may
  /// wait, with the same backoff as publish(), for another publisher that is retiring old records
  /// (a bounded walk, long only if that thread is preempted). Throws MessageTooLarge, Closed.
  /// [any thread]
  [[nodiscard]] bool try_publish(std::span<const std::byte> data, unsigned tag = 0);
  /// try_publish() that also says the message's seq. [any thread]
  [[nodiscard]] bool try_publish(std::span<const std::byte> data, unsigned tag, std::uint64_t& seq);
  /// Appends many messages with one claim (one per chunk of half the ring); returns the seq of the
  /// last. All get `tag`. An empty list throws Error. A chunk that finds no room within
  /// publish_timeout throws Full, whose published() says how many messages went out before it.
  /// [any thread]
  std::uint64_t publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag = 0);
  /// publish() and publish_batch() for callers that must get the thread back while it waits for
  /// room (a language binding that handles signals): `interrupted` is called about every 50 ms of
  /// waiting, never otherwise; when it returns true the wait ends with Interrupted, and the message
  /// (or the rest of the batch) is not published. [any thread]
  std::uint64_t publish(std::span<const std::byte> data, unsigned tag, const std::function<bool()>& interrupted);
  std::uint64_t publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag,
                              const std::function<bool()>& interrupted);
  /// Claims the next seq and room for a message of `size` bytes, to be written in place and
  /// committed (claim.hpp). Other producers go on publishing meanwhile; readers see nothing past
  /// this seq until it is committed, dropped, or expired (claim_timeout). Waits like publish().
  /// [any thread]
  [[nodiscard]] Claim claim(std::size_t size);

  /// Subscribes from `start`, receiving the tags in `tag_mask` (bit t = tag t). Throws
  /// InvalidCursor for Start::at outside [oldest(), head()], Closed, or Error when the subscriber
  /// table is full. [any thread]
  [[nodiscard]] Subscriber subscribe(Start start = Start::oldest, std::uint64_t tag_mask = kAllTags);

  /// The committed frontier: one past the last message readers can see (the first seq that is
  /// claimed but not committed, or not claimed yet). A snapshot. [any thread]
  [[nodiscard]] std::uint64_t head() const noexcept;
  /// The oldest retained message (== head() when nothing is retained). [any thread]
  [[nodiscard]] std::uint64_t oldest() const noexcept {
    // Acquire: pairs with SYNC(retire).
    return ring_.state().retire_seq.load(std::memory_order_acquire);
  }
  [[nodiscard]] TopicStats stats() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const TopicOptions& options() const noexcept { return options_; }
  [[nodiscard]] std::uint32_t max_message() const noexcept { return max_message_; }

  /// Closes the topic: publishing and subscribing throw Closed; subscribers may still poll what is
  /// retained. Idempotent. [any thread]
  void close() noexcept;
  /// Closed by its owner; for another process's topic (view()), also once that process is gone.
  [[nodiscard]] bool closed() const noexcept {
    // Acquire: pairs with the seq_cst exchange in close(); a caller that sees it sees the close.
    return ring_.state().closed.load(std::memory_order_acquire) != 0 || (read_only_ && owner_gone());
  }

  /// Internal: the shared region, for io/ and tests.
  [[nodiscard]] detail::RingView ring() const noexcept { return ring_; }
  /// Internal, for the notifier: slots that armed since it last looked (each at most once: the slot's
  /// `queued` flag).
  [[nodiscard]] boost::lockfree::queue<std::uint32_t>& armed_set() noexcept { return armed_set_; }
  [[nodiscard]] detail::Notifier* notifier() const noexcept { return notifier_.get(); }
  /// Internal: waits until no notifier round runs on this topic (every eventfd write it started
  /// has landed, and no round still holds an eventfd number read from a slot), then serves what
  /// publishers left pending meanwhile.
  void quiesce_notifier() noexcept;
  /// Internal: turns the uncommitted claim of `seq` into an aborted message (claim expiry), unless
  /// it was committed first. True if it did. [any thread]
  bool expire(std::uint64_t seq) noexcept;
  /// Internal, for io's Remote: a topic of another process, over its region mapped read-only
  /// (`bytes` long; `memory` unmaps it when the topic goes). Its subscribers poll, and with an
  /// owner link gate and are pushed; publish(), publish_batch() and claim() go through the link
  /// (one message at a time, copied by the owner), close() does nothing.
  /// Throws Error if the region's header does not describe a region of `bytes` bytes.
  static std::shared_ptr<Topic> view(std::string name, std::byte* region, std::size_t bytes,
                                     std::shared_ptr<MemoryProvider> memory,
                                     std::shared_ptr<detail::Notifier> notifier,
                                     std::shared_ptr<detail::OwnerLink> seats = nullptr);
  /// Internal, for io's Server: seats a subscriber of another process, whose slot is in memory
  /// this process shares with that one only; from now on it gates the writers (and is detached
  /// when it stalls) like a slot of the table. Its values are untrusted: a cursor outside [oldest,
  /// head] is clamped, never followed. Returns the seat's id; throws Error when all are taken.
  /// [any thread]
  std::uint32_t add_seat(detail::SubscriberSlot* slot);
  /// Internal: unseats it (its process left); returns once no retirer or notifier round can still
  /// read the slot, so that its memory may be unmapped. [any thread]
  void remove_seat(std::uint32_t id) noexcept;
  /// Internal: the eventfd (the owner's descriptor, which it now owns) that wakes seat `id`.
  void set_seat_fd(std::uint32_t id, int fd) noexcept;
  /// Internal, the owner's half of a seat's arming (its process stored wake = armed and told us):
  /// counts it in `armed`, queues it, runs the heavy barrier and re-checks its cursor, waking it
  /// at once if messages (or a close) are there. SYNC(arm) with this process's publishers.
  void seat_armed(std::uint32_t id) noexcept;
  /// Internal, for the notifier: the subscriber behind an armed-set entry.
  [[nodiscard]] detail::WakeTarget wake_target(std::uint32_t index) noexcept;
  /// Seats a topic has: subscribers of other processes at once.
  static constexpr std::uint32_t kMaxSeats = 4096;
  /// Armed-set entries at and above this name seats (entry - kSeatBase), below it table slots.
  static constexpr std::uint32_t kSeatBase = 1u << 31;
  /// Internal: this topic is another process's, mapped read-only (view()).
  [[nodiscard]] bool read_only() const noexcept { return read_only_; }
  /// Internal: where its subscribers' seats come from (view()), or null.
  [[nodiscard]] detail::OwnerLink* owner() const noexcept { return owner_.get(); }
  /// Internal, for io's Server: the region and its size.
  [[nodiscard]] std::byte* region() const noexcept { return region_; }
  [[nodiscard]] std::size_t region_bytes() const noexcept { return region_bytes_; }
  /// Internal: some claim was taken and not yet ended (committed, aborted or dropped), including
  /// one that expired but whose Claim object has not found out yet. The topic's memory must stay.
  [[nodiscard]] bool claims_open() const noexcept;

 private:
  friend class Hub;
  friend class Claim;
  friend class Subscriber;
  friend class WakeGroup;

  Topic(std::string name, const TopicOptions& options,
        std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier);
  struct ViewTag {};
  Topic(ViewTag, std::string name, const TopicOptions& options, std::byte* region, std::size_t bytes,
        std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier,
        std::shared_ptr<detail::OwnerLink> seats);

  enum class Wait : std::uint8_t { no, yes };
  /// Claims `count` seqs and the ring bytes laid out by `layout(pos) -> end`; false only for
  /// Wait::no without room.
  template <class Layout>
  bool reserve(std::uint64_t count, Layout&& layout, Wait wait, detail::Reservation& out,
               const std::function<bool()>* interrupted = nullptr);
  /// Moves the claim word from `w` to `next` (CAS, the owner's restartable store, or the sole
  /// producer's store). False (and `w` reloaded) when someone else moved it first.
  bool claim_word(std::uint64_t& w, std::uint64_t next);
  /// After a claim won by CAS: one thread winning alone for long enough is given the bias.
  void count_streak() noexcept;
  void try_bias(std::uint64_t me) noexcept;
  /// Takes the bias back from its owner: after it, the owner's restartable stores fail.
  void revoke_bias() noexcept;
  void lower_bias_flag() noexcept;
  /// Slow path of reserve(): makes room up to (end_pos, end_seq) (retiring old records, detaching
  /// stalled subscribers, expiring a claim that held the ring for claim_timeout), waiting if asked.
  /// Returns false when there is no room and no wait.
  bool make_room(std::uint64_t end_pos, std::uint64_t end_seq, Wait wait, detail::RoomWait& room);
  /// What a retire pass found in its way.
  /// Why retiring stopped: room enough; a cursor in the way (gated); an uncommitted claim in the
  /// way (held); nothing older than the frontier left (frontier, reported by retire() as gated).
  enum class Retired : std::uint8_t { enough, gated, held, frontier };
  /// Walks old records to free room up to (end_pos, end_seq). Caller holds `retiring`.
  Retired retire(std::uint64_t end_pos, std::uint64_t end_seq, std::uint64_t& held_seq);
  /// retire()'s walk: moves the retire point (q, r) toward (want_seq, want_pos), stopping at `limit`
  /// (gated), at an uncommitted claim (held: its seq in held_seq) or at the frontier.
  Retired walk_index(std::uint64_t& q, std::uint64_t& r, std::uint64_t want_pos, std::uint64_t want_seq,
                     std::uint64_t limit, std::uint64_t& held_seq);
  /// The ring is full against the slowest cursor: note when, the frontier, and every cursor.
  void begin_stall(std::int64_t now) noexcept;
  /// Detaches every subscriber stalled since `since` (see retire.cpp).
  void detach_stalled(std::int64_t since) noexcept;
  /// Calls f(Seat&, SubscriberSlot&) for each seated slot (seq_cst loads: the retirer's half of
  /// SYNC(attach)). Caller holds `retiring`.
  template <class F>
  void for_each_seat(F&& f) noexcept {
    // Acquire: pairs with add_seat()'s release of the array.
    Seat* seats = seats_.load(std::memory_order_acquire);
    if (seats == nullptr) return;
    const std::uint32_t high = seats_high_.load(std::memory_order_seq_cst);
    for (std::uint32_t i = 0; i < high; ++i) {
      if (detail::SubscriberSlot* slot = seats[i].slot.load(std::memory_order_seq_cst)) f(seats[i], *slot);
    }
  }
  /// The slowest attached cursor (Overflow::block), detaching subscribers that have been stalled
  /// for stall_timeout. Caller holds `retiring`.
  std::uint64_t gate() noexcept;
  /// Commits message `seq` (`info`: its payload's position, size and tag; with kEntryAborted in
  /// `flags`, an empty message), claimed when `epoch` expiries had begun: one index entry. False
  /// when the claim expired first.
  bool commit(std::uint64_t seq, std::uint64_t info, std::uint64_t flags, std::uint64_t epoch) noexcept;
  /// `count` holders of expired claims found out (see claims_open()).
  void notice_expiry(std::uint64_t count) noexcept;
  /// SYNC(arm), publisher side: after a commit of `last` (and anything before it), is anyone armed?
  /// Then notify, with the tags of everything the commit made visible.
  void after_commit(std::uint64_t last, std::uint64_t tag_bits) noexcept;
  void wake(std::uint64_t last, std::uint64_t tag_bits) noexcept;
  /// The payload of one message at `start`.
  void write_payload(std::uint64_t start, std::span<const std::byte> data) noexcept {
    detail::copy_payload(ring_.at(start), data.data(), data.size());
  }
  /// publish() and try_publish(): false only for Wait::no without room.
  bool publish_one(std::span<const std::byte> data, unsigned tag, Wait wait, std::uint64_t& seq,
                   const std::function<bool()>* interrupted = nullptr);
  std::uint64_t publish_batch_impl(std::span<const std::span<const std::byte>> messages, unsigned tag,
                                   const std::function<bool()>* interrupted);
  /// publish_batch() for messages that fit one claim.
  std::uint64_t publish_chunk(std::span<const std::span<const std::byte>> messages, unsigned tag,
                              const std::function<bool()>* interrupted);
  /// Attaches slot `slot` at cursor `seq`, safely against a concurrent retire. Returns false if
  /// `seq` was retired first (the caller picks another start).
  bool attach(detail::SubscriberSlot& slot, std::uint64_t seq) noexcept;
  /// Takes a free slot of the table for a new subscriber (subscribe()); throws Error when full.
  std::uint32_t take_slot();
  /// Whether an index entry still holds the mark of the previous lap's message, so that `seq`
  /// may be committed (or expired) into it.
  [[nodiscard]] bool stale_for(std::uint64_t word, std::uint64_t seq) const noexcept {
    return (word & detail::kSeqMask) == ((seq - ring_.index_size()) & detail::kSeqMask);
  }
  void check_open() const;
  void check_size(std::size_t size) const;
  static void check_tag(unsigned tag);
  [[noreturn]] void throw_full(std::uint64_t published) const;
  [[noreturn]] void throw_read_only() const;
  /// claim() and try_claim(); false only for Wait::no without room.
  bool claim_impl(std::size_t size, Wait wait, Claim& out);
  /// publish() of a mapped topic: through the owner link, or Refused without one.
  std::uint64_t publish_through_owner(std::span<const std::byte> data, unsigned tag);
  /// A view whose owner's process no longer answers (its connection hung up).
  [[nodiscard]] bool owner_gone() const noexcept;

  std::string name_;
  TopicOptions options_;
  std::uint32_t max_message_;
  std::shared_ptr<MemoryProvider> memory_;
  std::size_t region_bytes_ = 0;
  std::byte* region_ = nullptr;
  detail::RingView ring_;
  bool single_producer_;
  bool overwrite_;
  bool read_only_ = false;  // another process's region, mapped read-only (view())
  std::shared_ptr<detail::Notifier> notifier_;
  bool asymmetric_ = false;   // publishers may use the light barrier (the notifier's is heavy)
  bool restartable_ = false;  // producers may write contested words in restartable sequences
  boost::lockfree::queue<std::uint32_t> armed_set_;
  std::atomic<std::uint32_t> slot_hint_{0};  // where subscribe() starts looking for a free slot

  // ---- subscribers of other processes (docs/DESIGN.md, "Other processes") ----
  // In the owner: the seated slots. Allocated on the first add_seat(), freed with the topic.
  struct Seat {
    // The slot, in memory shared with its process only, or null. Writer: add_seat()/remove_seat()
    // (seq_cst, as slot_high: SYNC(attach)); readers: the retirer's scans (seq_cst).
    std::atomic<detail::SubscriberSlot*> slot{nullptr};
    // The retirer's note of its cursor when a stall began: kept here, where its process cannot
    // write it. Only touched under `retiring`.
    std::uint64_t stall_cursor = 0;
    // The owner's side of the seat's wake state, where its process cannot write either: in the
    // armed set (as SubscriberSlot::queued), counted in `armed` (exchanged 0 <-> 1 by seat_armed()
    // and the notifier, seq_cst, so that exactly one increment meets one decrement), and the
    // owner's descriptor of its eventfd (written under seats_mutex_; relaxed loads by rounds,
    // published by the seq_cst exchanges of the arming).
    std::atomic<std::uint32_t> queued{0};
    std::atomic<std::uint32_t> counted{0};
    std::atomic<std::int32_t> fd{-1};
  };
  std::atomic<Seat*> seats_{nullptr};       // acquire by the retirer, release once by add_seat()
  std::atomic<std::uint32_t> seats_high_{0};  // one past the highest seat ever taken
  std::mutex seats_mutex_;                  // add_seat()/remove_seat() between themselves
  std::unique_ptr<Seat[]> seats_storage_;
  // In a process that maps another's topic: where its subscribers' slots come from.
  std::shared_ptr<detail::OwnerLink> owner_;
};

// ---------------------------------------------------------------------------------------------
// The publish path, inline.

inline void Topic::check_tag(unsigned tag) {
  if (tag > kMaxTag) throw Error("pushpoll: tag " + std::to_string(tag) + " is out of range 0..63");
}

template <class Layout>
inline bool Topic::reserve(std::uint64_t count, Layout&& layout, Wait wait, detail::Reservation& out,
                           const std::function<bool()>* interrupted) {
  auto& s = ring_.state();
  const std::uint64_t cap = ring_.capacity();
  const std::uint64_t entries = ring_.index_size();
  detail::RoomWait room;
  room.interrupted = interrupted;
  // Acquire, before the claim: an expiry of what we claim can only begin after the claim, so it
  // moves this count after we read it (see RingState::expiries_begun).
  const std::uint64_t epoch = s.expiries_begun.load(std::memory_order_acquire);
  // Relaxed: only a guess, the claim decides; the retire point below is acquired after it.
  std::uint64_t w = s.claim.load(std::memory_order_relaxed);
  for (;;) {
    // Acquire both: pairs with SYNC(retire); the retirer read the old records and entries before
    // it moved the retire point, so those reads happen-before our writes over them. Loaded after
    // the claim word, so that when our claim succeeds they are at most a ring behind it and unpack
    // it exactly (detail::claim_seq()).
    const std::uint64_t q = s.retire_seq.load(std::memory_order_acquire);
    const std::uint64_t r = s.retire_pos.load(std::memory_order_acquire);
    const std::uint64_t seq = detail::claim_seq(w, q);
    const std::uint64_t pos = detail::claim_pos(w, r);
    const std::uint64_t end = layout(pos);
    if (end > r + cap || seq + count > q + entries) [[unlikely]] {
      // Only a claim word still current unpacks right against the retire point read after it; a
      // stale one (others claimed, and retired, since) would ask for room nobody can make.
      const std::uint64_t now = s.claim.load(std::memory_order_relaxed);
      if (now != w) {
        w = now;
        continue;
      }
      if (!make_room(end, seq + count, wait, room)) return false;
      w = s.claim.load(std::memory_order_relaxed);
      continue;
    }
    if (!claim_word(w, detail::pack_claim(seq + count, end))) continue;
    out = detail::Reservation{seq, pos, end, epoch};
    // Release fence before the record bytes are written: a reader that sees any of them and then
    // runs an acquire fence also sees the retire point we acquired above (read-validate of
    // overwrite mode).
    std::atomic_thread_fence(std::memory_order_release);
    return true;
  }
}

inline bool Topic::claim_word(std::uint64_t& w, std::uint64_t next) {
  auto& s = ring_.state();
  if (single_producer_) {
    // Relaxed: only this thread writes the claim word (the single-producer promise).
    s.claim.store(next, std::memory_order_relaxed);
    return true;
  }
  if (w & detail::kClaimBiased) {
    // The topic is biased: its owner claims with a restartable sequence that checks, at the moment
    // of the store, that it still owns the bias and nobody moved the word; anyone else revokes.
    // Relaxed: the sequence re-checks it; a stale value only sends us down the revoking path.
    const std::uint64_t me = detail::thread_token();
    if (s.owner.load(std::memory_order_relaxed) == me) {
      next |= detail::kClaimBiased;
      if (detail::rseq_store_if(s.owner, me, s.claim, w, s.claim, next) == detail::Write::done) {
        return true;
      }
    }
    revoke_bias();
    w = s.claim.load(std::memory_order_relaxed);
    return false;
  }
  // Release/acquire CAS (free on x86): it hands out exclusive (seq, byte) ranges, and orders our
  // read of expiries_begun before any expiry of what we claim (RingState::expiries_begun).
  if (!s.claim.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    return false;
  }
  if (restartable_) count_streak();
  return true;
}

inline bool Topic::commit(std::uint64_t seq, std::uint64_t info, std::uint64_t flags, std::uint64_t epoch) noexcept {
  detail::IndexEntry& e = ring_.entry(seq);
  const std::uint64_t word = (seq & detail::kSeqMask) | flags;
  if (restartable_) {
    // SYNC(commit): info, then the mark, in a sequence that stores only if no expiry has begun
    // since our claim; then nobody else can have written this entry (only an expirer of `seq`
    // could, and the entry's previous message is retired), so it is not even read. An expirer
    // counts itself in expiries_begun and restarts every sequence in flight before it takes an
    // entry.
    if (detail::rseq_store2_if(ring_.state().expiries_begun, epoch, ring_.state().expiries_begun, epoch,
                               e.info, info, e.word, word) == detail::Write::done) {
      return true;
    }
  }
  // SYNC(commit), the compare-and-swap way: both words at once, only over the previous lap's mark.
  // Relaxed load: the previous lap's mark, which the retirer acquired before it let us claim this
  // seq (SYNC(retire)); anything else means our claim expired. The CAS re-checks it.
  std::uint64_t stale = e.word.load(std::memory_order_relaxed);
  std::uint64_t old_info = e.info.load(std::memory_order_relaxed);
  while (stale_for(stale, seq)) {
    if (detail::cas_entry(e, stale, old_info, word, info)) return true;
  }
  return false;
}

inline void Topic::after_commit(std::uint64_t last, std::uint64_t tag_bits) noexcept {
  auto& s = ring_.state();
#if defined(PUSHPOLL_TSAN)
  // ThreadSanitizer models neither fences nor membarrier: the symmetric form, a seq_cst load after
  // the seq_cst commit (the compare-and-swap: the TSan build has no restartable sequences).
  if (s.armed.load(std::memory_order_seq_cst) != 0) wake(last, tag_bits);
#else
  // SYNC(arm), publisher side (Dekker): our store of the commit mark, then our load of `armed`;
  // the subscriber stores `armed`, then loads the mark at its cursor. Each side needs a StoreLoad
  // barrier. With the asymmetric protocol the subscriber runs membarrier() (a full barrier on
  // every running thread of the process) and we need only keep the compiler from reordering;
  // otherwise a full fence.
  if (asymmetric_) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Relaxed: ordered by the barrier above (see docs/DESIGN.md, "The arming handshake").
  if (s.armed.load(std::memory_order_relaxed) != 0) wake(last, tag_bits);
#endif
}

inline bool Topic::publish_one(std::span<const std::byte> data, unsigned tag, Wait wait, std::uint64_t& seq,
                               const std::function<bool()>* interrupted) {
  if (data.size() > max_message_) check_size(data.size());
  if (tag > kMaxTag) check_tag(tag);
  if (closed()) check_open();
  if (read_only_) [[unlikely]] {
    seq = publish_through_owner(data, tag);
    return true;
  }
  const std::uint64_t bytes = detail::record_bytes(data.size());
  for (;;) {
    detail::Reservation r;
    if (!reserve(1, [this, bytes](std::uint64_t p) noexcept { return ring_.placement(p, bytes) + bytes; },
                 wait, r, interrupted)) {
      return false;
    }
    const std::uint64_t start = ring_.placement(r.pos, bytes);
    write_payload(start, data);
    if (commit(r.seq, detail::pack_info(start, data.size(), tag), 0, r.epoch)) [[likely]] {
      after_commit(r.seq, std::uint64_t{1} << tag);
      seq = r.seq;
      return true;
    }
    // Preempted for claim_timeout between claim and commit: the seq went out as an aborted
    // message. The data is still ours: publish it again.
  }
}

inline std::uint64_t Topic::publish(std::span<const std::byte> data, unsigned tag) {
  std::uint64_t seq = 0;
  publish_one(data, tag, Wait::yes, seq);
  return seq;
}

inline bool Topic::try_publish(std::span<const std::byte> data, unsigned tag) {
  std::uint64_t seq = 0;
  return publish_one(data, tag, Wait::no, seq);
}

inline bool Topic::try_publish(std::span<const std::byte> data, unsigned tag, std::uint64_t& seq) {
  return publish_one(data, tag, Wait::no, seq);
}

inline std::uint64_t Subscriber::lag() const noexcept {
  const std::uint64_t head = core_->topic->head();
  return head > core_->cursor ? head - core_->cursor : 0;
}

}  // namespace pushpoll

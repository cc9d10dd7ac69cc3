// pushpoll/topic.hpp — a topic (the feed), its producers' claims, and its subscribers (the cursors).
//
// A topic is a lock-free, append-only ring log. Every message gets the next 64-bit sequence number
// (0, 1, 2, ... for the topic's whole life, never reused). Publishers append; each subscriber reads
// batches in place from its own cursor.
//
// Lifetimes: a Topic lives as long as its Hub. A Subscriber keeps its topic's memory alive (it may
// outlive the Hub and then sees Closed); a Claim must not outlive its Hub, nor a Batch its
// Subscriber (debug builds assert both).
//
// Thread-safety tags used below:
//   [any thread]  safe from many threads at once
//   [owner]       one thread at a time per object (objects may move between threads)
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include <boost/lockfree/queue.hpp>
#include <vector>

#include "pushpoll/detail/notifier.hpp"
#include "pushpoll/detail/ring.hpp"
#include "pushpoll/errors.hpp"
#include "pushpoll/memory.hpp"
#include "pushpoll/message.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/wake.hpp"

namespace pushpoll {

class Hub;
class Topic;
class Subscriber;
class WakeGroup;

/// What a topic has done. Every field is a snapshot; counters only grow.
struct TopicStats {
  std::uint64_t head = 0;           ///< messages published (the next seq)
  std::uint64_t oldest = 0;         ///< oldest retained seq
  std::uint64_t bytes_claimed = 0;  ///< ring bytes claimed so far (framing and padding included)
  std::uint32_t subscribers = 0;    ///< live subscribers
  std::uint64_t full_waits = 0;     ///< publishes that found the ring full and waited
  std::uint64_t full_timeouts = 0;  ///< publishes that gave up (Full or try_publish == false)
  std::uint64_t detaches = 0;       ///< stalled subscribers detached (Overflow::block)
  std::uint64_t laps = 0;           ///< polls that found their cursor overwritten (gap reported)
  std::uint64_t retire_walks = 0;   ///< times the writers freed old records
  std::uint64_t gate_scans = 0;     ///< times the writers scanned subscriber cursors
  std::uint64_t aborted = 0;        ///< claims dropped without commit()
};

namespace detail {
/// The ring-side half of a reservation: where the record goes and what it ends.
struct Reservation {
  std::uint64_t pos = 0;    // claimed start (a padding record goes here when start != pos)
  std::uint64_t start = 0;  // first record's header
  std::uint64_t end = 0;    // one past the last byte claimed
};

/// A subscriber's private state: heap-allocated so that Batch handles survive moves of Subscriber.
struct SubscriberCore {
  Topic* topic = nullptr;
  std::shared_ptr<Topic> keep;  // the topic (and its region) outlive the hub while subscribed
  RingView ring;
  std::uint32_t slot = 0;
  std::uint64_t tag_mask = kAllTags;
  std::uint64_t cursor_seq = 0;
  std::uint64_t cursor_pos = 0;
  // The outstanding batch, if any.
  bool outstanding = false;
  std::uint64_t generation = 0;
  std::uint64_t out_begin_pos = 0, out_end_pos = 0, out_end_seq = 0;
  // Result of the most recent release, for a Batch handle released after its subscriber re-polled.
  std::uint64_t released_generation = 0;
  bool released_intact = true;
  // Debug-build lifetime check: Batch handles alive.
  std::int32_t live_batches = 0;
  // Wake-ups.
  int own_fd = -1;               // this subscriber's eventfd, opened on first use
  WakeGroup* group = nullptr;    // when it is woken through a group's eventfd instead
  std::uint32_t group_id = 0;    // its id in that group
  WaitOptions wait_options{};
  std::chrono::steady_clock::time_point last_wake{};

  /// Validates and releases the outstanding batch; returns whether it stayed intact.
  bool release_outstanding() noexcept;
  /// Whether messages were lost before the cursor (the slot was detached, or the writers lapped
  /// it): the next poll resyncs and reports the gap. Relaxed state load: a detach seen late is
  /// seen by the next look, and the retire mark (acquire: pairs with SYNC(retire)) catches a lap.
  [[nodiscard]] bool gapped() const noexcept {
    return ring.slot(slot).state.load(std::memory_order_relaxed) == kSlotDetached ||
           ring.state().retire_pos.load(std::memory_order_acquire) > cursor_pos;
  }
};
}  // namespace detail

/// A message being built in place. Move-only; dropping it uncommitted publishes an aborted message.
class Claim {
 public:
  Claim() = default;
  Claim(Claim&& other) noexcept { *this = std::move(other); }
  Claim& operator=(Claim&& other) noexcept;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() { abort(); }

  /// The claimed bytes, inside the ring. [owner]
  [[nodiscard]] std::span<std::byte> data() const noexcept { return data_; }
  /// Publishes the message with `tag` (0..63); returns its seq. [owner]
  std::uint64_t commit(unsigned tag = 0);
  /// Publishes an empty message flagged `aborted`, so that sequence numbers stay gap-free. [owner]
  void abort() noexcept;
  [[nodiscard]] bool active() const noexcept { return topic_ != nullptr; }

 private:
  friend class Topic;
  Claim(Topic* topic, detail::Reservation r, std::span<std::byte> data) noexcept
      : topic_(topic), r_(r), data_(data) {}
  Topic* topic_ = nullptr;
  detail::Reservation r_{};
  std::span<std::byte> data_{};
};

/// A topic: the ring log, its producers and subscribers. Created by Hub::topic(); never moves.
class Topic : public std::enable_shared_from_this<Topic> {
 public:
  Topic(const Topic&) = delete;
  Topic& operator=(const Topic&) = delete;
  ~Topic();

  /// Appends one message; returns its seq. Waits for room up to publish_timeout (Overflow::block),
  /// then throws Full. Throws MessageTooLarge, Closed. [any thread]
  std::uint64_t publish(std::span<const std::byte> data, unsigned tag = 0);
  /// Appends one message if there is room now; never waits for subscribers to make room. It may
  /// wait, with the same backoff as publish(), for another publisher that is retiring old records
  /// (a bounded walk, long only if that thread is preempted). Throws MessageTooLarge, Closed.
  /// [any thread]
  [[nodiscard]] bool try_publish(std::span<const std::byte> data, unsigned tag = 0);
  /// Appends many messages with one claim (one per ring-sized chunk); returns the seq of the last.
  /// All get `tag`. An empty list throws Error. [any thread]
  std::uint64_t publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag = 0);
  /// Claims room for a message of `size` bytes, to be written in place and committed. Until it is
  /// committed or dropped, later publishers' messages cannot become visible: keep claims short.
  /// Waits like publish(). [any thread]
  [[nodiscard]] Claim claim(std::size_t size);

  /// Subscribes from `start`, receiving the tags in `tag_mask` (bit t = tag t). Throws
  /// InvalidCursor for Start::at outside [oldest(), head()], Closed, or Error when the subscriber
  /// table is full. [any thread]
  [[nodiscard]] Subscriber subscribe(Start start = Start::oldest, std::uint64_t tag_mask = kAllTags);

  /// The committed frontier: one past the last message readers can see. [any thread]
  [[nodiscard]] std::uint64_t head() const noexcept {
    // Acquire: pairs with SYNC(commit); a value the caller then reads up to is complete.
    return ring_.state().head_seq.load(std::memory_order_acquire);
  }
  /// The oldest retained message (== head() when nothing is retained). [any thread]
  [[nodiscard]] std::uint64_t oldest() const noexcept;
  [[nodiscard]] TopicStats stats() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const TopicOptions& options() const noexcept { return options_; }
  [[nodiscard]] std::uint32_t max_message() const noexcept { return max_message_; }

  /// Closes the topic: publishing and subscribing throw Closed; subscribers may still poll what is
  /// retained. Idempotent. [any thread]
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept {
    // Acquire: pairs with the release in close(); a caller that sees it sees the close complete.
    return ring_.state().closed.load(std::memory_order_acquire) != 0;
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

 private:
  friend class Hub;
  friend class Claim;
  friend class Subscriber;
  friend class WakeGroup;
  friend struct detail::SubscriberCore;

  Topic(std::string name, const TopicOptions& options,
        std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier);
  /// SYNC(arm), publisher side: after a commit, is anyone armed? Then notify.
  void after_commit(std::uint64_t tag_bits) noexcept;
  void wake(std::uint64_t tag_bits) noexcept;

  enum class Wait : std::uint8_t { no, yes };
  /// Claims ring bytes laid out by `layout(pos) -> {start, end}`; returns false only for Wait::no
  /// without room.
  template <class Layout>
  bool reserve(Layout&& layout, Wait wait, detail::Reservation& out);
  /// reserve() for one record of `bytes`.
  bool reserve_one(std::uint64_t bytes, Wait wait, detail::Reservation& out) {
    return reserve(
        [this, bytes](std::uint64_t p) noexcept {
          const std::uint64_t start = ring_.placement(p, bytes);
          return std::pair<std::uint64_t, std::uint64_t>{start, start + bytes};
        },
        wait, out);
  }
  /// Header and payload of one record at `start`.
  void write_record(std::uint64_t start, std::span<const std::byte> data, unsigned tag) noexcept;
  /// publish() and try_publish(): false only for Wait::no without room.
  bool publish_one(std::span<const std::byte> data, unsigned tag, Wait wait, std::uint64_t& seq);
  /// publish_batch() for messages that fit one claim.
  std::uint64_t publish_chunk(std::span<const std::span<const std::byte>> messages, unsigned tag);
  /// Slow path of reserve(): makes room up to `end` (retiring old records, detaching stalled
  /// subscribers), waiting if asked. Returns false when there is no room and no wait.
  bool make_room(std::uint64_t end, Wait wait, std::chrono::steady_clock::time_point& deadline);
  /// Walks old records to free room for a claim ending at `end`. Caller holds `retiring`.
  bool retire(std::uint64_t end);
  /// Waits for earlier claims to commit, then publishes records [r.start, r.end) as `count`
  /// messages from the committer's seq; returns the first seq.
  std::uint64_t commit(const detail::Reservation& r, std::uint64_t count) noexcept;
  void write_padding(const detail::Reservation& r) noexcept;
  void check_open() const;
  void check_size(std::size_t size) const;
  static void check_tag(unsigned tag);
  /// (seq, pos) of the head, consistent with each other.
  void locate_head(std::uint64_t& seq, std::uint64_t& pos) const noexcept;
  /// (seq, pos) of the oldest retained message, consistent with each other; reads no ring bytes.
  void retire_point(std::uint64_t& seq, std::uint64_t& pos) const noexcept;
  /// Position of message `seq`, walking from a retained boundary (from_seq, from_pos) that the
  /// caller's attached slot protects; false if the walk was overtaken (overwrite mode).
  [[nodiscard]] bool locate(std::uint64_t seq, std::uint64_t from_seq, std::uint64_t from_pos,
                            std::uint64_t& pos) const noexcept;
  /// Attaches slot `slot` at a cursor, safely against a concurrent retire. Returns false if the
  /// records from `pos` on were retired first (the caller picks another start).
  bool attach(std::uint32_t slot, std::uint64_t pos) noexcept;

  std::string name_;
  TopicOptions options_;
  std::uint32_t max_message_;
  std::shared_ptr<MemoryProvider> memory_;
  std::size_t region_bytes_ = 0;
  std::byte* region_ = nullptr;
  detail::RingView ring_;
  bool single_producer_;
  bool overwrite_;
  std::shared_ptr<detail::Notifier> notifier_;
  bool asymmetric_ = false;  // publishers may use the light barrier (the notifier's is heavy)
  boost::lockfree::queue<std::uint32_t> armed_set_;

  std::atomic<std::uint32_t> slot_hint_{0};     // where subscribe() starts looking for a free slot
#ifndef NDEBUG
  std::atomic<std::int64_t> live_handles_{0};  // Claims not yet committed (lifetime check)
  std::atomic<bool> sp_busy_{false};            // single_producer promise check
#endif
};

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
  /// released.
  [[nodiscard]] Batch poll(std::size_t max_messages = 1024);
  /// Next seq this subscriber will read.
  [[nodiscard]] std::uint64_t cursor() const noexcept { return core_->cursor_seq; }
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

 private:
  friend class Topic;
  friend class WakeGroup;
  /// Unread messages that match the tag mask? Consumes the ones it does not match.
  bool has_matching();
  /// Ends an arming that found messages (or timed out); drains if the notifier already won.
  void disarm() noexcept;
  /// Clears a notified state: drains the subscriber's own eventfd (no syscall if never written).
  void take_notification() noexcept;
  explicit Subscriber(std::unique_ptr<detail::SubscriberCore> core) noexcept : core_(std::move(core)) {}
  /// Detached or lapped: moves the cursor to the oldest retained message; returns the gap.
  std::uint64_t resync();
  std::unique_ptr<detail::SubscriberCore> core_;
};

/// Subscribers served by one thread share one eventfd: the notifier writes each distinct eventfd once
/// per round, so waking 1,000 parked subscribers hosted on 2 threads costs 2 writes. The group
/// tells its thread which members have news. Not thread-safe: one serving thread ([owner]).
///
///   pushpoll::WakeGroup group(hub);
///   for (auto& s : subs) group.add(s);           // ids 0, 1, 2, ...
///   for (;;) for (std::uint32_t id : group.wait(1s)) for (auto& m : subs[id].poll()) use(m);
class WakeGroup {
 public:
  explicit WakeGroup(Hub& hub);
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
  /// returns at once: the way to arm a group for an external event loop watching fd().
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

// ---------------------------------------------------------------------------------------------
// Hot paths, inline.

#if defined(PUSHPOLL_TSAN)
inline constexpr std::memory_order kHeadStoreOrder = std::memory_order_seq_cst;
#else
inline constexpr std::memory_order kHeadStoreOrder = std::memory_order_release;
#endif

inline void Topic::after_commit(std::uint64_t tag_bits) noexcept {
  auto& s = ring_.state();
#if defined(PUSHPOLL_TSAN)
  // ThreadSanitizer models neither fences nor membarrier: use the symmetric form, a seq_cst load
  // after the seq_cst store of head_seq in commit().
  if (s.armed.load(std::memory_order_seq_cst) != 0) wake(tag_bits);
#else
  // SYNC(arm), publisher side (Dekker): our store of head_seq, then our load of `armed`; the
  // subscriber stores `armed`, then loads head_seq. Each side needs a StoreLoad barrier. With the
  // asymmetric protocol the subscriber runs membarrier() (a full barrier on every running thread
  // of the process) and we need only keep the compiler from reordering; otherwise a full fence.
  if (asymmetric_) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Relaxed: ordered by the barrier above (see docs/DESIGN.md, "The arming handshake").
  if (s.armed.load(std::memory_order_relaxed) != 0) wake(tag_bits);
#endif
}

inline void Topic::check_tag(unsigned tag) {
  if (tag > kMaxTag) throw Error("pushpoll: tag " + std::to_string(tag) + " is out of range 0..63");
}

template <class Layout>
inline bool Topic::reserve(Layout&& layout, Wait wait, detail::Reservation& out) {
  auto& s = ring_.state();
  const std::uint64_t cap = ring_.capacity();
  std::chrono::steady_clock::time_point deadline{};
  std::uint64_t p = s.claim_pos.load(std::memory_order_relaxed);  // only a guess: the CAS decides
  for (;;) {
    const auto [start, end] = layout(p);
    // Acquire: pairs with SYNC(retire); the old records below retire_pos are no longer needed and
    // the retirer's reads of them happen-before our writes.
    if (end > s.retire_pos.load(std::memory_order_acquire) + cap) {
      if (!make_room(end, wait, deadline)) return false;
      p = s.claim_pos.load(std::memory_order_relaxed);
      continue;
    }
    if (single_producer_) {
#ifndef NDEBUG
      // The single-producer promise: no other publish is between its claim and its commit.
      // Relaxed: a debug check; concurrent publishers race on it and one of them trips it.
      assert(sp_busy_.exchange(true, std::memory_order_relaxed) == false &&
             "single_producer topic published from two threads at once");
#endif
      // Relaxed: only this thread writes claim_pos (the single-producer promise).
      s.claim_pos.store(end, std::memory_order_relaxed);
    } else if (!s.claim_pos.compare_exchange_weak(p, end, std::memory_order_relaxed,
                                                  std::memory_order_relaxed)) {
      // Relaxed CAS: it only hands out exclusive byte ranges; nothing is published through it.
      continue;
    }
    out = detail::Reservation{p, start, end};
    // Release fence before the record bytes are written: a reader that sees any of them and then
    // runs an acquire fence also sees the retire_pos we acquired above (read-validate of overwrite).
    std::atomic_thread_fence(std::memory_order_release);
    return true;
  }
}

inline void Topic::write_padding(const detail::Reservation& r) noexcept {
  if (r.start != r.pos && ring_.lap_room(r.pos) >= sizeof(detail::RecordHeader)) {
    auto& pad = ring_.header_mut(r.pos);
    pad.size = static_cast<std::uint32_t>(ring_.lap_room(r.pos) - sizeof(detail::RecordHeader));
    pad.tag = 0;
    pad.flags = detail::kPadding;
    pad.reserved = 0;
  }
}

inline std::uint64_t Topic::commit(const detail::Reservation& r, std::uint64_t count) noexcept {
  auto& s = ring_.state();
  if (!single_producer_) {
    // Acquire: pairs with the release store of head_pos by the previous committer; its head_seq
    // (stored before) is then visible. Earlier claims commit first, so sequence order = byte order.
    unsigned spins = 0;
    while (s.head_pos.load(std::memory_order_acquire) != r.pos) {
      if (++spins < 256) {
        detail::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }
  // Relaxed: head_seq is written only by the committer whose turn it is, i.e. by this thread now.
  const std::uint64_t seq = s.head_seq.load(std::memory_order_relaxed);
  if (count == 1) {
    ring_.header_mut(r.start).seq = seq;
    // Release: read by locate_head()/poll(), which acquire it and re-check head_seq.
    s.recent[(seq + 1) % detail::kRecentPositions].store(r.end, std::memory_order_release);
  } else {
    std::uint64_t pos = r.pos, stride = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      std::uint64_t start;
      pos = ring_.next_message(pos, start, stride);
      ring_.header_mut(start).seq = seq + i;
      // Release: as above.
      s.recent[(seq + i + 1) % detail::kRecentPositions].store(pos, std::memory_order_release);
      // The head moves one message at a time, as for single publishes: a reader validates a
      // recent[] entry by re-reading head_seq, which must not lag the entries written.
      if (i + 1 < count) s.head_seq.store(seq + i + 1, kHeadStoreOrder);
    }
  }
  // SYNC(commit): header and payload above become visible no later than the new head.
  // (seq_cst under ThreadSanitizer: the symmetric form of SYNC(arm), see after_commit().)
  s.head_seq.store(seq + count, kHeadStoreOrder);
  // Release: the next committer acquires it (its turn), and sees head_seq above.
  s.head_pos.store(r.end, std::memory_order_release);
#ifndef NDEBUG
  if (single_producer_) sp_busy_.store(false, std::memory_order_relaxed);
#endif
  return seq;
}

inline void Topic::write_record(std::uint64_t start, std::span<const std::byte> data, unsigned tag) noexcept {
  auto& h = ring_.header_mut(start);
  h.size = static_cast<std::uint32_t>(data.size());
  h.tag = static_cast<std::uint8_t>(tag);
  h.flags = 0;
  h.reserved = 0;
  if (!data.empty()) std::memcpy(ring_.at(start) + sizeof(detail::RecordHeader), data.data(), data.size());
}

inline bool Topic::publish_one(std::span<const std::byte> data, unsigned tag, Wait wait, std::uint64_t& seq) {
  if (data.size() > max_message_) check_size(data.size());
  if (tag > kMaxTag) check_tag(tag);
  if (closed()) check_open();
  detail::Reservation r;
  if (!reserve_one(detail::record_bytes(data.size()), wait, r)) return false;
  write_padding(r);
  write_record(r.start, data, tag);
  seq = commit(r, 1);
  after_commit(std::uint64_t{1} << tag);
  return true;
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

inline bool detail::SubscriberCore::release_outstanding() noexcept {
  if (!outstanding) return true;
  outstanding = false;
  // If any byte read from the batch was written by a later lap, that writer's claim came after
  // retire_pos passed the batch, and overtaken() sees it.
  const bool intact = !ring.overtaken(out_begin_pos);
  cursor_seq = out_end_seq;
  cursor_pos = out_end_pos;
  // Release: our reads of the batch happen-before the retirer's acquire of the cursor, and so
  // before any writer reuses these bytes (Overflow::block).
  ring.slot(slot).cursor_pos.store(out_end_pos, std::memory_order_release);
  released_generation = generation;
  released_intact = intact;
  return intact;
}

inline bool Batch::release() noexcept {
  if (released_) return intact_;
  released_ = true;
  if (owner_ == nullptr) return intact_;
#ifndef NDEBUG
  --owner_->live_batches;
#endif
  if (owner_->outstanding && owner_->generation == generation_) {
    intact_ = owner_->release_outstanding();
  } else if (owner_->released_generation == generation_) {
    intact_ = owner_->released_intact;  // the subscriber released it when it polled again
  } else {
    intact_ = false;  // released two polls ago: its result is unknown, so it is not trusted
  }
  owner_ = nullptr;
  return intact_;
}

inline Batch& Batch::operator=(Batch&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    generation_ = other.generation_;
    ring_ = other.ring_;
    begin_pos_ = other.begin_pos_;
    end_pos_ = other.end_pos_;
    begin_seq_ = other.begin_seq_;
    records_ = other.records_;
    matched_ = other.matched_;
    gap_ = other.gap_;
    tag_mask_ = other.tag_mask_;
    released_ = other.released_;
    intact_ = other.intact_;
    other.owner_ = nullptr;
    other.released_ = true;
  }
  return *this;
}

inline Batch Subscriber::poll(std::size_t max_messages) {
  auto& c = *core_;
  c.release_outstanding();
  // Relaxed: our own slot; a notification seen late is drained by the next poll or arm.
  if (c.ring.slot(c.slot).wake.load(std::memory_order_relaxed) == detail::kWakeNotified) take_notification();
  auto& s = c.ring.state();
  Batch b;
  b.ring_ = c.ring;
  b.tag_mask_ = c.tag_mask;
  for (;;) {
    if (c.gapped()) b.gap_ += resync();
    // SYNC(commit): acquire; every record below head is complete.
    const std::uint64_t head = s.head_seq.load(std::memory_order_acquire);
    const std::uint64_t available = head - c.cursor_seq;
    std::uint64_t pos = c.cursor_pos, records = 0, matched = 0;
    if (c.tag_mask == kAllTags) {
      if (available <= max_messages && available != 0) {
        // The whole backlog: its end is the head's position, from the table of recent positions;
        // valid unless the head moved on by a whole table meanwhile (then walk instead).
        if (c.ring.recent_position(head, pos)) records = available;
      }
      const std::uint64_t n = available < max_messages ? available : max_messages;
      std::uint64_t stride = 0;
      for (; records < n; ++records) {
        std::uint64_t start;
        pos = c.ring.next_message(pos, start, stride);
      }
      matched = records;
    } else {
      std::uint64_t stride = 0;
      while (records < available && matched < max_messages) {
        std::uint64_t start;
        const std::uint64_t next = c.ring.next_message(pos, start, stride);
        if (detail::accepts(c.tag_mask, c.ring.header(start).tag)) ++matched;  // validated below
        ++records;
        pos = next;
      }
    }
    // Validate the walk: if the writers retired past our cursor meanwhile, the headers we walked
    // may be from a later lap.
    if (c.ring.overtaken(c.cursor_pos)) continue;
    b.begin_pos_ = c.cursor_pos;
    b.begin_seq_ = c.cursor_seq;
    b.end_pos_ = pos;
    b.records_ = records;
    b.matched_ = matched;
    break;
  }
  if (b.records_ != 0) {
    c.outstanding = true;
    ++c.generation;
    c.out_begin_pos = b.begin_pos_;
    c.out_end_pos = b.end_pos_;
    c.out_end_seq = b.begin_seq_ + b.records_;
    b.owner_ = &c;
    b.generation_ = c.generation;
    b.released_ = false;
#ifndef NDEBUG
    ++c.live_batches;
#endif
  }
  return b;
}

inline std::uint64_t Subscriber::lag() const noexcept {
  return core_->topic->head() - core_->cursor_seq;
}

}  // namespace pushpoll

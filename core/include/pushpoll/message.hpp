// pushpoll/message.hpp — a message seen in place, and a batch of them.
//
// Contract: a Batch is a zero-copy view of records inside the ring. Its bytes stay valid until the
// batch is released (explicitly, by destruction, or by the next poll of the same subscriber). In
// Overflow::block a batch is never overwritten while held, unless its subscriber is detached for
// stalling; in Overflow::overwrite a slow reader's bytes may be overwritten while it holds them: they
// stay mapped (never a use-after-free) but may change, and release() then returns false. Process
// what release() validates: copy, release, and act only on an intact batch.
//
// Thread-safety: a Batch belongs to one thread at a time (it may be moved to another thread). A
// Batch that outlives its Subscriber stays safe to release (it reports the batch as not intact);
// its bytes stay mapped while the topic lives.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>

#include "pushpoll/detail/cursor.hpp"
#include "pushpoll/detail/ring.hpp"
#include "pushpoll/options.hpp"

namespace pushpoll {

class Subscriber;

/// One message, read in place.
struct Message {
  std::uint64_t seq = 0;                 ///< position in the topic's sequence (0, 1, 2, ...)
  std::uint8_t tag = 0;                  ///< 0..63, chosen by the publisher
  bool aborted = false;                  ///< a claim dropped or expired before commit(): data is empty
  std::span<const std::byte> data;       ///< points INTO the ring; valid until the batch is released
};

/// A batch of consecutive messages from one subscriber's cursor. Move-only.
class Batch {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Message;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Message;

    iterator() = default;
    Message operator*() const noexcept {
      return Message{seq_, r_.tag, r_.aborted, std::span<const std::byte>(r_.payload, r_.size)};
    }
    iterator& operator++() noexcept {
      --remaining_;
      settle();
      return *this;
    }
    void operator++(int) noexcept { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.remaining_ == b.remaining_;
    }

   private:
    friend class Batch;
    iterator(const detail::RingView& ring, std::uint64_t seq, std::uint64_t records, std::uint64_t tag_mask,
             std::uint32_t max_message) noexcept
        : walk_(ring, seq, max_message), remaining_(records), tag_mask_(tag_mask) {
      settle();
    }
    // Moves to the first message at or after the walk's position that the subscriber's tag mask
    // accepts. A message that fails the walk's checks ends the iteration. Always inlined: an
    // iterator whose address escapes (one call left out of line, from begin()) lives in memory, its
    // position a store and a load per message instead of a register.
    [[gnu::always_inline]] void settle() noexcept {
      for (; remaining_ != 0; --remaining_) {
        seq_ = walk_.seq();
        if (!walk_.next(r_)) [[unlikely]] {
          remaining_ = 0;
          return;
        }
        if (detail::accepts(tag_mask_, r_.tag)) [[likely]] return;
      }
    }
    detail::MessageWalk walk_;
    std::uint64_t remaining_ = 0;
    std::uint64_t tag_mask_ = kAllTags;
    std::uint64_t seq_ = 0;
    detail::RecordView r_{};
  };

  Batch() = default;
  Batch(Batch&& other) noexcept { *this = std::move(other); }
  Batch& operator=(Batch&& other) noexcept;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  ~Batch() { release(); }

  /// Messages in the batch that match the subscriber's tags.
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(matched_); }
  [[nodiscard]] bool empty() const noexcept { return matched_ == 0; }
  /// Messages lost just before this batch (lapped in overwrite mode, or detached): 0 if none.
  [[nodiscard]] std::uint64_t gap() const noexcept { return gap_; }
  /// Sequence number of the first message covered (also when it was skipped by tag).
  [[nodiscard]] std::uint64_t first_seq() const noexcept { return begin_seq_; }
  /// One past the last message covered: the subscriber's cursor after release().
  [[nodiscard]] std::uint64_t end_seq() const noexcept { return begin_seq_ + records_; }
  /// Ring bytes from the first record covered to the end of the last (framing included).
  [[nodiscard]] std::uint64_t span_bytes() const noexcept;

  [[nodiscard]] iterator begin() const noexcept {
    return iterator(ring_, begin_seq_, records_, tag_mask_, max_message_);
  }
  [[nodiscard]] iterator end() const noexcept { return iterator{}; }

  /// Calls f(const Message&) for each message of the batch, in order: the messages iterating
  /// yields, in a tighter loop whose state stays in registers. The fastest way to read a batch.
  template <class F>
  void for_each(F&& f) const {
    if (tag_mask_ == kAllTags) {
      walk<true>(f);
    } else {
      walk<false>(f);
    }
  }

  /// Advances the subscriber's cursor past the batch. Returns false if the batch may have been
  /// overwritten while it was held (overwrite mode, or after a detach): do not trust what was read.
  /// Idempotent; also done by the destructor and by the next poll.
  bool release() noexcept;

 private:
  template <bool kAll, class F>
  void walk(F& f) const {
    detail::MessageWalk w(ring_, begin_seq_, max_message_);
    for (std::uint64_t n = records_; n != 0; --n) {
      const std::uint64_t seq = w.seq();
      detail::RecordView r;
      if (!w.next(r)) [[unlikely]] return;  // overwritten: release() reports it
      if (!kAll && !detail::accepts(tag_mask_, r.tag)) continue;
      f(Message{seq, r.tag, r.aborted, std::span<const std::byte>(r.payload, r.size)});
    }
  }

  friend class Subscriber;
  detail::SubscriberCore* owner_ = nullptr;
  std::uint64_t generation_ = 0;
  detail::RingView ring_{};
  std::uint64_t begin_seq_ = 0, records_ = 0, matched_ = 0, gap_ = 0;
  std::uint64_t tag_mask_ = kAllTags;
  std::uint32_t max_message_ = 0;
  bool released_ = true;
  bool intact_ = true;
};

inline bool Batch::release() noexcept {
  if (released_) return intact_;
  released_ = true;
  if (owner_ == nullptr) return intact_;
  detail::SubscriberCore* c = owner_;
  owner_ = nullptr;
  --c->live_batches;
  if (c->orphaned) {
    // Its subscriber is gone: the cursor no longer exists, so nothing read can be vouched for.
    intact_ = false;
    if (c->live_batches == 0) delete c;
    return intact_;
  }
  if (c->outstanding && c->generation == generation_) {
    intact_ = c->release_outstanding();
  } else if (c->released_generation == generation_) {
    intact_ = c->released_intact;  // the subscriber released it when it polled again
  } else {
    intact_ = false;  // released two polls ago: its result is unknown, so it is not trusted
  }
  return intact_;
}

inline Batch& Batch::operator=(Batch&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    generation_ = other.generation_;
    ring_ = other.ring_;
    begin_seq_ = other.begin_seq_;
    records_ = other.records_;
    matched_ = other.matched_;
    gap_ = other.gap_;
    tag_mask_ = other.tag_mask_;
    max_message_ = other.max_message_;
    released_ = other.released_;
    intact_ = other.intact_;
    other.owner_ = nullptr;
    other.released_ = true;
  }
  return *this;
}

}  // namespace pushpoll

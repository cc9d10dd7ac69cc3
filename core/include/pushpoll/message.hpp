// pushpoll/message.hpp — a message seen in place, and a batch of them.
//
// Contract: a Batch is a zero-copy view of records inside the ring. Its bytes stay valid until the
// batch is released (explicitly, by destruction, or by the next poll of the same subscriber). In
// Overflow::block a batch is never overwritten while held, unless its subscriber is detached for
// stalling; in Overflow::overwrite a slow reader's bytes may be overwritten while it holds them: they
// stay mapped (never a use-after-free) but may change, and release() then returns false. Process
// what release() validates: copy, release, and act only on an intact batch.
//
// Thread-safety: a Batch belongs to one thread at a time (it may be moved to another thread). It must
// not outlive its Subscriber (debug builds assert this).
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>

#include "pushpoll/detail/ring.hpp"
#include "pushpoll/options.hpp"

namespace pushpoll {

class Subscriber;
namespace detail {
struct SubscriberCore;
}

/// One message, read in place.
struct Message {
  std::uint64_t seq = 0;                 ///< position in the topic's sequence (0, 1, 2, ...)
  std::uint8_t tag = 0;                  ///< 0..63, chosen by the publisher
  bool aborted = false;                  ///< a claim dropped without commit(): data is empty
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
      return Message{seq_, tag_, aborted_, std::span<const std::byte>(data_, aborted_ ? 0 : size_)};
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
    iterator(const detail::RingView& ring, std::uint64_t pos, std::uint64_t seq, std::uint64_t records,
             std::uint64_t tag_mask) noexcept
        : walk_(ring, pos, seq), remaining_(records), tag_mask_(tag_mask) {
      settle();
    }
    // Moves to the first record at or after the walk's position that the subscriber's tag mask
    // accepts. A record that fails the walk's checks ends the iteration. Always inlined: one call
    // left out of line (from begin()) takes the iterator's address, and an iterator whose address
    // escapes lives in memory, its position a store and a load per message instead of a register.
    [[gnu::always_inline]] void settle() noexcept {
      for (; remaining_ != 0; --remaining_) {
        detail::RecordHeader h;
        seq_ = walk_.seq();
        if (!walk_.next(h, data_)) [[unlikely]] {
          remaining_ = 0;
          return;
        }
        if (detail::accepts(tag_mask_, h.tag)) [[likely]] {
          size_ = h.size;
          tag_ = h.tag;
          aborted_ = (h.flags & detail::kAborted) != 0;
          return;
        }
      }
    }
    detail::MessageWalk walk_;
    std::uint64_t remaining_ = 0;
    std::uint64_t tag_mask_ = kAllTags;
    std::uint64_t seq_ = 0;
    const std::byte* data_ = nullptr;
    std::uint32_t size_ = 0;
    std::uint8_t tag_ = 0;
    bool aborted_ = false;
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
  /// Sequence number of the first record covered (also when it was skipped by tag).
  [[nodiscard]] std::uint64_t first_seq() const noexcept { return begin_seq_; }
  /// One past the last record covered: the subscriber's cursor after release().
  [[nodiscard]] std::uint64_t end_seq() const noexcept { return begin_seq_ + records_; }
  /// Bytes of ring covered by the batch (framing and padding included).
  [[nodiscard]] std::uint64_t span_bytes() const noexcept { return end_pos_ - begin_pos_; }

  [[nodiscard]] iterator begin() const noexcept {
    return iterator(ring_, begin_pos_, begin_seq_, records_, tag_mask_);
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
    detail::MessageWalk w(ring_, begin_pos_, begin_seq_);
    for (std::uint64_t n = records_; n != 0; --n) {
      const std::uint64_t seq = w.seq();
      detail::RecordHeader h;
      const std::byte* payload;
      if (!w.next(h, payload)) [[unlikely]] return;  // overwritten: release() reports it
      if (!kAll && !detail::accepts(tag_mask_, h.tag)) continue;
      const bool aborted = (h.flags & detail::kAborted) != 0;
      f(Message{seq, h.tag, aborted, std::span<const std::byte>(payload, aborted ? 0 : h.size)});
    }
  }

  friend class Subscriber;
  friend struct detail::SubscriberCore;
  detail::SubscriberCore* owner_ = nullptr;
  std::uint64_t generation_ = 0;
  detail::RingView ring_{};
  std::uint64_t begin_pos_ = 0, end_pos_ = 0, begin_seq_ = 0, records_ = 0, matched_ = 0, gap_ = 0;
  std::uint64_t tag_mask_ = kAllTags;
  bool released_ = true;
  bool intact_ = true;
};

}  // namespace pushpoll

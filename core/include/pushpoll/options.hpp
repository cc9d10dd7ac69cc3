// pushpoll/options.hpp — how a topic behaves, and where a subscriber starts.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace pushpoll {

/// What a publisher does when the ring is full.
enum class Overflow : std::uint8_t {
  /// Lossless: a message is never overwritten while a live subscriber still needs it. Publishers wait
  /// up to `publish_timeout`, then `publish` throws Full. A subscriber that holds the ring back for
  /// longer than `stall_timeout` is detached and later told, through Batch::gap(), what it missed.
  block,
  /// Never waits: the oldest records are overwritten; a lapped subscriber learns its exact gap.
  overwrite,
};

/// Options of one topic. Compared field by field when a name is looked up again.
struct TopicOptions {
  /// Ring size in bytes: a power of two from 4 KiB to 16 GiB.
  std::uint64_t capacity = std::uint64_t{1} << 20;
  /// The most messages retained at once (entries in the commit index, 16 bytes each): a power of
  /// two up to 2^27. 0 means the default, capacity / 32 (at least 64): the whole ring is used by
  /// payloads of 24 bytes or more; smaller messages are retained by count rather than by bytes.
  /// The index takes index_size * 16 bytes beside the ring (by default half the capacity).
  std::uint64_t index_size = 0;
  /// Largest payload in bytes, at most capacity / 4 and under 64 MiB. 0 means the default: the
  /// smaller of 64 KiB and capacity / 4.
  std::uint32_t max_message = 0;
  Overflow overflow = Overflow::block;
  /// How long a blocking publish waits for room (Overflow::block).
  std::chrono::nanoseconds publish_timeout = std::chrono::seconds(1);
  /// How long a subscriber may hold the ring back before it is detached (Overflow::block).
  std::chrono::nanoseconds stall_timeout = std::chrono::seconds(5);
  /// A claim that holds readers or the ring back this long without being committed is turned into
  /// an aborted message by whoever it holds back; its late commit() then throws ClaimExpired. It
  /// also frees the ring from a publisher killed mid-claim. 0: never. Set it well above the longest
  /// time a claim is held: a publisher still writing into an expired claim's bytes writes into
  /// ring space that may already carry later messages.
  std::chrono::nanoseconds claim_timeout = std::chrono::seconds(1);
  /// Size of the subscriber table: at most 2^20.
  std::uint32_t max_subscribers = 16384;
  /// Promise that only one thread at a time publishes or holds a claim: claims need no atomic
  /// read-modify-write. (One thread claiming alone gets the same fast path on its own, after a
  /// while; the promise skips the while.)
  bool single_producer = false;

  /// index_size with the default applied.
  [[nodiscard]] std::uint64_t effective_index_size() const noexcept {
    if (index_size != 0) return index_size;
    const std::uint64_t n = capacity / 32;
    return n < 64 ? 64 : n;
  }
  /// max_message with the default applied.
  [[nodiscard]] std::uint32_t effective_max_message() const noexcept {
    if (max_message != 0) return max_message;
    const std::uint64_t quarter = capacity / 4;
    return static_cast<std::uint32_t>(quarter < 65536 ? quarter : 65536);
  }
  /// Throws Error, saying why, when the options make no sense.
  void validate() const;
  /// Same effective options.
  [[nodiscard]] bool same_as(const TopicOptions& other) const noexcept;
  /// "capacity=1048576 max_message=65536 overflow=block ...", for error messages.
  [[nodiscard]] std::string describe() const;
};

/// Where a new subscriber starts reading.
class Start {
 public:
  enum class Kind : std::uint8_t { oldest, latest, at, resume };
  static const Start oldest;  ///< the oldest retained message
  static const Start latest;  ///< the next message published (head())
  /// A given sequence number in [topic.oldest(), topic.head()]; anything else throws InvalidCursor.
  static constexpr Start at(std::uint64_t seq) noexcept { return Start{Kind::at, seq}; }
  /// Where a subscriber left off (its last cursor, kept by a process that restarts or reconnects):
  /// there if it is still retained; if it was retired meanwhile, the oldest retained message, and
  /// the first poll reports the exact gap. Past head() throws InvalidCursor.
  static constexpr Start resume(std::uint64_t seq) noexcept { return Start{Kind::resume, seq}; }

  [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }
  [[nodiscard]] constexpr std::uint64_t seq() const noexcept { return seq_; }

 private:
  constexpr Start(Kind k, std::uint64_t s) noexcept : kind_(k), seq_(s) {}
  Kind kind_;
  std::uint64_t seq_;
};
inline constexpr Start Start::oldest{Start::Kind::oldest, 0};
inline constexpr Start Start::latest{Start::Kind::latest, 0};

/// Tag masks: a subscriber receives message m when `mask & (1 << m.tag)`.
inline constexpr std::uint64_t kAllTags = ~std::uint64_t{0};
inline constexpr unsigned kMaxTag = 63;

}  // namespace pushpoll

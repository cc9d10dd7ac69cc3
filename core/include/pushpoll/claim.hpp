// pushpoll/claim.hpp — a message being built in place in the ring.
//
// Topic::claim(n) reserves the next seq and n bytes; the caller writes the payload through data()
// and commits it with a tag. Until then readers see nothing from this seq on; other producers go on
// publishing (their messages become visible when this one is committed, dropped or expired).
// Dropping an uncommitted claim publishes an empty message flagged `aborted`, so that sequence
// numbers stay gap-free. A claim that holds readers or the ring back for TopicOptions::claim_timeout
// is aborted by them, and its commit() throws ClaimExpired.
//
// Thread-safety: [owner] (one thread at a time; a Claim may move between threads).
//
// Lifetimes: a Claim may outlive its Hub (and every Subscriber of its topic). Its topic's memory is
// then kept until exit instead of being freed under the claim: data() stays valid, and commit()
// publishes into the closed topic, where subscribers still holding it read it. What cannot be made
// safe is ending a claim while another thread is destroying the hub: that is a race like any other
// call on a topic during its hub's destruction.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace pushpoll {

class Topic;

/// A message being built in place. Move-only; dropping it uncommitted publishes an aborted message.
class Claim {
 public:
  Claim() = default;
  Claim(Claim&& other) noexcept { *this = std::move(other); }
  Claim& operator=(Claim&& other) noexcept;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() { abort(); }

  /// The claimed bytes, inside the ring; empty once the claim is committed, aborted or moved from.
  [[nodiscard]] std::span<std::byte> data() const noexcept { return data_; }
  /// The seq this message will have.
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }
  /// Publishes the message with `tag` (0..63); returns its seq. Throws Error when the claim is not
  /// active or the tag is out of range (the claim stays active), ClaimExpired when claim_timeout
  /// passed and the message was aborted for it (the claim is then inactive).
  std::uint64_t commit(unsigned tag = 0);
  /// Publishes an empty message flagged `aborted`, so that sequence numbers stay gap-free. Does
  /// nothing when not active (or when the claim expired already).
  void abort() noexcept;
  [[nodiscard]] bool active() const noexcept { return topic_ != nullptr; }

 private:
  friend class Topic;
  Claim(Topic* topic, std::uint64_t seq, std::uint64_t info, std::uint64_t epoch, std::span<std::byte> data) noexcept
      : topic_(topic), seq_(seq), info_(info), epoch_(epoch), data_(data) {}
  void end() noexcept {
    topic_ = nullptr;
    data_ = {};
  }
  Topic* topic_ = nullptr;
  std::uint64_t seq_ = 0;
  std::uint64_t info_ = 0;   // the index entry it will commit (detail::pack_info), tag 0; for a
                             // topic of another process, the owner's token for the claim
  std::uint64_t epoch_ = 0;  // expiries begun before the claim (Topic::commit())
  std::span<std::byte> data_{};
};

}  // namespace pushpoll

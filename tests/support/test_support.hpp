// Helpers shared by the test suites: the build's speed and the stress scale, payload patterns,
// copies of batches, small topics, one change to each topic option.
#pragma once
#include <gtest/gtest.h>
#include <pushpoll/pushpoll.hpp>

#include "fake_notifier.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pushpoll::test {

/// True in a ThreadSanitizer build (everything runs 5-20x slower: tests scale down).
#if defined(PUSHPOLL_TSAN)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

/// True when a sanitizer that catches SIGSEGV itself is built in (it reports the fault and exits
/// with an error code instead of dying of the signal).
#if defined(PUSHPOLL_TSAN) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizerCatchesSegv = true;
#else
inline constexpr bool kSanitizerCatchesSegv = false;
#endif

/// PUSHPOLL_STRESS_SCALE (default 1; fractions allowed; anything but a positive number counts as
/// 1): stress suites multiply their rounds, message counts and time bounds by it.
inline double stress_scale() {
  static const double scale = [] {
    const char* env = std::getenv("PUSHPOLL_STRESS_SCALE");
    if (env == nullptr || *env == '\0') return 1.0;
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    return (end != env && v > 0) ? v : 1.0;
  }();
  return scale;
}

/// The bytes of a string, as publish() takes them.
inline std::span<const std::byte> bytes_of(std::string_view text) noexcept {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

/// A message's payload as text.
inline std::string text_of(std::span<const std::byte> data) {
  return std::string(reinterpret_cast<const char*>(data.data()), data.size());
}

/// splitmix64: a fast, well-mixed function of its input.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Deterministic bytes for message `key` of `size` bytes: every byte depends on key and index, so a
/// payload read from the wrong record, or torn, does not match.
inline std::vector<std::byte> pattern(std::uint64_t key, std::size_t size) {
  std::vector<std::byte> out(size);
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < size; ++i) {
    if (i % 8 == 0) word = mix(key * 0x100000001B3ull + i / 8);
    out[i] = static_cast<std::byte>(word >> (8 * (i % 8)));
  }
  return out;
}

/// True if `data` is exactly pattern(key, data.size()).
inline bool matches_pattern(std::span<const std::byte> data, std::uint64_t key) {
  const std::vector<std::byte> want = pattern(key, data.size());
  return data.size() == 0 || std::memcmp(data.data(), want.data(), data.size()) == 0;
}

/// A message copied out of the ring.
struct Received {
  std::uint64_t seq = 0;
  unsigned tag = 0;
  bool aborted = false;
  std::vector<std::byte> data;
};

inline Received copy_of(const Message& m) {
  return Received{m.seq, m.tag, m.aborted, std::vector<std::byte>(m.data.begin(), m.data.end())};
}

/// Copies out a whole batch (and leaves it unreleased).
inline std::vector<Received> copy_of(const Batch& batch) {
  std::vector<Received> out;
  for (const Message& m : batch) out.push_back(copy_of(m));
  return out;
}

/// How many rounds a loop that should end soon may take before the test gives up on it (a bug must
/// fail a test, not hang it).
inline constexpr std::uint64_t kPatience = 1'000'000;

/// Publishes make(seq) with try_publish until the ring refuses one; returns how many went in.
template <class Make>
std::uint64_t fill_ring_with(Topic& t, Make&& make) {
  std::uint64_t n = 0;
  while (n < kPatience && t.try_publish(make(t.head()))) ++n;
  if (n == kPatience) ADD_FAILURE() << "the ring never filled up";
  return n;
}

/// Publishes `payload` with try_publish until the ring refuses one; returns how many went in.
inline std::uint64_t fill_ring(Topic& t, std::span<const std::byte> payload) {
  return fill_ring_with(t, [payload](std::uint64_t) { return payload; });
}

/// Polls until the subscriber has caught up with head() (single-threaded use), copying every
/// message. Gaps, if any, are added to *gaps; every batch must release intact.
inline std::vector<Received> drain(Subscriber& sub, std::uint64_t* gaps = nullptr,
                                   std::size_t max_messages = 1024) {
  std::vector<Received> out;
  for (std::uint64_t polls = 0;; ++polls) {
    if (polls == kPatience) throw Error("test: the subscriber never caught up");
    Batch b = sub.poll(max_messages);
    if (gaps != nullptr) *gaps += b.gap();
    if (b.end_seq() == b.first_seq()) break;  // nothing covered: caught up
    for (const Message& m : b) out.push_back(copy_of(m));
    if (!b.release()) throw Error("test: a batch was overwritten while drained");
  }
  return out;
}

/// Options of a small topic, easy to fill by hand.
inline TopicOptions small_topic(std::uint64_t capacity = 4096, Overflow overflow = Overflow::block) {
  TopicOptions opt;
  opt.capacity = capacity;
  opt.overflow = overflow;
  return opt;
}

/// One change to a topic option, named after the field it changes.
struct OptionChange {
  const char* field;
  void (*apply)(TopicOptions&);
};

/// A change to every field of TopicOptions, each away from both the defaults and small_topic():
/// a comparison of options that overlooks a field misses its change.
inline constexpr std::array<OptionChange, 7> kOptionChanges = {{
    {"capacity", [](TopicOptions& o) { o.capacity = 8192; }},
    {"max_message", [](TopicOptions& o) { o.max_message = 100; }},
    {"overflow", [](TopicOptions& o) { o.overflow = Overflow::overwrite; }},
    {"publish_timeout", [](TopicOptions& o) { o.publish_timeout = std::chrono::seconds(2); }},
    {"stall_timeout", [](TopicOptions& o) { o.stall_timeout = std::chrono::seconds(2); }},
    {"max_subscribers", [](TopicOptions& o) { o.max_subscribers = 8; }},
    {"single_producer", [](TopicOptions& o) { o.single_producer = true; }},
}};

/// Bytes a message of `payload` bytes takes in the ring.
constexpr std::uint64_t record_bytes(std::uint64_t payload) noexcept {
  return detail::record_bytes(payload);
}

/// True if [data, data + size) lies inside the topic's record area (or is empty).
inline bool inside_ring(const Topic& topic, std::span<const std::byte> data) noexcept {
  if (data.empty()) return true;
  const auto ring = topic.ring();
  const std::byte* lo = ring.at(0);
  const std::byte* hi = lo + ring.capacity();
  return data.data() >= lo && data.data() + data.size() <= hi;
}

/// Offset in the ring of the payload `data`.
inline std::uint64_t record_index(const Topic& topic, std::span<const std::byte> data) noexcept {
  return static_cast<std::uint64_t>(data.data() - topic.ring().at(0));
}

}  // namespace pushpoll::test

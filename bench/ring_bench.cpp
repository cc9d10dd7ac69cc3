// ring_bench.cpp — message throughput of pushpoll topics, next to the transports it is measured
// against: a bare single-producer ring (the limit), boost::lockfree::spsc_queue (one at a time and
// in bulk) and ZeroMQ inproc PUB/SUB.
//
// Every row reports items_per_second (messages, or deliveries for fan-out: messages x subscribers)
// and bytes_per_second (payload bytes). Threaded rows use real time. Arguments are
// bytes:<payload size>/msgs:<messages per iteration>/idle:<consumer idle strategy>; each iteration
// ends only once the consumer has checked every message of that iteration, so a row measures
// delivery, not how fast a producer can fill a buffer.
//
// The consumer's idle strategy is the loop a user writes: idle:0 (the default rows) polls again at
// once after an empty poll, with no backoff at all (the busy-spin reader of a trading pipeline),
// which keeps the producer's lines moving between cores on every message; idle:1 pauses 64 times
// after an empty poll, a friendlier loop, shown beside it. Every transport, the limit included, is
// measured with the same loop.
//
// Checks: every payload starts with the producer's 64-bit counter and ends with a filler byte. The
// consumer compares the counter (and, for pushpoll, the seq) with what it expects, reads the last
// byte, and reports any mismatch through State::SkipWithError: a broken path shows up as an error.
//
// Pinning: with two threads, the producer (the benchmark's own thread) runs on CPU 0 and the
// consumer on CPU 1; the `pinned` counter is 1 when both pins took effect.
#include <benchmark/benchmark.h>

#include <boost/lockfree/spsc_queue.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "pushpoll/io/shared_memory.hpp"
#include "pushpoll/pushpoll.hpp"
#include "pushpoll/remote.hpp"

#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
#include <cerrno>
#include <zmq.h>
#endif

namespace {

using pushpoll::bench::cpu_relax;
using pushpoll::bench::IdleWait;
using pushpoll::bench::kFiller;
using pushpoll::bench::read_counter;
using pushpoll::bench::ScopedPin;
using pushpoll::bench::Shared;
using pushpoll::bench::write_counter;

constexpr std::uint64_t kRingBytes = std::uint64_t{1} << 22;  // every ring and queue holds 4 MiB
constexpr std::int64_t kMessagesPerIteration = std::int64_t{1} << 20;
constexpr std::size_t kPollMax = 4096;  // messages per consumer batch, for every transport

/// What a consumer does after a poll that found nothing.
enum class Idle : std::int64_t {
  spin = 0,   // poll again at once: the loop a user writes
  pause = 1,  // IdleWait: 64 pauses first (friendlier to the producer)
};

/// The consumer's idle strategy for a row.
class ConsumerIdle {
 public:
  ConsumerIdle(Idle idle, bool may_yield) noexcept : idle_(idle), wait_(may_yield) {}
  void idle() noexcept {
    if (idle_ == Idle::pause) wait_.idle();
  }
  void busy() noexcept { wait_.busy(); }

 private:
  Idle idle_;
  IdleWait wait_;
};

// The message sizes every one-to-one row runs at, a fixed message count per iteration, wall time;
// the spinning consumer (idle:0) at every size, the friendlier one (idle:1) at 64 bytes.
void one_to_one_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bytes", "msgs", "idle"})
      ->Args({8, kMessagesPerIteration, 0})
      ->Args({64, kMessagesPerIteration, 0})
      ->Args({64, kMessagesPerIteration, 1})
      ->Args({512, kMessagesPerIteration, 0})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

Idle idle_of(const benchmark::State& state) { return static_cast<Idle>(state.range(2)); }

std::string mismatch(const char* what, std::uint64_t expected, std::uint64_t got) {
  return std::string(what) + ": expected " + std::to_string(expected) + ", got " + std::to_string(got);
}

/// Items and bytes for `messages` per iteration of `bytes` each.
void report(benchmark::State& state, std::uint64_t messages_per_iteration, std::uint64_t bytes, bool pinned) {
  const auto items = static_cast<std::int64_t>(messages_per_iteration) * state.iterations();
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(bytes));
  state.counters["pinned"] = pinned ? 1.0 : 0.0;
}

struct Plan {
  std::uint64_t per_iteration = 0;  // messages per timed iteration
  std::uint64_t warmup = 0;         // messages sent and checked before timing (first lap, caches)
};

/// Messages in one lap of a 4 MiB ring of `record_bytes`-byte records, at most one iteration.
std::uint64_t one_lap(std::uint64_t record_bytes, std::uint64_t per_iteration) {
  const std::uint64_t lap = kRingBytes / record_bytes + 1;
  return lap < per_iteration ? lap : per_iteration;
}

/// The two-thread shape shared by the one-to-one rows. `produce(shared, n)` (benchmark thread) sends
/// the next n messages and returns false after recording a failure in `shared`; `consume(shared)`
/// (a new thread) runs until shared.stop, advancing shared.consumed after each checked batch.
template <class Produce, class Consume>
void run_one_to_one(benchmark::State& state, const Plan& plan, std::uint64_t bytes, Produce&& produce,
                    Consume&& consume) {
  Shared shared;
  std::atomic<int> consumer_ready{0};  // 1 unpinned, 2 pinned; release/acquire hand-off
  std::thread consumer([&] {
    const bool pinned = pushpoll::bench::pin_this_thread(1);
    consumer_ready.store(pinned ? 2 : 1, std::memory_order_release);
    try {
      consume(shared);
    } catch (const std::exception& e) {
      shared.fail(std::string("consumer threw: ") + e.what());
    }
  });
  ScopedPin pin(0);
  int ready = 0;
  while ((ready = consumer_ready.load(std::memory_order_acquire)) == 0) cpu_relax();

  std::uint64_t target = 0;
  auto step = [&](std::uint64_t n) {
    try {
      if (!produce(shared, n)) return false;
    } catch (const std::exception& e) {
      shared.fail(std::string("producer threw: ") + e.what());
      return false;
    }
    target += n;
    return shared.wait_consumed(target, /*yield=*/false);
  };
  if (!step(plan.warmup)) state.SkipWithError(shared.error_text().c_str());
  for (auto _ : state) {
    if (!step(plan.per_iteration)) {
      state.SkipWithError(shared.error_text().c_str());
      break;
    }
  }
  // Release: pairs with the consumer's acquire; it has nothing left to check.
  shared.stop.store(true, std::memory_order_release);
  consumer.join();
  report(state, plan.per_iteration, bytes, ready == 2 && pin.pinned());
}

// ---- the limit: a bare single-producer ring of fixed slots ------------------------------------

/// The least a ring can do: fixed `SlotBytes` slots, one producer that copies a message into a slot
/// and release-stores the head, one consumer that reads up to the head in batches and
/// release-stores its tail. No framing, no sequence numbers, no subscribers, no gating scan.
template <std::size_t SlotBytes>
class BareRing {
  static_assert((SlotBytes & (SlotBytes - 1)) == 0, "slots are a power of two");
  static_assert(SlotBytes >= sizeof(std::uint64_t), "a slot holds at least the counter");

 public:
  explicit BareRing(std::uint64_t ring_bytes)
      : slots_(ring_bytes / SlotBytes),
        mask_(slots_ - 1),
        data_(static_cast<std::byte*>(::operator new(ring_bytes, std::align_val_t{4096}))) {}
  BareRing(const BareRing&) = delete;
  BareRing& operator=(const BareRing&) = delete;
  ~BareRing() { ::operator delete(data_, std::align_val_t{4096}); }

  /// Producer only: copies `n` <= SlotBytes bytes into the next slot, waiting while the ring is full.
  void publish(const std::byte* src, std::size_t n) noexcept {
    const std::uint64_t head = head_local_;
    if (head - tail_cache_ == slots_) {
      // Acquire: pairs with the consumer's release of tail_; its reads of the slot are done.
      while ((tail_cache_ = tail_.load(std::memory_order_acquire)) + slots_ == head) cpu_relax();
    }
    std::byte* slot = data_ + (head & mask_) * SlotBytes;
    if (n == SlotBytes) {
      std::memcpy(slot, src, SlotBytes);  // a constant size: inlined moves, no call
    } else {
      std::memcpy(slot, src, n);
    }
    // Release: pairs with the acquire in poll(); the slot's bytes are visible with the new head.
    head_.store(head + 1, std::memory_order_release);
    head_local_ = head + 1;
  }

  /// Consumer only: calls f(slot) for up to `max` published slots, then frees them. Returns how many.
  template <class F>
  std::uint64_t poll(std::uint64_t max, F&& f) {
    // Acquire: pairs with the release in publish().
    std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_local_;
    if (head - tail > max) head = tail + max;
    for (std::uint64_t i = tail; i != head; ++i) f(data_ + (i & mask_) * SlotBytes);
    if (head != tail) {
      // Release: pairs with the producer's acquire; our reads of these slots are done.
      tail_.store(head, std::memory_order_release);
      tail_local_ = head;
    }
    return head - tail;
  }

 private:
  // Immutable.
  const std::uint64_t slots_;
  const std::uint64_t mask_;
  std::byte* const data_;
  // Writer: producer. Reader: consumer.
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> head_{0};
  // Writer: consumer. Reader: producer (only when the ring looks full).
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> tail_{0};
  // Producer-local: the next slot, and the tail as last seen.
  alignas(pushpoll::bench::kCacheLine) std::uint64_t head_local_ = 0;
  std::uint64_t tail_cache_ = 0;
  // Consumer-local.
  alignas(pushpoll::bench::kCacheLine) std::uint64_t tail_local_ = 0;
};

template <std::size_t SlotBytes>
void bare_ring_one_to_one(benchmark::State& state, std::size_t bytes, const Plan& plan, Idle idle) {
  BareRing<SlotBytes> ring(kRingBytes);
  std::vector<std::byte> message(bytes, kFiller);
  std::uint64_t sent = 0;
  auto produce = [&](Shared&, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      write_counter(message.data(), sent++);
      ring.publish(message.data(), bytes);
    }
    return true;
  };
  auto consume = [&](Shared& shared) {
    std::uint64_t expected = 0, sink = 0;
    bool checking = true;
    ConsumerIdle wait(idle, false);
    for (;;) {
      const std::uint64_t got = ring.poll(kPollMax, [&](const std::byte* slot) {
        if (checking) {
          const std::uint64_t counter = read_counter(slot);
          if (counter != expected) {
            shared.fail(mismatch("bare ring counter", expected, counter));
            checking = false;
          }
          sink += static_cast<std::uint8_t>(slot[bytes - 1]);
        }
        ++expected;
      });
      if (got == 0) {
        if (shared.stop.load(std::memory_order_acquire)) break;
        wait.idle();
        continue;
      }
      wait.busy();
      // Release: pairs with wait_consumed(); the checks above are complete.
      shared.consumed.store(expected, std::memory_order_release);
    }
    benchmark::DoNotOptimize(sink);
  };
  run_one_to_one(state, plan, bytes, produce, consume);
}

// Limit row: a bare single-producer ring of fixed slots (64 B, or 512 B for 512-byte messages), one
// pinned producer publishing one slot at a time, one pinned consumer reading up to the head in
// batches of up to 4096. Measures the cost of moving a message between two cores and nothing else.
void BM_BareRing_OneToOne(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.range(1));
  if (bytes <= 64) {
    bare_ring_one_to_one<64>(state, bytes, Plan{n, one_lap(64, n)}, idle_of(state));
  } else if (bytes <= 512) {
    bare_ring_one_to_one<512>(state, bytes, Plan{n, one_lap(512, n)}, idle_of(state));
  } else {
    state.SkipWithError("message size over the largest slot (512 bytes)");
  }
}
BENCHMARK(BM_BareRing_OneToOne)
    ->Apply(one_to_one_sizes);

// ---- baseline: boost::lockfree::spsc_queue ----------------------------------------------------

template <std::size_t N>
struct Fixed {
  std::byte bytes[N];
};

template <std::size_t N>
Fixed<N> make_fixed() {
  Fixed<N> m;
  std::memset(m.bytes, static_cast<int>(kFiller), N);
  return m;
}

/// Consumer check shared by the spsc_queue rows; false (after recording) on the first mismatch.
template <std::size_t N>
bool check_fixed(const Fixed<N>& m, std::uint64_t expected, std::uint64_t& sink, Shared& shared) {
  const std::uint64_t counter = read_counter(m.bytes);
  sink += static_cast<std::uint8_t>(m.bytes[N - 1]);
  if (counter == expected) return true;
  shared.fail(mismatch("spsc_queue counter", expected, counter));
  return false;
}

template <std::size_t N>
void spsc_one_to_one(benchmark::State& state, const Plan& plan, Idle idle) {
  boost::lockfree::spsc_queue<Fixed<N>> queue(kRingBytes / N);
  Fixed<N> message = make_fixed<N>();
  std::uint64_t sent = 0;
  auto produce = [&](Shared&, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      write_counter(message.bytes, sent++);
      while (!queue.push(message)) cpu_relax();
    }
    return true;
  };
  auto consume = [&](Shared& shared) {
    std::uint64_t expected = 0, sink = 0;
    bool checking = true;
    ConsumerIdle wait(idle, false);
    Fixed<N> m;
    for (;;) {
      std::size_t got = 0;
      while (got < kPollMax && queue.pop(m)) {
        if (checking) checking = check_fixed(m, expected, sink, shared);
        ++expected;
        ++got;
      }
      if (got == 0) {
        if (shared.stop.load(std::memory_order_acquire)) break;
        wait.idle();
        continue;
      }
      wait.busy();
      shared.consumed.store(expected, std::memory_order_release);  // pairs with wait_consumed()
    }
    benchmark::DoNotOptimize(sink);
  };
  run_one_to_one(state, plan, N, produce, consume);
}

template <std::size_t N>
void spsc_bulk_one_to_one(benchmark::State& state, const Plan& plan, Idle idle) {
  constexpr std::size_t kBulk = 64;
  boost::lockfree::spsc_queue<Fixed<N>> queue(kRingBytes / N);
  std::vector<Fixed<N>> out(kBulk, make_fixed<N>());
  std::uint64_t sent = 0;
  auto produce = [&](Shared&, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; i += kBulk) {
      for (auto& m : out) write_counter(m.bytes, sent++);
      std::size_t pushed = 0;
      while ((pushed += queue.push(out.data() + pushed, kBulk - pushed)) < kBulk) cpu_relax();
    }
    return true;
  };
  auto consume = [&](Shared& shared) {
    std::vector<Fixed<N>> in(kBulk);
    std::uint64_t expected = 0, sink = 0;
    bool checking = true;
    ConsumerIdle wait(idle, false);
    for (;;) {
      const std::size_t got = queue.pop(in.data(), kBulk);
      if (got == 0) {
        if (shared.stop.load(std::memory_order_acquire)) break;
        wait.idle();
        continue;
      }
      wait.busy();
      for (std::size_t i = 0; i < got; ++i) {
        if (checking) checking = check_fixed(in[i], expected, sink, shared);
        ++expected;
      }
      shared.consumed.store(expected, std::memory_order_release);  // pairs with wait_consumed()
    }
    benchmark::DoNotOptimize(sink);
  };
  run_one_to_one(state, plan, N, produce, consume);
}

// Baseline: boost::lockfree::spsc_queue of fixed-size structs (the message size), one push and one
// pop per message, between a pinned producer and a pinned consumer.
void BM_SpscQueue_OneToOne(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(1));
  switch (state.range(0)) {
    case 8: spsc_one_to_one<8>(state, Plan{n, one_lap(8, n)}, idle_of(state)); break;
    case 64: spsc_one_to_one<64>(state, Plan{n, one_lap(64, n)}, idle_of(state)); break;
    case 512: spsc_one_to_one<512>(state, Plan{n, one_lap(512, n)}, idle_of(state)); break;
    default: state.SkipWithError("supported sizes: 8, 64, 512");
  }
}
BENCHMARK(BM_SpscQueue_OneToOne)
    ->Apply(one_to_one_sizes);

// Baseline: the same queue with 64-message bulk push and bulk pop.
void BM_SpscQueueBulk_OneToOne(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(1));
  if (n % 64 != 0) {
    state.SkipWithError("messages per iteration must be a multiple of 64");
    return;
  }
  const auto lap64 = [n](std::uint64_t size) { return (one_lap(size, n) + 63) / 64 * 64; };
  switch (state.range(0)) {
    case 8: spsc_bulk_one_to_one<8>(state, Plan{n, lap64(8)}, idle_of(state)); break;
    case 64: spsc_bulk_one_to_one<64>(state, Plan{n, lap64(64)}, idle_of(state)); break;
    case 512: spsc_bulk_one_to_one<512>(state, Plan{n, lap64(512)}, idle_of(state)); break;
    default: state.SkipWithError("supported sizes: 8, 64, 512");
  }
}
BENCHMARK(BM_SpscQueueBulk_OneToOne)
    ->Apply(one_to_one_sizes);

// ---- pushpoll ---------------------------------------------------------------------------------

pushpoll::TopicOptions bench_topic_options(bool single_producer) {
  pushpoll::TopicOptions options;
  options.capacity = kRingBytes;
  options.overflow = pushpoll::Overflow::block;
  options.single_producer = single_producer;
  return options;
}

/// The consumer side of the pushpoll rows: one subscriber polling batches of up to kPollMax. With
/// `producers` == 1 every payload counter equals its seq; with more, each producer's counters must
/// arrive in order and complete. Every seq must follow the previous one.
void consume_topic(pushpoll::Subscriber& sub, Shared& shared, std::size_t bytes, unsigned producers,
                   ConsumerIdle wait) {
  std::uint64_t expected_seq = sub.cursor(), consumed = 0, sink = 0;
  std::uint64_t next[4] = {0, 0, 0, 0};
  bool checking = true;
  auto check = [&](const pushpoll::Message& m) {
    if (m.seq != expected_seq) return shared.fail(mismatch("seq", expected_seq, m.seq)), false;
    if (m.aborted || m.data.size() != bytes) return shared.fail(mismatch("size", bytes, m.data.size())), false;
    const std::uint64_t counter = read_counter(m.data.data());
    if (producers == 1) {
      if (counter != m.seq) return shared.fail(mismatch("payload counter", m.seq, counter)), false;
    } else {
      const std::uint64_t producer = counter >> 56;
      const std::uint64_t n = counter & ((std::uint64_t{1} << 56) - 1);
      if (producer >= producers) return shared.fail(mismatch("producer id", producers, producer)), false;
      if (n != next[producer]) return shared.fail(mismatch("per-producer order", next[producer], n)), false;
      ++next[producer];
    }
    sink += static_cast<std::uint8_t>(m.data[bytes - 1]);
    return true;
  };
  for (;;) {
    pushpoll::Batch batch = sub.poll(kPollMax);
    if (batch.empty()) {
      if (shared.stop.load(std::memory_order_acquire)) break;
      wait.idle();
      continue;
    }
    wait.busy();
    if (checking && batch.gap() != 0) {
      shared.fail(mismatch("gap", 0, batch.gap()));
      checking = false;
    }
    for (const pushpoll::Message& m : batch) {
      if (checking) checking = check(m);
      ++expected_seq;
    }
    consumed += batch.size();
    if (!batch.release() && checking) {
      shared.fail("a batch was overwritten while held (Overflow::block)");
      checking = false;
    }
    shared.consumed.store(consumed, std::memory_order_release);  // pairs with wait_consumed()
  }
  benchmark::DoNotOptimize(sink);
}

void pushpoll_one_to_one(benchmark::State& state, bool single_producer, bool restartable = true) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.range(1));
  pushpoll::HubOptions hub_options;
  hub_options.restartable_sequences = restartable;
  pushpoll::Hub hub(hub_options);
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(single_producer));
  pushpoll::Subscriber sub = topic.subscribe(pushpoll::Start::oldest);
  std::vector<std::byte> message(bytes, kFiller);
  std::uint64_t sent = 0;
  auto produce = [&](Shared& shared, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      write_counter(message.data(), sent);
      const std::uint64_t seq = topic.publish(message);
      if (seq != sent) {
        shared.fail(mismatch("publish seq", sent, seq));
        return false;
      }
      ++sent;
    }
    return true;
  };
  const Idle idle = idle_of(state);
  auto consume = [&](Shared& shared) { consume_topic(sub, shared, bytes, 1, ConsumerIdle(idle, false)); };
  run_one_to_one(state, Plan{n, one_lap(pushpoll::detail::record_bytes(bytes), n)}, bytes, produce,
                 consume);
  const pushpoll::TopicStats stats = topic.stats();
  state.counters["revocations"] = static_cast<double>(stats.bias_revocations);
}

// One pinned producer calling the default (many-producer-safe) Topic::publish once per message;
// one pinned consumer with one Subscriber polling batches of up to 4096 and reading every message.
// Overflow::block, 4 MiB ring. Compare with BM_BareRing_OneToOne at the same size and idle.
void BM_Pushpoll_OneToOne(benchmark::State& state) { pushpoll_one_to_one(state, false); }
BENCHMARK(BM_Pushpoll_OneToOne)
    ->Apply(one_to_one_sizes);

// As BM_Pushpoll_OneToOne, with HubOptions::restartable_sequences = false: every publish claims
// with a CAS and commits with a 16-byte CAS (two locked instructions per message), as where the
// kernel refuses restartable sequences. The cost they save.
void BM_PushpollCasOnly_OneToOne(benchmark::State& state) { pushpoll_one_to_one(state, false, false); }
BENCHMARK(BM_PushpollCasOnly_OneToOne)
    ->ArgNames({"bytes", "msgs", "idle"})
    ->Args({64, kMessagesPerIteration, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// As BM_Pushpoll_OneToOne, with TopicOptions::single_producer: publish claims with a plain store
// from the first message on (the default publish earns the same path after a while: the bias).
void BM_PushpollSingleProducer_OneToOne(benchmark::State& state) { pushpoll_one_to_one(state, true); }
BENCHMARK(BM_PushpollSingleProducer_OneToOne)
    ->Apply(one_to_one_sizes);

// ---- across a process boundary ------------------------------------------------------------------

/// What the producer (this process) and a consumer process share: an anonymous shared page.
struct CrossLink {
  // Writer: the consumer process, once per batch (release); reader: the producer (acquire).
  alignas(pushpoll::detail::kCacheLine) std::atomic<std::uint64_t> consumed{0};
  // Writer: the producer (release) when it is done; reader: the consumer.
  alignas(pushpoll::detail::kCacheLine) std::atomic<bool> stop{false};
  // Writer: the consumer (release): 1 subscribed, 2 subscribed and pinned; -1 failed.
  std::atomic<int> state{0};
  char error[200] = {};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared between processes");

/// The consumer process: connects to the hub at `path`, subscribes to "bench" from the oldest and
/// spins on poll(), checking every message as consume_topic() does for one producer.
[[noreturn]] void remote_consumer(CrossLink& link, const std::string& path, std::size_t bytes) {
  const auto fail = [&](const std::string& what) {
    std::snprintf(link.error, sizeof(link.error), "%s", what.c_str());
    link.state.store(-1, std::memory_order_release);
    ::_exit(1);
  };
  try {
    const bool pinned = pushpoll::bench::pin_this_thread(1);
    pushpoll::Remote remote = pushpoll::connect(path);
    pushpoll::Subscriber sub = remote.topic("bench").subscribe(pushpoll::Start::oldest);
    link.state.store(pinned ? 2 : 1, std::memory_order_release);
    std::uint64_t expected = 0, sink = 0;
    for (;;) {
      pushpoll::Batch batch = sub.poll(kPollMax);
      if (batch.empty()) {
        if (link.stop.load(std::memory_order_acquire)) break;
        continue;  // the loop a user writes: poll again at once
      }
      if (batch.gap() != 0) fail(mismatch("gap", 0, batch.gap()));
      for (const pushpoll::Message& m : batch) {
        if (m.seq != expected || m.data.size() != bytes) fail(mismatch("seq", expected, m.seq));
        if (read_counter(m.data.data()) != m.seq) fail(mismatch("payload counter", m.seq, read_counter(m.data.data())));
        sink += static_cast<std::uint8_t>(m.data[bytes - 1]);
        ++expected;
      }
      if (!batch.release()) fail("a batch was overwritten while held (Overflow::block)");
      link.consumed.store(expected, std::memory_order_release);
    }
    benchmark::DoNotOptimize(sink);
  } catch (const std::exception& e) {
    fail(std::string("consumer threw: ") + e.what());
  }
  ::_exit(0);
}

// BM_Pushpoll_OneToOne with the consumer in another process: a forked child that connects to the
// hub's socket, maps the topic read-only, and spins on poll() (its cursor gates the producer from
// its page of slots). Its ratio to BM_Pushpoll_OneToOne in the same run is the cost of the boundary.
void BM_PushpollRemote_OneToOne(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.range(1));
  pushpoll::HubOptions hub_options;
  hub_options.memory = std::make_shared<pushpoll::io::SharedMemory>();
  pushpoll::Hub hub(hub_options);
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(false));
  char dir[] = "/tmp/pushpoll-bench-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return state.SkipWithError("mkdtemp failed");
  const std::string path = std::string(dir) + "/hub.sock";
  pushpoll::Server server = pushpoll::serve(hub, path);
  void* page = ::mmap(nullptr, sizeof(CrossLink), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* link = new (page) CrossLink{};
  const pid_t child = ::fork();
  if (child == 0) remote_consumer(*link, path, bytes);
  int ready = 0;
  while ((ready = link->state.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
  std::vector<std::byte> message(bytes, kFiller);
  std::uint64_t sent = 0;
  const auto consumed = [&](std::uint64_t target) {
    while (link->consumed.load(std::memory_order_acquire) < target) {
      if (link->state.load(std::memory_order_acquire) < 0) return false;
      cpu_relax();
    }
    return true;
  };
  const auto step = [&](std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i, ++sent) {
      write_counter(message.data(), sent);
      topic.publish(message);
    }
    return consumed(sent);
  };
  {
    ScopedPin pin(0);
    if (ready < 0 || !step(one_lap(pushpoll::detail::record_bytes(bytes), n))) {
      state.SkipWithError(link->error);
    } else {
      for (auto _ : state) {
        if (!step(n)) {
          state.SkipWithError(link->error);
          break;
        }
      }
    }
    report(state, n, bytes, ready == 2 && pin.pinned());
  }
  link->stop.store(true, std::memory_order_release);
  ::waitpid(child, nullptr, 0);
  ::munmap(page, sizeof(CrossLink));
  server.close();
  ::rmdir(dir);
}
BENCHMARK(BM_PushpollRemote_OneToOne)
    ->ArgNames({"bytes", "msgs", "idle"})
    ->Args({64, kMessagesPerIteration, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

/// Eight readers' progress, shared by the producer and the reader processes (or threads).
struct FanOutLink {
  static constexpr unsigned kReaders = 8;
  struct alignas(pushpoll::detail::kCacheLine) Count {
    std::atomic<std::uint64_t> value{0};  // release by its reader per batch; acquire by the producer
  };
  Count consumed[kReaders];
  alignas(pushpoll::detail::kCacheLine) std::atomic<bool> stop{false};  // release by the producer
  std::atomic<int> ready{0};   // readers subscribed (release)
  std::atomic<int> failed{0};  // a reader found a wrong message (release)
};

/// One fan-out reader: parks in poll_wait() when there is nothing (eight readers on two cores: the
/// way such a reader is written), checks each message's seq and counter.
void fan_out_reader(pushpoll::Subscriber& sub, FanOutLink& link, unsigned r) {
  std::uint64_t expected = sub.cursor();
  link.ready.fetch_add(1, std::memory_order_release);
  while (!link.stop.load(std::memory_order_acquire)) {
    pushpoll::Batch batch = sub.poll_wait(kPollMax, std::chrono::milliseconds(100));
    for (const pushpoll::Message& m : batch) {
      if (m.seq != expected || read_counter(m.data.data()) != m.seq) link.failed.store(1, std::memory_order_release);
      ++expected;
    }
    if (!batch.release()) link.failed.store(1, std::memory_order_release);
    link.consumed[r].value.store(expected, std::memory_order_release);
  }
}

/// One producer, eight readers that park when idle, 64 B, Overflow::block: readers as threads of
/// this process or (remote) as processes of their own that map the topic read-only.
void fan_out_8(benchmark::State& state, bool remote) {
  constexpr unsigned kReaders = FanOutLink::kReaders;
  constexpr std::size_t kBytes = 64;
  const auto n = static_cast<std::uint64_t>(state.range(0));
  pushpoll::HubOptions hub_options;
  if (remote) hub_options.memory = std::make_shared<pushpoll::io::SharedMemory>();
  pushpoll::Hub hub(hub_options);
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(false));
  void* page = ::mmap(nullptr, sizeof(FanOutLink), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* link = new (page) FanOutLink{};
  char dir[] = "/tmp/pushpoll-bench-XXXXXX";
  std::optional<pushpoll::Server> server;
  std::vector<pid_t> children;
  std::vector<std::thread> threads;
  std::vector<pushpoll::Subscriber> local;
  if (remote) {
    if (::mkdtemp(dir) == nullptr) return state.SkipWithError("mkdtemp failed");
    const std::string path = std::string(dir) + "/hub.sock";
    server.emplace(pushpoll::serve(hub, path));
    for (unsigned r = 0; r < kReaders; ++r) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        try {
          pushpoll::Remote connection = pushpoll::connect(path);
          pushpoll::Subscriber sub = connection.topic("bench").subscribe(pushpoll::Start::oldest);
          fan_out_reader(sub, *link, r);
        } catch (const std::exception&) {
          link->failed.store(1, std::memory_order_release);
        }
        ::_exit(0);
      }
      children.push_back(pid);
    }
  } else {
    for (unsigned r = 0; r < kReaders; ++r) local.push_back(topic.subscribe(pushpoll::Start::oldest));
    for (unsigned r = 0; r < kReaders; ++r) threads.emplace_back([&, r] { fan_out_reader(local[r], *link, r); });
  }
  while (link->ready.load(std::memory_order_acquire) < static_cast<int>(kReaders) &&
         link->failed.load(std::memory_order_acquire) == 0) {
    std::this_thread::yield();
  }
  std::vector<std::byte> message(kBytes, kFiller);
  std::uint64_t sent = 0;
  const auto step = [&](std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i, ++sent) {
      write_counter(message.data(), sent);
      topic.publish(message);
    }
    for (unsigned r = 0; r < kReaders; ++r) {
      while (link->consumed[r].value.load(std::memory_order_acquire) < sent) {
        if (link->failed.load(std::memory_order_acquire) != 0) return false;
        std::this_thread::yield();
      }
    }
    return true;
  };
  if (!step(n / 4)) state.SkipWithError("a reader failed");
  for (auto _ : state) {
    if (!step(n)) {
      state.SkipWithError("a reader failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n * kReaders) * state.iterations());
  link->stop.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  for (const pid_t pid : children) ::waitpid(pid, nullptr, 0);
  server.reset();
  if (remote) ::rmdir(dir);
  local.clear();
  ::munmap(page, sizeof(FanOutLink));
}

// One producer, eight reader threads parking in poll_wait(): deliveries per second (8 per message).
void BM_Pushpoll_FanOut8(benchmark::State& state) { fan_out_8(state, false); }
BENCHMARK(BM_Pushpoll_FanOut8)->ArgNames({"msgs"})->Arg(1 << 18)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same with the eight readers in processes of their own, mapping the topic read-only.
void BM_PushpollRemote_FanOut8(benchmark::State& state) { fan_out_8(state, true); }
BENCHMARK(BM_PushpollRemote_FanOut8)->ArgNames({"msgs"})->Arg(1 << 18)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- many producers, one consumer ---------------------------------------------------------------

/// The reference many-producer ring of the LMAX Disruptor's multi-producer sequencer, on fixed 64-byte
/// slots: a producer takes the next sequence with one fetch_add, waits (rarely) for the consumer to
/// free the slot, copies its message and release-stores the slot's availability flag (the lap the
/// sequence belongs to). The consumer reads slots while their flag says "this lap", then
/// release-stores how far it got. No framing, no subscribers, no tags: the least a many-producer
/// ring with one gap-free sequence can do.
class MpRing {
 public:
  static constexpr std::size_t kSlot = 64;
  explicit MpRing(std::uint64_t ring_bytes)
      : slots_(ring_bytes / kSlot),
        mask_(slots_ - 1),
        shift_(static_cast<unsigned>(__builtin_ctzll(slots_))),
        data_(static_cast<std::byte*>(::operator new(ring_bytes, std::align_val_t{4096}))),
        flags_(new std::atomic<std::uint64_t>[slots_]) {
    for (std::uint64_t i = 0; i < slots_; ++i) flags_[i].store(~std::uint64_t{0}, std::memory_order_relaxed);
  }
  MpRing(const MpRing&) = delete;
  MpRing& operator=(const MpRing&) = delete;
  ~MpRing() { ::operator delete(data_, std::align_val_t{4096}); }

  /// Any producer thread: copies `n` <= kSlot bytes into the next slot.
  void publish(const std::byte* src, std::size_t n) noexcept {
    // Relaxed fetch_add: it only hands out sequences; the slot is published by its flag.
    const std::uint64_t seq = next_.fetch_add(1, std::memory_order_relaxed);
    // Acquire: pairs with the consumer's release of tail_; its reads of the slot are done.
    while (seq - tail_.load(std::memory_order_acquire) >= slots_) cpu_relax();
    std::memcpy(data_ + (seq & mask_) * kSlot, src, n);
    // Release: pairs with the consumer's acquire of the flag.
    flags_[seq & mask_].store(seq >> shift_, std::memory_order_release);
  }

  /// The consumer: calls f(slot) for the available run of up to `max` slots, then frees them.
  template <class F>
  std::uint64_t poll(std::uint64_t max, F&& f) {
    std::uint64_t seq = tail_local_;
    const std::uint64_t end = seq + max;
    // Acquire: pairs with the producer's release of the flag.
    while (seq != end && flags_[seq & mask_].load(std::memory_order_acquire) == (seq >> shift_)) {
      f(data_ + (seq & mask_) * kSlot);
      ++seq;
    }
    const std::uint64_t got = seq - tail_local_;
    if (got != 0) {
      tail_local_ = seq;
      tail_.store(seq, std::memory_order_release);  // pairs with the producers' acquire
    }
    return got;
  }

 private:
  const std::uint64_t slots_, mask_;
  const unsigned shift_;
  std::byte* const data_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> flags_;
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> next_{0};   // producers
  alignas(pushpoll::bench::kCacheLine) std::atomic<std::uint64_t> tail_{0};   // consumer
  alignas(pushpoll::bench::kCacheLine) std::uint64_t tail_local_ = 0;        // consumer-local
};

/// A message buffer on cache lines of its own: a producer's source bytes must not share a line with
/// anything another thread writes (a heap neighbour would make every copy a cross-core miss).
struct AlignedMessage {
  explicit AlignedMessage(std::size_t bytes) : size(bytes) { std::memset(storage, static_cast<int>(kFiller), sizeof storage); }
  alignas(pushpoll::bench::kCacheLine) std::byte storage[512];
  std::size_t size;
  std::byte* data() noexcept { return storage; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {storage, size}; }
};

/// P producer threads (the benchmark thread and P - 1 more), each publishing its share of every
/// iteration, and one consumer checking per-producer order and completeness. More busy threads than
/// the machine's two cores: nothing is pinned, idle producers yield between rounds, and the
/// scheduler preempts producers anywhere, mid-claim included.
template <class Publish, class Consume>
void many_to_one(benchmark::State& state, unsigned producers, std::uint64_t per_iteration, std::uint64_t warmup,
                 std::size_t bytes, Publish&& publish, Consume&& consume) {
  Shared shared;
  const auto share = [producers](std::uint64_t total, unsigned p) {
    return total / producers + (p < total % producers ? 1 : 0);
  };
  std::vector<std::thread> others;
  for (unsigned p = 1; p < producers; ++p) {
    others.emplace_back([&, p] {
      AlignedMessage message(bytes);
      std::uint64_t seen = 0, sent = 0;
      IdleWait wait(true);
      for (;;) {
        // Acquire: pairs with the benchmark thread's release of the round.
        const std::uint64_t round = shared.round.load(std::memory_order_acquire);
        if (round == seen) {
          if (shared.stop.load(std::memory_order_acquire)) return;
          wait.idle();
          continue;
        }
        wait.busy();
        seen = round;
        const std::uint64_t count = share(round == 1 ? warmup : per_iteration, p);
        try {
          for (std::uint64_t i = 0; i < count; ++i) {
            write_counter(message.data(), pushpoll::bench::tagged_counter(p, sent++));
            publish(message);
          }
        } catch (const std::exception& e) {
          shared.fail("producer " + std::to_string(p) + " threw: " + e.what());
          return;
        }
      }
    });
  }
  std::thread consumer([&] {
    try {
      consume(shared);
    } catch (const std::exception& e) {
      shared.fail(std::string("consumer threw: ") + e.what());
    }
  });
  AlignedMessage message(bytes);
  std::uint64_t sent = 0, target = 0;
  auto round = [&](std::uint64_t total) {
    shared.round.fetch_add(1, std::memory_order_release);  // pairs with the producers' acquire
    try {
      for (std::uint64_t i = 0, n = share(total, 0); i < n; ++i) {
        write_counter(message.data(), pushpoll::bench::tagged_counter(0, sent++));
        publish(message);
      }
    } catch (const std::exception& e) {
      shared.fail(std::string("producer 0 threw: ") + e.what());
      return false;
    }
    target += total;
    return shared.wait_consumed(target, /*yield=*/true);
  };
  if (!round(warmup)) state.SkipWithError(shared.error_text().c_str());
  for (auto _ : state) {
    if (!round(per_iteration)) {
      state.SkipWithError(shared.error_text().c_str());
      break;
    }
  }
  shared.stop.store(true, std::memory_order_release);  // pairs with the workers' acquire
  for (auto& t : others) t.join();
  consumer.join();
  report(state, per_iteration, bytes, false);
}

// The spinning consumer (idle:0, the loop a user writes) at every producer count; the friendlier
// one (idle:1: pauses, then yields after a few empty polls) beside it at three producers.
void many_to_one_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"producers", "bytes", "msgs", "idle"})
      ->Args({1, 64, std::int64_t{1} << 20, 0})
      ->Args({2, 64, std::int64_t{1} << 20, 0})
      ->Args({3, 64, std::int64_t{1} << 20, 0})
      ->Args({3, 64, std::int64_t{1} << 20, 1})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

// 1, 2 or 3 producers calling the default Topic::publish, one consumer (a Subscriber polling up to
// 4096, checking every message and each producer's order; idle as the row says).
// Compare with BM_MpRing_ManyToOne, the reference, at the same producer count.
void BM_Pushpoll_ManyToOne(benchmark::State& state) {
  const auto producers = static_cast<unsigned>(state.range(0));
  const auto bytes = static_cast<std::size_t>(state.range(1));
  const auto n = static_cast<std::uint64_t>(state.range(2));
  pushpoll::Hub hub;
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(false));
  pushpoll::Subscriber sub = topic.subscribe(pushpoll::Start::oldest);
  many_to_one(
      state, producers, n, one_lap(pushpoll::detail::record_bytes(bytes), n), bytes,
      [&](const AlignedMessage& m) { topic.publish(m.bytes()); },
      [&](Shared& shared) {
        consume_topic(sub, shared, bytes, producers, ConsumerIdle(static_cast<Idle>(state.range(3)), true));
      });
  state.counters["revocations"] = static_cast<double>(topic.stats().bias_revocations);
}
BENCHMARK(BM_Pushpoll_ManyToOne)->Apply(many_to_one_args);

// Reference for BM_Pushpoll_ManyToOne: the Disruptor-style MpRing, same threads, same consumer loop
// and checks.
void BM_MpRing_ManyToOne(benchmark::State& state) {
  const auto producers = static_cast<unsigned>(state.range(0));
  const auto bytes = static_cast<std::size_t>(state.range(1));
  const auto n = static_cast<std::uint64_t>(state.range(2));
  if (bytes > MpRing::kSlot) {
    state.SkipWithError("messages over the slot size (64 bytes)");
    return;
  }
  MpRing ring(kRingBytes);
  many_to_one(
      state, producers, n, one_lap(MpRing::kSlot, n), bytes,
      [&](const AlignedMessage& m) { ring.publish(m.bytes().data(), m.size); },
      [&](Shared& shared) {
        std::uint64_t next[4] = {0, 0, 0, 0}, consumed = 0, sink = 0;
        bool checking = true;
        ConsumerIdle wait(static_cast<Idle>(state.range(3)), true);
        while (true) {
          const std::uint64_t got = ring.poll(kPollMax, [&](const std::byte* slot) {
            if (checking) {
              const std::uint64_t counter = read_counter(slot);
              const std::uint64_t p = counter >> 56, k = counter & ((std::uint64_t{1} << 56) - 1);
              if (p >= producers || k != next[p]) {
                shared.fail(mismatch("per-producer order", p < producers ? next[p] : producers, k));
                checking = false;
              } else {
                ++next[p];
              }
              sink += static_cast<std::uint8_t>(slot[bytes - 1]);
            }
          });
          if (got == 0) {
            if (shared.stop.load(std::memory_order_acquire)) break;
            wait.idle();
            continue;
          }
          wait.busy();
          consumed += got;
          shared.consumed.store(consumed, std::memory_order_release);  // pairs with wait_consumed()
        }
        benchmark::DoNotOptimize(sink);
      });
}
BENCHMARK(BM_MpRing_ManyToOne)->Apply(many_to_one_args);

// A held claim: one thread claims a message and holds the claim for 200 ms (building it in place,
// or preempted) while another publishes 1,000 messages. Manual time: how long those 1,000
// publishes take (the bar: under 10 ms; no producer waits for another). The counter
// `seen_before_commit` is how many of them a reader polling meanwhile saw before the held claim was
// committed (must be 0: readers see the committed prefix only), and `seen_after` how many it saw
// once it was (must be 1,001).
void BM_Pushpoll_HeldClaim(benchmark::State& state) {
  using clock = std::chrono::steady_clock;
  constexpr std::uint64_t kBehind = 1000;
  const auto hold = std::chrono::milliseconds(state.range(0));
  std::uint64_t seen_before = 0, seen_after = 0;
  double worst_ms = 0;
  for (auto _ : state) {
    pushpoll::Hub hub;
    pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(false));
    pushpoll::Subscriber sub = topic.subscribe(pushpoll::Start::oldest);
    std::atomic<int> phase{0};  // 1: claim held; 2: publishes done; release/acquire hand-offs
    std::thread holder([&] {
      pushpoll::Claim c = topic.claim(64);
      std::memset(c.data().data(), 0x11, 64);
      phase.store(1, std::memory_order_release);
      std::this_thread::sleep_for(hold);
      c.commit(1);
    });
    while (phase.load(std::memory_order_acquire) < 1) std::this_thread::yield();
    std::vector<std::byte> message(64, kFiller);
    const auto t0 = clock::now();
    for (std::uint64_t i = 0; i < kBehind; ++i) topic.publish(message);
    const auto took = clock::now() - t0;
    for (pushpoll::Batch b = sub.poll(kPollMax); !b.empty(); b = sub.poll(kPollMax)) seen_before += b.size();
    holder.join();
    for (pushpoll::Batch b = sub.poll(kPollMax); !b.empty(); b = sub.poll(kPollMax)) seen_after += b.size();
    const double seconds = std::chrono::duration<double>(took).count();
    worst_ms = std::max(worst_ms, seconds * 1e3);
    state.SetIterationTime(seconds);
  }
  state.counters["seen_before_commit"] = static_cast<double>(seen_before);
  state.counters["seen_after"] = benchmark::Counter(static_cast<double>(seen_after), benchmark::Counter::kAvgIterations);
  state.counters["worst_ms"] = worst_ms;
  state.SetItemsProcessed(static_cast<std::int64_t>(kBehind) * state.iterations());
}
BENCHMARK(BM_Pushpoll_HeldClaim)
    ->ArgNames({"hold_ms"})
    ->Arg(200)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// One thread hosting `subs` subscribers on one topic of `bytes`-byte messages. Each iteration
// publishes a chunk of `chunk` messages (default publish, same thread), then every subscriber polls
// it and reads each message (seq, payload counter and last byte) while the chunk is in cache.
// items_per_second counts deliveries: messages x subscribers. Publishing is part of the timed loop;
// it is one publish per message against `subs` reads of it, so it weighs about 1/subs of the time.
void BM_Pushpoll_FanOut1000(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto subs = static_cast<std::size_t>(state.range(1));
  const auto chunk = static_cast<std::uint64_t>(state.range(2));
  ScopedPin pin(0);
  pushpoll::Hub hub;
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(false));
  std::vector<pushpoll::Subscriber> subscribers;
  subscribers.reserve(subs);
  for (std::size_t i = 0; i < subs; ++i) subscribers.push_back(topic.subscribe(pushpoll::Start::oldest));
  std::vector<std::byte> message(bytes, kFiller);
  std::uint64_t sent = 0, sink = 0;
  std::string error;

  auto one_chunk = [&]() {
    const std::uint64_t first = sent;
    for (std::uint64_t i = 0; i < chunk; ++i) {
      write_counter(message.data(), sent);
      if (topic.publish(message) != sent) return error = "publish returned a wrong seq", false;
      ++sent;
    }
    for (pushpoll::Subscriber& sub : subscribers) {
      pushpoll::Batch batch = sub.poll(kPollMax);
      if (batch.size() != chunk || batch.gap() != 0 || batch.first_seq() != first) {
        return error = mismatch("fan-out batch size", chunk, batch.size()) + " at seq " +
                       std::to_string(batch.first_seq()) + " gap " + std::to_string(batch.gap()),
               false;
      }
      std::uint64_t expected = first;
      for (const pushpoll::Message& m : batch) {
        if (m.seq != expected || m.data.size() != bytes || read_counter(m.data.data()) != expected) {
          return error = mismatch("fan-out message", expected, m.seq), false;
        }
        sink += static_cast<std::uint8_t>(m.data[bytes - 1]);
        ++expected;
      }
      if (expected != sent) return error = mismatch("fan-out iterated", sent - first, expected - first), false;
      if (!batch.release()) return error = "fan-out batch not intact", false;
    }
    return true;
  };

  bool ok = true;
  try {
    for (int i = 0; i < 8 && ok; ++i) ok = one_chunk();  // warm the caches
  } catch (const std::exception& e) {
    error = e.what();
    ok = false;
  }
  if (!ok) state.SkipWithError(error.c_str());
  for (auto _ : state) {
    try {
      ok = one_chunk();
    } catch (const std::exception& e) {
      error = e.what();
      ok = false;
    }
    if (!ok) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(sink);
  const auto deliveries = static_cast<std::int64_t>(chunk * subs) * state.iterations();
  state.SetItemsProcessed(deliveries);
  state.SetBytesProcessed(deliveries * static_cast<std::int64_t>(bytes));
  state.counters["pinned"] = pin.pinned() ? 1.0 : 0.0;
  subscribers.clear();  // before the hub
}
BENCHMARK(BM_Pushpoll_FanOut1000)
    ->ArgNames({"bytes", "subs", "chunk"})
    ->Args({64, 1000, 256})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Reading one held batch of `msgs` messages of `bytes` bytes (about 1 MiB of ring at 64 B: from L2,
// as a reader thread hosting many subscribers reads it), single thread. Every iteration walks the
// whole batch, by iterator (how=0) or by Batch::for_each (how=1), and checks each message's seq,
// counter and last byte. items_per_second: messages read. This is the cost of the walk itself: the
// pointer chase from one record's header to the next (docs/DESIGN.md, "Reading").
void BM_Pushpoll_ReadBatch(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::uint64_t>(state.range(1));
  const bool for_each = state.range(2) != 0;
  ScopedPin pin(0);
  pushpoll::Hub hub;
  pushpoll::Topic& topic = hub.topic("bench", bench_topic_options(true));
  pushpoll::Subscriber sub = topic.subscribe(pushpoll::Start::oldest);
  std::vector<std::byte> message(bytes, kFiller);
  for (std::uint64_t i = 0; i < count; ++i) {
    write_counter(message.data(), i);
    topic.publish(message);
  }
  const pushpoll::Batch batch = sub.poll(count);
  if (batch.size() != count) {
    state.SkipWithError(mismatch("batch size", count, batch.size()).c_str());
    return;
  }
  std::uint64_t sink = 0;
  for (auto _ : state) {
    std::uint64_t expected = 0, bad = 0;
    auto check = [&](const pushpoll::Message& m) {
      bad += static_cast<std::uint64_t>(m.seq != expected) | (read_counter(m.data.data()) != expected);
      sink += static_cast<std::uint8_t>(m.data[bytes - 1]);
      ++expected;
    };
    if (for_each) {
      batch.for_each(check);
    } else {
      for (const pushpoll::Message& m : batch) check(m);
    }
    if (bad != 0 || expected != count) {
      state.SkipWithError(("read " + std::to_string(expected) + " messages, " + std::to_string(bad) +
                           " of them wrong")
                              .c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<std::int64_t>(count) * state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(count * bytes) * state.iterations());
  state.counters["pinned"] = pin.pinned() ? 1.0 : 0.0;
}
BENCHMARK(BM_Pushpoll_ReadBatch)
    ->ArgNames({"bytes", "msgs", "how"})
    ->Args({64, 12000, 0})
    ->Args({64, 12000, 1})
    ->Unit(benchmark::kMicrosecond);

// ---- reference: ZeroMQ ------------------------------------------------------------------------

#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
// Reference row: ZeroMQ inproc PUB/SUB, one zmq_send and one zmq_msg_recv per message, pinned
// producer and consumer. High-water marks are unlimited so that PUB never drops; each iteration is
// bounded (msgs) and waits for the consumer, which keeps the queue finite.
void BM_Zmq_OneToOne(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.range(1));
  constexpr std::uint64_t kProbe = ~std::uint64_t{0};  // sent until the subscription is live
  constexpr const char* kEndpoint = "inproc://pushpoll-bench";
  void* context = zmq_ctx_new();
  void* pub = zmq_socket(context, ZMQ_PUB);
  const int zero = 0;
  zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof(zero));
  zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof(zero));
  if (zmq_bind(pub, kEndpoint) != 0) {
    state.SkipWithError(zmq_strerror(zmq_errno()));
    zmq_close(pub);
    zmq_ctx_term(context);
    return;
  }
  std::atomic<bool> subscribed{false};
  std::vector<std::byte> message(bytes, kFiller);
  std::uint64_t sent = 0;
  auto produce = [&](Shared& shared, std::uint64_t count) {
    if (!subscribed.load(std::memory_order_acquire)) {
      // PUB/SUB joins asynchronously: probe until the subscriber has seen one message.
      write_counter(message.data(), kProbe);
      while (!subscribed.load(std::memory_order_acquire)) {
        if (zmq_send(pub, message.data(), bytes, 0) < 0) {
          shared.fail(std::string("zmq_send: ") + zmq_strerror(zmq_errno()));
          return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
    for (std::uint64_t i = 0; i < count; ++i) {
      write_counter(message.data(), sent++);
      if (zmq_send(pub, message.data(), bytes, 0) < 0) {
        shared.fail(std::string("zmq_send: ") + zmq_strerror(zmq_errno()));
        return false;
      }
    }
    return true;
  };
  auto consume = [&](Shared& shared) {
    void* sub = zmq_socket(context, ZMQ_SUB);
    const int timeout_ms = 100;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(sub, kEndpoint) != 0) {
      shared.fail(std::string("zmq_connect: ") + zmq_strerror(zmq_errno()));
      subscribed.store(true, std::memory_order_release);  // let the producer stop probing
      zmq_close(sub);
      return;
    }
    std::uint64_t expected = 0, sink = 0;
    bool checking = true;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (!shared.stop.load(std::memory_order_acquire)) {
      if (zmq_msg_recv(&msg, sub, 0) < 0) {
        if (zmq_errno() == EAGAIN || zmq_errno() == EINTR) continue;
        shared.fail(std::string("zmq_msg_recv: ") + zmq_strerror(zmq_errno()));
        break;
      }
      const auto* data = static_cast<const std::byte*>(zmq_msg_data(&msg));
      const std::size_t size = zmq_msg_size(&msg);
      const std::uint64_t counter = size >= sizeof(std::uint64_t) ? read_counter(data) : 0;
      if (counter == kProbe && expected == 0) {
        subscribed.store(true, std::memory_order_release);  // pairs with the producer's acquire
        continue;
      }
      if (checking) {
        if (size != bytes) {
          shared.fail(mismatch("zmq size", bytes, size));
          checking = false;
        } else if (counter != expected) {
          shared.fail(mismatch("zmq counter", expected, counter));
          checking = false;
        } else {
          sink += static_cast<std::uint8_t>(data[bytes - 1]);
        }
      }
      ++expected;
      // One message at a time: progress is announced per message (a store to a line that the
      // producer reads only at the end of an iteration).
      shared.consumed.store(expected, std::memory_order_release);  // pairs with wait_consumed()
    }
    zmq_msg_close(&msg);
    zmq_close(sub);
    benchmark::DoNotOptimize(sink);
  };
  run_one_to_one(state, Plan{n, n / 16}, bytes, produce, consume);
  zmq_close(pub);
  zmq_ctx_term(context);
}
BENCHMARK(BM_Zmq_OneToOne)
    ->ArgNames({"bytes", "msgs"})
    ->Args({64, std::int64_t{1} << 16})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
#endif

}  // namespace

BENCHMARK_MAIN();

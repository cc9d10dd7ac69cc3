// workload.hpp — what every design shares: the payload, the clock, the publishers' schedule, the
// per-subscriber checks, per-reader statistics, and the interface a design implements.
//
// One run of one design happens in one process (see child.cpp):
//   setup()       builds the transport and the N subscribers, assigned to T reader threads
//   serve(t)      reader thread t until the publishers are done and its subscribers are drained
//   publish(p, m) publisher thread p sends one message, following the schedule in run_publisher()
// The measured window opens when every thread waits at the start gate and closes when the last
// reader returns; CPU time, syscalls and wake-ups are the differences across that window.
#pragma once
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pushpoll/detail/ring.hpp>

#include "config.hpp"
#include "histogram.hpp"

namespace pushpoll::harness {

// ---- clock ----------------------------------------------------------------------------------

/// CLOCK_MONOTONIC in nanoseconds (the clock steady_clock uses; one vDSO call, ~20 ns).
inline std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
/// Sleeps until CLOCK_MONOTONIC reaches `t` (one clock_nanosleep; returns at once if it has).
void sleep_until_ns(std::uint64_t t) noexcept;
/// Sleeps for `ns` (one clock_nanosleep).
void sleep_for_ns(std::uint64_t ns) noexcept;

using pushpoll::detail::cpu_relax;  // the library's spin hint

/// Spin, then yield, then sleep up to ~1 ms: for a publisher waiting for room.
void backoff(unsigned& round) noexcept;

// ---- payload --------------------------------------------------------------------------------

/// The first bytes of every message; the rest is filler. Read with memcpy (no alignment assumed).
/// `tag` comes first so that ZeroMQ's prefix match can filter on it.
struct PayloadHeader {
  std::uint8_t tag;          ///< = seq % tags
  std::uint8_t reserved;
  std::uint16_t publisher;   ///< 0..P-1
  std::uint32_t size;        ///< the whole message's size
  std::uint64_t seq;         ///< per publisher: 0, 1, 2, ...
  std::uint64_t send_ns;     ///< intended send time (fixed rate) or actual send time (max rate)
  std::uint64_t sent_ns;     ///< when the publisher actually started sending it
};
static_assert(sizeof(PayloadHeader) == 32, "the payload header is 32 bytes, no padding");

// ---- run-wide state -------------------------------------------------------------------------

struct alignas(64) PaddedCounter {
  std::atomic<std::uint64_t> value{0};
};

/// Shared by the coordinator, the publishers and the readers of one run.
class RunContext {
 public:
  explicit RunContext(const Config& config);
  ~RunContext();
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;

  const Config& cfg;
  /// subs_of_thread[t]: the subscriber ids thread t serves (i % T == t), increasing.
  std::vector<std::vector<unsigned>> subs_of_thread;

  /// Set (release) by the coordinator once every publisher has returned: every message is then
  /// visible to a reader that acquires it. A reader exits after a pass that began after it saw this
  /// and found nothing.
  std::atomic<bool> publishers_done{false};
  /// Set when a thread failed: everyone stops as soon as they can.
  std::atomic<bool> aborted{false};
  /// One eventfd per reader thread, written once when the publishers are done (or on abort), so
  /// that a reader parked in epoll wakes to see it. Readers add it to their epoll set.
  std::vector<int> stop_fds;

  /// Progress, written by each thread after each batch (relaxed), read by the coordinator.
  std::vector<PaddedCounter> published, delivered;
  /// Final per-publisher counts, written by each publisher before it returns.
  std::vector<std::uint64_t> published_final;
  /// Per publisher, at a fixed rate: how late each send started after its intended time (the
  /// publisher's own wake-up and any wait in the design's publish()); part of every latency.
  std::vector<LatencyHistogram> send_lag;
  /// CPU seconds of each publisher thread and each reader thread over the run (RUSAGE_THREAD).
  std::vector<double> publisher_cpu, reader_cpu;
  /// When the last publisher returned, and when the last reader did (CLOCK_MONOTONIC ns).
  std::atomic<std::uint64_t> publishers_end{0}, readers_end{0};

  /// A publisher calls it when it is done; the last one sets publishers_done and wakes the readers.
  void publisher_finished();
  /// A reader calls it when it is done; wait_readers() returns when all have.
  void reader_finished();
  /// Coordinator: waits for the readers, calling tick() every `period_ns` meanwhile.
  template <class Tick>
  void wait_readers(std::uint64_t period_ns, Tick&& tick) {
    std::unique_lock lock(mutex_);
    while (readers_left_ != 0) {
      cv_.wait_for(lock, std::chrono::nanoseconds(period_ns));
      if (readers_left_ == 0) break;
      lock.unlock();
      tick();
      lock.lock();
    }
  }

  /// Start gate: every publisher and reader calls it; returns t0 once the coordinator opens it.
  std::uint64_t arrive_and_wait();
  /// Coordinator: waits until `n` threads have arrived.
  void wait_arrivals(unsigned n);
  /// Coordinator: opens the gate at t0.
  void open_gate(std::uint64_t t0);

  /// Records a failure (first one wins) and aborts the run.
  void fail(const std::string& what);
  [[nodiscard]] std::string failure() const;
  /// Wakes every reader (writes each stop fd once).
  void wake_readers() noexcept;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  unsigned arrived_ = 0;
  unsigned publishers_left_ = 0, readers_left_ = 0;
  bool open_ = false;
  std::uint64_t t0_ = 0;
  std::string failure_;
  std::atomic<bool> woken_{false};
};

// ---- checks and statistics of one reader thread ----------------------------------------------

/// What one reader thread measured. Plain fields: one thread writes them; read after join.
struct ReaderStats {
  LatencyHistogram latency;           ///< from the intended send time (coordinated-omission safe)
  LatencyHistogram transit;           ///< fixed rate: from the actual send time
  std::uint64_t delivered = 0;        ///< messages handed to the application (all subscribers)
  std::uint64_t bytes = 0;
  std::uint64_t sampled = 0;          ///< deliveries whose latency was recorded
  std::uint64_t syscalls = 0;         ///< made by this reader itself (epoll_wait, read, nanosleep)
  std::uint64_t sleeps = 0;           ///< blocking waits (epoll_wait that may block, sleeps)
  std::uint64_t passes = 0;           ///< passes over the thread's subscribers
  std::uint64_t batches = 0;          ///< non-empty polls / drains
  std::uint64_t transport_gaps = 0;   ///< losses the transport itself reported (pushpoll Batch::gap)
  std::uint64_t torn = 0;             ///< batches that failed validation on release (overwrite)
  std::uint64_t aborted_records = 0;  ///< aborted claims seen (pushpoll)

  /// Adds another reader's statistics into these.
  void merge(const ReaderStats& o) noexcept {
    latency.merge(o.latency);
    transit.merge(o.transit);
    delivered += o.delivered;
    bytes += o.bytes;
    sampled += o.sampled;
    syscalls += o.syscalls;
    sleeps += o.sleeps;
    passes += o.passes;
    batches += o.batches;
    transport_gaps += o.transport_gaps;
    torn += o.torn;
    aborted_records += o.aborted_records;
  }
};

/// Checks every delivery of the subscribers of one reader thread: exactly once and in order, per
/// publisher, by the sequence number in the payload (and, for the ring designs, by the topic's seq).
class Checker {
  struct Sub;

 public:
  Checker(const Config& cfg, std::span<const unsigned> subscriber_ids);

  /// The deliveries of one batch to local subscriber `l`. The hot loop works on locals (registers):
  /// they are added to the subscriber's and the reader's totals when the Account ends. Create one
  /// per batch on the reader's stack; deliveries of one subscriber must not interleave two Accounts.
  class Account {
   public:
    Account(Checker& c, std::size_t l, ReaderStats& stats) noexcept;
    Account(const Account&) = delete;
    Account& operator=(const Account&) = delete;
    ~Account() { flush(); }

    /// One delivered message, received at `now` (0: not timed). Every delivery is checked; one in
    /// Config::sample_stride() of each subscriber's is timed.
    void deliver(const std::byte* data, std::size_t size, std::uint64_t now) noexcept {
      Hot h = hot_;
      check(h, data, size, now);
      hot_ = h;
    }
    /// The ring designs: the topic's sequence number of the messages must only grow.
    void topic_seq(std::uint64_t seq) noexcept {
      if (seq < hot_.next_topic_seq) ++out_of_order_;
      hot_.next_topic_seq = seq + 1;
    }
    /// A whole batch of the ring designs, all received at `now`: anything with a for_each() that
    /// visits messages with `seq`, `aborted` and `data` (pushpoll::Batch). Aborted records are
    /// counted and skipped; the topic's sequence must grow; every other message is delivered. The
    /// same checks as topic_seq() and deliver() per message, with the running state in locals
    /// (registers) for the whole loop: kept in the object, every count would be a load and a store
    /// per message, and the chain of store-to-load forwards through them would bound the loop.
    template <class Batch>
    void deliver_batch(const Batch& batch, std::uint64_t now) noexcept {
      Hot h = hot_;
      batch.for_each([&](const auto& m) __attribute__((always_inline)) {
        if (m.aborted) [[unlikely]] {
          ++aborted_;
          return;
        }
        if (m.seq < h.next_topic_seq) [[unlikely]] ++out_of_order_;
        h.next_topic_seq = m.seq + 1;
        check(h, m.data.data(), m.data.size(), now);
      });
      hot_ = h;
    }

   private:
    // Where the publisher sits in the header's first word, and the bits of that word that must
    // equal the expected tag and size (built from a PayloadHeader, so byte order does not matter).
    static constexpr unsigned kPublisherShift = 8 * offsetof(PayloadHeader, publisher);
    static const std::uint64_t kWordMask;
    static_assert(offsetof(PayloadHeader, seq) == sizeof(std::uint64_t), "tag..size fill the first word");

    /// What changes with every delivery.
    struct Hot {
      std::uint64_t next0;           // next expected seq of publisher 0 (the common case)
      std::uint64_t next_topic_seq;  // ring designs: the topic's seq must reach at least this
      std::uint64_t received;
      std::uint32_t countdown;       // deliveries until the next one timed (1: the next)
    };
    [[gnu::always_inline]] void check(Hot& h, const std::byte* data, std::size_t size,
                                      std::uint64_t now) noexcept {
      // The header's first word (tag, reserved, publisher, size) and the publisher's seq: one
      // compare checks the tag and the size; the rest is read only for a delivery that is timed.
      std::uint64_t word, seq;
      std::memcpy(&word, data, sizeof word);
      std::memcpy(&seq, data + offsetof(PayloadHeader, seq), sizeof seq);
      const auto publisher = static_cast<std::uint16_t>(word >> kPublisherShift);
      if ((word & kWordMask) != expected_word_ || size != size_ || publisher >= publishers_) [[unlikely]] {
        ++malformed_;
        return;
      }
      if (publisher == 0) [[likely]] {
        // By value, never by reference: h must not escape, or it would leave the registers.
        h.next0 = seq == h.next0 ? h.next0 + tags_ : sequence(h.next0, seq);
      } else {
        next_[publisher] = sequence(next_[publisher], seq);
      }
      ++h.received;
      if (--h.countdown == 0) [[unlikely]] {
        h.countdown = stride_;
        if (now != 0) time(data, now);
      }
    }
    /// A publisher's sequence: `seq` arrived where `next` was expected; returns the next expected.
    std::uint64_t sequence(std::uint64_t next, std::uint64_t seq) noexcept {
      if (seq == next) return next + tags_;
      if (seq > next) {
        skipped_ += (seq - next) / tags_;  // lost in between (a gap)
        return seq + tags_;
      }
      ++out_of_order_;  // a duplicate or a reordering
      return next;
    }
    void time(const std::byte* data, std::uint64_t now) noexcept {
      PayloadHeader h;
      std::memcpy(&h, data, sizeof h);
      latency_.record(now > h.send_ns ? now - h.send_ns : 0);
      ++sampled_;
      // At a fixed rate, also from the actual send: the transport alone, without the publisher's
      // own lateness (at the maximum rate both stamps are the same).
      if (fixed_rate_) transit_.record(now > h.sent_ns ? now - h.sent_ns : 0);
    }
    void flush() noexcept;
    Sub& sub_;
    ReaderStats& stats_;
    std::uint64_t* next_;  // this subscriber's next expected seq, per publisher (next_[0]: hot_)
    const std::uint32_t size_, publishers_;
    const std::uint64_t tags_;
    const bool fixed_rate_;
    const std::uint64_t expected_word_;
    const std::uint32_t stride_;
    Hot hot_;
    std::uint64_t sampled_ = 0, skipped_ = 0, out_of_order_ = 0, malformed_ = 0, aborted_ = 0;
    LatencyHistogram::Accumulator latency_, transit_;
  };

  /// One delivery on its own (an Account of one).
  void deliver(std::size_t l, const std::byte* data, std::size_t size, std::uint64_t now,
               ReaderStats& stats) noexcept {
    Account a(*this, l, stats);
    a.deliver(data, size, now);
  }
  void topic_seq(std::size_t l, std::uint64_t seq, ReaderStats& stats) noexcept {
    Account a(*this, l, stats);
    a.topic_seq(seq);
  }
  /// Counts, after the run, what never arrived.
  void finish(std::span<const std::uint64_t> published);

  struct Totals {
    std::uint64_t expected = 0;      ///< deliveries due to these subscribers
    std::uint64_t received = 0;
    std::uint64_t skipped = 0;       ///< lost before a later message arrived
    std::uint64_t missing = 0;       ///< never arrived at all (tail)
    std::uint64_t out_of_order = 0;  ///< duplicates and reorderings
    std::uint64_t malformed = 0;     ///< wrong size, publisher or tag
    std::uint64_t subscribers_short = 0;  ///< subscribers that did not receive all they were due

    Totals& operator+=(const Totals& o) noexcept {
      expected += o.expected;
      received += o.received;
      skipped += o.skipped;
      missing += o.missing;
      out_of_order += o.out_of_order;
      malformed += o.malformed;
      subscribers_short += o.subscribers_short;
      return *this;
    }
  };
  [[nodiscard]] const Totals& totals() const noexcept { return totals_; }

  /// Every subscriber's state as words, for a reader that ran in another process (pushpoll-ipc):
  /// it sends them back, and the Checker of the same subscribers in this process takes them in.
  [[nodiscard]] std::vector<std::uint64_t> state() const;
  /// Takes in state() of a Checker made for the same subscribers; false if it does not fit.
  bool set_state(std::span<const std::uint64_t> words);

 private:
  struct Sub {
    std::uint64_t received = 0, skipped = 0, out_of_order = 0, malformed = 0;
    std::uint64_t next_topic_seq = 0;
    std::uint32_t countdown = 1;  // the first delivery is timed
    std::uint8_t tag = 0;
  };
  std::uint32_t size_;
  std::uint32_t stride_;
  bool fixed_rate_;
  std::uint32_t publishers_;
  std::uint64_t tags_;
  std::vector<Sub> subs_;
  std::vector<std::uint64_t> next_;  // [local subscriber][publisher]: next expected seq
  Totals totals_;
};

// ---- designs --------------------------------------------------------------------------------

/// Syscalls and wake-ups a design made, cumulative (the run takes differences).
struct DesignCounters {
  std::uint64_t publisher_syscalls = 0;   ///< made in publishing threads (not by the readers)
  std::uint64_t notifier_syscalls = 0;    ///< pushpoll's notifier (inline or background)
  std::uint64_t subscriber_syscalls = 0;  ///< made inside the transport on the reader side
  std::uint64_t wakeups_sent = 0;         ///< eventfd writes meant to wake a reader
  std::uint64_t wakeups_coalesced = 0;    ///< wake-ups merged into a write shared with others
};

class Design {
 public:
  virtual ~Design() = default;
  /// What exactly this design is (printed once, kept in the JSON).
  [[nodiscard]] virtual std::string description() const = 0;
  /// Builds the transport and the subscribers; runs before any thread starts.
  virtual void setup(RunContext& ctx) = 0;
  /// Publisher `p` sends one message (blocking for room in lossless mode).
  virtual void publish(unsigned p, std::span<const std::byte> message, unsigned tag) = 0;
  /// Reader thread `t`: serves ctx.subs_of_thread[t] until done (see RunContext::publishers_done).
  virtual void serve(unsigned t, Checker& check, ReaderStats& stats) = 0;
  /// The counters so far. Called by the coordinator at t0 (threads parked at the gate) and after
  /// every thread has returned.
  [[nodiscard]] virtual DesignCounters counters() const = 0;
  /// True when some syscalls happen where they cannot be counted (inside a library).
  [[nodiscard]] virtual bool syscalls_partial() const { return false; }
  /// Design-specific numbers for the JSON.
  [[nodiscard]] virtual nlohmann::json details() const { return nlohmann::json::object(); }
};

std::unique_ptr<Design> make_design(const DesignSpec& spec, const Config& cfg);
std::unique_ptr<Design> make_pushpoll_design(const DesignSpec& spec, const Config& cfg);
std::unique_ptr<Design> make_spsc_push_design(const Config& cfg);
std::unique_ptr<Design> make_zmq_design(const Config& cfg);

// ---- helpers for reader loops ----------------------------------------------------------------

/// An epoll instance that closes itself.
class Epoll {
 public:
  Epoll();
  ~Epoll();
  Epoll(const Epoll&) = delete;
  Epoll& operator=(const Epoll&) = delete;
  /// Adds `fd` for reading, with `data` handed back by wait(); edge-triggered if asked.
  void add(int fd, std::uint64_t data, bool edge_triggered = false);
  /// epoll_wait: fills `out` with the data of ready fds; returns their number (0 on timeout).
  int wait(std::span<std::uint64_t> out, int timeout_ms) noexcept;

 private:
  int fd_ = -1;
};

/// The data tag of a reader's stop fd in its epoll set.
inline constexpr std::uint64_t kStopTag = ~std::uint64_t{0};

/// Runs publisher p: builds each message and calls design.publish() on the schedule of the config
/// (as fast as possible, or on a fixed grid of intended send times; see workload.cpp).
void run_publisher(RunContext& ctx, Design& design, unsigned p);

/// CPU seconds (user + system) the calling thread has used.
double thread_cpu_s() noexcept;

/// Pins the calling thread to `cpu` modulo the CPUs it may use; false if not possible.
bool pin_to_cpu(unsigned cpu) noexcept;

}  // namespace pushpoll::harness

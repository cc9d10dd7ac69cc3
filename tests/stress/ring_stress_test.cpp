// Stress: P producers and K subscribers on one ring, started together on a latch.
//
// Every payload carries (producer id, per-producer counter) and a checksum. In Overflow::block every
// subscriber must see every message exactly once, with consecutive seqs, each producer's messages in
// order and every checksum intact. In Overflow::overwrite (suite prefix "Overwrite", left out of
// ThreadSanitizer runs because its readers race with writers by design) subscribers copy payloads
// out and keep only batches that release() reports intact, which must then be flawless.
//
// PUSHPOLL_STRESS_SCALE (default 1) multiplies the message counts and the watchdog's limit
// (60 s x scale per test). ThreadSanitizer builds (PUSHPOLL_TSAN) use fewer messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using namespace std::chrono_literals;

// ---- scale and time bound ---------------------------------------------------------------------

using test::kTsan;
using test::stress_scale;

// A message count: `normal` in ordinary builds, `tsan` under ThreadSanitizer, times the scale.
std::uint64_t scaled(std::uint64_t normal, std::uint64_t tsan) {
  const double n = static_cast<double>(kTsan ? tsan : normal) * stress_scale();
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(n));
}

// A message count for a test that skips itself under ThreadSanitizer, times the scale.
std::uint64_t scaled(std::uint64_t normal) { return scaled(normal, normal); }

// Aborts the process with a message if the test is not over within 60 s x scale, so that a hang
// fails the run instead of stalling it.
class Watchdog {
 public:
  explicit Watchdog(std::function<std::string()> progress) : progress_(std::move(progress)) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    name_ = std::string(info->test_suite_name()) + "." + info->name();
    const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(60s * stress_scale());
    thread_ = std::thread([this, limit] {
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        std::fprintf(stderr, "\nwatchdog: %s did not finish within %lld ms; aborting. Progress: %s\n",
                     name_.c_str(), static_cast<long long>(limit.count()), progress_().c_str());
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::function<std::string()> progress_;
  std::string name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Failures found on worker threads, reported by the test's own thread.
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    ++count_;
    if (messages_.size() < 20) messages_.push_back(std::move(what));
  }
  void report() {
    std::lock_guard lock(mutex_);
    for (const auto& m : messages_) ADD_FAILURE() << m;
    if (count_ > messages_.size()) ADD_FAILURE() << (count_ - messages_.size()) << " more failures";
  }
  bool any() {
    std::lock_guard lock(mutex_);
    return count_ != 0;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> messages_;
  std::size_t count_ = 0;
};

// ---- payloads ---------------------------------------------------------------------------------
//
//   [producer u32][size u32][counter u64][filler ...][checksum u64]
// The checksum is FNV-1a over everything before it; the filler depends on (producer, counter).

constexpr std::size_t kFixed = 24;

std::uint64_t fnv1a(const std::byte* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<std::uint64_t>(p[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::size_t payload_size(std::uint32_t producer, std::uint64_t counter, std::size_t max_filler) {
  return kFixed + static_cast<std::size_t>(test::mix((std::uint64_t{producer} << 48) ^ counter) %
                                           (max_filler + 1));
}

void encode(std::span<std::byte> out, std::uint32_t producer, std::uint64_t counter) {
  const auto size = static_cast<std::uint32_t>(out.size());
  std::memcpy(out.data(), &producer, 4);
  std::memcpy(out.data() + 4, &size, 4);
  std::memcpy(out.data() + 8, &counter, 8);
  std::uint64_t word = 0;
  for (std::size_t i = 16; i < out.size() - 8; ++i) {
    if ((i - 16) % 8 == 0) word = test::mix(counter * 1315423911u + producer + i);
    out[i] = static_cast<std::byte>(word >> (8 * ((i - 16) % 8)));
  }
  const std::uint64_t sum = fnv1a(out.data(), out.size() - 8);
  std::memcpy(out.data() + out.size() - 8, &sum, 8);
}

struct Decoded {
  std::uint32_t producer = 0;
  std::uint64_t counter = 0;
};

// Checks a payload; returns an error description, or "" if it is intact.
std::string decode(std::span<const std::byte> in, Decoded& out) {
  if (in.size() < kFixed) return "payload of " + std::to_string(in.size()) + " bytes is too short";
  std::uint32_t size = 0;
  std::memcpy(&out.producer, in.data(), 4);
  std::memcpy(&size, in.data() + 4, 4);
  std::memcpy(&out.counter, in.data() + 8, 8);
  if (size != in.size()) {
    return "payload says " + std::to_string(size) + " bytes but has " + std::to_string(in.size());
  }
  std::uint64_t sum = 0;
  std::memcpy(&sum, in.data() + in.size() - 8, 8);
  if (sum != fnv1a(in.data(), in.size() - 8)) return "checksum mismatch";
  return {};
}

// ---- producers --------------------------------------------------------------------------------

// Which publishing calls a producer mixes in besides publish() and claim().
struct Mix {
  bool try_publish = true;
  bool batches = true;
};

// Publishes `messages` payloads numbered 0.. for `producer` through a seeded mix of publish,
// try_publish, claim+commit and publish_batch, plus claims dropped uncommitted (aborted, not
// counted). Returns the number of aborted claims.
std::uint64_t produce(Topic& t, std::uint32_t producer, std::uint64_t messages, std::size_t max_filler,
                      Mix mix) {
  std::mt19937 rng(42 + producer);
  std::uniform_int_distribution<int> percent(0, 99);
  std::vector<std::byte> buf;
  std::uint64_t aborted = 0;
  std::uint64_t counter = 0;
  auto fill = [&](std::uint64_t c) {
    buf.resize(payload_size(producer, c, max_filler));
    encode(buf, producer, c);
  };
  while (counter < messages) {
    const int op = percent(rng);
    const unsigned tag = producer % 64;
    if (op < 55) {
      fill(counter);
      t.publish(buf, tag);
      ++counter;
    } else if (op < 70 && mix.try_publish) {
      fill(counter);
      while (!t.try_publish(buf, tag)) std::this_thread::yield();
      ++counter;
    } else if (op < 85) {
      Claim c = t.claim(payload_size(producer, counter, max_filler));
      encode(c.data(), producer, counter);
      c.commit(tag);
      ++counter;
    } else if (op < 95 && mix.batches) {
      const std::uint64_t n = std::min<std::uint64_t>(messages - counter, 2 + static_cast<std::uint64_t>(op % 5));
      std::vector<std::vector<std::byte>> payloads;
      for (std::uint64_t i = 0; i < n; ++i) {
        fill(counter + i);
        payloads.push_back(buf);
      }
      const std::vector<std::span<const std::byte>> spans(payloads.begin(), payloads.end());
      t.publish_batch(spans, tag);
      counter += n;
    } else if (op < 95) {
      fill(counter);
      t.publish(buf, tag);
      ++counter;
    } else {
      Claim c = t.claim(payload_size(producer, counter, max_filler));
      c.data()[0] = std::byte{0xEE};
      ++aborted;  // dropped uncommitted: published as an empty aborted message
    }
  }
  return aborted;
}

// ---- lossless (Overflow::block) ---------------------------------------------------------------

struct Topology {
  unsigned producers;
  bool single_producer;
};

using LosslessParam = std::tuple<std::uint64_t /*capacity*/, Topology, unsigned /*subscribers*/>;

std::string capacity_name(std::uint64_t capacity) {
  return capacity >= (1u << 20) ? std::to_string(capacity >> 20) + "MiB" : std::to_string(capacity >> 10) + "KiB";
}

struct SubscriberResult {
  std::uint64_t next_seq = 0;
  std::uint64_t aborted = 0;
  std::uint64_t batches = 0;
  std::vector<std::uint64_t> per_producer;
};

// Reads until the producers are done and the subscriber has caught up with the final head. Any
// failure is recorded and the thread returns: the subscriber leaves with it (so that it does not
// hold the producers back).
void consume_lossless(Subscriber sub, unsigned id, unsigned producers, std::latch& start,
                      const std::atomic<bool>& done, const std::atomic<std::uint64_t>& final_head,
                      std::atomic<std::uint64_t>& progress, SubscriberResult& result, Failures& failures) {
  std::mt19937 rng(1000 + id);
  std::uniform_int_distribution<std::size_t> max_messages(1, 512);
  result.per_producer.assign(producers, 0);
  auto fail = [&](const std::string& what) {
    failures.add("subscriber " + std::to_string(id) + " at seq " + std::to_string(result.next_seq) + ": " + what);
  };
  start.arrive_and_wait();
  for (;;) {
    Batch b = sub.poll(max_messages(rng));
    if (b.gap() != 0) return fail("lost " + std::to_string(b.gap()) + " messages in block mode");
    if (b.first_seq() != result.next_seq) return fail("batch starts at " + std::to_string(b.first_seq()));
    if (b.empty()) {
      // Acquire: pairs with the release of `done`, after final_head was stored.
      if (done.load(std::memory_order_acquire) &&
          result.next_seq == final_head.load(std::memory_order_relaxed)) {
        return;
      }
      std::this_thread::yield();
      continue;
    }
    std::size_t iterated = 0;
    std::string error;  // the first thing wrong in this batch
    auto visit = [&](const Message& m) {
      if (!error.empty()) return;
      ++iterated;
      if (m.seq != result.next_seq) return void(error = "got seq " + std::to_string(m.seq));
      ++result.next_seq;
      if (m.aborted) {
        if (!m.data.empty()) return void(error = "aborted message with data");
        ++result.aborted;
        return;
      }
      Decoded d;
      if (std::string err = decode(m.data, d); !err.empty()) return void(error = err);
      if (d.producer >= producers) return void(error = "unknown producer " + std::to_string(d.producer));
      if (m.tag != d.producer % 64) {
        return void(error = "tag " + std::to_string(m.tag) + " for producer " + std::to_string(d.producer));
      }
      if (d.counter != result.per_producer[d.producer]) {
        return void(error = "producer " + std::to_string(d.producer) + " sent #" + std::to_string(d.counter) +
                            " where #" + std::to_string(result.per_producer[d.producer]) + " was due");
      }
      ++result.per_producer[d.producer];
    };
    // Both ways of reading a batch, in turn: the iterator and for_each() share one walk.
    if (result.batches % 2 == 0) {
      for (const Message& m : b) visit(m);
    } else {
      b.for_each(visit);
    }
    if (!error.empty()) return fail(error);
    if (iterated != b.size()) {
      return fail("batch of " + std::to_string(b.size()) + " yielded " + std::to_string(iterated) + " messages");
    }
    if (b.end_seq() != result.next_seq) return fail("batch end disagrees with its messages");
    if (!b.release()) return fail("release() reported an overwrite in block mode");
    ++result.batches;
    progress.store(result.next_seq, std::memory_order_relaxed);
  }
}

class LosslessStress : public ::testing::TestWithParam<LosslessParam> {};

TEST_P(LosslessStress, EverySubscriberSeesEveryMessageOnceInProducerOrderIntact) {
  const auto [capacity, topo, subscribers] = GetParam();
  const std::uint64_t per_producer = scaled(120000, 20000) / topo.producers;

  Hub hub;
  TopicOptions opt;
  opt.capacity = capacity;
  opt.single_producer = topo.single_producer;
  opt.publish_timeout = 50s;  // far beyond any honest wait: Full means the producers got stuck
  opt.stall_timeout = 1h;     // never detach: every subscriber must see everything
  Topic& t = hub.topic("stress", opt);
  const std::size_t max_filler = std::min<std::size_t>(t.max_message() - kFixed, 232);

  Failures failures;
  std::latch start(topo.producers + subscribers);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> final_head{0};
  std::vector<std::atomic<std::uint64_t>> progress(subscribers);
  std::vector<SubscriberResult> results(subscribers);
  std::vector<std::uint64_t> aborted(topo.producers, 0);

  Watchdog watchdog([&] {
    std::ostringstream out;
    out << "head " << t.head() << ", subscribers at";
    for (auto& p : progress) out << ' ' << p.load(std::memory_order_relaxed);
    return out.str();
  });

  std::vector<std::thread> threads;
  for (unsigned k = 0; k < subscribers; ++k) {
    threads.emplace_back(consume_lossless, t.subscribe(Start::oldest), k, topo.producers, std::ref(start),
                         std::cref(done), std::cref(final_head), std::ref(progress[k]), std::ref(results[k]),
                         std::ref(failures));
  }
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < topo.producers; ++p) {
    producers.emplace_back([&, p] {
      start.arrive_and_wait();
      try {
        aborted[p] = produce(t, p, per_producer, max_filler, Mix{});
      } catch (const std::exception& e) {
        failures.add("producer " + std::to_string(p) + ": " + e.what());
      }
    });
  }
  for (auto& th : producers) th.join();
  final_head.store(t.head(), std::memory_order_relaxed);
  done.store(true, std::memory_order_release);  // SYNC: pairs with the subscribers' acquire
  for (auto& th : threads) th.join();

  failures.report();
  if (failures.any()) return;
  std::uint64_t total_aborted = 0;
  for (auto a : aborted) total_aborted += a;
  const TopicStats stats = t.stats();
  EXPECT_EQ(stats.head, topo.producers * per_producer + total_aborted);
  EXPECT_EQ(stats.aborted, total_aborted);
  EXPECT_EQ(stats.detaches, 0u);
  EXPECT_EQ(stats.laps, 0u);
  for (unsigned k = 0; k < subscribers; ++k) {
    EXPECT_EQ(results[k].next_seq, stats.head) << "subscriber " << k;
    EXPECT_EQ(results[k].aborted, total_aborted) << "subscriber " << k;
    for (unsigned p = 0; p < topo.producers; ++p) {
      EXPECT_EQ(results[k].per_producer[p], per_producer) << "subscriber " << k << ", producer " << p;
    }
  }
  RecordProperty("messages", std::to_string(stats.head));
  RecordProperty("full_waits", std::to_string(stats.full_waits));
  RecordProperty("batches_sub0", std::to_string(results[0].batches));
}

INSTANTIATE_TEST_SUITE_P(
    Block, LosslessStress,
    ::testing::Combine(::testing::Values(std::uint64_t{4096}, std::uint64_t{65536}, std::uint64_t{1} << 20),
                       ::testing::Values(Topology{1, true}, Topology{2, false}, Topology{4, false}),
                       ::testing::Values(1u, 3u)),
    [](const ::testing::TestParamInfo<LosslessParam>& param) {
      const Topology topo = std::get<1>(param.param);
      return "Cap" + capacity_name(std::get<0>(param.param)) + "_" +
             (topo.single_producer ? std::string("SingleProducer") : "P" + std::to_string(topo.producers)) +
             "_K" + std::to_string(std::get<2>(param.param));
    });

// ---- late joiners (Overflow::block) -----------------------------------------------------------

// Subscribers come and go while producers publish: each starts at oldest, latest or a seq in
// between, and must then see a gap-free, intact run of messages from exactly where it started.

// The bias of a sole producer is earned, revoked and earned again, over and over: one producer
// publishes alone until it holds the bias, then the others join in a burst (revoking it, sometimes
// two at once, sometimes while the owner is between taking the owner word and raising the flag),
// then it is alone again. Each round on a fresh topic (a topic earns the bias ever more slowly).
// Every message must arrive exactly once, in each producer's order, and no producer may spin
// forever on a flag nobody owns (the watchdog).
TEST(BiasStress, ProducersTakingTurnsAloneAndTogetherLoseNothing) {
  constexpr unsigned kProducers = 4;
  const std::uint64_t rounds = scaled(40, 8);
  std::atomic<std::uint64_t> current{0};
  Watchdog watchdog([&] { return "round " + std::to_string(current.load()); });
  for (std::uint64_t round = 0; round < rounds; ++round) {
    current.store(round);
    Hub hub;
    TopicOptions opt;
    opt.capacity = 1 << 20;
    Topic& t = hub.topic("bias", opt);
    Subscriber sub = t.subscribe();
    std::vector<std::uint64_t> sent(kProducers, 0), next(kProducers, 0);
    Failures failures;
    std::uint64_t received = 0;
    auto publish = [&](unsigned p, std::uint64_t n) {
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t word[2] = {p, sent[p]++};
        t.publish(std::as_bytes(std::span(word)));
      }
    };
    auto drain = [&] {
      for (Batch b = sub.poll(4096); !b.empty(); b = sub.poll(4096)) {
        for (const Message& m : b) {
          std::uint64_t word[2];
          std::memcpy(word, m.data.data(), sizeof word);
          if (word[0] >= kProducers || word[1] != next[word[0]]) {
            failures.add("round " + std::to_string(round) + ": message " + std::to_string(m.seq) + " out of order");
          } else {
            ++next[word[0]];
          }
          ++received;
        }
      }
    };
    for (int phase = 0; phase < 4; ++phase) {
      publish(0, 600);  // alone: earns the bias (256 claims in a row), holds it for a while
      drain();
      std::vector<std::thread> others;
      std::latch go(kProducers - 1);
      for (unsigned p = 1; p < kProducers; ++p) {
        others.emplace_back([&, p] {
          go.arrive_and_wait();
          publish(p, 300);
        });
      }
      publish(0, 300);
      for (auto& th : others) th.join();
      drain();
    }
    failures.report();
    std::uint64_t total = 0;
    for (const std::uint64_t n : sent) total += n;
    EXPECT_EQ(received, total) << "round " << round;
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(LateJoinStress, SubscribersJoiningMidStreamSeeAnIntactRunFromTheirStart) {
  constexpr unsigned kProducers = 2;
  const std::uint64_t per_producer = scaled(100000, 20000);
  Hub hub;
  TopicOptions opt;
  opt.capacity = 1 << 14;
  opt.publish_timeout = 50s;
  opt.stall_timeout = 1h;
  Topic& t = hub.topic("late", opt);
  const std::size_t max_filler = 200;

  Failures failures;
  std::latch start(kProducers + 1);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> joins{0}, refused{0};
  Watchdog watchdog([&] {
    return "head " + std::to_string(t.head()) + ", joins " + std::to_string(joins.load());
  });

  std::thread joiner([&] {
    std::mt19937 rng(7);
    start.arrive_and_wait();
    while (!done.load(std::memory_order_acquire)) {
      std::optional<Subscriber> sub;
      std::uint64_t from = 0;
      const auto kind = static_cast<unsigned>(rng() % 3);
      try {
        if (kind == 0) {
          sub.emplace(t.subscribe(Start::oldest));
        } else if (kind == 1) {
          sub.emplace(t.subscribe(Start::latest));
        } else {
          const std::uint64_t lo = t.oldest(), hi = t.head();
          from = lo + (hi > lo ? rng() % (hi - lo + 1) : 0);
          sub.emplace(t.subscribe(Start::at(from)));
          if (sub->cursor() != from) failures.add("Start::at(" + std::to_string(from) + ") began elsewhere");
        }
      } catch (const InvalidCursor&) {
        refused.fetch_add(1, std::memory_order_relaxed);  // the ring moved past `from` meanwhile
        if (from >= t.oldest()) failures.add("InvalidCursor for a retained seq " + std::to_string(from));
        continue;
      }
      joins.fetch_add(1, std::memory_order_relaxed);
      std::uint64_t next = sub->cursor();
      std::vector<std::uint64_t> last(kProducers, ~std::uint64_t{0});
      for (int polls = 0; polls < 50 && !done.load(std::memory_order_acquire); ++polls) {
        Batch b = sub->poll(64);
        if (b.gap() != 0 || b.first_seq() != next) {
          failures.add("late subscriber lost messages at " + std::to_string(next));
          break;
        }
        std::size_t iterated = 0;
        for (const Message& m : b) {
          ++iterated;
          if (m.seq != next++) failures.add("late subscriber: seq " + std::to_string(m.seq));
          if (m.aborted) continue;
          Decoded d;
          if (std::string err = decode(m.data, d); !err.empty()) {
            failures.add("late subscriber, seq " + std::to_string(m.seq) + ": " + err);
            continue;
          }
          if (d.producer >= kProducers) {
            failures.add("unknown producer");
            continue;
          }
          // From the first message of a producer on, its counters are consecutive.
          if (last[d.producer] != ~std::uint64_t{0} && d.counter != last[d.producer] + 1) {
            failures.add("late subscriber: producer " + std::to_string(d.producer) + " jumped from #" +
                         std::to_string(last[d.producer]) + " to #" + std::to_string(d.counter));
          }
          last[d.producer] = d.counter;
        }
        if (iterated != b.size()) {
          failures.add("late subscriber at " + std::to_string(b.first_seq()) + ": batch of " +
                       std::to_string(b.size()) + " yielded " + std::to_string(iterated));
          break;
        }
        if (!b.release()) failures.add("late subscriber: overwrite in block mode");
        if (b.empty()) std::this_thread::yield();
      }
    }
  });
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      start.arrive_and_wait();
      try {
        (void)produce(t, p, per_producer, max_filler, Mix{.try_publish = false});
      } catch (const std::exception& e) {
        failures.add("producer " + std::to_string(p) + ": " + e.what());
      }
    });
  }
  for (auto& th : producers) th.join();
  done.store(true, std::memory_order_release);
  joiner.join();
  failures.report();
  EXPECT_GT(joins.load(), 1u) << "no subscriber joined while publishing";
  EXPECT_EQ(t.stats().detaches, 0u);
  RecordProperty("joins", std::to_string(joins.load()));
  RecordProperty("refused", std::to_string(refused.load()));
}

// ---- publish_batch against readers of the recent-positions table ------------------------------
//
// Regression tests, one per reader of the recent-positions table: Start::at() near the far end of
// the table, Start::latest, and poll()'s whole-backlog fast path. A reader validates an entry by
// re-reading head_seq, so a batch commit moves head_seq one message at a time as it writes the
// entries. When it stored head_seq once, at the end, these readers could take the position of a
// message of the uncommitted batch: the batch reported size() messages but yielded none, and they
// were skipped without a gap.

// One producer thread publishing batches of `batch` 8-byte messages, each holding its own seq, until
// stopped.
class BatchPublisher {
 public:
  BatchPublisher(Topic& t, std::size_t batch) : thread_([this, &t, batch] { run(t, batch); }) {}
  BatchPublisher(const BatchPublisher&) = delete;
  BatchPublisher& operator=(const BatchPublisher&) = delete;
  ~BatchPublisher() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  /// What the publisher threw before it was stopped, if anything.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  void run(Topic& t, std::size_t batch) {
    try {
      publish_until_stopped(t, batch);
    } catch (const Closed&) {
      // stop() closes nothing; a test closes the topic to end a publish blocked on its reader.
    } catch (const std::exception& e) {
      if (!stop_.load()) error_ = e.what();
    }
  }
  void publish_until_stopped(Topic& t, std::size_t batch) {
    std::vector<std::array<std::byte, 8>> payloads(batch);
    std::vector<std::span<const std::byte>> spans(batch);
    std::uint64_t seq = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      for (std::size_t i = 0; i < batch; ++i) {
        const std::uint64_t v = seq + i;
        std::memcpy(payloads[i].data(), &v, 8);
        spans[i] = payloads[i];
      }
      t.publish_batch(spans);
      seq += batch;
    }
  }
  std::atomic<bool> stop_{false};
  std::string error_;
  std::thread thread_;
};

// Checks that a batch yields exactly size() messages, from first_seq() on, each holding its seq.
bool batch_is_exact(const Batch& b, std::string& why) {
  std::uint64_t expect = b.first_seq();
  std::size_t n = 0;
  for (const Message& m : b) {
    std::uint64_t v = 0;
    if (m.data.size() == 8) std::memcpy(&v, m.data.data(), 8);
    if (m.seq != expect || v != m.seq) {
      why = "message " + std::to_string(m.seq) + " holds " + std::to_string(v) + ", expected seq " +
            std::to_string(expect);
      return false;
    }
    ++expect;
    ++n;
  }
  if (n != b.size()) {
    why = "batch [" + std::to_string(b.first_seq()) + ", " + std::to_string(b.end_seq()) + ") of " +
          std::to_string(b.size()) + " messages yielded " + std::to_string(n);
    return false;
  }
  return true;
}

std::chrono::milliseconds batch_test_duration() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(1500ms * stress_scale());
}

TEST(BatchCommitStress, StartAtARecentSeqStartsThereWhileBatchesCommit) {
  Hub hub;
  TopicOptions opt;
  opt.capacity = 1 << 20;
  Topic& t = hub.topic("batches", opt);
  Watchdog watchdog([&] { return "head " + std::to_string(t.head()); });
  std::mt19937 rng(42);
  std::uint64_t tries = 0, wrong = 0;
  std::string first_wrong;
  {
    BatchPublisher publisher(t, 10);
    const auto end = std::chrono::steady_clock::now() + batch_test_duration();
    while (std::chrono::steady_clock::now() < end) {
      const std::uint64_t head = t.head();
      if (head < 64) continue;
      const std::uint64_t from = head - 61 + rng() % 4;  // inside the table of recent positions
      try {
        Subscriber sub = t.subscribe(Start::at(from));
        ++tries;
        std::string why;
        Batch b = sub.poll(1 << 16);
        if (b.first_seq() != from || !batch_is_exact(b, why)) {
          if (wrong++ == 0) first_wrong = "Start::at(" + std::to_string(from) + "): " + why;
        }
      } catch (const InvalidCursor&) {
        // The ring moved on meanwhile (1 MiB of 24-byte records: rare).
      }
    }
    t.close();
    publisher.stop();
    EXPECT_EQ(publisher.error(), "");
  }
  EXPECT_EQ(wrong, 0u) << "of " << tries << " subscriptions; first: " << first_wrong;
  EXPECT_GT(tries, 0u);
}

TEST(BatchCommitStress, StartLatestStartsAtHeadWhileLargeBatchesCommit) {
  Hub hub;
  TopicOptions opt;
  opt.capacity = 1 << 20;
  Topic& t = hub.topic("batches", opt);
  Watchdog watchdog([&] { return "head " + std::to_string(t.head()); });
  std::uint64_t tries = 0, wrong = 0;
  std::string first_wrong;
  {
    BatchPublisher publisher(t, 100);
    const auto end = std::chrono::steady_clock::now() + batch_test_duration();
    while (std::chrono::steady_clock::now() < end) {
      Subscriber sub = t.subscribe(Start::latest);
      ++tries;
      for (int k = 0; k < 3; ++k) {
        std::string why;
        Batch b = sub.poll(1 << 16);
        if (!batch_is_exact(b, why)) {
          if (wrong++ == 0) first_wrong = why;
          break;
        }
      }
    }
    t.close();
    publisher.stop();
    EXPECT_EQ(publisher.error(), "");
  }
  EXPECT_EQ(wrong, 0u) << "of " << tries << " subscriptions; first: " << first_wrong;
  EXPECT_GT(tries, 0u);
}

TEST(BatchCommitStress, PollYieldsEveryMessageWhileLargeBatchesCommit) {
  Hub hub;
  TopicOptions opt;
  opt.capacity = 1 << 22;
  Topic& t = hub.topic("batches", opt);
  Subscriber sub = t.subscribe();
  Watchdog watchdog([&] { return "head " + std::to_string(t.head()); });
  std::uint64_t polls = 0, wrong = 0, next = 0;
  std::string first_wrong;
  {
    BatchPublisher publisher(t, 100);
    const auto end = std::chrono::steady_clock::now() + batch_test_duration();
    while (std::chrono::steady_clock::now() < end) {
      Batch b = sub.poll(1 << 20);
      ++polls;
      std::string why;
      if (b.first_seq() != next || !batch_is_exact(b, why)) {
        if (wrong++ == 0) first_wrong = why.empty() ? "batch starts at " + std::to_string(b.first_seq()) : why;
      }
      next = b.end_seq();
    }
    t.close();  // the reader stops here: wake a publish waiting for it
    publisher.stop();
    EXPECT_EQ(publisher.error(), "");
  }
  EXPECT_EQ(wrong, 0u) << "of " << polls << " polls; first: " << first_wrong;
}

// ---- lossy (Overflow::overwrite) --------------------------------------------------------------

struct LossyResult {
  std::uint64_t intact_batches = 0, torn_batches = 0, validated = 0, gaps = 0, covered = 0;
  std::uint64_t out_of_ring = 0;  // messages whose span left the ring (only ever in torn batches)
};

class OverwriteStress : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(OverwriteStress, IntactBatchesAreFlawlessAndEverySeqIsAccountedFor) {
  if (kTsan) GTEST_SKIP() << "overwrite-mode readers race with writers by design (validated by release())";
  constexpr unsigned kProducers = 2, kSubscribers = 2;
  const std::uint64_t capacity = GetParam();
  const std::uint64_t per_producer = scaled(150000);
  Hub hub;
  TopicOptions opt;
  opt.capacity = capacity;
  opt.overflow = Overflow::overwrite;
  Topic& t = hub.topic("lossy", opt);
  const std::size_t max_filler = std::min<std::size_t>(t.max_message() - kFixed, 232);

  Failures failures;
  std::latch start(kProducers + kSubscribers);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> final_head{0};
  std::vector<LossyResult> results(kSubscribers);
  Watchdog watchdog([&] { return "head " + std::to_string(t.head()); });

  std::vector<std::thread> subs;
  for (unsigned k = 0; k < kSubscribers; ++k) {
    subs.emplace_back([&, k, sub = t.subscribe(Start::oldest)]() mutable {
      LossyResult& r = results[k];
      std::mt19937 rng(k);
      std::vector<std::byte> copy;
      struct Copied {
        std::uint64_t seq;
        bool aborted;
        std::size_t offset, size;
      };
      std::vector<Copied> messages;
      std::vector<std::uint64_t> last(kProducers, 0);
      std::vector<bool> seen(kProducers, false);
      std::uint64_t next = 0;
      start.arrive_and_wait();
      for (;;) {
        Batch b = sub.poll(1 + rng() % 256);
        if (b.first_seq() != next + b.gap()) {
          failures.add("batch at " + std::to_string(b.first_seq()) + " with gap " + std::to_string(b.gap()) +
                       " after " + std::to_string(next));
          return;
        }
        r.gaps += b.gap();
        r.covered += b.end_seq() - b.first_seq();
        next = b.end_seq();
        if (b.end_seq() == b.first_seq()) {
          if (done.load(std::memory_order_acquire) && next == final_head.load(std::memory_order_relaxed)) return;
          std::this_thread::yield();
          continue;
        }
        // Copy first, validate after release(): the bytes may change while we read them.
        copy.clear();
        messages.clear();
        for (const Message& m : b) {
          if (!test::inside_ring(t, m.data)) {
            ++r.out_of_ring;
            messages.push_back({m.seq, m.aborted, 0, ~std::size_t{0}});
            continue;
          }
          messages.push_back({m.seq, m.aborted, copy.size(), m.data.size()});
          copy.insert(copy.end(), m.data.begin(), m.data.end());
        }
        if (!b.release()) {
          ++r.torn_batches;
          continue;
        }
        ++r.intact_batches;
        if (messages.size() != b.size()) {
          failures.add("intact batch yielded " + std::to_string(messages.size()) + " of " + std::to_string(b.size()));
          continue;
        }
        std::uint64_t seq = b.first_seq();
        for (const Copied& c : messages) {
          if (c.seq != seq++) failures.add("intact batch: seq " + std::to_string(c.seq));
          if (c.size == ~std::size_t{0}) {
            failures.add("intact batch: message " + std::to_string(c.seq) + " outside the ring");
            continue;
          }
          if (c.aborted) continue;
          Decoded d;
          if (std::string err = decode({copy.data() + c.offset, c.size}, d); !err.empty()) {
            failures.add("intact batch, seq " + std::to_string(c.seq) + ": " + err);
            continue;
          }
          if (d.producer >= kProducers) {
            failures.add("intact batch: unknown producer");
            continue;
          }
          if (seen[d.producer] && d.counter <= last[d.producer]) {
            failures.add("producer " + std::to_string(d.producer) + " went back from #" +
                         std::to_string(last[d.producer]) + " to #" + std::to_string(d.counter));
          }
          seen[d.producer] = true;
          last[d.producer] = d.counter;
          ++r.validated;
        }
      }
    });
  }
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      start.arrive_and_wait();
      try {
        (void)produce(t, p, per_producer, max_filler, Mix{});
      } catch (const std::exception& e) {
        failures.add("producer " + std::to_string(p) + ": " + e.what());
      }
    });
  }
  for (auto& th : producers) th.join();
  final_head.store(t.head(), std::memory_order_relaxed);
  done.store(true, std::memory_order_release);
  for (auto& th : subs) th.join();

  failures.report();
  EXPECT_EQ(t.stats().full_waits, 0u) << "overwrite mode never waits for subscribers";
  std::uint64_t out_of_ring = 0;
  for (unsigned k = 0; k < kSubscribers; ++k) {
    const LossyResult& r = results[k];
    EXPECT_EQ(r.gaps + r.covered, t.head()) << "subscriber " << k << ": every seq is in a gap or a batch";
    EXPECT_GT(r.intact_batches, 0u) << "subscriber " << k;
    EXPECT_GT(r.validated, 0u) << "subscriber " << k;
    out_of_ring += r.out_of_ring;
    RecordProperty("sub" + std::to_string(k) + "_intact", std::to_string(r.intact_batches));
    RecordProperty("sub" + std::to_string(k) + "_torn", std::to_string(r.torn_batches));
    RecordProperty("sub" + std::to_string(k) + "_gaps", std::to_string(r.gaps));
  }
  RecordProperty("out_of_ring", std::to_string(out_of_ring));
}

INSTANTIATE_TEST_SUITE_P(Overwrite, OverwriteStress,
                         ::testing::Values(std::uint64_t{4096}, std::uint64_t{65536}),
                         [](const ::testing::TestParamInfo<std::uint64_t>& param) {
                           return "Cap" + capacity_name(param.param);
                         });

}  // namespace
}  // namespace pushpoll

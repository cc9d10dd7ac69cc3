#include "workload.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <stdexcept>
#include <thread>

namespace pushpoll::harness {

namespace {
timespec to_timespec(std::uint64_t ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000u);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000u);
  return ts;
}
}  // namespace

void sleep_until_ns(std::uint64_t t) noexcept {
  const timespec ts = to_timespec(t);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void sleep_for_ns(std::uint64_t ns) noexcept {
  timespec ts = to_timespec(ns);
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
  }
}

void backoff(unsigned& round) noexcept {
  ++round;
  if (round < 64) {
    cpu_relax();
  } else if (round < 128) {
    std::this_thread::yield();
  } else {
    const unsigned shift = std::min(round - 128, 10u);
    sleep_for_ns(std::uint64_t{1000} << shift);
  }
}

double thread_cpu_s() noexcept {
  rusage ru{};
  if (::getrusage(RUSAGE_THREAD, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

bool pin_to_cpu(unsigned cpu) noexcept {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
  const int n = CPU_COUNT(&allowed);
  if (n <= 0) return false;
  unsigned want = cpu % static_cast<unsigned>(n);
  for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (want-- == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c, &set);
      return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    }
  }
  return false;
}

// ---- RunContext -----------------------------------------------------------------------------

RunContext::RunContext(const Config& config)
    : cfg(config),
      subs_of_thread(config.threads),
      published(config.publishers),
      delivered(config.threads),
      published_final(config.publishers, 0),
      send_lag(config.publishers),
      publisher_cpu(config.publishers, 0.0),
      reader_cpu(config.threads, 0.0),
      publishers_left_(config.publishers),
      readers_left_(config.threads) {
  for (unsigned i = 0; i < cfg.subscribers; ++i) subs_of_thread[i % cfg.threads].push_back(i);
  for (unsigned t = 0; t < cfg.threads; ++t) {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error("eventfd failed");
    stop_fds.push_back(fd);
  }
}

RunContext::~RunContext() {
  for (const int fd : stop_fds) ::close(fd);
}

std::uint64_t RunContext::arrive_and_wait() {
  std::unique_lock lock(mutex_);
  ++arrived_;
  cv_.notify_all();
  cv_.wait(lock, [this] { return open_; });
  return t0_;
}

void RunContext::wait_arrivals(unsigned n) {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this, n] { return arrived_ >= n; });
}

void RunContext::open_gate(std::uint64_t t0) {
  {
    std::lock_guard lock(mutex_);
    t0_ = t0;
    open_ = true;
  }
  cv_.notify_all();
}

void RunContext::fail(const std::string& what) {
  {
    std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = what;
  }
  aborted.store(true, std::memory_order_release);
  publishers_done.store(true, std::memory_order_release);
  wake_readers();
}

void RunContext::publisher_finished() {
  const std::uint64_t now = now_ns();
  bool last;
  {
    // The mutex orders every publisher's sends before the last one's release store below.
    std::lock_guard lock(mutex_);
    last = --publishers_left_ == 0;
  }
  if (!last) return;
  publishers_end.store(now, std::memory_order_relaxed);  // relaxed: read after the joins
  // Release: pairs with the readers' acquire; every publish has returned before this store.
  publishers_done.store(true, std::memory_order_release);
  wake_readers();
}

void RunContext::reader_finished() {
  const std::uint64_t now = now_ns();
  {
    std::lock_guard lock(mutex_);
    --readers_left_;
    if (readers_end.load(std::memory_order_relaxed) < now) readers_end.store(now, std::memory_order_relaxed);
  }
  cv_.notify_all();
}

std::string RunContext::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void RunContext::wake_readers() noexcept {
  if (woken_.exchange(true)) return;
  const std::uint64_t one = 1;
  for (const int fd : stop_fds) (void)!::write(fd, &one, sizeof one);
}

// ---- Checker --------------------------------------------------------------------------------

namespace {
/// The first 8 bytes of a header with these fields (the rest zero).
std::uint64_t header_word(std::uint8_t tag, std::uint16_t publisher, std::uint32_t size) noexcept {
  PayloadHeader h{};
  h.tag = tag;
  h.publisher = publisher;
  h.size = size;
  std::uint64_t word;
  std::memcpy(&word, &h, sizeof word);
  return word;
}
}  // namespace

const std::uint64_t Checker::Account::kWordMask = header_word(0xff, 0, 0xffffffff);

Checker::Checker(const Config& cfg, std::span<const unsigned> subscriber_ids)
    : size_(cfg.size),
      stride_(cfg.sample_stride()),
      fixed_rate_(!cfg.rate_max),
      publishers_(cfg.publishers),
      tags_(cfg.tags),
      subs_(subscriber_ids.size()),
      next_(subscriber_ids.size() * cfg.publishers) {
  for (std::size_t l = 0; l < subscriber_ids.size(); ++l) {
    const auto tag = static_cast<std::uint8_t>(subscriber_ids[l] % cfg.tags);
    subs_[l].tag = tag;
    for (std::uint32_t p = 0; p < publishers_; ++p) next_[l * publishers_ + p] = tag;
  }
}

Checker::Account::Account(Checker& c, std::size_t l, ReaderStats& stats) noexcept
    : sub_(c.subs_[l]),
      stats_(stats),
      next_(c.next_.data() + l * c.publishers_),
      size_(c.size_),
      publishers_(c.publishers_),
      tags_(c.tags_),
      fixed_rate_(c.fixed_rate_),
      expected_word_(header_word(c.subs_[l].tag, 0, c.size_)),
      stride_(c.stride_),
      hot_{next_[0], c.subs_[l].next_topic_seq, 0, c.subs_[l].countdown},
      latency_(stats.latency),
      transit_(stats.transit) {}

void Checker::Account::flush() noexcept {
  next_[0] = hot_.next0;
  sub_.next_topic_seq = hot_.next_topic_seq;
  sub_.countdown = hot_.countdown;
  sub_.received += hot_.received;
  sub_.skipped += skipped_;
  sub_.out_of_order += out_of_order_;
  sub_.malformed += malformed_;
  stats_.delivered += hot_.received;
  stats_.bytes += hot_.received * size_;
  stats_.sampled += sampled_;
  stats_.aborted_records += aborted_;
  hot_.received = sampled_ = skipped_ = out_of_order_ = malformed_ = aborted_ = 0;
  latency_.flush();
  transit_.flush();
}

std::vector<std::uint64_t> Checker::state() const {
  std::vector<std::uint64_t> out;
  out.reserve(subs_.size() * 7 + next_.size());
  for (const Sub& s : subs_) {
    out.insert(out.end(), {s.received, s.skipped, s.out_of_order, s.malformed, s.next_topic_seq, s.countdown, s.tag});
  }
  out.insert(out.end(), next_.begin(), next_.end());
  return out;
}

bool Checker::set_state(std::span<const std::uint64_t> words) {
  if (words.size() != subs_.size() * 7 + next_.size()) return false;
  const std::uint64_t* w = words.data();
  for (Sub& s : subs_) {
    s.received = w[0];
    s.skipped = w[1];
    s.out_of_order = w[2];
    s.malformed = w[3];
    s.next_topic_seq = w[4];
    s.countdown = static_cast<std::uint32_t>(w[5]);
    s.tag = static_cast<std::uint8_t>(w[6]);
    w += 7;
  }
  std::copy(w, w + next_.size(), next_.begin());
  return true;
}

void Checker::finish(std::span<const std::uint64_t> published) {
  totals_ = Totals{};
  for (std::size_t l = 0; l < subs_.size(); ++l) {
    const Sub& s = subs_[l];
    std::uint64_t due = 0, missing = 0;
    for (std::uint32_t p = 0; p < publishers_; ++p) {
      const std::uint64_t n = published[p];
      // Seqs s < n with s % tags == tag.
      if (n > s.tag) due += (n - s.tag + tags_ - 1) / tags_;
      const std::uint64_t next = next_[l * publishers_ + p];
      if (next < n) missing += (n - next + tags_ - 1) / tags_;
    }
    totals_.expected += due;
    totals_.received += s.received;
    totals_.skipped += s.skipped;
    totals_.missing += missing;
    totals_.out_of_order += s.out_of_order;
    totals_.malformed += s.malformed;
    if (s.skipped + missing != 0 || s.received != due) ++totals_.subscribers_short;
  }
}

// ---- Epoll ----------------------------------------------------------------------------------

Epoll::Epoll() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error("epoll_create1 failed");
}

Epoll::~Epoll() { ::close(fd_); }

void Epoll::add(int fd, std::uint64_t data, bool edge_triggered) {
  epoll_event ev{};
  ev.events = EPOLLIN | (edge_triggered ? static_cast<std::uint32_t>(EPOLLET) : 0u);
  ev.data.u64 = data;
  if (::epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev) != 0) throw std::runtime_error("epoll_ctl ADD failed");
}

int Epoll::wait(std::span<std::uint64_t> out, int timeout_ms) noexcept {
  constexpr int kMax = 256;
  epoll_event events[kMax];
  const int cap = static_cast<int>(std::min<std::size_t>(out.size(), kMax));
  int n;
  do {
    n = ::epoll_wait(fd_, events, cap, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return 0;
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = events[i].data.u64;
  return n;
}

// ---- publishers -----------------------------------------------------------------------------

// The schedule. At the maximum rate a publisher sends back to back and stamps each message with the
// time it sends it. At a fixed rate R (in total), publisher p of P sends message k at the intended
// time t0 + p/R + k*P/R and stamps it with that intended time, not with the time it actually got to
// send it: when the design holds a publisher back (a full queue, a slow syscall), the messages due
// meanwhile are sent late, back to back, and their latency counts the wait. That is the
// coordinated-omission-safe schedule: a stall shows up in the latency of every message it delayed,
// not of one. Rate 0 sends nothing (idle: what does the design cost while nothing happens?).
void run_publisher(RunContext& ctx, Design& design, unsigned p) {
  const Config& c = ctx.cfg;
  if (c.pin) (void)pin_to_cpu(p);
  std::vector<std::byte> buf(c.size, std::byte{0x5a});
  PayloadHeader h{};
  h.publisher = static_cast<std::uint16_t>(p);
  h.size = c.size;
  const std::uint64_t limit = c.message_limit(p);
  const std::uint64_t t0 = ctx.arrive_and_wait();
  const double cpu0 = thread_cpu_s();
  const std::uint64_t end =
      c.duration_ns == 0 ? std::numeric_limits<std::uint64_t>::max() : t0 + c.duration_ns;
  auto& progress = ctx.published[p].value;
  std::uint64_t seq = 0;
  const auto send = [&](std::uint64_t stamp, std::uint64_t now) {
    h.seq = seq;
    h.tag = static_cast<std::uint8_t>(seq % c.tags);
    h.send_ns = stamp;
    h.sent_ns = now;
    std::memcpy(buf.data(), &h, sizeof h);
    design.publish(p, buf, h.tag);
    ++seq;
    // Relaxed: progress display only.
    progress.store(seq, std::memory_order_relaxed);
  };
  try {
    if (c.rate_max) {
      while (seq < limit) {
        const std::uint64_t now = now_ns();
        if (now >= end || ctx.aborted.load(std::memory_order_relaxed)) break;
        send(now, now);
      }
    } else if (c.rate > 0) {
      const double interval = 1e9 * c.publishers / c.rate;
      const double offset = 1e9 * p / c.rate;
      auto& lag = ctx.send_lag[p];
      while (seq < limit) {
        const auto intended = t0 + static_cast<std::uint64_t>(offset + interval * static_cast<double>(seq));
        if (intended >= end || ctx.aborted.load(std::memory_order_relaxed)) break;
        std::uint64_t now = now_ns();
        if (now < intended) {
          // Sleep, then (with --send-spin) spin the last stretch: a sleep can end late.
          if (intended - now > c.send_spin_ns) sleep_until_ns(intended - c.send_spin_ns);
          while ((now = now_ns()) < intended) cpu_relax();
        }
        lag.record(now - intended);
        send(intended, now);
      }
    } else if (end != std::numeric_limits<std::uint64_t>::max()) {
      sleep_until_ns(end);
    }
  } catch (const std::exception& e) {
    ctx.fail("publisher " + std::to_string(p) + ": " + e.what());
  }
  ctx.published_final[p] = seq;
  ctx.publisher_cpu[p] = thread_cpu_s() - cpu0;
  ctx.publisher_finished();
}

}  // namespace pushpoll::harness

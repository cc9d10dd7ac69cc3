// Designs on a pushpoll topic: push-to-poll itself, and polling with sleep(DELAY) on the same feed.
//
// pushpoll          each reader thread polls its subscribers; when a whole pass finds nothing it arms
//                   them (Subscriber::arm(): "wake me") and parks in epoll on their eventfds
//                   (edge-triggered), or, with wake groups, on its WakeGroup's one eventfd.
// pushpoll-groups   the same with one WakeGroup per reader thread: WakeGroup::wait() with a zero
//                   timeout arms every member behind one heavy barrier, and the thread parks in
//                   epoll on the group's one eventfd.
// pushpoll-sentinel the same, but a reader thread arms only one subscriber per distinct tag mask (the
//                   first one it polls) and parks on those eventfds: all its subscribers read one
//                   topic, so a message none of them has seen is one that subscriber has not seen
//                   either, and its wake-up stands for all of them. Arming costs a heavy barrier
//                   (membarrier) per subscriber armed; this arms a handful instead of hundreds.
// pushpoll-ipc      pushpoll with each reader thread's subscribers in a process of its own: the
//                   topic is served (pushpoll::serve) and every reader process maps it read-only
//                   (pushpoll::connect), then runs the pushpoll reader loop; the reader thread of
//                   this process only starts it, relays "publishers done", and takes its checks
//                   and statistics back at the end. CPU includes the reader processes.
// poll-DELAY        the same topic, the same cursors, no wake-ups: a pass over the subscribers, then
//                   sleep(DELAY), forever. This isolates what the wake-ups buy: the log, the cursors
//                   and the zero-copy reads are identical.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pushpoll/io/shared_memory.hpp>
#include <pushpoll/pushpoll.hpp>
#include <pushpoll/remote.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <type_traits>
#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

#include "../workload.hpp"

namespace pushpoll::harness {
namespace {

constexpr std::uint64_t kGroupTag = kStopTag - 1;

static_assert(std::is_trivially_copyable_v<ReaderStats>, "a reader process sends its statistics as bytes");

/// Moves all of `n` bytes with `io` (::read or ::write), through short transfers and signals;
/// false at end of file, on an error, or when the other end is gone.
template <class Byte, class Io>
bool all_bytes(Io io, int fd, Byte* b, std::size_t n) {
  while (n > 0) {
    const ssize_t k = io(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    b += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}
bool write_all(int fd, const void* p, std::size_t n) { return all_bytes(::write, fd, static_cast<const char*>(p), n); }
bool read_all(int fd, void* p, std::size_t n) { return all_bytes(::read, fd, static_cast<char*>(p), n); }

/// What the reader processes of pushpoll-ipc share with this one: an anonymous shared page.
struct IpcShared {
  // Release by the relaying reader thread once the coordinator said so; acquire by the process.
  alignas(64) std::atomic<bool> publishers_done{false};
  // Per reader process, its deliveries so far (relaxed: progress display only).
  struct alignas(64) Progress {
    std::atomic<std::uint64_t> value{0};
  };
  Progress delivered[1];  // cfg.threads of them (the page is sized for them)
  static std::size_t bytes(unsigned threads) { return sizeof(IpcShared) + sizeof(Progress) * threads; }
};

class RingDesign final : public Design {
 public:
  RingDesign(const DesignSpec& spec, const Config& cfg)
      : spec_(spec), cfg_(cfg), full_retries_(cfg.publishers) {
    groups_ = spec.kind == DesignSpec::Kind::pushpoll_groups ||
              (spec.kind == DesignSpec::Kind::pushpoll && cfg.wake_groups);
    ipc_ = spec.kind == DesignSpec::Kind::pushpoll_ipc;
    sentinel_ = spec.kind == DesignSpec::Kind::pushpoll_sentinel;
    polling_ = spec.kind == DesignSpec::Kind::polling;
  }

  std::string description() const override {
    const std::string feed = "pushpoll topic (lock-free ring log, " + std::to_string(cfg_.ring_bytes >> 10) +
                             " KiB, " + (cfg_.lossless ? "Overflow::block" : "Overflow::overwrite") + ")";
    if (polling_) {
      return "polling: readers pass over their subscribers' cursors on a " + feed + ", then sleep(" +
             human_ns(static_cast<double>(spec_.delay_ns)) + "); no wake-ups";
    }
    std::string d = "push-to-poll: " + feed + " + edge-triggered eventfd wake-ups (backend " +
                    std::string(to_string(hub_ ? hub_->backend() : Backend::automatic)) + ", notify " +
                    cfg_.notify + ", " + cfg_.barrier + " barrier); a reader thread arms its subscribers after an empty pass and parks in epoll";
    d += groups_     ? " on its WakeGroup's eventfd (WakeGroup::wait(0) arms all members behind one barrier)"
         : sentinel_ ? " on the eventfd of one subscriber per tag mask, armed for all (the first it polls)"
                     : " on their eventfds";
    if (ipc_) d += "; each reader thread's subscribers in a process of its own, mapping the topic read-only";
    if (cfg_.spin_ns != 0) d += " (after spinning " + human_ns(static_cast<double>(cfg_.spin_ns)) + ")";
    return d;
  }

  void setup(RunContext& ctx) override {
    ctx_ = &ctx;
    HubOptions ho;
    ho.backend = cfg_.backend == "io_uring" ? Backend::io_uring
                 : cfg_.backend == "syscall" ? Backend::syscall
                                             : Backend::automatic;
    ho.mode = cfg_.notify == "background" ? NotifyMode::background : NotifyMode::publisher;
    ho.coalesce_window = std::chrono::nanoseconds(cfg_.coalesce_ns);
    ho.sqpoll = cfg_.sqpoll;
    ho.asymmetric_barrier = cfg_.barrier == "asymmetric";
    if (ipc_) ho.memory = std::make_shared<io::SharedMemory>();
    hub_ = std::make_unique<Hub>(ho);
    done_ = &ctx.publishers_done;

    TopicOptions to;
    to.capacity = cfg_.ring_bytes;
    to.overflow = cfg_.lossless ? Overflow::block : Overflow::overwrite;
    // A benchmark must not detach a subscriber that is merely slow, nor give up on a publish.
    to.publish_timeout = std::chrono::seconds(30);
    to.stall_timeout = std::chrono::minutes(10);
    to.max_subscribers = std::max<std::uint32_t>(16384, cfg_.subscribers);
    to.single_producer = cfg_.publishers == 1;
    topic_ = &hub_->topic("bench", to);

    readers_.resize(cfg_.threads);
    for (unsigned t = 0; t < cfg_.threads; ++t) progress_.push_back(&ctx.delivered[t].value);
    if (ipc_) return start_reader_processes(ctx);
    for (unsigned t = 0; t < cfg_.threads; ++t) subscribe_reader(t, *topic_);
  }

  /// Subscribes reader t's subscribers on `topic` and builds what it parks on.
  void subscribe_reader(unsigned t, Topic& topic) {
    RunContext& ctx = *ctx_;
    {
      Reader& r = readers_[t];
      const auto& ids = ctx.subs_of_thread[t];
      r.subs.reserve(ids.size());
      for (const unsigned id : ids) {
        const std::uint64_t mask = cfg_.tags > 1 ? std::uint64_t{1} << (id % cfg_.tags) : kAllTags;
        r.subs.push_back(topic.subscribe(Start::oldest, mask));
      }
      if (polling_) return;
      r.epoll = std::make_unique<Epoll>();
      r.epoll->add(ctx.stop_fds[t], kStopTag);
      if (groups_) {
        r.group = std::make_unique<WakeGroup>(*hub_);
        // The group's ids are the thread's subscriber indices (0, 1, 2, ...).
        for (std::size_t l = 0; l < r.subs.size(); ++l) {
          if (r.group->add(r.subs[l]) != l) throw std::logic_error("wake group ids are not 0, 1, 2, ...");
        }
        r.epoll->add(r.group->fd(), kGroupTag);
      } else {
        // Which subscribers this thread arms: all, or (sentinel) the first of each tag mask.
        // Edge-triggered: every notifier write is one event; a stale count left in an eventfd (a
        // write that landed after a drain) cannot make epoll spin. The next poll()/arm() drains.
        std::vector<std::uint64_t> masks;
        for (std::size_t l = 0; l < r.subs.size(); ++l) {
          const std::uint64_t mask = r.subs[l].tag_mask();
          if (sentinel_ && std::find(masks.begin(), masks.end(), mask) != masks.end()) continue;
          masks.push_back(mask);
          r.epoll->add(r.subs[l].fd(), l, true);
          r.arming.push_back(&r.subs[l]);
        }
      }
    }
  }

  void publish(unsigned p, std::span<const std::byte> message, unsigned tag) override {
    for (;;) {
      try {
        topic_->publish(message, tag);
        return;
      } catch (const Full&) {
        ++full_retries_[p].value;  // lossless: try again (counted)
        if (ctx_->aborted.load(std::memory_order_relaxed)) throw;
      }
    }
  }

  void serve(unsigned t, Checker& check, ReaderStats& stats) override {
    if (ipc_) return relay(t, check, stats);
    if (cfg_.lossless) {
      polling_ ? serve_polling<true>(t, check, stats)
      : groups_ ? serve_group<true>(t, check, stats)
                : serve_push<true>(t, check, stats);
    } else {
      polling_ ? serve_polling<false>(t, check, stats)
      : groups_ ? serve_group<false>(t, check, stats)
                : serve_push<false>(t, check, stats);
    }
  }

  // ---- pushpoll-ipc: the reader processes ----

  /// Serves the topic, then forks one reader process per reader thread; returns once each has
  /// subscribed (before any message is published, as the in-process readers are).
  void start_reader_processes(RunContext& ctx) {
    char dir[] = "/tmp/pushpoll-bench-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("pushpoll-ipc: mkdtemp failed");
    socket_dir_ = dir;
    server_ = std::make_unique<Server>(pushpoll::serve(*hub_, socket_dir_ + "/hub.sock"));
    shared_bytes_ = IpcShared::bytes(cfg_.threads);
    void* page = ::mmap(nullptr, shared_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) throw std::runtime_error("pushpoll-ipc: mmap failed");
    shared_ = new (page) IpcShared{};
    for (unsigned t = 0; t < cfg_.threads; ++t) new (&shared_->delivered[t]) IpcShared::Progress{};
    for (unsigned t = 0; t < cfg_.threads; ++t) {
      int go[2], back[2];
      if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(back, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("pushpoll-ipc: fork failed");
      if (pid == 0) {
        ::close(go[1]);
        ::close(back[0]);
        reader_process(t, go[0], back[1]);  // never returns
      }
      ::close(go[0]);
      ::close(back[1]);
      processes_.push_back({pid, go[1], back[0]});
      char ok = 0;
      if (!read_all(back[0], &ok, 1) || ok != 1) {
        throw std::runtime_error("pushpoll-ipc: reader process " + std::to_string(t) + " could not subscribe");
      }
    }
    (void)ctx;
  }

  /// The reader process of thread t: connects, subscribes, says so, waits for the go, runs the
  /// pushpoll reader loop, and sends back its statistics and its checker's state.
  [[noreturn]] void reader_process(unsigned t, int go, int back) {
    int code = 0;
    try {
      Remote remote = pushpoll::connect(socket_dir_ + "/hub.sock");
      subscribe_reader(t, remote.topic("bench"));
      done_ = &shared_->publishers_done;
      progress_[t] = &shared_->delivered[t].value;
      const char ok = 1;
      char start = 0;
      if (!write_all(back, &ok, 1) || !read_all(go, &start, 1)) ::_exit(2);
      Checker check(cfg_, ctx_->subs_of_thread[t]);
      auto stats = std::make_unique<ReaderStats>();
      if (cfg_.lossless) {
        serve_push<true>(t, check, *stats);
      } else {
        serve_push<false>(t, check, *stats);
      }
      const std::vector<std::uint64_t> words = check.state();
      const std::uint64_t n = words.size();
      if (!write_all(back, stats.get(), sizeof(ReaderStats)) || !write_all(back, &n, sizeof(n)) ||
          !write_all(back, words.data(), n * sizeof(std::uint64_t))) {
        code = 3;
      }
    } catch (...) {
      code = 4;
    }
    ::_exit(code);
  }

  /// Reader thread t of this process, for its reader process: starts it, relays "publishers done"
  /// (and the stop eventfd) and its progress, then takes its results.
  void relay(unsigned t, Checker& check, ReaderStats& stats) {
    const Process& p = processes_[t];
    const char go = 1;
    if (!write_all(p.go, &go, 1)) throw std::runtime_error("reader process " + std::to_string(t) + " is gone");
    bool relayed = false;
    for (;;) {
      // Acquire: as a reader's; the process acquires it from the shared page in turn (release).
      if (!relayed && done_->load(std::memory_order_acquire)) {
        shared_->publishers_done.store(true, std::memory_order_release);
        const std::uint64_t one = 1;
        (void)!::write(ctx_->stop_fds[t], &one, sizeof(one));  // wakes it if it parked first
        relayed = true;
      }
      // Relaxed: progress display only.
      ctx_->delivered[t].value.store(shared_->delivered[t].value.load(std::memory_order_relaxed),
                                     std::memory_order_relaxed);
      pollfd pf{p.back, POLLIN, 0};
      if (::poll(&pf, 1, 10) > 0) break;
    }
    std::uint64_t n = 0;
    std::vector<std::uint64_t> words;
    auto received = std::make_unique<ReaderStats>();
    bool ok = read_all(p.back, received.get(), sizeof(ReaderStats)) && read_all(p.back, &n, sizeof(n));
    if (ok) {
      words.resize(n);
      ok = read_all(p.back, words.data(), n * sizeof(std::uint64_t));
    }
    int status = 0;
    ::waitpid(p.pid, &status, 0);
    if (!ok || !check.set_state(words)) {
      throw std::runtime_error("reader process " + std::to_string(t) + " failed (status " + std::to_string(status) + ")");
    }
    stats.merge(*received);
  }

  // The reader processes' own syscalls (their polls of eventfds, their doorbells) are not seen here.
  bool syscalls_partial() const override { return ipc_; }

  DesignCounters counters() const override {
    const WakeStats w = hub_->wake_stats();
    DesignCounters c;
    c.notifier_syscalls = w.notifier_syscalls;
    c.subscriber_syscalls = w.subscriber_syscalls;
    c.wakeups_sent = w.wakeups_sent;
    c.wakeups_coalesced = w.wakeups_coalesced;
    return c;
  }

  nlohmann::json details() const override {
    const WakeStats w = hub_->wake_stats();
    const TopicStats s = topic_->stats();
    std::uint64_t retries = 0;
    for (const auto& r : full_retries_) retries += r.value;
    return {{"backend", std::string(to_string(hub_->backend()))},
            {"notify", cfg_.notify},
            {"barrier", cfg_.barrier},
            {"wake_groups", groups_},
            {"sentinel_arming", sentinel_},
            {"polling_delay_ns", polling_ ? spec_.delay_ns : 0},
            {"topic",
             {{"head", s.head},
              {"full_waits", s.full_waits},
              {"full_timeouts", s.full_timeouts},
              {"detaches", s.detaches},
              {"laps", s.laps},
              {"retire_walks", s.retire_walks},
              {"gate_scans", s.gate_scans}}},
            {"wake",
             {{"wakeups_sent", w.wakeups_sent},
              {"wakeups_coalesced", w.wakeups_coalesced},
              {"wakeups_skipped", w.wakeups_skipped},
              {"rounds", w.rounds},
              {"notifier_syscalls", w.notifier_syscalls},
              {"subscriber_syscalls", w.subscriber_syscalls},
              {"arms", w.arms}}},
            {"publish_full_retries", retries}};
  }

 private:
  struct Staged {
    std::uint64_t seq;
    std::size_t size;
    std::array<std::byte, sizeof(PayloadHeader)> head;
  };
  struct Reader {
    std::unique_ptr<WakeGroup> group;  // declared first: destroyed after the subscribers
    std::vector<Subscriber> subs;
    std::unique_ptr<Epoll> epoll;
    std::vector<Staged> staged;  // overwrite mode: copies awaiting validation
    std::vector<Subscriber*> arming;  // the subscribers armed before parking (not with a group)
    std::vector<std::size_t> arm_ready;
  };
  struct alignas(64) Retries {
    std::uint64_t value = 0;
  };

  /// One poll of subscriber l: checks and accounts what it returns. Returns the messages taken.
  template <bool kLossless>
  std::size_t take(Reader& r, std::size_t l, Checker& check, ReaderStats& st) {
    Batch b = r.subs[l].poll(cfg_.batch);
    if (b.gap() != 0) st.transport_gaps += b.gap();
    if (b.empty()) return 0;
    ++st.batches;
    const bool per_batch_clock = cfg_.rate_max;
    std::uint64_t now = per_batch_clock ? now_ns() : 0;
    if constexpr (kLossless) {
      // Zero-copy: the checks read the payload header in place, inside the ring.
      {
        Checker::Account account(check, l, st);
        if (per_batch_clock) {
          account.deliver_batch(b, now);
        } else {
          for (const Message m : b) {
            if (m.aborted) {
              ++st.aborted_records;
              continue;
            }
            account.topic_seq(m.seq);
            account.deliver(m.data.data(), m.data.size(), now_ns());
          }
        }
      }
      if (!b.release()) ++st.torn;
    } else {
      // Overwrite mode: what is read may be overwritten meanwhile; copy, validate, then act.
      r.staged.clear();
      for (const Message m : b) {
        if (m.aborted || m.data.size() < sizeof(PayloadHeader)) continue;
        Staged s{m.seq, m.data.size(), {}};
        std::copy_n(m.data.data(), sizeof(PayloadHeader), s.head.data());
        r.staged.push_back(s);
      }
      if (!b.release()) {
        ++st.torn;
        return b.size();
      }
      Checker::Account account(check, l, st);
      for (const Staged& s : r.staged) {
        account.topic_seq(s.seq);
        if (!per_batch_clock) now = now_ns();
        account.deliver(s.head.data(), s.size, now);
      }
    }
    return b.size();
  }

  template <bool kLossless>
  void serve_push(unsigned t, Checker& check, ReaderStats& st) {
    Reader& r = readers_[t];
    std::array<std::uint64_t, 256> ready{};
    std::uint64_t idle_since = 0;
    auto& progress = *progress_[t];
    for (;;) {
      // Acquire: pairs with the coordinator's release; every message is visible to the pass below.
      const bool done = done_->load(std::memory_order_acquire);
      ++st.passes;
      bool any = false;
      for (std::size_t l = 0; l < r.subs.size(); ++l) any |= take<kLossless>(r, l, check, st) != 0;
      progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
      if (any) {
        idle_since = 0;
        continue;
      }
      if (done) break;
      if (cfg_.spin_ns != 0) {
        const std::uint64_t now = now_ns();
        if (idle_since == 0) idle_since = now;
        if (now - idle_since < cfg_.spin_ns) {
          cpu_relax();
          continue;
        }
      }
      // Nothing anywhere: arm the subscribers (or only the sentinels) behind one heavy barrier,
      // each re-checking its cursor after announcing itself. One that finds news ends the
      // arming: poll again; the ones armed stay armed.
      if (!Subscriber::arm_all(r.arming, r.arm_ready)) continue;
      (void)r.epoll->wait(ready, 1000);
      ++st.syscalls;
      ++st.sleeps;
      idle_since = 0;
    }
  }

  /// With a WakeGroup: the group finds the members with news, so only those are polled.
  template <bool kLossless>
  void serve_group(unsigned t, Checker& check, ReaderStats& st) {
    Reader& r = readers_[t];
    std::array<std::uint64_t, 256> ready{};
    auto& progress = *progress_[t];
    std::uint64_t idle_since = 0;
    for (;;) {
      // Acquire: pairs with the coordinator's release; every message is visible to the look below.
      const bool done = done_->load(std::memory_order_acquire);
      ++st.passes;
      if (cfg_.spin_ns != 0 && idle_since != 0) {
        // Spinning: full passes, nobody armed, until the spin time is up.
        bool any = false;
        for (std::size_t l = 0; l < r.subs.size(); ++l) any |= take<kLossless>(r, l, check, st) != 0;
        progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
        const std::uint64_t now = now_ns();
        if (any) idle_since = now;
        if (any || now - idle_since < cfg_.spin_ns) continue;
      }
      // WakeGroup::wait() with a zero timeout: the members with news if there are any (nobody left
      // armed); otherwise it arms every member behind one heavy barrier, re-checks, and returns the
      // ones that raced in, or none (everybody armed).
      const auto ids = r.group->wait(std::chrono::nanoseconds(0));
      if (!ids.empty()) {
        for (const std::uint32_t id : ids) (void)take<kLossless>(r, id, check, st);
        progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
        idle_since = now_ns();
        continue;
      }
      if (done) break;  // a look that began after the publishers were done found nothing
      const int n = r.epoll->wait(ready, 1000);
      ++st.syscalls;
      ++st.sleeps;
      idle_since = 0;
      for (int i = 0; i < n; ++i) {
        // Drains the group's eventfd; the next wait(0) finds the members it pushed.
        if (ready[static_cast<std::size_t>(i)] == kGroupTag) (void)r.group->ready();
      }
    }
  }

  template <bool kLossless>
  void serve_polling(unsigned t, Checker& check, ReaderStats& st) {
    Reader& r = readers_[t];
    auto& progress = *progress_[t];
    for (;;) {
      const bool done = done_->load(std::memory_order_acquire);  // as in serve_push
      ++st.passes;
      bool any = false;
      // Fetch everything since each cursor.
      for (std::size_t l = 0; l < r.subs.size(); ++l) {
        for (;;) {
          const std::size_t n = take<kLossless>(r, l, check, st);
          any |= n != 0;
          if (n < cfg_.batch) break;
        }
      }
      progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
      if (!any && done) break;
      if (spec_.delay_ns != 0) {
        sleep_for_ns(spec_.delay_ns);
        ++st.syscalls;
        ++st.sleeps;
      } else {
        cpu_relax();
      }
    }
  }

  struct Process {
    pid_t pid;
    int go;    // this process -> it: one byte, "start"
    int back;  // it -> this process: "subscribed", then its results
  };

  DesignSpec spec_;
  const Config& cfg_;
  bool ipc_ = false;
  bool groups_ = false;
  bool sentinel_ = false;
  bool polling_ = false;
  RunContext* ctx_ = nullptr;
  std::atomic<bool>* done_ = nullptr;  // the coordinator's flag, or (in a reader process) the page's
  std::vector<std::atomic<std::uint64_t>*> progress_;  // where reader t shows its deliveries
  std::unique_ptr<Hub> hub_;  // declared before readers_: outlives every subscriber and group
  std::unique_ptr<Server> server_;  // pushpoll-ipc
  std::string socket_dir_;
  IpcShared* shared_ = nullptr;
  std::size_t shared_bytes_ = 0;
  std::vector<Process> processes_;
  Topic* topic_ = nullptr;
  std::vector<Reader> readers_;
  std::vector<Retries> full_retries_;

 public:
  ~RingDesign() override {
    for (const Process& p : processes_) {
      ::close(p.go);  // a process still waiting for its go sees end of file and leaves
      ::close(p.back);
      ::kill(p.pid, SIGKILL);  // reaped already unless the run failed
      ::waitpid(p.pid, nullptr, WNOHANG);
    }
    server_.reset();
    if (!socket_dir_.empty()) std::filesystem::remove_all(socket_dir_);
    if (shared_ != nullptr) ::munmap(shared_, shared_bytes_);
  }
};

}  // namespace

std::unique_ptr<Design> make_pushpoll_design(const DesignSpec& spec, const Config& cfg) {
  return std::make_unique<RingDesign>(spec, cfg);
}

}  // namespace pushpoll::harness

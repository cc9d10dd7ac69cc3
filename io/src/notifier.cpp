// The notifier: serves armed subscribers after publishes (in the publishing thread or in a
// background thread), and implements the seam core uses for eventfds and the heavy barrier.
#include <linux/membarrier.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "pushpoll/io/notifier.hpp"
#include "pushpoll/detail/commit.hpp"
#include "pushpoll/io/writers.hpp"

namespace pushpoll::io {
namespace {

using detail::kWakeArmed;
using detail::kWakeNotified;

bool register_membarrier() noexcept {
#if defined(PUSHPOLL_TSAN)
  return false;  // ThreadSanitizer cannot see membarrier: use the symmetric protocol
#else
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

/// Restartable sequences for producers (core/include/pushpoll/detail/commit.hpp) need a way to
/// restart every sequence in flight: membarrier's RSEQ command (Linux 5.10), registered once.
/// Refused where the kernel or a seccomp profile refuses it, or with PUSHPOLL_RSEQ=off: producers
/// then use compare-and-swap only.
bool register_rseq_restart() noexcept {
#if defined(PUSHPOLL_TSAN)
  return false;  // ThreadSanitizer sees no restartable sequences: producers use compare-and-swap
#else
  const char* env = std::getenv("PUSHPOLL_RSEQ");
  if (env != nullptr && (std::strcmp(env, "off") == 0 || std::strcmp(env, "0") == 0)) return false;
  if (!detail::rseq_registered()) return false;
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0;
#endif
}

// ---- fork ----------------------------------------------------------------------------------
//
// After fork() the child inherits every hub, but not the threads, and some of what a hub holds is
// shared with the parent rather than copied: the io_uring's submission ring and registered-file
// table are one kernel object, whose head and tail liburing also keeps copies of in each process.
// A child that submitted to it, or unregistered a file, would corrupt the parent's notifier (the
// parent's next submission spinning on a full queue, its wake-ups lost). So the first thing an
// inherited notifier does in a child is to stop using anything shared: it writes eventfds with
// write() from then on, serves rounds in the publishing thread (the background thread stayed in the
// parent), and never touches the inherited io_uring again, beyond unmapping it at the end.
//
// A round that a parent thread was running at the fork never finishes in the child: `notifying`
// holds an owner token naming the process (its fork generation), so the child takes such a flag
// over instead of waiting for it. What that round had taken (tags, subscribers it had marked
// notified before writing their eventfds) is left to the wait() safety net in the child, which
// counts it in wakeups_recovered. As with any fork of a threaded process, a child is on safe ground
// only if no other thread was inside the hub at the fork: the same holds for the subscribers'
// queue of armed slots and for every lock.

/// Forks survived so far: each fork() bumps it in the child (pthread_atfork). Relaxed: read and
/// written by the child's only thread right after fork, and a hub created later records the new
/// value; nothing else is published through it.
std::atomic<std::uint64_t> fork_generation{0};

std::uint64_t current_fork_generation() noexcept {
  static const bool installed = [] {
    ::pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)installed;
  return fork_generation.load(std::memory_order_relaxed);
}

// Everything the notifier does, shared between the Notifier handed to topics and the background
// thread, so that the thread never depends on the lifetime of the handle (the last reference to
// a topic, and so to the handle, may be dropped on that thread).
class Engine {
 public:
  Engine(const HubOptions& options, std::unique_ptr<FdWriter> writer)
      : generation_(current_fork_generation()),
        writer_(std::move(writer)),
        background_(options.mode == NotifyMode::background),
        window_(options.coalesce_window),
        asymmetric_(options.asymmetric_barrier && register_membarrier()),
        restartable_(options.restartable_sequences && register_rseq_restart()) {
    if (background_) {
      bg_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (bg_fd_ < 0) throw Error(std::string("pushpoll: eventfd: ") + std::strerror(errno));
    }
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  ~Engine() {
    if (bg_fd_ >= 0) ::close(bg_fd_);
  }

  [[nodiscard]] bool background() const noexcept { return background_; }

  /// The value `notifying` holds while this process runs a round: nonzero, and different in a
  /// forked child from its parent's (see "fork").
  [[nodiscard]] std::uint32_t owner_token() const noexcept {
    return static_cast<std::uint32_t>(generation_ % 0xFFFF'FFFFu) + 1;
  }

  /// In a forked child, before anything else: stop using what is shared with the parent (see
  /// "fork" above). The child starts with one thread, so no lock is needed (a lock taken by a
  /// parent thread at the fork would stay taken in the child forever).
  void adopt_fork() noexcept {
    if (generation_ == fork_generation.load(std::memory_order_relaxed)) [[likely]] return;
    generation_ = fork_generation.load(std::memory_order_relaxed);
    inherited_.push_back(std::move(writer_));  // kept, unused, until the engine goes
    writer_ = make_syscall_writer();
    background_ = false;
  }

  void stop() noexcept {
    stop_.store(true, std::memory_order_release);  // acquire in background_loop()
    wake_background();
  }

  // ---- publisher side ----

  void notify(Topic& topic, std::uint64_t tags) noexcept {
    adopt_fork();
    auto& s = topic.ring().state();
    // seq_cst: see RingState::pending_tags.
    s.pending_tags.fetch_or(tags, std::memory_order_seq_cst);
    if (background_) {
      // seq_cst with the thread's store of `parked_` before its last look at pending_tags: either
      // it sees our tags or we see it parked and wake it (the only syscall a publisher makes).
      if (parked_.load(std::memory_order_seq_cst) && parked_.exchange(false, std::memory_order_seq_cst)) {
        wake_background();
      }
      return;
    }
    serve(topic, false);
  }

  void topic_closed(Topic& topic) noexcept {
    adopt_fork();
    serve(topic, true);
  }

  void topic_added(Topic& topic) {
    adopt_fork();
    if (!background_) return;
    std::lock_guard lock(topics_mutex_);
    topics_.push_back(topic.weak_from_this());
  }

  void topic_gone(Topic&) noexcept {
    adopt_fork();
    if (!background_) return;
    std::lock_guard lock(topics_mutex_);
    topics_.erase(std::remove_if(topics_.begin(), topics_.end(),
                                 [](const std::weak_ptr<Topic>& w) { return w.expired(); }),
                  topics_.end());
  }

  // ---- subscriber side ----

  int open_eventfd() {
    adopt_fork();
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0 && errno == EMFILE) {
      // Out of descriptors: raise the soft limit toward the hard one, once per shortage.
      rlimit rl{};
      if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, std::max<rlim_t>(rl.rlim_cur * 2, rl.rlim_cur + 1024));
        if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      }
    }
    if (fd < 0) {
      const int err = errno;
      rlimit rl{};
      ::getrlimit(RLIMIT_NOFILE, &rl);
      throw Error(std::string("pushpoll: cannot create an eventfd: ") + std::strerror(err) +
                  "; RLIMIT_NOFILE soft limit " + std::to_string(rl.rlim_cur) + ", hard limit " +
                  std::to_string(rl.rlim_max) + " (each subscriber that waits needs one descriptor;"
                  " raise the limit with `ulimit -n`, or share one through a WakeGroup)");
    }
    writer_->on_open(fd);
    return fd;
  }

  void close_fd(int fd) noexcept {
    adopt_fork();
    writer_->on_close(fd);
    ::close(fd);
  }

  void signal(int fd) noexcept {
    const std::uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);  // EAGAIN only at a counter near 2^64: readable anyway
  }

  bool drain(int fd) noexcept {
    std::uint64_t value;
    return ::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value);  // else EAGAIN
  }

  bool block(int fd, std::chrono::nanoseconds timeout) noexcept {
    using clock = std::chrono::steady_clock;
    const bool forever = timeout.count() < 0;
    const auto deadline = clock::now() + (forever ? std::chrono::nanoseconds(0) : timeout);
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      timespec ts{};
      if (!forever) {
        const auto left = std::max(std::chrono::nanoseconds(0), std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now()));
        ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      }
      const int rc = ::ppoll(&p, 1, forever ? nullptr : &ts, nullptr);
      if (rc > 0) return true;
      if (rc == 0) return false;
      if (errno != EINTR) return false;
    }
  }

  void heavy_barrier() noexcept {
#if !defined(PUSHPOLL_TSAN)
    if (asymmetric_) {
      // SYNC(arm), heavy side: every running thread of this process executes a full barrier, so a
      // publisher's store of head_seq is globally visible before our re-check of it, or its load
      // of `armed` comes after our increment.
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
      count_subscriber_syscall();
      return;
    }
#endif
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  [[nodiscard]] bool asymmetric() const noexcept { return asymmetric_; }
  [[nodiscard]] bool restartable() const noexcept { return restartable_; }

  void restart_sequences() noexcept {
#if !defined(PUSHPOLL_TSAN)
    // Every thread of this process running inside a restartable sequence is restarted before this
    // returns (the kernel interrupts each CPU running one of our threads and waits for it).
    ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0);
#endif
  }

  [[nodiscard]] Backend backend() const noexcept { return writer_->kind(); }

  [[nodiscard]] WakeStats stats() const noexcept {
    // Relaxed: statistics.
    WakeStats out;
    out.wakeups_sent = counters_.writes.load(std::memory_order_relaxed);
    out.wakeups_coalesced = coalesced_.load(std::memory_order_relaxed);
    out.wakeups_skipped = skipped_.load(std::memory_order_relaxed);
    out.rounds = rounds_.load(std::memory_order_relaxed);
    out.notifier_syscalls = counters_.syscalls.load(std::memory_order_relaxed) +
                            bg_syscalls_.load(std::memory_order_relaxed);
    out.subscriber_syscalls = subscriber_syscalls_.load(std::memory_order_relaxed);
    out.arms = arms_.load(std::memory_order_relaxed);
    out.wakeups_recovered = recovered_.load(std::memory_order_relaxed);
    return out;
  }

  void count_subscriber_syscall() noexcept {
    subscriber_syscalls_.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  }
  void count_arm() noexcept { arms_.fetch_add(1, std::memory_order_relaxed); }  // relaxed: statistics
  void count_recovered() noexcept {
    recovered_.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  }

  // Internal to the engine (public: the facade and the background thread call in).
  /// Runs rounds for `topic` until no tags are pending, unless another thread is running them
  /// (it will see our tags: it looks at pending_tags again after it lets go of `notifying`).
  void serve(Topic& topic, bool closing) noexcept {
    auto& s = topic.ring().state();
    const std::uint32_t me = owner_token();
    // seq_cst throughout: `notifying` and `pending_tags` form a Dekker pair with notify(). A
    // publisher ORs its tags in, then tries to take `notifying`; a server lets go of `notifying`,
    // then looks at `pending_tags` again. In the single total order one of the two sees the
    // other: either the server finds the tags, or the publisher takes `notifying` and serves them.
    for (;;) {
      if (s.notifying.exchange(me, std::memory_order_seq_cst) == me) {
        if (!closing) return;
        // Closing must not be left to a round that has already taken its tags: wait for it.
        while (s.notifying.load(std::memory_order_seq_cst) == me) std::this_thread::yield();
        continue;
      }
      // Taken: it was free, or held by a round of the process we were forked from, whose thread
      // does not exist here (see "fork").
      const std::uint64_t tags = s.pending_tags.exchange(0, std::memory_order_seq_cst);
      round(topic, closing ? ~std::uint64_t{0} : tags);
      s.notifying.store(0, std::memory_order_seq_cst);
      closing = false;
      if (s.pending_tags.load(std::memory_order_seq_cst) == 0) return;
    }
  }

  /// Returns once no round of `topic` runs in this process, then serves what publishers left
  /// pending meanwhile. seq_cst, as every access to `notifying`: we take it as a round would, so
  /// no round is running once we hold it; a publisher that finds it taken leaves its tags in
  /// pending_tags, which we serve after letting go.
  void quiesce(Topic& topic) noexcept {
    adopt_fork();
    auto& s = topic.ring().state();
    const std::uint32_t me = owner_token();
    while (s.notifying.exchange(me, std::memory_order_seq_cst) == me) std::this_thread::yield();
    s.notifying.store(0, std::memory_order_seq_cst);
    if (s.pending_tags.load(std::memory_order_seq_cst) != 0) notify(topic, 0);
  }

  /// One round: every armed subscriber of `topic` whose mask meets `tags` goes armed -> notified
  /// and its eventfd is written once (each distinct eventfd once). All tags (closing) meet every
  /// mask: a mask of 0 is refused at subscribe().
  void round(Topic& topic, std::uint64_t tags) noexcept {
    if (tags == 0) return;
    thread_local std::vector<int> fds;
    thread_local std::vector<std::uint32_t> keep;
    fds.clear();
    keep.clear();
    auto& set = topic.armed_set();
    auto& state = topic.ring().state();
    rounds_.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    std::uint32_t index;
    std::uint64_t woken = 0, skipped = 0;
    // A seat (a subscriber of another process) is counted in `armed` by the owner, so its arming
    // ends here when a round finds it over (seq_cst exchange against seat_armed()'s; relaxed
    // decrement, as a subscriber's own).
    const auto end_count = [&state](const detail::WakeTarget& t) {
      if (t.counted != nullptr && t.counted->exchange(0, std::memory_order_seq_cst) == 1) {
        state.armed.fetch_sub(1, std::memory_order_relaxed);
      }
    };
    while (set.pop(index)) {
      const detail::WakeTarget target = topic.wake_target(index);
      if (target.slot == nullptr) continue;  // a seat whose process left
      auto& slot = *target.slot;
      // seq_cst: clear `queued` before reading `wake` (see SubscriberSlot::queued).
      target.queued->store(0, std::memory_order_seq_cst);
      std::uint32_t w = slot.wake.load(std::memory_order_seq_cst);
      if (w != kWakeArmed) {  // disarmed, already notified, or unsubscribed
        end_count(target);
        continue;
      }
      // Relaxed: the mask was stored before the arming's seq_cst RMWs, which the load of `wake`
      // above read from; it is not changed while the slot is subscribed.
      if ((slot.tag_mask.load(std::memory_order_relaxed) & tags) == 0) {
        keep.push_back(index);  // stays armed for a tag it wants
        ++skipped;
        continue;
      }
      // seq_cst CAS: exactly one of us and the subscriber's disarm ends the arming; only the
      // winner writes the eventfd. The fd was stored before the arming's seq_cst RMWs.
      if (slot.wake.compare_exchange_strong(w, kWakeNotified, std::memory_order_seq_cst)) {
        // Relaxed: the fd was stored before the arming's seq_cst RMWs, which we read above.
        if (const int fd = target.fd->load(std::memory_order_relaxed); fd >= 0) fds.push_back(fd);
        end_count(target);
        ++woken;
      }
    }
    // For a table slot, `armed` is not decremented here: the subscriber does it when it takes the
    // notification, which always follows its own increment. A round may win the CAS on an arming
    // whose increment has not happened yet; decrementing here would let the count drop below the
    // slots still armed, and a publisher reading 0 would skip a subscriber that needs its push. A
    // seat's count is the owner's, made before it queued the seat: end_count() above.
    for (const std::uint32_t k : keep) {
      // seq_cst: the exchange that marks a slot queued before pushing it, as in arming (see
      // SubscriberSlot::queued): either we push it back or its subscriber does, never both.
      std::atomic<std::uint32_t>* queued = topic.wake_target(k).queued;
      if (queued != nullptr && queued->exchange(1, std::memory_order_seq_cst) == 0) (void)set.push(k);
    }
    std::sort(fds.begin(), fds.end());
    fds.erase(std::unique(fds.begin(), fds.end()), fds.end());
    // Relaxed: statistics. Shared by every publisher of the hub: touched only when there is
    // something to add.
    if (woken != fds.size()) coalesced_.fetch_add(woken - fds.size(), std::memory_order_relaxed);
    if (skipped != 0) skipped_.fetch_add(skipped, std::memory_order_relaxed);
    if (!fds.empty()) writer_->write_all(fds, counters_);
  }

  // ---- background mode ----

  void wake_background() noexcept {
    const std::uint64_t one = 1;
    (void)!::write(bg_fd_, &one, sizeof one);
    bg_syscalls_.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  }

  /// Serves every topic with pending tags; returns whether any had some. The list is copied under
  /// the mutex and each topic locked through its weak_ptr, so no lock is held while serving and a
  /// topic going away concurrently is simply skipped.
  bool serve_pending(std::vector<std::weak_ptr<Topic>>& snapshot) {
    {
      std::lock_guard lock(topics_mutex_);
      snapshot = topics_;
    }
    bool any = false;
    for (const auto& weak : snapshot) {
      if (auto t = weak.lock()) {
        // seq_cst: this thread's half of the parked_/pending_tags pair (see notify()).
        if (t->ring().state().pending_tags.load(std::memory_order_seq_cst) != 0) {
          serve(*t, false);
          any = true;
        }
      }
    }
    return any;
  }

  void background_loop() {
    std::vector<std::weak_ptr<Topic>> snapshot;
    while (!stop_.load(std::memory_order_acquire)) {
      if (serve_pending(snapshot)) {
        // Coalescing window: publishes during it are served by the next round, together.
        if (window_.count() > 0) std::this_thread::sleep_for(window_);
        continue;
      }
      // Nothing pending: look for a short while before parking, so that a publisher in a lull
      // rarely pays the write() that wakes a parked notifier.
      bool found = false;
      const auto spin_end = std::chrono::steady_clock::now() + kSpinBeforePark;
      while (!found && std::chrono::steady_clock::now() < spin_end) {
        std::this_thread::yield();
        found = serve_pending(snapshot);
      }
      if (found) continue;
      // Park. Announce (seq_cst), look once more, then block on our eventfd.
      parked_.store(true, std::memory_order_seq_cst);
      if (!serve_pending(snapshot) && !stop_.load(std::memory_order_acquire)) {
        pollfd p{bg_fd_, POLLIN, 0};
        // The parked_ handshake and stop() wake us; the 100 ms timeout is only a safety net, the
        // notifier's own poll after silence (ten cheap wake-ups a second while the hub is idle).
        (void)::poll(&p, 1, 100);
        std::uint64_t value;
        (void)!::read(bg_fd_, &value, sizeof value);
      }
      parked_.store(false, std::memory_order_seq_cst);  // seq_cst: as the store above
    }
  }

  static constexpr std::chrono::microseconds kSpinBeforePark{200};
  std::uint64_t generation_;  // fork generation this engine belongs to (adopt_fork())
  std::unique_ptr<FdWriter> writer_;
  std::vector<std::unique_ptr<FdWriter>> inherited_;  // writers inherited over a fork: never used
  bool background_;
  std::chrono::nanoseconds window_;
  bool asymmetric_;
  bool restartable_;
  WriterCounters counters_;
  std::atomic<std::uint64_t> coalesced_{0}, skipped_{0}, rounds_{0}, subscriber_syscalls_{0},
      arms_{0}, bg_syscalls_{0}, recovered_{0};
  // Background mode.
  std::mutex topics_mutex_;
  std::vector<std::weak_ptr<Topic>> topics_;
  // Release by stop(), acquire by the thread; it publishes nothing else, so relaxed would do too.
  std::atomic<bool> stop_{false};
  std::atomic<bool> parked_{false};
  int bg_fd_ = -1;
};

/// The Notifier that topics and the hub hold: forwards to the engine, owns the background thread.
class EventNotifier final : public detail::Notifier {
 public:
  EventNotifier(const HubOptions& options, std::unique_ptr<FdWriter> writer)
      : engine_(std::make_shared<Engine>(options, std::move(writer))) {
    if (engine_->background()) {
      thread_ = std::thread([engine = engine_] { engine->background_loop(); });
    }
  }
  EventNotifier(const EventNotifier&) = delete;
  EventNotifier& operator=(const EventNotifier&) = delete;
  ~EventNotifier() override {
    if (!thread_.joinable()) return;
    if (fork_generation.load(std::memory_order_relaxed) != thread_generation_) {
      // A forked child: the thread stayed in the parent, and this handle names nothing here.
      // Neither join nor detach it (both would act on a thread of another process); let the
      // handle go without destroying it (a joinable std::thread's destructor terminates). The
      // engine reference the thread held is never dropped here: the engine lives until exit.
      new (&thread_) std::thread();
      return;
    }
    engine_->stop();
    // The last reference may go on the background thread itself (it held the last topic for a
    // moment): it cannot join itself, so it finishes on its own, keeping the engine alive.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  void notify(Topic& topic, std::uint64_t tags) noexcept override { engine_->notify(topic, tags); }
  void topic_closed(Topic& topic) noexcept override { engine_->topic_closed(topic); }
  void topic_added(Topic& topic) override { engine_->topic_added(topic); }
  void topic_gone(Topic& topic) noexcept override { engine_->topic_gone(topic); }
  void quiesce(Topic& topic) noexcept override { engine_->quiesce(topic); }
  int open_eventfd() override { return engine_->open_eventfd(); }
  void close_fd(int fd) noexcept override { engine_->close_fd(fd); }
  void signal(int fd) noexcept override { engine_->signal(fd); }
  bool drain(int fd) noexcept override { return engine_->drain(fd); }
  bool block(int fd, std::chrono::nanoseconds timeout) noexcept override {
    return engine_->block(fd, timeout);
  }
  void heavy_barrier() noexcept override { engine_->heavy_barrier(); }
  [[nodiscard]] bool asymmetric() const noexcept override { return engine_->asymmetric(); }
  [[nodiscard]] bool restartable() const noexcept override { return engine_->restartable(); }
  void restart_sequences() noexcept override { engine_->restart_sequences(); }
  [[nodiscard]] Backend backend() const noexcept override { return engine_->backend(); }
  [[nodiscard]] WakeStats stats() const noexcept override { return engine_->stats(); }
  void count_subscriber_syscall() noexcept override { engine_->count_subscriber_syscall(); }
  void count_arm() noexcept override { engine_->count_arm(); }
  void count_recovered() noexcept override { engine_->count_recovered(); }

 private:
  std::shared_ptr<Engine> engine_;
  std::thread thread_;
  std::uint64_t thread_generation_ = current_fork_generation();  // the process thread_ runs in
};

bool uring_disabled_by_env() {
  const char* v = std::getenv("PUSHPOLL_IO_URING");
  return v != nullptr && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
}

}  // namespace

bool io_uring_available(std::string* why) {
  if (uring_disabled_by_env()) {
    if (why) *why = "disabled by PUSHPOLL_IO_URING=off";
    return false;
  }
  return make_uring_writer(false, why) != nullptr;
}

std::shared_ptr<detail::Notifier> make_notifier(const HubOptions& options) {
  std::unique_ptr<FdWriter> writer;
  std::string why;
  switch (options.backend) {
    case Backend::syscall:
      writer = make_syscall_writer();
      break;
    case Backend::io_uring:
      writer = make_uring_writer(options.sqpoll, &why);
      if (!writer) throw Error("pushpoll: io_uring backend unavailable: " + why);
      break;
    case Backend::automatic:
      if (!uring_disabled_by_env()) writer = make_uring_writer(options.sqpoll, &why);
      if (!writer) writer = make_syscall_writer();
      break;
  }
  return std::make_shared<EventNotifier>(options, std::move(writer));
}

}  // namespace pushpoll::io


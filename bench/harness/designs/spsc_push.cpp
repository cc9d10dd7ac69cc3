// spsc-push: the server-push design. Every subscriber has one boost::lockfree::spsc_queue per
// publisher (so that each queue keeps a single producer) and one eventfd. A publisher copies each
// message into the queue of every subscriber that takes its tag (the server filters), then writes
// that subscriber's eventfd: one copy and one write() per message per subscriber. Reader threads
// wait in epoll on their subscribers' eventfds, read (reset) the ready ones, and drain their queues.
// Lossless: a publisher that finds a queue full waits for room; lossy: it drops the message for that
// subscriber (the reader sees the gap in the sequence numbers).
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/lockfree/spsc_queue.hpp>
#include <memory>
#include <stdexcept>
#include <vector>

#include "../workload.hpp"

namespace pushpoll::harness {
namespace {

class SpscPushDesign final : public Design {
 public:
  explicit SpscPushDesign(const Config& cfg) : cfg_(cfg), pub_(cfg.publishers) {}

  ~SpscPushDesign() override {
    for (const auto& s : subs_) {
      if (s.efd >= 0) ::close(s.efd);
    }
  }
  SpscPushDesign(const SpscPushDesign&) = delete;
  SpscPushDesign& operator=(const SpscPushDesign&) = delete;

  std::string description() const override {
    return "server push: per subscriber and publisher a boost::lockfree::spsc_queue of " +
           std::to_string(cfg_.queue_depth) + " messages; the publisher copies each message into every "
           "matching subscriber's queue and writes its eventfd; readers epoll the eventfds";
  }

  void setup(RunContext& ctx) override {
    ctx_ = &ctx;
    const std::size_t bytes = static_cast<std::size_t>(cfg_.queue_depth) * cfg_.size;
    subs_.resize(cfg_.subscribers);
    targets_.resize(cfg_.tags);
    for (unsigned s = 0; s < cfg_.subscribers; ++s) {
      Sub& sub = subs_[s];
      sub.efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (sub.efd < 0) throw std::runtime_error("eventfd failed (raise `ulimit -n`?)");
      for (unsigned p = 0; p < cfg_.publishers; ++p) sub.from.push_back(std::make_unique<Queue>(bytes));
      targets_[s % cfg_.tags].push_back(s);
    }
    readers_.resize(cfg_.threads);
    for (unsigned t = 0; t < cfg_.threads; ++t) {
      readers_[t].epoll = std::make_unique<Epoll>();
      readers_[t].epoll->add(ctx.stop_fds[t], kStopTag);
      const auto& ids = ctx.subs_of_thread[t];
      for (std::size_t l = 0; l < ids.size(); ++l) readers_[t].epoll->add(subs_[ids[l]].efd, l);
    }
  }

  void publish(unsigned p, std::span<const std::byte> message, unsigned tag) override {
    PubStats& ps = pub_[p];
    const std::uint64_t one = 1;
    for (const unsigned s : targets_[tag]) {
      Sub& sub = subs_[s];
      Queue& q = *sub.from[p];
      if (q.write_available() < message.size()) {
        if (!cfg_.lossless) {
          ++ps.drops;
          continue;
        }
        ++ps.full_waits;
        unsigned round = 0;
        while (q.write_available() < message.size()) {
          if (ctx_->aborted.load(std::memory_order_relaxed)) throw std::runtime_error("aborted");
          backoff(round);
        }
      }
      // Release inside push(): the reader that sees the new write index sees the bytes.
      q.push(message.data(), message.size());
      (void)!::write(sub.efd, &one, sizeof one);
      ++ps.writes;
    }
  }

  void serve(unsigned t, Checker& check, ReaderStats& st) override {
    Reader& r = readers_[t];
    const auto& ids = ctx_->subs_of_thread[t];
    std::array<std::uint64_t, 256> ready{};
    r.buffer.resize(static_cast<std::size_t>(cfg_.size) * 256);
    auto& progress = ctx_->delivered[t].value;
    for (;;) {
      // Acquire: pairs with the coordinator's release; every push is visible after it.
      const bool done = ctx_->publishers_done.load(std::memory_order_acquire);
      const int n = r.epoll->wait(ready, done ? 0 : 1000);
      ++st.syscalls;
      if (!done) ++st.sleeps;
      ++st.passes;
      for (int i = 0; i < n; ++i) {
        const std::uint64_t l = ready[static_cast<std::size_t>(i)];
        if (l == kStopTag) continue;
        std::uint64_t count;
        (void)!::read(subs_[ids[l]].efd, &count, sizeof count);  // reset before draining
        ++st.syscalls;
        drain(r, ids, static_cast<std::size_t>(l), check, st);
      }
      if (done) {
        for (std::size_t l = 0; l < ids.size(); ++l) drain(r, ids, l, check, st);
        progress.store(st.delivered, std::memory_order_relaxed);
        break;
      }
      progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
    }
  }

  DesignCounters counters() const override {
    DesignCounters c;
    for (const auto& p : pub_) {
      c.publisher_syscalls += p.writes;
      c.wakeups_sent += p.writes;
    }
    return c;
  }

  nlohmann::json details() const override {
    std::uint64_t writes = 0, waits = 0, drops = 0;
    for (const auto& p : pub_) {
      writes += p.writes;
      waits += p.full_waits;
      drops += p.drops;
    }
    return {{"queue_depth_messages", cfg_.queue_depth},
            {"queue_bytes_total", static_cast<std::uint64_t>(cfg_.queue_depth) * cfg_.size * cfg_.subscribers *
                                      cfg_.publishers},
            {"eventfd_writes", writes},
            {"publisher_full_waits", waits},
            {"drops", drops}};
  }

 private:
  using Queue = boost::lockfree::spsc_queue<std::byte>;
  struct Sub {
    int efd = -1;
    std::vector<std::unique_ptr<Queue>> from;  // [publisher]
  };
  struct Reader {
    std::unique_ptr<Epoll> epoll;
    std::vector<std::byte> buffer;
  };
  struct alignas(64) PubStats {
    std::uint64_t writes = 0, full_waits = 0, drops = 0;
  };

  void drain(Reader& r, const std::vector<unsigned>& ids, std::size_t l, Checker& check, ReaderStats& st) {
    Sub& sub = subs_[ids[l]];
    const std::size_t size = cfg_.size;
    const std::size_t max_msgs = r.buffer.size() / size;
    for (auto& qp : sub.from) {
      Queue& q = *qp;
      for (;;) {
        // Whole messages only: a push of `size` bytes publishes its write index once.
        const std::size_t msgs = std::min(q.read_available() / size, max_msgs);
        if (msgs == 0) break;
        const std::size_t got = q.pop(r.buffer.data(), msgs * size);  // the reader's copy out
        ++st.batches;
        std::uint64_t now = cfg_.rate_max ? now_ns() : 0;
        Checker::Account account(check, l, st);
        for (std::size_t i = 0; i < got / size; ++i) {
          if (!cfg_.rate_max) now = now_ns();
          account.deliver(r.buffer.data() + i * size, size, now);
        }
      }
    }
  }

  const Config& cfg_;
  RunContext* ctx_ = nullptr;
  std::vector<Sub> subs_;
  std::vector<std::vector<unsigned>> targets_;  // [tag]: subscribers that take it
  std::vector<Reader> readers_;
  std::vector<PubStats> pub_;
};

}  // namespace

std::unique_ptr<Design> make_spsc_push_design(const Config& cfg) { return std::make_unique<SpscPushDesign>(cfg); }

}  // namespace pushpoll::harness

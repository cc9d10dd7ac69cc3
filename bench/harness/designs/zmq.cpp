// zmq: ZeroMQ inproc PUB/SUB, the library most people would reach for.
//
// Each publisher thread owns an XPUB socket (a PUB that also reports subscriptions, so that setup can
// wait until every subscription has arrived: no "slow joiner" losses) bound to inproc://; each
// subscriber is a SUB socket connected to every publisher, subscribed to its tag (a one-byte prefix:
// the payload starts with the tag) or to everything. Lossless: ZMQ_XPUB_NODROP makes a send block
// while a subscriber's pipe is at its high-water mark; lossy: ZeroMQ drops for that subscriber.
// Reader threads wait in epoll on the sockets' ZMQ_FDs and receive with ZMQ_DONTWAIT until EAGAIN
// (the documented edge-triggered use of ZMQ_FD); messages are received zero-copy (zmq_msg_recv).
//
// Syscalls: the readers' epoll_wait calls are counted here; those inside libzmq (eventfd reads and
// writes of its mailboxes, poll() on them) are not visible to us. The run adds the read()/write()
// calls the kernel counts for the process (/proc/self/io: syscr + syscw) and marks the total partial.
#include <zmq.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../workload.hpp"

namespace pushpoll::harness {
namespace {

[[noreturn]] void zmq_fail(const std::string& what) {
  throw std::runtime_error("zmq: " + what + ": " + zmq_strerror(zmq_errno()));
}

void set_int(void* socket, int option, int value, const char* name) {
  if (zmq_setsockopt(socket, option, &value, sizeof value) != 0) zmq_fail(std::string("setsockopt ") + name);
}

class ZmqDesign final : public Design {
 public:
  explicit ZmqDesign(const Config& cfg) : cfg_(cfg) {}

  ~ZmqDesign() override {
    for (void* s : subs_) zmq_close(s);
    for (void* s : pubs_) zmq_close(s);
    if (ctx_zmq_ != nullptr) zmq_ctx_term(ctx_zmq_);
  }
  ZmqDesign(const ZmqDesign&) = delete;
  ZmqDesign& operator=(const ZmqDesign&) = delete;

  std::string description() const override {
    int major = 0, minor = 0, patch = 0;
    zmq_version(&major, &minor, &patch);
    return "ZeroMQ " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
           " inproc PUB/SUB (XPUB per publisher, SUB per subscriber, high-water mark " +
           std::to_string(cfg_.queue_depth) + " messages per pipe" + (cfg_.lossless ? ", XPUB_NODROP" : "") +
           "); readers epoll the ZMQ_FDs and zmq_msg_recv(ZMQ_DONTWAIT) until EAGAIN";
  }

  void setup(RunContext& ctx) override {
    ctx_ = &ctx;
    ctx_zmq_ = zmq_ctx_new();
    if (ctx_zmq_ == nullptr) zmq_fail("zmq_ctx_new");
    if (zmq_ctx_set(ctx_zmq_, ZMQ_MAX_SOCKETS, static_cast<int>(cfg_.subscribers + cfg_.publishers + 16)) != 0) {
      zmq_fail("ZMQ_MAX_SOCKETS");
    }
    // For inproc the pipe's limit is the sum of the sender's and the receiver's high-water marks.
    const int hwm = static_cast<int>(std::max(1u, cfg_.queue_depth / 2));
    for (unsigned p = 0; p < cfg_.publishers; ++p) {
      void* s = zmq_socket(ctx_zmq_, ZMQ_XPUB);
      if (s == nullptr) zmq_fail("zmq_socket(XPUB)");
      pubs_.push_back(s);
      set_int(s, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM");
      set_int(s, ZMQ_LINGER, 0, "ZMQ_LINGER");
      set_int(s, ZMQ_XPUB_VERBOSE, 1, "ZMQ_XPUB_VERBOSE");  // report every subscription, not only new ones
      set_int(s, ZMQ_XPUB_NODROP, cfg_.lossless ? 1 : 0, "ZMQ_XPUB_NODROP");
      set_int(s, ZMQ_RCVTIMEO, 10000, "ZMQ_RCVTIMEO");
      if (zmq_bind(s, endpoint(p).c_str()) != 0) zmq_fail("zmq_bind " + endpoint(p));
    }
    for (unsigned i = 0; i < cfg_.subscribers; ++i) {
      void* s = zmq_socket(ctx_zmq_, ZMQ_SUB);
      if (s == nullptr) zmq_fail("zmq_socket(SUB) (raise `ulimit -n`?)");
      subs_.push_back(s);
      set_int(s, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM");
      set_int(s, ZMQ_LINGER, 0, "ZMQ_LINGER");
      if (cfg_.tags > 1) {
        const auto tag = static_cast<std::uint8_t>(i % cfg_.tags);
        if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, &tag, 1) != 0) zmq_fail("ZMQ_SUBSCRIBE");
      } else if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) != 0) {
        zmq_fail("ZMQ_SUBSCRIBE");
      }
      for (unsigned p = 0; p < cfg_.publishers; ++p) {
        if (zmq_connect(s, endpoint(p).c_str()) != 0) zmq_fail("zmq_connect");
      }
    }
    // Wait until each publisher has seen every subscription: from then on nothing is lost to a late
    // join.
    std::array<char, 256> buf{};
    for (void* pub : pubs_) {
      for (unsigned i = 0; i < cfg_.subscribers; ++i) {
        const int n = zmq_recv(pub, buf.data(), buf.size(), 0);
        if (n < 1 || buf[0] != 1) zmq_fail("waiting for subscriptions");
      }
    }
    readers_.resize(cfg_.threads);
    for (unsigned t = 0; t < cfg_.threads; ++t) {
      readers_[t].epoll = std::make_unique<Epoll>();
      readers_[t].epoll->add(ctx.stop_fds[t], kStopTag);
      const auto& ids = ctx.subs_of_thread[t];
      for (std::size_t l = 0; l < ids.size(); ++l) {
        int fd = -1;
        std::size_t len = sizeof fd;
        if (zmq_getsockopt(subs_[ids[l]], ZMQ_FD, &fd, &len) != 0) zmq_fail("ZMQ_FD");
        readers_[t].epoll->add(fd, l);
      }
    }
  }

  void publish(unsigned p, std::span<const std::byte> message, unsigned /*tag*/) override {
    // Blocks while a pipe is full (lossless, XPUB_NODROP); copies the message into a new zmq message.
    while (zmq_send(pubs_[p], message.data(), message.size(), 0) < 0) {
      if (zmq_errno() != EINTR && zmq_errno() != EAGAIN) zmq_fail("zmq_send");
      if (ctx_->aborted.load(std::memory_order_relaxed)) throw std::runtime_error("aborted");
    }
  }

  void serve(unsigned t, Checker& check, ReaderStats& st) override {
    Reader& r = readers_[t];
    const auto& ids = ctx_->subs_of_thread[t];
    std::vector<void*> socks;
    for (const unsigned id : ids) socks.push_back(subs_[id]);
    // Sockets that may hold messages: all at first; one leaves after a receive returns EAGAIN (which
    // also processes its pending commands) and comes back when epoll reports its ZMQ_FD.
    std::vector<std::size_t> active(socks.size());
    for (std::size_t l = 0; l < socks.size(); ++l) active[l] = l;
    std::vector<char> is_active(socks.size(), 1);
    std::array<std::uint64_t, 256> ready{};
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    auto& progress = ctx_->delivered[t].value;
    for (;;) {
      // Acquire: pairs with the coordinator's release; every send has returned before it.
      if (ctx_->publishers_done.load(std::memory_order_acquire)) {
        // Final passes over every socket until one finds nothing.
        bool any = true;
        while (any) {
          any = false;
          for (std::size_t l = 0; l < socks.size(); ++l) any |= receive(socks[l], l, msg, check, st) > 0;
        }
        progress.store(st.delivered, std::memory_order_relaxed);
        break;
      }
      ++st.passes;
      std::size_t keep = 0;
      for (const std::size_t l : active) {
        const std::size_t got = receive(socks[l], l, msg, check, st);
        if (got == cfg_.batch) {
          active[keep++] = l;  // may hold more
        } else {
          is_active[l] = 0;  // drained to EAGAIN
        }
      }
      active.resize(keep);
      progress.store(st.delivered, std::memory_order_relaxed);  // relaxed: display only
      if (!active.empty()) continue;
      const int n = r.epoll->wait(ready, 1000);
      ++st.syscalls;
      ++st.sleeps;
      for (int i = 0; i < n; ++i) {
        const std::uint64_t l = ready[static_cast<std::size_t>(i)];
        if (l == kStopTag || is_active[l] != 0) continue;
        is_active[l] = 1;
        active.push_back(static_cast<std::size_t>(l));
      }
    }
    zmq_msg_close(&msg);
  }

  DesignCounters counters() const override { return {}; }
  bool syscalls_partial() const override { return true; }

  nlohmann::json details() const override {
    int major = 0, minor = 0, patch = 0;
    zmq_version(&major, &minor, &patch);
    return {{"libzmq", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch)},
            {"hwm_per_pipe_messages", cfg_.queue_depth},
            {"xpub_nodrop", cfg_.lossless}};
  }

 private:
  struct Reader {
    std::unique_ptr<Epoll> epoll;
  };

  static std::string endpoint(unsigned p) { return "inproc://pushpoll-bench-" + std::to_string(p); }

  /// Receives up to cfg.batch messages from one socket; returns how many (fewer: it hit EAGAIN).
  std::size_t receive(void* sock, std::size_t l, zmq_msg_t& msg, Checker& check, ReaderStats& st) {
    std::size_t got = 0;
    std::uint64_t now = 0;
    Checker::Account account(check, l, st);
    while (got < cfg_.batch) {
      if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() == EAGAIN) break;
        if (zmq_errno() == EINTR) continue;
        zmq_fail("zmq_msg_recv");
      }
      // As for the other designs: at the maximum rate one clock read per batch (the messages taken
      // from one socket in a row), at a fixed rate one per delivery.
      if (got == 0 || !cfg_.rate_max) now = now_ns();
      account.deliver(static_cast<const std::byte*>(zmq_msg_data(&msg)), zmq_msg_size(&msg), now);
      ++got;
    }
    if (got != 0) ++st.batches;
    return got;
  }

  const Config& cfg_;
  RunContext* ctx_ = nullptr;
  void* ctx_zmq_ = nullptr;
  std::vector<void*> pubs_;
  std::vector<void*> subs_;
  std::vector<Reader> readers_;
};

}  // namespace

std::unique_ptr<Design> make_zmq_design(const Config& cfg) { return std::make_unique<ZmqDesign>(cfg); }

}  // namespace pushpoll::harness

// Serving a hub's topics to other processes (Server) and reading them there (Remote).
//
// The conversation, on an AF_UNIX SOCK_SEQPACKET connection (one message per datagram, descriptors
// by SCM_RIGHTS): the server reads the peer's credentials when it accepts, answers with a Hello that
// admits or refuses it (and then hangs up); an admitted peer asks for topics by name, and each Reply
// carries the topic region's sealed memfd, which the peer maps read-only.
#include "pushpoll/remote.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <utility>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include "pushpoll/io/notifier.hpp"
#include "pushpoll/io/shared_memory.hpp"

namespace pushpoll {

namespace {

constexpr std::uint32_t kMagic = 0x70757368;  // "push"
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kTextBytes = 240;
constexpr std::size_t kNameBytes = 256;

enum Status : std::uint32_t {
  kOk = 0, kRefused = 1, kNoTopic = 2, kFailed = 3, kFull = 4, kClosed = 5, kTooLarge = 6, kExpired = 7
};

struct Hello {
  std::uint32_t magic = kMagic;
  std::uint32_t version = kVersion;
  std::uint32_t status = kOk;
  std::uint32_t may_publish = 0;
  char text[kTextBytes] = {};
};

enum Op : std::uint32_t { kTopic = 1, kSeat = 2, kUnseat = 3, kWakeFd = 4, kPublish = 5, kClaim = 6, kCommit = 7, kAbort = 8 };

struct Request {
  std::uint32_t magic = kMagic;
  // kTopic: the region of topic `name`; kSeat / kUnseat: seat `seat` on it; kWakeFd: the eventfd
  // that wakes seat `seat` comes with this request. kClaim: `arg` bytes on topic `name`;
  // kCommit / kAbort: the claim in staging slot `seat`, with tag `arg`.
  std::uint32_t op = kTopic;
  std::uint32_t seat = 0;
  std::uint32_t arg = 0;
  char name[kNameBytes] = {};
};

/// Slots a connection can seat at once (subscribers of that process, over all topics): the page
/// of slots it shares with the server.
constexpr std::uint32_t kSeatsPerConnection = 4096;
constexpr std::size_t kSeatPageBytes = kSeatsPerConnection * sizeof(detail::SubscriberSlot);

/// A message published through the owner: this header, then `size` bytes of payload, in one
/// datagram. The reply's `bytes` is its seq.
struct PublishHeader {
  std::uint32_t magic = kMagic;
  std::uint32_t op = kPublish;
  std::uint32_t tag = 0;
  std::uint32_t size = 0;
  char name[kNameBytes] = {};
};


/// The largest message another process can publish (one datagram through the socket).
constexpr std::size_t kMaxRemotePayload = 64 * 1024;

struct Reply {
  std::uint32_t magic = kMagic;
  std::uint32_t status = kOk;
  std::uint64_t bytes = 0;  // a region's size; a message's seq
  std::uint32_t slot = 0;   // kClaim: the staging slot of the claim
  std::uint32_t pad = 0;
  char text[kTextBytes] = {};
};

/// Claims a process holds at once through the owner, each with a staging slot of
/// kMaxRemotePayload bytes in a memfd shared with the owner only (the "staging" page).
constexpr std::uint32_t kClaimSlots = 16;
constexpr std::size_t kStagingBytes = kClaimSlots * kMaxRemotePayload;

std::string errno_text() { return std::strerror(errno); }

void set_text(char (&out)[kTextBytes], const std::string& text) {
  const std::size_t n = std::min(text.size(), kTextBytes - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

std::string text_of(const char (&in)[kTextBytes]) { return std::string(in, strnlen(in, kTextBytes)); }

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path)) {
    throw Error("pushpoll: socket path '" + path + "' must be 1 to " + std::to_string(sizeof(a.sun_path) - 1) +
                " bytes long");
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

/// A new AF_UNIX SOCK_SEQPACKET socket connected to `path`, or -1 with errno set.
int dial(const std::string& path) {
  const sockaddr_un a = address_of(path);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/// Sends one message, with the descriptors in `fds` attached (at most three). Never blocks (a peer
/// that does not read its replies loses its connection instead of holding the server).
bool send_message(int sock, const void* data, std::size_t bytes, std::initializer_list<int> fds = {}) {
  iovec iov{const_cast<void*>(data), bytes};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
  if (fds.size() != 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.begin(), fds.size() * sizeof(int));
  }
  return ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(bytes);
}

/// Receives one message of at most `capacity` bytes, and up to `n` descriptors into `fds` (the
/// rest -1; any beyond `n` are closed). Returns its size, or -1 (no descriptor kept) on hang-up, on
/// a message that did not fit, or on an error.
ssize_t receive_any(int sock, void* data, std::size_t capacity, int* fds, std::size_t n, int flags) {
  iovec iov{data, capacity};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t got;
  do {
    got = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  for (std::size_t i = 0; i < n; ++i) fds[i] = -1;
  std::size_t k = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); got >= 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (k < n) {
        fds[k++] = fd;
      } else {
        ::close(fd);  // nobody asked for it
      }
    }
  }
  if (got == 0) errno = ECONNRESET;  // hung up
  if (got > 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) errno = EMSGSIZE;
  if (got <= 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    for (std::size_t i = 0; i < n; ++i) {
      if (fds[i] >= 0) ::close(fds[i]);
      fds[i] = -1;
    }
    return -1;
  }
  return got;
}

/// receive_any() of a message of exactly `bytes` bytes.
bool receive_message(int sock, void* data, std::size_t bytes, int* fds = nullptr, std::size_t n = 0,
                     int flags = 0) {
  const ssize_t got = receive_any(sock, data, bytes, fds, n, flags);
  if (got == static_cast<ssize_t>(bytes)) return true;
  if (got >= 0) errno = EPROTO;  // a message of another size
  for (std::size_t i = 0; got >= 0 && i < n; ++i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
  return false;
}

template <class T>
bool contains(const std::vector<T>& v, T x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

// ---- the server -------------------------------------------------------------------------------

namespace {

/// A buffer in a memfd that one peer and the owner share (a large claim's payload). Move-only.
class SharedBuffer {
 public:
  SharedBuffer() = default;
  SharedBuffer(SharedBuffer&& o) noexcept { *this = std::move(o); }
  SharedBuffer& operator=(SharedBuffer&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~SharedBuffer() {
    if (data_ != nullptr) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  /// A new buffer of `size` bytes; throws Error.
  static SharedBuffer make(std::size_t size) {
    SharedBuffer b;
    b.fd_ = ::memfd_create("pushpoll-claim", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (b.fd_ < 0 || ::ftruncate(b.fd_, static_cast<off_t>(size)) != 0 ||
        ::fcntl(b.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      throw Error("pushpoll: cannot make a buffer of " + std::to_string(size) + " bytes for a claim: " + errno_text());
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, b.fd_, 0);
    if (p == MAP_FAILED) throw Error("pushpoll: cannot map a claim's buffer: " + errno_text());
    b.data_ = static_cast<std::byte*>(p);
    b.size_ = size;
    return b;
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] std::byte* data() const noexcept { return data_; }

 private:
  int fd_ = -1;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// One admitted peer: its socket, and the page of slots it shares with us alone.
struct Connection {
  int sock = -1;
  int doorbell = -1;  // an eventfd the peer writes after it armed a subscriber
  int page_fd = -1;
  detail::SubscriberSlot* page = nullptr;
  struct Seated {
    Topic* topic;
    std::uint32_t id;
  };
  std::map<std::uint32_t, Seated> seated;  // by slot index in the page
  bool may_publish = false;
  // A peer that may publish: its staging page (its claims' payloads, shared with it alone), and
  // the claims we hold for it, by staging slot. Dropped with the connection: they go out aborted.
  int staging_fd = -1;
  std::byte* staging = nullptr;
  struct Held {
    Topic* topic;
    Claim claim;
    std::size_t size;
    SharedBuffer big;  // the payload of a claim larger than a staging slot
  };
  std::array<std::optional<Held>, kClaimSlots> claims;
  // A publish or a claim that found the ring full (Overflow::block): retried until its
  // publish_timeout, while nothing more is read from this peer (its calls are synchronous).
  struct Pending {
    Topic* topic = nullptr;
    std::vector<std::byte> data;  // a publish's payload
    unsigned tag = 0;
    std::chrono::steady_clock::time_point deadline;
    bool claim = false;  // a claim of `size` bytes into staging slot `slot`
    std::size_t size = 0;
    std::uint32_t slot = 0;
  };
  std::optional<Pending> pending;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  /// Unseats its subscribers (they stop gating at once), then lets go of the page and the socket.
  ~Connection() {
    for (auto& c : claims) c.reset();  // a claim its process left behind goes out aborted, now
    if (staging != nullptr) ::munmap(staging, kStagingBytes);
    if (staging_fd >= 0) ::close(staging_fd);
    for (const auto& [slot, s] : seated) s.topic->remove_seat(s.id);
    if (page != nullptr) ::munmap(page, kSeatPageBytes);
    if (page_fd >= 0) ::close(page_fd);
    if (doorbell >= 0) ::close(doorbell);
    if (sock >= 0) ::close(sock);
  }
  /// The peer armed some subscribers: do the owner's half of each arming.
  void ring() noexcept {
    std::uint64_t count;
    (void)!::read(doorbell, &count, sizeof(count));
    for (const auto& [slot, s] : seated) s.topic->seat_armed(s.id);
  }
};

/// A page of slots for one connection, shared with that peer only: a sealed memfd it can map
/// writable (its cursors and wake states) but not resize.
bool make_page(Connection& c) {
  c.doorbell = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c.doorbell < 0) return false;
  c.page_fd = ::memfd_create("pushpoll-seats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (c.page_fd < 0 || ::ftruncate(c.page_fd, kSeatPageBytes) != 0) return false;
  void* p = ::mmap(nullptr, kSeatPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, c.page_fd, 0);
  if (p == MAP_FAILED) return false;
  c.page = static_cast<detail::SubscriberSlot*>(p);
  for (std::uint32_t i = 0; i < kSeatsPerConnection; ++i) new (&c.page[i]) detail::SubscriberSlot{};
  return ::fcntl(c.page_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0;
}

/// The staging page of a peer that may publish: where it writes its claims' payloads.
bool make_staging(Connection& c) {
  c.staging_fd = ::memfd_create("pushpoll-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (c.staging_fd < 0 || ::ftruncate(c.staging_fd, kStagingBytes) != 0) return false;
  void* p = ::mmap(nullptr, kStagingBytes, PROT_READ | PROT_WRITE, MAP_SHARED, c.staging_fd, 0);
  if (p == MAP_FAILED) return false;
  c.staging = static_cast<std::byte*>(p);
  return ::fcntl(c.staging_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0;
}

}  // namespace

namespace {
/// The reply to a publish that went out (`seq`) or failed (the exception in flight).
Reply publish_reply(std::uint64_t seq) {
  Reply r;
  r.bytes = seq;
  return r;
}
Reply publish_failure() {
  Reply r;
  try {
    throw;
  } catch (const Full& e) {
    r.status = kFull;
    set_text(r.text, e.what());
  } catch (const Closed& e) {
    r.status = kClosed;
    set_text(r.text, e.what());
  } catch (const MessageTooLarge& e) {
    r.status = kTooLarge;
    set_text(r.text, e.what());
  } catch (const ClaimExpired& e) {
    r.status = kExpired;
    set_text(r.text, e.what());
  } catch (const std::exception& e) {
    r.status = kFailed;
    set_text(r.text, e.what());
  }
  return r;
}
}  // namespace

struct Server::State {
  Hub* hub = nullptr;
  std::shared_ptr<io::SharedMemory> memory;
  std::string path;
  ServeOptions options;
  int listen_fd = -1;
  int stop_fd = -1;
  ino_t inode = 0;  // of the socket file we bound: close() removes only that one
  std::thread thread;
  // Relaxed, both: statistics, read by the owner's thread.
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<bool> running{false};  // set by the thread once started (release; serve() acquires)
  bool closed = false;

  void run() noexcept;
  std::vector<std::byte> inbox = std::vector<std::byte>(sizeof(PublishHeader) + kMaxRemotePayload);

  void accept_peer(std::vector<std::unique_ptr<Connection>>& peers) noexcept;
  /// Answers one request; false when the peer must be dropped.
  bool answer(Connection& peer) noexcept;
  /// A publish of `bytes` bytes in `inbox` (header and payload); false when the peer must go.
  bool publish(Connection& peer, std::size_t bytes) noexcept;
  /// Tries the peer's pending publish again; replies when it went out or its time is up.
  bool retry(Connection& peer) noexcept;
  [[nodiscard]] bool may_publish(const ucred& who) const noexcept {
    return contains(options.publisher_uids, who.uid) || contains(options.publisher_gids, who.gid);
  }
  [[nodiscard]] bool admits(const ucred& who) const noexcept {
    return who.uid == ::geteuid() || contains(options.subscriber_uids, who.uid) ||
           contains(options.subscriber_gids, who.gid) || contains(options.publisher_uids, who.uid) ||
           contains(options.publisher_gids, who.gid);
  }
  void shut() noexcept;
};

void Server::State::run() noexcept {
  std::vector<std::unique_ptr<Connection>> peers;
  std::vector<pollfd> fds;
  fds.reserve(64);
  peers.reserve(16);
  // Release: serve() returns once the thread is past its start-up (see `running`).
  running.store(true, std::memory_order_release);
  for (;;) {
    // [0] the stop eventfd, [1] the listening socket, then two entries per admitted peer: its
    // socket and its doorbell.
    fds.assign({{stop_fd, POLLIN, 0}, {listen_fd, POLLIN, 0}});
    bool pending = false;
    for (const auto& p : peers) {
      // A peer with a publish waiting for room says nothing more until it is answered.
      fds.push_back({p->sock, static_cast<short>(p->pending ? 0 : POLLIN), 0});
      fds.push_back({p->doorbell, POLLIN, 0});
      pending = pending || p->pending.has_value();
    }
    // With a publish waiting for room, look again every millisecond (as a blocked publish does).
    if (::poll(fds.data(), fds.size(), pending ? 1 : -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    // Peers first (their entries follow the order of `peers`), then newcomers.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      const short r = fds[2 + 2 * i].revents;
      if (fds[3 + 2 * i].revents & POLLIN) peers[i]->ring();
      bool keep = true;
      if (peers[i]->pending) keep = retry(*peers[i]);
      if (keep && (r & POLLIN)) keep = answer(*peers[i]);
      if (r & (POLLHUP | POLLERR | POLLNVAL)) keep = false;  // the peer is gone: unseat it now
      if (keep) {
        peers[kept++] = std::move(peers[i]);
      } else {
        peers[i].reset();
      }
    }
    peers.resize(kept);
    if (fds[1].revents & POLLIN) accept_peer(peers);
  }
  peers.clear();
}

void Server::State::accept_peer(std::vector<std::unique_ptr<Connection>>& peers) noexcept {
  auto c = std::make_unique<Connection>();
  c->sock = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c->sock < 0) return;  // the peer gave up, or out of descriptors: it sees a hang-up
  ucred who{};
  socklen_t len = sizeof(who);
  Hello hello;
  if (::getsockopt(c->sock, SOL_SOCKET, SO_PEERCRED, &who, &len) != 0 || !admits(who)) {
    hello.status = kRefused;
    set_text(hello.text, "pushpoll: the hub at " + path + " does not admit uid " + std::to_string(who.uid) +
                             " (gid " + std::to_string(who.gid) + ")");
    (void)send_message(c->sock, &hello, sizeof(hello));
    refused.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    return;
  }
  c->may_publish = may_publish(who);
  if (!make_page(*c) || (c->may_publish && !make_staging(*c))) {
    hello.status = kFailed;
    set_text(hello.text, "pushpoll: the hub at " + path + " cannot make a page of slots: " + errno_text());
    (void)send_message(c->sock, &hello, sizeof(hello));
    return;
  }
  hello.may_publish = c->may_publish ? 1 : 0;
  const bool sent = c->may_publish ? send_message(c->sock, &hello, sizeof(hello), {c->page_fd, c->doorbell, c->staging_fd})
                                   : send_message(c->sock, &hello, sizeof(hello), {c->page_fd, c->doorbell});
  if (!sent) return;
  admitted.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  peers.push_back(std::move(c));
}

bool Server::State::answer(Connection& peer) noexcept {
  int passed = -1;  // the descriptor a kWakeFd request carries
  const ssize_t got = receive_any(peer.sock, inbox.data(), inbox.size(), &passed, 1, MSG_DONTWAIT);
  struct Closer {
    int& fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{passed};
  std::uint32_t head[2];  // magic, op
  if (got < static_cast<ssize_t>(sizeof(head))) return false;
  std::memcpy(head, inbox.data(), sizeof(head));
  if (head[0] != kMagic) return false;
  if (head[1] == kPublish) return publish(peer, static_cast<std::size_t>(got));
  if (got != static_cast<ssize_t>(sizeof(Request))) return false;
  Request req;
  std::memcpy(&req, inbox.data(), sizeof(req));
  const std::string name(req.name, strnlen(req.name, kNameBytes));
  Reply reply;
  int fd = -1;
  try {
    Topic* t = hub->find(name);
    if (t == nullptr) {
      reply.status = kNoTopic;
      set_text(reply.text, "pushpoll: the hub at " + path + " has no topic '" + name + "'");
    } else if (req.op == kTopic) {
      if ((fd = memory->descriptor(t->region())) < 0) {
        reply.status = kFailed;
        set_text(reply.text, "pushpoll: topic '" + name + "' is not in shared memory");
      } else {
        reply.bytes = t->region_bytes();
      }
    } else if (req.op == kSeat) {
      if (req.seat >= kSeatsPerConnection || peer.seated.count(req.seat) != 0) return false;  // not a client of ours
      peer.seated.emplace(req.seat, Connection::Seated{t, t->add_seat(&peer.page[req.seat])});
    } else if (req.op == kWakeFd) {  // with a descriptor, or without: none from now on
      auto it = peer.seated.find(req.seat);
      if (it == peer.seated.end() || it->second.topic != t) return false;
      it->second.topic->set_seat_fd(it->second.id, std::exchange(passed, -1));  // the topic owns it now
    } else if (req.op == kClaim) {
      if (!peer.may_publish) {
        reply.status = kRefused;
        set_text(reply.text, "pushpoll: the hub at " + path + " does not let this process publish");
      } else {
        std::uint32_t slot = 0;
        while (slot < kClaimSlots && peer.claims[slot]) ++slot;
        if (slot == kClaimSlots) {
          throw Error("pushpoll: a process holds at most " + std::to_string(kClaimSlots) + " claims at once");
        }
        Claim c;
        if (!t->try_claim(req.arg, c)) {
          // Full: keep it, and try again until its publish_timeout (the server never blocks).
          peer.pending.emplace(Connection::Pending{t, {}, 0,
                                                   std::chrono::steady_clock::now() + t->options().publish_timeout,
                                                   true, req.arg, slot});
          return true;
        }
        reply.bytes = c.seq();
        reply.slot = slot;
        Connection::Held& held = peer.claims[slot].emplace(Connection::Held{t, std::move(c), req.arg, {}});
        // Larger than a staging slot: a buffer of its own, whose descriptor goes with the reply.
        if (req.arg > kMaxRemotePayload) fd = (held.big = SharedBuffer::make(req.arg)).fd();
      }
    } else if (req.op == kCommit || req.op == kAbort) {
      if (req.seat >= kClaimSlots || !peer.claims[req.seat] || peer.claims[req.seat]->topic != t) return false;
      Connection::Held held = std::move(*peer.claims[req.seat]);
      peer.claims[req.seat].reset();
      if (req.op == kAbort) {
        held.claim.abort();
      } else {
        // The payload, copied once from the staging slot into the ring; the commit is ours.
        const std::span<std::byte> into = held.claim.data();
        const std::byte* from = held.big.data() != nullptr ? held.big.data() : peer.staging + req.seat * kMaxRemotePayload;
        if (!into.empty()) std::memcpy(into.data(), from, held.size);
        reply.bytes = held.claim.commit(req.arg);
      }
    } else if (req.op == kUnseat) {
      auto it = peer.seated.find(req.seat);
      if (it == peer.seated.end() || it->second.topic != t) return false;
      t->remove_seat(it->second.id);
      peer.seated.erase(it);
    } else {
      return false;
    }
  } catch (...) {  // all seats or claims taken, a claim refused or expired, out of memory
    reply = publish_failure();
    fd = -1;
  }
  if (reply.status == kOk && fd >= 0) return send_message(peer.sock, &reply, sizeof(reply), {fd});
  return send_message(peer.sock, &reply, sizeof(reply));
}


bool Server::State::publish(Connection& peer, std::size_t bytes) noexcept {
  PublishHeader h;
  if (bytes < sizeof(h)) return false;
  std::memcpy(&h, inbox.data(), sizeof(h));
  if (bytes - sizeof(h) != h.size) return false;  // not a client of ours
  const std::string name(h.name, strnlen(h.name, kNameBytes));
  Reply reply;
  if (!peer.may_publish) {
    reply.status = kRefused;
    set_text(reply.text, "pushpoll: the hub at " + path + " does not let this process publish (publisher_uids, "
                         "publisher_gids)");
    return send_message(peer.sock, &reply, sizeof(reply));
  }
  try {
    Topic* t = hub->find(name);
    if (t == nullptr) throw Error("pushpoll: the hub at " + path + " has no topic '" + name + "'");
    const std::span<const std::byte> data(inbox.data() + sizeof(h), h.size);
    std::uint64_t seq = 0;
    if (t->try_publish(data, h.tag, seq)) {
      reply = publish_reply(seq);
    } else {
      // Full: keep it, and try again until its publish_timeout (the server never blocks).
      peer.pending.emplace(Connection::Pending{t, std::vector<std::byte>(data.begin(), data.end()), h.tag,
                                               std::chrono::steady_clock::now() + t->options().publish_timeout});
      return true;
    }
  } catch (...) {
    reply = publish_failure();
  }
  return send_message(peer.sock, &reply, sizeof(reply));
}

bool Server::State::retry(Connection& peer) noexcept {
  Connection::Pending& p = *peer.pending;
  Reply reply;
  try {
    std::uint64_t seq = 0;
    Claim c;
    if (p.claim && p.topic->try_claim(p.size, c)) {
      reply = publish_reply(c.seq());
      reply.slot = p.slot;
      Connection::Held& held = peer.claims[p.slot].emplace(Connection::Held{p.topic, std::move(c), p.size, {}});
      if (p.size > kMaxRemotePayload) {
        held.big = SharedBuffer::make(p.size);
        peer.pending.reset();
        return send_message(peer.sock, &reply, sizeof(reply), {held.big.fd()});
      }
    } else if (!p.claim && p.topic->try_publish(p.data, p.tag, seq)) {
      reply = publish_reply(seq);
    } else if (std::chrono::steady_clock::now() >= p.deadline) {
      reply.status = kFull;
      set_text(reply.text, "pushpoll: topic '" + p.topic->name() +
                               "' stayed full for its publish_timeout: a subscriber is not keeping up");
    } else {
      return true;  // later
    }
  } catch (...) {
    reply = publish_failure();
  }
  peer.pending.reset();
  return send_message(peer.sock, &reply, sizeof(reply));
}

void Server::State::shut() noexcept {
  if (closed) return;
  closed = true;
  if (thread.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(stop_fd, &one, sizeof(one));
    thread.join();
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0 && st.st_ino == inode) ::unlink(path.c_str());
  if (listen_fd >= 0) ::close(listen_fd);
  if (stop_fd >= 0) ::close(stop_fd);
  listen_fd = stop_fd = -1;
}

namespace {
/// Removes a socket file nobody answers on (left by a crashed owner); Error if someone does, or if
/// `path` is not a socket.
void take_over(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw Error("pushpoll: cannot serve at " + path + ": it exists and is not a socket");
  const int probe = dial(path);
  if (probe >= 0) {
    ::close(probe);
    throw Error("pushpoll: cannot serve at " + path + ": another process serves there");
  }
  if (errno != ECONNREFUSED) {
    throw Error("pushpoll: cannot serve at " + path + ": probing the socket left there failed: " + errno_text());
  }
  ::unlink(path.c_str());
}
}  // namespace

Server serve(Hub& hub, std::string path, ServeOptions options) {
  auto memory = std::dynamic_pointer_cast<io::SharedMemory>(hub.memory());
  if (!memory) {
    throw Error("pushpoll: serve() needs a hub whose topics live in shared memory: build it with "
                "HubOptions::memory = std::make_shared<pushpoll::io::SharedMemory>()");
  }
  const sockaddr_un a = address_of(path);
  take_over(path);
  auto s = std::make_unique<Server::State>();
  s->hub = &hub;
  s->memory = std::move(memory);
  s->path = path;
  s->options = std::move(options);
  s->listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  s->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (s->listen_fd < 0 || s->stop_fd < 0) {
    const std::string why = errno_text();
    s->shut();
    throw Error("pushpoll: cannot make the socket for " + path + ": " + why);
  }
  const auto fail = [&](const char* what) {
    const std::string why = errno_text();
    s->shut();
    return Error(std::string("pushpoll: cannot serve at ") + path + ": " + what + ": " + why);
  };
  if (::bind(s->listen_fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) throw fail("bind");
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) throw fail("stat");
  s->inode = st.st_ino;
  // Connecting needs write permission on the socket file. Anyone may connect when anyone besides
  // the owner is allow-listed: SO_PEERCRED, not the mode, decides who is admitted.
  const ServeOptions& o = s->options;
  const bool others = !o.subscriber_uids.empty() || !o.subscriber_gids.empty() || !o.publisher_uids.empty() ||
                      !o.publisher_gids.empty();
  if (::chmod(path.c_str(), others ? 0666 : 0600) != 0) throw fail("chmod");
  if (::listen(s->listen_fd, 128) != 0) throw fail("listen");
  Server::State* raw = s.get();
  s->thread = std::thread([raw] { raw->run(); });
  // Return once the thread has started: a caller that forks right after serve() (a test, a
  // supervisor) then does not fork in the middle of a thread's start-up, whose locks (the C
  // library's, a sanitizer allocator's) the child would inherit held. Acquire: pairs with run().
  while (!raw->running.load(std::memory_order_acquire)) std::this_thread::yield();
  return Server(std::move(s));
}

Server::Server(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}
Server::~Server() { close(); }
void Server::close() noexcept {
  if (state_) state_->shut();
}
const std::string& Server::path() const noexcept { return state_->path; }
std::uint64_t Server::admitted() const noexcept { return state_->admitted.load(std::memory_order_relaxed); }
std::uint64_t Server::refused() const noexcept { return state_->refused.load(std::memory_order_relaxed); }

// ---- the client -------------------------------------------------------------------------------

/// The client's end: the connection, the page of slots it shares with the server (a subscriber of
/// a mapped topic keeps its cursor and wake state there, seated by the server so that it gates),
/// and the topics it mapped.
struct Remote::State final : detail::OwnerLink {
  int sock = -1;
  int doorbell = -1;  // written after arming a subscriber: the server does the owner's half
  bool may_publish = false;  // what the server said when it admitted us
  std::byte* staging = nullptr;  // where our claims' payloads go (may_publish only)
  std::map<std::uint32_t, std::pair<std::byte*, std::size_t>> big;  // claims with buffers of their own
  std::string path;
  std::shared_ptr<detail::Notifier> notifier;
  detail::SubscriberSlot* page = nullptr;
  std::mutex mutex;  // one request at a time on the socket; the fields below
  std::vector<std::uint32_t> free_seats;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics;

  ~State() override {
    if (page != nullptr) ::munmap(page, kSeatPageBytes);
    if (staging != nullptr) ::munmap(staging, kStagingBytes);
    for (const auto& [slot, b] : big) ::munmap(b.first, b.second);
    if (doorbell >= 0) ::close(doorbell);
    if (sock >= 0) ::close(sock);
  }
  /// Sends `req` about topic `name` (with `pass` attached unless -1) and receives the reply (and
  /// a descriptor with it when `fd` is given), waiting `patience` longer than usual for a request
  /// the owner may hold while the ring is full (a claim). Caller holds the mutex. Throws Closed
  /// when the server is gone.
  Reply ask(Request& req, std::string_view name, int* fd = nullptr, int pass = -1,
            std::chrono::nanoseconds patience = {}) {
    std::memcpy(req.name, name.data(), std::min(name.size(), kNameBytes - 1));
    Reply reply;
    const bool sent = pass >= 0 ? send_message(sock, &req, sizeof(req), {pass}) : send_message(sock, &req, sizeof(req));
    if (!sent || !receive_reply(reply, patience, fd)) {
      throw Closed("pushpoll: the hub at " + path + " is gone (no answer about topic '" + std::string(name) + "')");
    }
    return reply;
  }
  detail::SubscriberSlot* take_seat(Topic& topic) override {
    std::lock_guard lock(mutex);
    if (free_seats.empty()) {
      throw Error("pushpoll: this process has " + std::to_string(kSeatsPerConnection) +
                  " subscribers of " + path + " already; connect() again for more");
    }
    const std::uint32_t seat = free_seats.back();
    // Our own slot, unseated: nobody reads it until the server seats it.
    new (&page[seat]) detail::SubscriberSlot{};
    Request req;
    req.op = kSeat;
    req.seat = seat;
    const Reply reply = ask(req, topic.name());
    if (reply.status != kOk) throw Error(text_of(reply.text));
    free_seats.pop_back();
    return &page[seat];
  }
  void return_seat(Topic& topic, detail::SubscriberSlot* slot) noexcept override {
    std::lock_guard lock(mutex);
    Request req;
    req.op = kUnseat;
    req.seat = static_cast<std::uint32_t>(slot - page);
    try {
      (void)ask(req, topic.name());
    } catch (const Error&) {
      // The server is gone: it unseated everything of ours when it noticed.
    }
    free_seats.push_back(req.seat);
  }
  void set_wake_fd(Topic& topic, detail::SubscriberSlot* slot, int fd) override {
    std::lock_guard lock(mutex);
    Request req;
    req.op = kWakeFd;
    req.seat = static_cast<std::uint32_t>(slot - page);
    const Reply reply = ask(req, topic.name(), nullptr, fd);
    if (reply.status != kOk) throw Error(text_of(reply.text));
  }
  void armed(detail::SubscriberSlot*) noexcept override {
    const std::uint64_t one = 1;
    (void)!::write(doorbell, &one, sizeof(one));
  }
  [[nodiscard]] bool owner_alive() const noexcept override {
    pollfd p{sock, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 0;
  }
  std::uint64_t publish(Topic& topic, std::span<const std::byte> data, unsigned tag) override {
    if (!may_publish) {
      throw Refused("pushpoll: the hub at " + path + " does not let this process publish (its publisher_uids and "
                    "publisher_gids)");
    }
    if (data.size() > kMaxRemotePayload) {
      // Too large for one datagram: a claim with a buffer of its own, written here, copied there.
      if (data.size() > topic.max_message()) {
        throw MessageTooLarge("pushpoll: message of " + std::to_string(data.size()) + " bytes is over max_message (" +
                              std::to_string(topic.max_message()) + " bytes) of topic '" + topic.name() + "'");
      }
      const RemoteClaim c = claim(topic, data.size());
      std::memcpy(c.data.data(), data.data(), data.size());
      return commit(topic, c.token, tag);
    }
    thread_local std::vector<std::byte> out;
    PublishHeader h;
    h.tag = tag;
    h.size = static_cast<std::uint32_t>(data.size());
    std::memcpy(h.name, topic.name().data(), std::min(topic.name().size(), kNameBytes - 1));
    out.resize(sizeof(h) + data.size());
    std::memcpy(out.data(), &h, sizeof(h));
    if (!data.empty()) std::memcpy(out.data() + sizeof(h), data.data(), data.size());
    std::lock_guard lock(mutex);
    Reply reply;
    // Blocking send (the datagram may wait for room in the socket buffer); the reply may take the
    // topic's publish_timeout when the ring is full.
    if (::send(sock, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()) ||
        !receive_reply(reply, topic.options().publish_timeout)) {
      throw Closed("pushpoll: the hub at " + path + " is gone (publishing on topic '" + topic.name() + "')");
    }
    if (reply.status != kOk) raise(reply);
    return reply.bytes;
  }
  /// Throws what a failed reply says, as the owner's call threw it.
  [[noreturn]] static void raise(const Reply& reply) {
    switch (reply.status) {
      case kRefused: throw Refused(text_of(reply.text));
      case kFull: throw Full(text_of(reply.text), 0);
      case kClosed: throw Closed(text_of(reply.text));
      case kTooLarge: throw MessageTooLarge(text_of(reply.text));
      case kExpired: throw ClaimExpired(text_of(reply.text));
      default: throw Error(text_of(reply.text));
    }
  }
  RemoteClaim claim(Topic& topic, std::size_t size) override {
    if (!may_publish || staging == nullptr) {
      throw Refused("pushpoll: the hub at " + path + " does not let this process publish (its publisher_uids and "
                    "publisher_gids)");
    }
    if (size > topic.max_message()) {
      throw MessageTooLarge("pushpoll: a claim of " + std::to_string(size) + " bytes is over max_message (" +
                            std::to_string(topic.max_message()) + " bytes) of topic '" + topic.name() + "'");
    }
    std::lock_guard lock(mutex);
    Request req;
    req.op = kClaim;
    req.arg = static_cast<std::uint32_t>(size);
    int fd = -1;
    const Reply reply = ask(req, topic.name(), &fd, -1, topic.options().publish_timeout);
    if (reply.status != kOk || reply.slot >= kClaimSlots || (size > kMaxRemotePayload) != (fd >= 0)) {
      if (fd >= 0) ::close(fd);
      if (reply.status == kOk) throw Error("pushpoll: the hub at " + path + " answered a claim wrongly");
      raise(reply);
    }
    if (fd < 0) return {reply.bytes, reply.slot, std::span<std::byte>(staging + reply.slot * kMaxRemotePayload, size)};
    // Larger than a staging slot: a buffer of its own, shared with the owner alone.
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw Error("pushpoll: cannot map a claim's buffer: " + errno_text());
    big[reply.slot] = {static_cast<std::byte*>(p), size};
    return {reply.bytes, reply.slot, std::span<std::byte>(static_cast<std::byte*>(p), size)};
  }
  /// Unmaps the buffer of claim `slot`, if it had one of its own. Caller holds the mutex.
  void drop_big(std::uint32_t slot) noexcept {
    if (auto it = big.find(slot); it != big.end()) {
      ::munmap(it->second.first, it->second.second);
      big.erase(it);
    }
  }
  std::uint64_t commit(Topic& topic, std::uint64_t token, unsigned tag) override {
    std::lock_guard lock(mutex);
    Request req;
    req.op = kCommit;
    req.seat = static_cast<std::uint32_t>(token);
    req.arg = tag;
    struct Drop {
      State& s;
      std::uint32_t slot;
      ~Drop() { s.drop_big(slot); }
    } drop{*this, req.seat};
    const Reply reply = ask(req, topic.name());
    if (reply.status != kOk) raise(reply);
    return reply.bytes;
  }
  void abort(Topic& topic, std::uint64_t token) noexcept override {
    std::lock_guard lock(mutex);
    Request req;
    req.op = kAbort;
    req.seat = static_cast<std::uint32_t>(token);
    drop_big(req.seat);
    try {
      (void)ask(req, topic.name());
    } catch (const Error&) {
      // The server is gone: it aborted our claims when it noticed.
    }
  }
  /// Receives a reply (and the descriptor that may come with it, into `fd` if given), waiting up to
  /// `patience` plus the usual 10 s for a server that answers.
  bool receive_reply(Reply& reply, std::chrono::nanoseconds patience, int* fd = nullptr) {
    const auto until = std::chrono::steady_clock::now() + patience + std::chrono::seconds(10);
    for (;;) {
      if (receive_message(sock, &reply, sizeof(reply), fd, fd != nullptr ? 1 : 0)) return reply.magic == kMagic;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
      if (std::chrono::steady_clock::now() >= until) return false;
    }
  }
};

Remote connect(std::string path) {
  auto s = std::make_shared<Remote::State>();
  s->path = path;
  s->sock = dial(path);
  if (s->sock < 0 && (errno == EACCES || errno == EPERM)) {
    throw Refused("pushpoll: not allowed to connect to " + path + " (the socket file's mode): " + errno_text());
  }
  if (s->sock < 0) throw Error("pushpoll: cannot connect to " + path + ": " + errno_text());
  // A server that accepted answers at once; one that does not within 10 s is not a hub.
  const timeval limit{10, 0};
  (void)::setsockopt(s->sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  Hello hello;
  int passed[3] = {-1, -1, -1};  // the page of slots, the doorbell, the staging page (publishers)
  if (!receive_message(s->sock, &hello, sizeof(hello), passed, 3) || hello.magic != kMagic) {
    throw Error("pushpoll: " + path + " did not answer as a pushpoll hub: " + errno_text());
  }
  const int page_fd = passed[0];
  s->doorbell = passed[1];  // closed with the state from here on
  s->may_publish = hello.may_publish != 0;
  if (passed[2] >= 0) {
    struct stat sst{};
    void* staging = MAP_FAILED;
    if (::fstat(passed[2], &sst) == 0 && static_cast<std::size_t>(sst.st_size) == kStagingBytes) {
      staging = ::mmap(nullptr, kStagingBytes, PROT_READ | PROT_WRITE, MAP_SHARED, passed[2], 0);
    }
    ::close(passed[2]);
    if (staging != MAP_FAILED) s->staging = static_cast<std::byte*>(staging);
  }
  if (hello.status == kRefused) throw Refused(text_of(hello.text));
  if (hello.version != kVersion) {
    if (page_fd >= 0) ::close(page_fd);
    throw Error("pushpoll: the hub at " + path + " speaks version " + std::to_string(hello.version) + ", not " +
                std::to_string(kVersion));
  }
  if (hello.status != kOk || page_fd < 0 || s->doorbell < 0) {
    if (page_fd >= 0) ::close(page_fd);
    throw Error(hello.status != kOk ? text_of(hello.text) : "pushpoll: " + path + " sent no page of slots");
  }
  struct stat st{};
  void* page = MAP_FAILED;
  if (::fstat(page_fd, &st) == 0 && static_cast<std::size_t>(st.st_size) == kSeatPageBytes) {
    page = ::mmap(nullptr, kSeatPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
  }
  ::close(page_fd);
  if (page == MAP_FAILED) throw Error("pushpoll: cannot map the page of slots from " + path);
  s->page = static_cast<detail::SubscriberSlot*>(page);
  for (std::uint32_t i = kSeatsPerConnection; i-- > 0;) s->free_seats.push_back(i);
  HubOptions ho;
  ho.backend = Backend::syscall;
  ho.restartable_sequences = false;
  s->notifier = io::make_notifier(ho);
  return Remote(std::move(s));
}

Remote::Remote(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Remote::Remote(Remote&&) noexcept = default;
Remote& Remote::operator=(Remote&& other) noexcept {
  if (this != &other) {
    this->~Remote();
    new (this) Remote(std::move(other));
  }
  return *this;
}
Remote::~Remote() {
  if (!state_) return;
  // The topics hold the state (their subscribers' slots are in its page): let go of them, so
  // that the connection ends with the last subscriber.
  std::lock_guard lock(state_->mutex);
  state_->topics.clear();
}

bool Remote::connected() const noexcept { return state_ && state_->owner_alive(); }

std::shared_ptr<detail::Notifier> Remote::notifier() const noexcept { return state_ ? state_->notifier : nullptr; }

Topic& Remote::topic(std::string_view name) {
  if (!state_) throw Closed("pushpoll: this Remote was moved from");
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (auto it = s.topics.find(name); it != s.topics.end()) return *it->second;
  if (name.empty() || name.size() >= kNameBytes) {
    throw Error("pushpoll: a topic name is 1 to " + std::to_string(kNameBytes - 1) + " bytes long");
  }
  Request req;
  int fd = -1;
  const Reply reply = s.ask(req, name, &fd);
  if (reply.status != kOk || fd < 0) {
    if (fd >= 0) ::close(fd);
    throw Error(text_of(reply.text));
  }
  // The descriptor's size is the truth (a mapping read past the end of its file faults).
  struct stat st{};
  if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != reply.bytes) {
    ::close(fd);
    throw Error("pushpoll: the region of topic '" + std::string(name) + "' does not have the size announced");
  }
  const auto bytes = static_cast<std::size_t>(st.st_size);
  void* region = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the region; no descriptor is left to map it again
  if (region == MAP_FAILED) {
    throw Error("pushpoll: cannot map topic '" + std::string(name) + "' (" + std::to_string(bytes) +
                " bytes): " + errno_text());
  }
  std::shared_ptr<Topic> t;
  try {
    // The topic keeps this state (its page of slots, its socket) alive while subscribers live.
    t = Topic::view(std::string(name), static_cast<std::byte*>(region), bytes, std::make_shared<io::MappedRegion>(),
                    s.notifier, state_);
  } catch (...) {
    ::munmap(region, bytes);
    throw;
  }
  Topic& out = *t;
  s.topics.emplace(std::string(name), std::move(t));
  return out;
}

}  // namespace pushpoll

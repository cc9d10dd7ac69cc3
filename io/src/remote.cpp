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
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "pushpoll/io/notifier.hpp"
#include "pushpoll/io/shared_memory.hpp"

namespace pushpoll {

namespace {

constexpr std::uint32_t kMagic = 0x70757368;  // "push"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kTextBytes = 240;
constexpr std::size_t kNameBytes = 256;

enum Status : std::uint32_t { kOk = 0, kRefused = 1, kNoTopic = 2, kFailed = 3 };

struct Hello {
  std::uint32_t magic = kMagic;
  std::uint32_t version = kVersion;
  std::uint32_t status = kOk;
  std::uint32_t may_publish = 0;
  char text[kTextBytes] = {};
};

struct Request {
  std::uint32_t magic = kMagic;
  std::uint32_t op = 1;  // the topic named `name`
  char name[kNameBytes] = {};
};

struct Reply {
  std::uint32_t magic = kMagic;
  std::uint32_t status = kOk;
  std::uint64_t bytes = 0;
  char text[kTextBytes] = {};
};

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

/// Sends one message, with `fd` attached when it is not -1. Never blocks (a peer that does not
/// read its replies loses its connection instead of holding the server).
bool send_message(int sock, const void* data, std::size_t bytes, int fd = -1) {
  iovec iov{const_cast<void*>(data), bytes};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(bytes);
}

/// Receives one message of exactly `bytes` bytes, and a descriptor if one came with it (else -1).
/// False on hang-up, on a message of another size, or on an error.
bool receive_message(int sock, void* data, std::size_t bytes, int* fd, int flags = 0) {
  iovec iov{data, bytes};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  int received = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&received, CMSG_DATA(c), sizeof(int));
  }
  if (fd != nullptr) {
    *fd = received;
  } else if (received >= 0) {
    ::close(received);  // nobody asked for one
  }
  const bool good = n == static_cast<ssize_t>(bytes) && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
  if (!good && fd != nullptr && *fd >= 0) {
    ::close(*fd);
    *fd = -1;
  }
  return good;
}

template <class T>
bool contains(const std::vector<T>& v, T x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

// ---- the server -------------------------------------------------------------------------------

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
  bool closed = false;

  void run() noexcept;
  void accept_peer(std::vector<pollfd>& peers) noexcept;
  /// Answers one request; false when the peer must be dropped.
  bool answer(int peer) noexcept;
  [[nodiscard]] bool admits(const ucred& who) const noexcept {
    return who.uid == ::geteuid() || contains(options.subscriber_uids, who.uid) ||
           contains(options.subscriber_gids, who.gid) || contains(options.publisher_uids, who.uid) ||
           contains(options.publisher_gids, who.gid);
  }
  void shut() noexcept;
};

void Server::State::run() noexcept {
  // [0] the stop eventfd, [1] the listening socket, then one entry per admitted peer.
  std::vector<pollfd> fds{{stop_fd, POLLIN, 0}, {listen_fd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) accept_peer(fds);
    for (std::size_t i = 2; i < fds.size();) {
      const short r = fds[i].revents;
      bool keep = true;
      if (r & POLLIN) keep = answer(fds[i].fd);
      if (r & (POLLHUP | POLLERR | POLLNVAL)) keep = false;  // the peer is gone
      if (!keep) {
        ::close(fds[i].fd);
        fds[i] = fds.back();
        fds.pop_back();
        continue;
      }
      fds[i].revents = 0;
      ++i;
    }
  }
  for (std::size_t i = 2; i < fds.size(); ++i) ::close(fds[i].fd);
}

void Server::State::accept_peer(std::vector<pollfd>& peers) noexcept {
  const int peer = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (peer < 0) return;  // the peer gave up, or out of descriptors: it sees a hang-up
  ucred who{};
  socklen_t len = sizeof(who);
  Hello hello;
  if (::getsockopt(peer, SOL_SOCKET, SO_PEERCRED, &who, &len) != 0 || !admits(who)) {
    hello.status = kRefused;
    set_text(hello.text, "pushpoll: the hub at " + path + " does not admit uid " + std::to_string(who.uid) +
                             " (gid " + std::to_string(who.gid) + ")");
    (void)send_message(peer, &hello, sizeof(hello));
    ::close(peer);
    refused.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    return;
  }
  hello.may_publish = 0;
  if (!send_message(peer, &hello, sizeof(hello))) {
    ::close(peer);
    return;
  }
  admitted.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  peers.push_back({peer, POLLIN, 0});
}

bool Server::State::answer(int peer) noexcept {
  Request req;
  if (!receive_message(peer, &req, sizeof(req), nullptr, MSG_DONTWAIT) || req.magic != kMagic || req.op != 1) {
    return false;
  }
  const std::string name(req.name, strnlen(req.name, kNameBytes));
  Reply reply;
  int fd = -1;
  try {
    Topic* t = hub->find(name);
    if (t == nullptr) {
      reply.status = kNoTopic;
      set_text(reply.text, "pushpoll: the hub at " + path + " has no topic '" + name + "'");
    } else if ((fd = memory->descriptor(t->region())) < 0) {
      reply.status = kFailed;
      set_text(reply.text, "pushpoll: topic '" + name + "' is not in shared memory");
    } else {
      reply.bytes = t->region_bytes();
    }
  } catch (const std::exception&) {  // out of memory building a string
    reply.status = kFailed;
    fd = -1;
  }
  return send_message(peer, &reply, sizeof(reply), reply.status == kOk ? fd : -1);
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

struct Remote::State {
  int sock = -1;
  std::string path;
  std::shared_ptr<detail::Notifier> notifier;
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics;
  ~State() {
    if (sock >= 0) ::close(sock);
  }
};

Remote connect(std::string path) {
  auto s = std::make_unique<Remote::State>();
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
  if (!receive_message(s->sock, &hello, sizeof(hello), nullptr) || hello.magic != kMagic) {
    throw Error("pushpoll: " + path + " did not answer as a pushpoll hub");
  }
  if (hello.status == kRefused) throw Refused(text_of(hello.text));
  if (hello.version != kVersion) {
    throw Error("pushpoll: the hub at " + path + " speaks version " + std::to_string(hello.version) + ", not " +
                std::to_string(kVersion));
  }
  HubOptions ho;
  ho.backend = Backend::syscall;
  ho.restartable_sequences = false;
  s->notifier = io::make_notifier(ho);
  return Remote(std::move(s));
}

Remote::Remote(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Remote::Remote(Remote&&) noexcept = default;
Remote& Remote::operator=(Remote&&) noexcept = default;
Remote::~Remote() = default;

bool Remote::connected() const noexcept {
  if (!state_ || state_->sock < 0) return false;
  pollfd p{state_->sock, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 0;
}

Topic& Remote::topic(std::string_view name) {
  if (!state_) throw Closed("pushpoll: this Remote was moved from");
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (auto it = s.topics.find(name); it != s.topics.end()) return *it->second;
  if (name.empty() || name.size() >= kNameBytes) {
    throw Error("pushpoll: a topic name is 1 to " + std::to_string(kNameBytes - 1) + " bytes long");
  }
  Request req;
  std::memcpy(req.name, name.data(), name.size());
  if (!send_message(s.sock, &req, sizeof(req))) {
    throw Closed("pushpoll: the hub at " + s.path + " is gone: " + errno_text());
  }
  Reply reply;
  int fd = -1;
  if (!receive_message(s.sock, &reply, sizeof(reply), &fd) || reply.magic != kMagic) {
    throw Closed("pushpoll: the hub at " + s.path + " is gone (no answer for topic '" + std::string(name) + "')");
  }
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
    t = Topic::view(std::string(name), static_cast<std::byte*>(region), bytes, std::make_shared<io::MappedRegion>(),
                    s.notifier);
  } catch (...) {
    ::munmap(region, bytes);
    throw;
  }
  Topic& out = *t;
  s.topics.emplace(std::string(name), std::move(t));
  return out;
}

}  // namespace pushpoll

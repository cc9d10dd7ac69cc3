// pushpoll/remote.hpp — other processes read a hub's topics in place, through a read-only mapping.
//
//   // the owning process: topics in shared memory, served on an AF_UNIX socket
//   pushpoll::HubOptions ho;
//   ho.memory = std::make_shared<pushpoll::io::SharedMemory>();
//   pushpoll::Hub hub(ho);
//   pushpoll::ServeOptions so;
//   so.subscriber_uids = {1001};                  // besides the hub's own uid, always admitted
//   pushpoll::Server server = hub.serve("/run/market/hub.sock", so);  // or pushpoll::serve(hub, ...)
//
//   // another process
//   pushpoll::Remote remote = pushpoll::connect("/run/market/hub.sock");  // Refused if not admitted
//   pushpoll::Topic& t = remote.topic("trades");  // Error naming it if the hub has none
//   pushpoll::Subscriber sub = t.subscribe(pushpoll::Start::oldest);
//   for (const pushpoll::Message& m : sub.poll()) use(m.data);            // zero-copy, read-only
//
// Admission is the kernel's word: the server reads the peer's credentials (SO_PEERCRED) on each
// connection and admits the hub's own uid and the allow-listed users and primary groups; a refused
// peer gets the reason and no descriptor. An admitted one receives each topic's region as a sealed
// memfd, which it can map read-only and never writable: a store through a message's data kills it
// with SIGSEGV. No file is named but the socket, which the server removes when destroyed; a socket
// left by a crashed owner is taken over when nobody answers on it.
//
// Across processes (docs/DESIGN.md, "Other processes"): remote subscribers poll, from any start,
// with tag masks. Each keeps its cursor in a page of slots its process shares with the owner
// alone; the owner seats it there, so it gates the writers (Overflow::block) and is detached when
// it stalls, like a local one, and it stops gating the moment its process dies (the connection
// hangs up). They are pushed through their eventfds as local ones are: poll, arm, fd, wait,
// poll_wait, and WakeGroup(remote.topic(name)) for the topics of one connection. A process
// allow-listed as a publisher publishes through the owner: publish() and publish_batch() send one
// datagram per message, claim() has the owner claim (the seq at once; the payload written into
// memory shared with the owner alone, copied into the ring at commit()); a message over 64 KiB
// goes as a claim. Without the right they throw Refused.
//
// Thread-safety: a Server is used by its owner; it serves from a thread of its own. A Remote and
// its topics: topic() [any thread]; the topics as Topic says.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pushpoll/hub.hpp"
#include "pushpoll/topic.hpp"

namespace pushpoll {

/// Who a Server admits, besides processes running as the hub's own effective uid (always).
struct ServeOptions {
  std::vector<uid_t> subscriber_uids;  ///< users that may connect and read
  std::vector<gid_t> subscriber_gids;  ///< ... or by primary group
  std::vector<uid_t> publisher_uids;   ///< users that may also publish (nobody by default, the
  std::vector<gid_t> publisher_gids;   ///< hub's own uid included), through the owner
};

/// Serves a hub's topics (present and future) to other processes on an AF_UNIX socket, from a
/// thread of its own, until destroyed; then it removes the socket file. Move-only.
class Server {
 public:
  Server() = default;
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();
  /// The socket's path.
  [[nodiscard]] const std::string& path() const noexcept;
  /// Peers admitted and refused so far, and connections open now.
  [[nodiscard]] std::uint64_t admitted() const noexcept;
  [[nodiscard]] std::uint64_t refused() const noexcept;
  /// Stops serving and removes the socket file. Idempotent; the destructor does it too.
  void close() noexcept;

  struct State;  // internal

 private:
  friend Server serve(Hub&, std::string, ServeOptions);
  explicit Server(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> state_;
};

/// Starts serving `hub` at `path` (at most 107 bytes). The hub must keep its topics in shared memory
/// (HubOptions::memory = io::SharedMemory) and outlive the server. A socket file left at `path` by a
/// process that no longer answers is replaced; Error if a process still serves there, if `path` is
/// something else, or if the socket cannot be made.
[[nodiscard]] Server serve(Hub& hub, std::string path, ServeOptions options = {});
/// serve() for Hub::serve().
[[nodiscard]] inline Server serve_hub(Hub& hub, std::string path, ServeOptions options = {}) {
  return serve(hub, std::move(path), std::move(options));
}

/// A connection to another process's hub. Move-only. References from topic() are valid while the
/// Remote lives; a Subscriber keeps its topic mapped (and the connection open) also after.
class Remote {
 public:
  Remote() = default;
  Remote(Remote&&) noexcept;
  Remote& operator=(Remote&&) noexcept;
  ~Remote();
  /// The hub's topic `name`, mapped read-only (once; later calls return the same Topic). Throws
  /// Error naming it if the hub has none, Closed if the connection is gone. [any thread]
  Topic& topic(std::string_view name);
  /// Whether the server's process still answers (its socket is open). A hint.
  [[nodiscard]] bool connected() const noexcept;
  /// Internal: the notifier of this connection's topics (their subscribers' eventfds); a
  /// WakeGroup(topic) of one of them uses it.
  [[nodiscard]] std::shared_ptr<detail::Notifier> notifier() const noexcept;

  struct State;  // internal

 private:
  friend Remote connect(std::string);
  explicit Remote(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

/// Connects to a hub served at `path`. Throws Refused when the server does not admit this process's
/// user, Error when nothing serves there.
[[nodiscard]] Remote connect(std::string path);

}  // namespace pushpoll

// pushpoll/errors.hpp — every error pushpoll throws derives from pushpoll::Error.
#pragma once
#include <stdexcept>
#include <cstdint>
#include <string>

namespace pushpoll {

/// Base of every exception pushpoll throws. The message says what went wrong and why.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A blocking publish found no room within `publish_timeout` (Overflow::block).
class Full : public Error {
 public:
  using Error::Error;
  Full(const std::string& what, std::uint64_t published) : Error(what), published_(published) {}
  /// How many messages of a publish_batch() were published (committed, in order, from the first)
  /// before the rest found no room: 0 for a single publish. The rest were not published.
  [[nodiscard]] std::uint64_t published() const noexcept { return published_; }

 private:
  std::uint64_t published_ = 0;
};

/// The topic (or its hub) was closed.
class Closed : public Error {
 public:
  using Error::Error;
};

/// A cursor older than `oldest()` or newer than `head()`.
class InvalidCursor : public Error {
 public:
  using Error::Error;
};

/// A message larger than `max_message` (publish_batch() splits a batch that cannot fit the ring).
class MessageTooLarge : public Error {
 public:
  using Error::Error;
};

/// A publish waiting for room stopped because the caller's interrupt check asked it to (see
/// Topic::publish(data, tag, interrupted)); nothing of the message was published.
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// Not allowed: a process connecting to a hub whose server does not admit its user or group, or
/// publishing without the right to (including on a topic of another process mapped read-only).
class Refused : public Error {
 public:
  using Error::Error;
};

/// A claim committed after `claim_timeout`, when it had already been turned into an aborted
/// message so that readers and the ring could move on. Nothing it wrote is published.
class ClaimExpired : public Error {
 public:
  using Error::Error;
};

}  // namespace pushpoll

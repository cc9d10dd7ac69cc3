// pushpoll/io/notifier.hpp — the notifier: collects armed subscribers, writes their eventfds.
//
// One round per topic serves every armed subscriber whose tag mask meets the tags published since
// the last round: each wins armed -> notified by CAS, and each distinct eventfd (a subscriber's, or
// its wake group's) is written once, by one io_uring submission for the whole set (chunked by the
// submission queue's size) or by a write() loop.
#pragma once
#include <memory>
#include <string>

#include "pushpoll/detail/notifier.hpp"
#include "pushpoll/hub.hpp"

namespace pushpoll::io {

/// Builds the notifier a Hub uses, picking (and if need be falling back from) the backend.
/// Setting the environment variable PUSHPOLL_IO_URING=off makes `automatic` use syscall.
std::shared_ptr<detail::Notifier> make_notifier(const HubOptions& options);

/// Whether io_uring works here (and why not, if it does not).
bool io_uring_available(std::string* why = nullptr);

}  // namespace pushpoll::io

// Hub's constructor lives in pushpoll::io: it picks the wake-up backend, which needs syscalls.
#include "pushpoll/io/notifier.hpp"

namespace pushpoll {

Hub::Hub() : Hub(HubOptions{}) {}

Hub::Hub(HubOptions options) : options_(std::move(options)) {
  if (!options_.memory) options_.memory = std::make_shared<HeapMemory>();
  notifier_ = io::make_notifier(options_);
}

}  // namespace pushpoll

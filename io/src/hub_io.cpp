// Hub's constructors with io's notifier: picking the wake-up backend needs syscalls.
#include "pushpoll/io/notifier.hpp"

namespace pushpoll {

Hub::Hub() : Hub(HubOptions{}) {}

Hub::Hub(HubOptions options) : Hub(options, io::make_notifier(options)) {}

}  // namespace pushpoll

// pushpoll.Hub: owns topics by name.
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "common.hpp"

namespace pushpoll::python {
namespace {

Backend parse_backend(std::string_view name) {
  if (name == "auto") return Backend::automatic;
  if (name == "io_uring") return Backend::io_uring;
  if (name == "syscall") return Backend::syscall;
  throw py::value_error("pushpoll: backend must be \"auto\", \"io_uring\" or \"syscall\", not \"" +
                        std::string(name) + "\"");
}

std::string backend_name(Backend b) {
  return b == Backend::automatic ? std::string("auto") : std::string(to_string(b));
}

Overflow parse_overflow(std::string_view name) {
  if (name == "block") return Overflow::block;
  if (name == "overwrite") return Overflow::overwrite;
  throw py::value_error("pushpoll: overflow must be \"block\" or \"overwrite\", not \"" +
                        std::string(name) + "\"");
}

// Seconds (a float) to nanoseconds. Negative values are passed on for TopicOptions::validate() to
// reject with its own message; huge ones (math.inf) become a wait of about 30 years.
std::chrono::nanoseconds to_nanoseconds(const char* what, double seconds) {
  if (std::isnan(seconds)) throw Error(std::string("pushpoll: ") + what + " is NaN");
  constexpr double kMaxSeconds = 1e9;
  if (seconds > kMaxSeconds) seconds = kMaxSeconds;
  if (seconds < -kMaxSeconds) seconds = -kMaxSeconds;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(seconds * 1e9)));
}

PyTopic topic(PyHub& self, std::string_view name, std::optional<std::uint64_t> capacity,
              std::optional<std::uint32_t> max_message, std::optional<std::string> overflow,
              std::optional<double> publish_timeout, std::optional<double> stall_timeout,
              std::optional<std::uint32_t> max_subscribers) {
  Hub& hub = self.state->hub;
  const bool defaults = !capacity && !max_message && !overflow && !publish_timeout &&
                        !stall_timeout && !max_subscribers;
  if (defaults) return PyTopic{self.state, &hub.topic(name)};
  TopicOptions o;
  if (capacity) o.capacity = *capacity;
  if (max_message) o.max_message = *max_message;
  if (overflow) o.overflow = parse_overflow(*overflow);
  if (publish_timeout) o.publish_timeout = to_nanoseconds("publish_timeout", *publish_timeout);
  if (stall_timeout) o.stall_timeout = to_nanoseconds("stall_timeout", *stall_timeout);
  if (max_subscribers) o.max_subscribers = *max_subscribers;
  return PyTopic{self.state, &hub.topic(name, o)};
}

}  // namespace

void register_hub(py::module_& m) {
  py::class_<PyHub>(m, "Hub", R"doc(
Owns topics by name, and the notifier that wakes their subscribers.

``backend`` chooses how wake-ups are written: ``"auto"`` (io_uring, or ``write()`` where the kernel
or a sandbox refuses io_uring), ``"io_uring"`` (raises Error if refused) or ``"syscall"``.

``close()`` closes every topic; the hub's memory is freed only when its last topic, subscriber and
batch objects are gone too, so objects may be closed and collected in any order. A context manager:
``with pushpoll.Hub() as hub: ...`` closes it on exit. Safe to use from several threads.
)doc")
      .def(py::init([](const std::string& backend) {
             HubOptions options;
             options.backend = parse_backend(backend);
             return PyHub{std::make_shared<HubState>(std::move(options))};
           }),
           py::arg("backend") = "auto")
      .def_property_readonly(
          "backend", [](const PyHub& self) { return backend_name(self.state->hub.backend()); },
          "The wake-up backend in use, after any fallback: \"io_uring\" or \"syscall\".")
      .def("topic", &topic, py::arg("name"), py::kw_only(), py::arg("capacity") = py::none(),
           py::arg("max_message") = py::none(), py::arg("overflow") = py::none(),
           py::arg("publish_timeout") = py::none(), py::arg("stall_timeout") = py::none(),
           py::arg("max_subscribers") = py::none(), R"doc(
The topic called ``name``, created if new.

Without options, an existing topic is returned as it is, and a new one gets the defaults. With any
option, the others take their defaults and the whole set must match an existing topic's, or
pushpoll.Error says how they differ.

capacity: ring size in bytes, a power of two, at least 4096 (default 1 MiB).
max_message: largest payload in bytes (default: the smaller of 64 KiB and capacity / 4).
overflow: "block" (lossless: publishers wait up to publish_timeout, then raise Full; a subscriber
    stalling longer than stall_timeout is detached and later told its gap) or "overwrite" (never
    waits: the oldest messages are overwritten; lapped subscribers learn their exact gap).
publish_timeout, stall_timeout: seconds (defaults 1.0 and 5.0).
max_subscribers: size of the subscriber table (default 16384).

Raises pushpoll.Error for invalid options, pushpoll.Closed after close().
)doc")
      .def("topic_names", [](const PyHub& self) { return self.state->hub.topic_names(); },
           "Names of the hub's topics, sorted.")
      .def(
          "close",
          [](PyHub& self) {
            self.closed = true;
            self.state->hub.close();
          },
          "Closes every topic: publishing and subscribing raise Closed; subscribers may still poll "
          "what is retained. Idempotent.")
      .def_property_readonly(
          "closed", [](const PyHub& self) { return self.closed; }, "True after close().")
      .def("__enter__", [](py::object self) { return self; })
      .def(
          "__exit__",
          [](PyHub& self, const py::args&) {
            self.closed = true;
            self.state->hub.close();
          },
          "Closes the hub.")
      .def("__repr__", [](const PyHub& self) {
        return "<pushpoll.Hub backend=" + backend_name(self.state->hub.backend()) +
               " topics=" + std::to_string(self.state->hub.topic_names().size()) +
               (self.closed ? " closed>" : ">");
      });
}

}  // namespace pushpoll::python

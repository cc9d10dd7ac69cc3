// pushpoll.Hub: owns topics by name.
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "common.hpp"
#include "pushpoll/io/shared_memory.hpp"

namespace pushpoll::python {
namespace {

Backend parse_backend(std::string_view name) {
  if (name == "auto") return Backend::automatic;
  if (name == "io_uring") return Backend::io_uring;
  if (name == "syscall") return Backend::syscall;
  throw py::value_error("pushpoll: backend must be \"auto\", \"io_uring\" or \"syscall\", not \"" +
                        std::string(name) + "\"");
}

NotifyMode parse_mode(std::string_view name) {
  if (name == "publisher") return NotifyMode::publisher;
  if (name == "background") return NotifyMode::background;
  throw py::value_error("pushpoll: mode must be \"publisher\" or \"background\", not \"" +
                        std::string(name) + "\"");
}

// The backend in use: the hub resolved "auto" to one of the others when it was made.
std::string backend_name(const PyHub& self) {
  return std::string(to_string(self.state->hub().backend()));
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
  return from_seconds(seconds);
}

PyTopic topic(PyHub& self, std::string_view name, std::optional<std::uint64_t> capacity,
              std::optional<std::uint32_t> max_message, std::optional<std::string> overflow,
              std::optional<double> publish_timeout, std::optional<double> stall_timeout,
              std::optional<std::uint32_t> max_subscribers, std::optional<double> claim_timeout,
              std::optional<std::uint64_t> index_size) {
  Hub& hub = self.state->hub();
  const bool defaults = !capacity && !max_message && !overflow && !publish_timeout &&
                        !stall_timeout && !max_subscribers && !claim_timeout && !index_size;
  if (defaults) return PyTopic{self.state, &hub.topic(name)};
  TopicOptions o;
  if (capacity) o.capacity = *capacity;
  if (max_message) o.max_message = *max_message;
  if (overflow) o.overflow = parse_overflow(*overflow);
  if (publish_timeout) o.publish_timeout = to_nanoseconds("publish_timeout", *publish_timeout);
  if (stall_timeout) o.stall_timeout = to_nanoseconds("stall_timeout", *stall_timeout);
  if (max_subscribers) o.max_subscribers = *max_subscribers;
  if (claim_timeout) o.claim_timeout = to_nanoseconds("claim_timeout", *claim_timeout);
  if (index_size) o.index_size = *index_size;
  return PyTopic{self.state, &hub.topic(name, o)};
}

// pushpoll.WakeStats: a named tuple (a struct sequence, like BatchArrays).
PyTypeObject* wake_stats_type = nullptr;

PyStructSequence_Field wake_stats_fields[] = {
    {"wakeups_sent", "eventfd writes issued (one per woken fd per round)."},
    {"wakeups_coalesced", "Subscribers woken through a write shared with others (wake groups)."},
    {"wakeups_skipped", "Armed subscribers passed over: no matching tag."},
    {"rounds", "Notifier rounds (each serves every armed subscriber)."},
    {"notifier_syscalls", "write() or io_uring_enter() calls by the notifier."},
    {"subscriber_syscalls", "eventfd reads, blocking polls and membarriers by subscribers."},
    {"arms", "arm() calls that armed (waits arm too)."},
    {"wakeups_recovered", "Messages a blocked wait found by its safety net, with no push: should stay 0."},
    {nullptr, nullptr}};

PyStructSequence_Desc wake_stats_desc = {
    "pushpoll.WakeStats",
    "What a hub's wake-up machinery has done (Hub.wake_stats()): a snapshot; counters only grow.",
    wake_stats_fields, static_cast<int>(std::size(wake_stats_fields) - 1)};  // without the sentinel

py::object wake_stats(const PyHub& self) {
  const WakeStats w = self.state->hub().wake_stats();
  const std::uint64_t values[] = {w.wakeups_sent, w.wakeups_coalesced, w.wakeups_skipped, w.rounds,
                                  w.notifier_syscalls, w.subscriber_syscalls, w.arms,
                                  w.wakeups_recovered};
  auto result = py::reinterpret_steal<py::object>(PyStructSequence_New(wake_stats_type));
  if (!result) throw py::error_already_set();
  Py_ssize_t i = 0;
  for (const std::uint64_t v : values) {
    PyObject* item = PyLong_FromUnsignedLongLong(v);
    if (item == nullptr) throw py::error_already_set();
    PyStructSequence_SetItem(result.ptr(), i++, item);  // steals `item`
  }
  return result;
}

void close(PyHub& self) {
  self.closed = true;
  self.state->hub().close();
}

}  // namespace

void register_hub(py::module_& m) {
  wake_stats_type = PyStructSequence_NewType(&wake_stats_desc);
  if (wake_stats_type == nullptr) throw py::error_already_set();
  m.add_object("WakeStats", py::handle(reinterpret_cast<PyObject*>(wake_stats_type)));

  py::class_<PyHub>(m, "Hub", R"doc(
Owns topics by name, and the notifier that wakes their subscribers.

``backend`` chooses how wake-ups are written: "auto" (io_uring, or write() where the kernel
or a sandbox refuses io_uring), "io_uring" (raises Error if refused) or "syscall".
``mode`` chooses where: "publisher" (in the publishing thread, right after the commit:
lowest latency) or "background" (in a notifier thread: publishers make no syscalls, and
pushes within ``coalesce_window`` seconds are merged). ``sqpoll``: io_uring with a kernel
submission thread where the kernel permits it (plain io_uring otherwise). ``shared``: topics
live in shared memory, so that serve() can offer them to other processes.

close() closes every topic; the hub's memory is freed only when its last topic, subscriber
and batch objects are gone too, so objects may be closed and collected in any order. A
context manager that closes the hub on exit. Safe to use from several threads.
)doc")
      .def(py::init([](const std::string& backend, const std::string& mode, double coalesce_window,
                       bool sqpoll, bool shared) {
             HubOptions options;
             options.backend = parse_backend(backend);
             options.mode = parse_mode(mode);
             options.coalesce_window = duration_option("coalesce_window", coalesce_window);
             options.sqpoll = sqpoll;
             if (shared) options.memory = std::make_shared<io::SharedMemory>();
             return PyHub{std::make_shared<HubState>(std::move(options))};
           }),
           py::arg("backend") = "auto", py::kw_only(), py::arg("mode") = "publisher",
           py::arg("coalesce_window") = 50e-6, py::arg("sqpoll") = false, py::arg("shared") = false)
      .def_property_readonly(
          "backend", &backend_name,
          "The wake-up backend in use, after any fallback: \"io_uring\" or \"syscall\".")
      .def("topic", &topic, py::arg("name"), py::kw_only(), py::arg("capacity") = py::none(),
           py::arg("max_message") = py::none(), py::arg("overflow") = py::none(),
           py::arg("publish_timeout") = py::none(), py::arg("stall_timeout") = py::none(),
           py::arg("max_subscribers") = py::none(), py::arg("claim_timeout") = py::none(),
           py::arg("index_size") = py::none(), R"doc(
The topic called ``name``, created if new.

Without options, an existing topic is returned as it is, and a new one gets the
defaults. With any option, the others take their defaults and the whole set must match
an existing topic's, or pushpoll.Error says how they differ.

capacity: ring size in bytes, a power of two from 4096 to 16 GiB (default 1 MiB).
max_message: largest payload in bytes (default: the smaller of 64 KiB and capacity / 4).
index_size: the most messages retained at once, a power of two (default capacity / 32).
overflow: "block" (lossless: publishers wait up to publish_timeout, then raise Full; a
    subscriber stalling longer than stall_timeout is detached and later told its gap)
    or "overwrite" (never waits; lapped subscribers learn their exact gap).
publish_timeout, stall_timeout: seconds (defaults 1.0 and 5.0).
claim_timeout: seconds a publisher stalled mid-publish may hold readers and the ring
    back before its message goes out aborted (default 1.0; 0: never).
max_subscribers: size of the subscriber table (default 16384).

Raises pushpoll.Error for invalid options, pushpoll.Closed after close().
)doc")
      .def("serve", &serve_hub, py::arg("path"), py::kw_only(),
           py::arg("subscriber_uids") = std::vector<uid_t>{}, py::arg("subscriber_gids") = std::vector<gid_t>{},
           py::arg("publisher_uids") = std::vector<uid_t>{}, py::arg("publisher_gids") = std::vector<gid_t>{},
           R"doc(
Serves this hub's topics to other processes at ``path``, an AF_UNIX socket (at most 107 bytes);
returns the Server. The hub must be made with shared=True.

Processes running as the hub's own user are admitted, and those whose uid is in
``subscriber_uids`` (or primary gid in ``subscriber_gids``); the kernel says who a peer is
(SO_PEERCRED), and a peer not admitted gets pushpoll.Refused. Only processes whose uid is in
``publisher_uids`` (or gid in ``publisher_gids``) may publish; their publish() goes through
this hub, one message per round trip. A socket file left by a process that no
longer answers is replaced; raises Error if a process serves there, or if ``path`` is
something else.
)doc")
      .def("wake_stats", &wake_stats,
           "What the wake-up machinery has done (all topics): a WakeStats named tuple.")
      .def("topic_names", [](const PyHub& self) { return self.state->hub().topic_names(); },
           "Names of the hub's topics, sorted.")
      .def("close", &close,
           "Closes every topic: publishing and subscribing raise Closed; subscribers may still poll "
           "what is retained. Idempotent.")
      .def_property_readonly(
          "closed", [](const PyHub& self) { return self.closed; }, "True after close().")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyHub& self, const py::args&) { close(self); }, "Closes the hub.")
      .def("__repr__", [](const PyHub& self) {
        return "<pushpoll.Hub backend=" + backend_name(self) +
               " topics=" + std::to_string(self.state->hub().topic_names().size()) +
               (self.closed ? " closed>" : ">");
      });
}

}  // namespace pushpoll::python

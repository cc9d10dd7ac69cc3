// pushpoll.Topic: publishing, subscribing, and the topic's counters.
#include <pybind11/stl.h>

#include <chrono>
#include <climits>
#include <deque>
#include <string>
#include <vector>

#include "common.hpp"

namespace pushpoll::python {
namespace {

// A Python int tag; the range 0..63 is checked by the C++ topic, with its message.
unsigned to_tag(long long value) {
  if (value < 0 || value > static_cast<long long>(UINT_MAX)) {
    throw Error("pushpoll: tag " + std::to_string(value) + " is out of range 0..63");
  }
  return static_cast<unsigned>(value);
}

bool to_tag(PyObject* obj, unsigned& tag) {
  const long long value = PyLong_AsLongLong(obj);
  if (value == -1 && PyErr_Occurred()) return false;
  try {
    tag = to_tag(value);
  } catch (const ForcedUnwind&) {
    throw;
  } catch (...) {
    set_error();
    return false;
  }
  return true;
}

double seconds(std::chrono::nanoseconds ns) { return std::chrono::duration<double>(ns).count(); }

bool never_waits(const Topic& t) { return t.options().overflow == Overflow::overwrite; }

// publish(data, tag=0) and try_publish(data, tag=0): one call per message, so both are fast-call
// entry points rather than pybind11 functions (whose argument dispatch costs more than the
// publish itself).
template <bool kTry>
PyObject* publish(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* argv[2];
  if (!parse_args(kTry ? "try_publish" : "publish", args, nargs, kwnames, {"data", "tag"}, 1, argv)) {
    return nullptr;
  }
  unsigned tag = 0;
  if (argv[1] != nullptr && !to_tag(argv[1], tag)) return nullptr;
  try {
    Topic& t = *py::cast<PyTopic&>(py::handle(self)).topic;
    const Buffer data(argv[0]);
    if constexpr (kTry) {
      bool done;
      if (data.size() <= kGilFreeBytes) {
        done = t.try_publish(data.span(), tag);
      } else {
        NoGil nogil;
        done = t.try_publish(data.span(), tag);
      }
      return PyBool_FromLong(done ? 1 : 0);
    } else {
      std::uint64_t seq;
      // Overflow::block may wait for room (up to publish_timeout): never with the GIL.
      if (data.size() <= kGilFreeBytes && never_waits(t)) {
        seq = t.publish(data.span(), tag);
      } else {
        // While it waits for room it comes back for Python's signal handlers (Ctrl-C) about
        // every 50 ms; never while there is room.
        NoGil nogil;
        seq = t.publish(data.span(), tag, [&nogil] { return nogil.check_signals(); });
      }
      return PyLong_FromUnsignedLongLong(seq);
    }
  } catch (const ForcedUnwind&) {
    throw;
  } catch (...) {
    return set_error();
  }
}

PyMethodDef publish_def = {
    "publish", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&publish<false>)),
    METH_FASTCALL | METH_KEYWORDS,
    "publish($self, /, data, tag=0)\n--\n\n"
    "Appends one message; returns its sequence number.\n\n"
    "data: any contiguous buffer (bytes, bytearray, memoryview, a C-contiguous numpy array), "
    "copied into the ring. tag: 0..63; subscribers filter on it.\n"
    "With overflow=\"block\" it waits for room up to publish_timeout, without the GIL (Ctrl-C "
    "interrupts the wait), then raises Full. Payloads over 64 KiB are copied without the GIL. "
    "Raises MessageTooLarge over max_message, Closed after close(), Error for a tag out of range."};

PyMethodDef try_publish_def = {
    "try_publish",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&publish<true>)),
    METH_FASTCALL | METH_KEYWORDS,
    "try_publish($self, /, data, tag=0)\n--\n\n"
    "Appends one message if there is room now; never waits. Returns False when the ring is full "
    "(overflow=\"block\" only). Raises like publish()."};

std::uint64_t publish_many(PyTopic& self, const py::iterable& messages, long long tag) {
  const unsigned t = to_tag(tag);
  std::deque<Buffer> buffers;  // never relocated: a Py_buffer stays where it was filled in
  std::vector<std::span<const std::byte>> spans;
  std::size_t total = 0;
  for (py::handle item : messages) {
    buffers.emplace_back(item.ptr());
    spans.push_back(buffers.back().span());
    total += buffers.back().size();
  }
  if (total <= kGilFreeBytes && never_waits(*self.topic)) return self.topic->publish_batch(spans, t);
  NoGil nogil;
  return self.topic->publish_batch(spans, t, [&nogil] { return nogil.check_signals(); });
}

Start to_start(const py::object& start, bool resume) {
  if (py::isinstance<py::str>(start)) {
    const auto name = start.cast<std::string>();
    if (name == "oldest") return Start::oldest;
    if (name == "latest") return Start::latest;
    throw py::value_error("pushpoll: start must be \"oldest\", \"latest\" or a sequence number, not \"" +
                          name + "\"");
  }
  if (PyLong_Check(start.ptr()) && !PyBool_Check(start.ptr())) {
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(start.ptr(), &overflow);
    if (overflow < 0 || (overflow == 0 && value < 0)) {
      throw InvalidCursor("pushpoll: cursor " + py::str(start).cast<std::string>() + " is negative");
    }
    const unsigned long long seq = PyLong_AsUnsignedLongLong(start.ptr());
    if (PyErr_Occurred()) throw py::error_already_set();
    return resume ? Start::resume(seq) : Start::at(seq);
  }
  throw py::type_error("pushpoll: start must be \"oldest\", \"latest\" or an int sequence number");
}

PySubscriber subscribe(PyTopic& self, const py::object& start, std::uint64_t tags, bool resume) {
  if (resume && !PyLong_Check(start.ptr())) {
    throw py::type_error("pushpoll: resume=True needs a sequence number to resume from as start");
  }
  Subscriber sub = self.topic->subscribe(to_start(start, resume), tags);
  return PySubscriber{std::make_shared<SubState>(self.hub, self.topic, std::move(sub))};
}

std::string repr(const PyTopic& self) {
  const Topic& t = *self.topic;
  return "<pushpoll.Topic '" + t.name() + "' capacity=" + std::to_string(t.options().capacity) +
         " overflow=" + (never_waits(t) ? "overwrite" : "block") + " head=" + std::to_string(t.head()) +
         (t.closed() ? " closed>" : ">");
}

void close(PyTopic& self) { self.topic->close(); }

}  // namespace

void register_topic(py::module_& m) {
  py::class_<TopicStats>(m, "TopicStats", "What a topic has done: a snapshot; counters only grow.")
      .def_readonly("head", &TopicStats::head,
                    "Messages readers can see (the next seq after the committed prefix).")
      .def_readonly("oldest", &TopicStats::oldest, "Oldest retained seq.")
      .def_readonly("bytes_claimed", &TopicStats::bytes_claimed,
                    "Ring bytes claimed so far (skipped lap ends included).")
      .def_readonly("subscribers", &TopicStats::subscribers, "Live subscribers.")
      .def_readonly("full_waits", &TopicStats::full_waits, "Publishes that waited for subscribers to make room.")
      .def_readonly("held_waits", &TopicStats::held_waits,
                    "Publishes that waited for a publish in progress at the oldest end of the ring.")
      .def_readonly("full_timeouts", &TopicStats::full_timeouts,
                    "Publishes that gave up (Full, or try_publish() returning False).")
      .def_readonly("detaches", &TopicStats::detaches, "Stalled subscribers detached (overflow=\"block\").")
      .def_readonly("laps", &TopicStats::laps, "Polls that found their cursor overwritten (gap reported).")
      .def_readonly("retire_walks", &TopicStats::retire_walks, "Times the writers freed old records.")
      .def_readonly("gate_scans", &TopicStats::gate_scans, "Times the writers scanned subscriber cursors.")
      .def_readonly("aborted", &TopicStats::aborted, "Claims dropped without commit.")
      .def_readonly("expired", &TopicStats::expired,
                    "Publishes aborted after holding readers or the ring back for claim_timeout.")
      .def_readonly("bias_revocations", &TopicStats::bias_revocations,
                    "Times a sole publisher's fast path was taken back by another publisher.")
      .def_readonly("clamped_cursors", &TopicStats::clamped_cursors,
                    "Cursors of other processes' subscribers found outside [oldest, claimed], and clamped.")
      .def("__repr__", [](const TopicStats& s) {
        return "TopicStats(head=" + std::to_string(s.head) + ", oldest=" + std::to_string(s.oldest) +
               ", subscribers=" + std::to_string(s.subscribers) + ", full_waits=" +
               std::to_string(s.full_waits) + ", full_timeouts=" + std::to_string(s.full_timeouts) +
               ", detaches=" + std::to_string(s.detaches) + ", laps=" + std::to_string(s.laps) + ")";
      });

  auto cls = py::class_<PyTopic>(m, "Topic", R"doc(
A topic: an append-only ring log. Every message gets the next sequence number.

Made by Hub.topic(). Publishing is safe from any number of threads. close() closes the
topic for every holder: publishing and subscribing raise Closed; subscribers may still poll
what is retained. A context manager that closes the topic on exit.
)doc");
  add_fast_method(cls, &publish_def);
  add_fast_method(cls, &try_publish_def);
  cls.def("publish_many", &publish_many, py::arg("messages"), py::arg("tag") = 0, R"doc(
Appends every buffer of ``messages`` with one claim per ring-sized chunk, all with
``tag``; returns the sequence number of the last. An empty iterable raises Error.
Releases the GIL while it copies (and, with overflow="block", while it waits).
)doc")
      .def("subscribe", &subscribe, py::arg("start") = "oldest", py::arg("tags") = kAllTags, py::kw_only(),
           py::arg("resume") = false, R"doc(
A new Subscriber reading from ``start``: "oldest" (the oldest retained message),
"latest" (the next one published) or a sequence number in [oldest, head] (else
InvalidCursor). With ``resume=True``, a sequence number is where a subscriber left off:
it starts there if still retained, else at the oldest, and its first poll reports the exact
gap. It receives the messages whose tag t has bit ``1 << t`` set in ``tags`` (default
ALL_TAGS). Raises Closed after close(), Error when the subscriber table is full or ``tags``
is 0.
)doc")
      .def_property_readonly("name", [](const PyTopic& self) { return self.topic->name(); })
      .def_property_readonly("head", [](const PyTopic& self) { return self.topic->head(); },
                             "The next sequence number to be assigned (messages published so far).")
      .def_property_readonly("oldest", [](const PyTopic& self) { return self.topic->oldest(); },
                             "The oldest retained sequence number (== head when none is retained).")
      .def_property_readonly("capacity",
                             [](const PyTopic& self) { return self.topic->options().capacity; },
                             "Ring size in bytes.")
      .def_property_readonly("max_message", [](const PyTopic& self) { return self.topic->max_message(); },
                             "Largest payload in bytes.")
      .def_property_readonly(
          "overflow",
          [](const PyTopic& self) { return never_waits(*self.topic) ? "overwrite" : "block"; },
          "\"block\" or \"overwrite\".")
      .def_property_readonly(
          "publish_timeout",
          [](const PyTopic& self) { return seconds(self.topic->options().publish_timeout); },
          "Seconds a blocking publish waits for room.")
      .def_property_readonly(
          "stall_timeout",
          [](const PyTopic& self) { return seconds(self.topic->options().stall_timeout); },
          "Seconds a subscriber may hold the ring back before it is detached.")
      .def_property_readonly(
          "claim_timeout",
          [](const PyTopic& self) { return seconds(self.topic->options().claim_timeout); },
          "Seconds a stalled publish may hold readers and the ring back (0: forever).")
      .def_property_readonly(
          "index_size", [](const PyTopic& self) { return self.topic->options().effective_index_size(); },
          "The most messages retained at once.")
      .def_property_readonly(
          "max_subscribers", [](const PyTopic& self) { return self.topic->options().max_subscribers; })
      .def_property_readonly("closed", [](const PyTopic& self) { return self.topic->closed(); })
      .def("stats", [](const PyTopic& self) { return self.topic->stats(); }, "A TopicStats snapshot.")
      .def("close", &close, "Closes the topic (for every holder). Idempotent.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyTopic& self, const py::args&) { close(self); })
      .def("__repr__", &repr);
}

}  // namespace pushpoll::python

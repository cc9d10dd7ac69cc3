// pushpoll.Subscriber: a cursor on a topic.
#include "common.hpp"

namespace pushpoll::python {
namespace {

// poll(max_messages=1024): once per batch, but batches may be small; a fast-call entry point.
PyObject* poll(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* argv[1];
  if (!parse_args("poll", args, nargs, kwnames, {"max_messages"}, 0, argv)) return nullptr;
  std::size_t max_messages = 1024;
  if (argv[0] != nullptr) {
    const Py_ssize_t value = PyLong_AsSsize_t(argv[0]);
    if (value == -1 && PyErr_Occurred()) return nullptr;
    if (value < 0) {
      PyErr_SetString(PyExc_ValueError, "pushpoll: max_messages must not be negative");
      return nullptr;
    }
    max_messages = static_cast<std::size_t>(value);
  }
  try {
    return poll_batch(py::cast<PySubscriber&>(py::handle(self)).state, max_messages);
  } catch (...) {
    return set_error();
  }
}

PyMethodDef poll_def = {
    "poll", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&poll)),
    METH_FASTCALL | METH_KEYWORDS,
    "poll($self, /, max_messages=1024)\n--\n\n"
    "Up to max_messages messages (matching the tags) from the cursor, in place: a Batch. Never "
    "waits; may be empty. Releases the outstanding batch first, under the zero-copy rule (see "
    "Batch): BufferError if buffers derived from it are still alive. The cursor advances when "
    "the batch is released. Raises Closed after close()."};

void close(PySubscriber& self) {
  SubState& s = *self.state;
  if (s.closed) return;
  SubLock lock(s);
  if (s.closed) return;
  if (!release_outstanding(s)) throw py::error_already_set();
  s.final_cursor = s.sub.cursor();
  s.sub.unsubscribe();
  s.closed = true;
}

SubState& open_state(const PySubscriber& self) {
  if (self.state->closed) throw Closed("pushpoll: the subscriber is closed");
  return *self.state;
}

}  // namespace

void register_subscriber(py::module_& m) {
  auto cls = py::class_<PySubscriber>(m, "Subscriber", R"doc(
A cursor on a topic, made by Topic.subscribe(). It reads batches in place with poll().

A context manager that closes the subscriber on exit. A subscriber has one reader at a time: its
methods may be called from several threads, and calls are serialized.
)doc");
  add_fast_method(cls, &poll_def);
  cls.def_property_readonly(
         "cursor",
         [](const PySubscriber& self) {
           SubState& s = *self.state;
           if (s.closed) return s.final_cursor;
           SubLock lock(s);
           return s.closed ? s.final_cursor : s.sub.cursor();
         },
         "The next sequence number this subscriber reads (also after close()).")
      .def_property_readonly(
          "lag",
          [](const PySubscriber& self) {
            SubState& s = open_state(self);
            SubLock lock(s);
            if (s.closed) throw Closed("pushpoll: the subscriber is closed");
            return s.sub.lag();
          },
          "Messages published but not yet read (all tags). A hint: the head moves on.")
      .def_property_readonly(
          "tags",
          [](const PySubscriber& self) {
            SubState& s = open_state(self);
            return s.sub.tag_mask();
          },
          "The tag mask: bit t set receives tag t.")
      .def_property_readonly(
          "closed", [](const PySubscriber& self) { return self.state->closed; }, "True after close().")
      .def("close", &close, R"doc(
Leaves the topic. Releases the outstanding batch first, under the zero-copy rule: BufferError (and
the subscriber stays open) if buffers derived from it are still alive. Idempotent.
)doc")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySubscriber& self, const py::args&) { close(self); })
      .def("__repr__", [](const PySubscriber& self) {
        SubState& s = *self.state;
        if (s.closed) return std::string("<pushpoll.Subscriber closed>");
        SubLock lock(s);
        return "<pushpoll.Subscriber topic='" + s.topic->name() + "' cursor=" +
               std::to_string(s.closed ? s.final_cursor : s.sub.cursor()) + ">";
      });

  // ---- WAKE-UP API: not bound yet --------------------------------------------------------------
  // To come, on top of Subscriber::fd(), arm(), wait(std::chrono::nanoseconds) and the hub's
  // notifier (the Python side adds `async for batch in sub` in pushpoll/_aio.py):
  //   sub.arm() -> bool           under SubLock, GIL held (arm() never blocks); it releases the
  //                               outstanding batch, so call release_outstanding(s) first.
  //   sub.wait(timeout=None)      holds SubState::mutex WITHOUT the GIL for the whole wait (SubLock
  //                               already lets other threads queue behind it without the GIL);
  //                               seconds -> nanoseconds, None -> negative (no timeout); a batch
  //                               freed meanwhile leaves SubState::pin null and is released by the
  //                               next poll (see release_outstanding).
  //   sub.fileno() -> int         Subscriber::fd(), under SubLock.
  //   close() while another thread waits: must wake the waiter (Topic/Hub close do so in C++)
  //                               instead of queueing on SubState::mutex behind it.
}

}  // namespace pushpoll::python

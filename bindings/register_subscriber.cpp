// pushpoll.Subscriber: a cursor on a topic.
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

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
  } catch (const ForcedUnwind&) {
    throw;
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

// Closing takes the subscriber out of its wake group first: the group's lock, then the
// subscriber's (the lock order of common.hpp). The group may change while this thread queues for
// the locks without the GIL; then it starts over.
void close(PySubscriber& self) {
  SubState& s = *self.state;
  GroupState::Member dropped;  // the group's reference, dropped after the locks
  for (;;) {
    if (s.closed) return;
    const std::shared_ptr<GroupState> g = s.group.lock();
    std::optional<GroupLock> group_lock;
    if (g) group_lock.emplace(*g);
    SubLock lock(s);
    if (s.closed) return;
    if (s.group.lock() != g) continue;  // joined or left a group meanwhile
    if (!release_outstanding(s)) throw py::error_already_set();
    if (g) dropped = leave_group(*g, s);
    s.final_cursor = s.sub.cursor();
    s.sub.unsubscribe();
    s.closed = true;
    // A selector or event loop watching fileno() wakes up, and finds Closed.
    s.fd.signal();
    return;
  }
}

SubState& open_state(const PySubscriber& self) {
  if (self.state->closed) throw_closed_subscriber();
  return *self.state;
}

// ---- Waiting ------------------------------------------------------------------------------------
//
// Subscriber::wait() blocks in the C++ subscriber, which has one owner at a time: the waiting
// thread holds SubState::mutex (without the GIL) while it blocks. Were it to hold the mutex for the
// whole wait, sub.close() from another thread would queue behind it, forever with no timeout. So a
// Python wait() is a loop of C++ waits of at most kWaitSlice, and between two of them it drops the
// mutex, lets queued threads in (yield_to_queued) and looks at `closed` again. Wake-up latency is
// unchanged (a push ends the C++ wait at once); close() from another thread waits at most one
// slice, and the waiter then raises Closed. Topic.close() and Hub.close() wake the C++ wait
// directly. A slice that times out re-arms once (one heavy barrier): ~20 per second while idle.
//
// The client-side options are the C++ subscriber's (WaitOptions: core keeps the last wake-up and
// applies the rate limit); this function only spreads them over slices: it sleeps, in slices that
// check `closed` and signals, until Subscriber::next_wake_at(), and spends the spin budget over the
// first slice(s).

// Gives one slice what is left of the spin budget; the set options are back after it.
class SliceOptions {
 public:
  SliceOptions(Subscriber& sub, std::chrono::nanoseconds spin) : sub_(sub), saved_(sub.wait_options()) {
    WaitOptions o = saved_;
    o.spin = spin;
    sub_.set_wait_options(o);
  }
  ~SliceOptions() { sub_.set_wait_options(saved_); }
  SliceOptions(const SliceOptions&) = delete;
  SliceOptions& operator=(const SliceOptions&) = delete;

 private:
  Subscriber& sub_;
  WaitOptions saved_;
};

// After a wake-up on a closed topic: true while matching messages remain, else throws Closed. The
// caller holds s.mutex; the subscriber is in no group (Subscriber::wait() refuses members).
bool recheck_closed(SubState& s) {
  // On a closed topic wait() never blocks: it returns true for unread messages, else throws Closed.
  // A zero timeout bounds the spin and the rate limit's sleep to nothing.
  return s.sub.wait(std::chrono::nanoseconds(0));
}

bool wait(PySubscriber& self, std::optional<double> timeout_seconds) {
  const std::shared_ptr<SubState> keep = self.state;
  SubState& s = *keep;
  using clock = Deadline::clock;
  const Deadline deadline(timeout_seconds);
  if (s.closed) throw_closed_subscriber();
  if (!s.group.expired()) {
    throw Error("pushpoll: this subscriber is in a WakeGroup: wait on the group (group.wait())");
  }
  // Client-side rate limit (core's): a wake-up returned less than min_interval ago delays this one.
  {
    const auto until = std::min(s.sub.next_wake_at(), deadline.at());
    for (auto now = clock::now(); now < until; now = clock::now()) {
      {
        NoGil nogil;
        std::this_thread::sleep_for(std::min<clock::duration>(kWaitSlice, until - now));
      }
      check_signals();
      if (s.closed) throw_closed_subscriber();
    }
  }
  std::chrono::nanoseconds spin = s.sub.wait_options().spin;
  for (bool first = true;; first = false) {
    if (s.closed) throw_closed_subscriber();
    bool pushed = false;
    const auto slice_start = clock::now();
    {
      SubLock lock(s);
      if (s.closed) throw_closed_subscriber();
      if (!s.group.expired()) {
        throw Error("pushpoll: this subscriber joined a WakeGroup while waiting: wait on the group");
      }
      if (first) {
        // Arming releases the outstanding batch: under the zero-copy rule, as poll() does.
        if (!release_outstanding(s)) throw py::error_already_set();
      } else if (s.pin != nullptr) {
        // Another thread polled between two slices and holds its batch: releasing it here would
        // pull it from under that thread. Report activity instead; the caller polls.
        pushed = true;
      }
      if (!pushed) {
        const std::chrono::nanoseconds slice = deadline.slice(slice_start);
        NoGil nogil;
        {
          SliceOptions options(s.sub, spin);
          pushed = s.sub.wait(slice);
        }
        // Woken by a close: Closed now if nothing is left to read.
        if (pushed && s.topic->closed()) pushed = recheck_closed(s);
      }
    }
    if (pushed) return true;
    const auto now = clock::now();
    spin = std::max(std::chrono::nanoseconds(0),
                    spin - std::chrono::duration_cast<std::chrono::nanoseconds>(now - slice_start));
    if (deadline.passed(now)) return false;
    check_signals();  // between two slices: Ctrl-C raises KeyboardInterrupt within one slice
    yield_to_queued(s);
  }
}

bool arm(PySubscriber& self) {
  SubState& s = open_state(self);
  SubLock lock(s);
  if (s.closed) throw_closed_subscriber();
  // Subscriber::arm() releases the outstanding batch: under the zero-copy rule, as poll() does.
  if (!release_outstanding(s)) throw py::error_already_set();
  if (s.sub.arm()) return true;
  if (s.topic->closed()) {
    // arm() returns false on a closed topic whether or not messages remain: tell the two apart, so
    // that a loop of poll() and arm() ends.
    if (s.group.expired()) {
      (void)recheck_closed(s);  // throws Closed when fully read
    } else if (s.sub.lag() == 0) {
      throw Closed("pushpoll: topic '" + s.topic->name() + "' is closed and fully read");
    }
  }
  return false;
}

int fileno(PySubscriber& self) {
  SubState& s = open_state(self);
  SubLock lock(s);
  if (s.closed) throw_closed_subscriber();
  if (const std::shared_ptr<GroupState> g = s.group.lock()) return g->group.fd();
  if (s.fd.get() < 0) s.fd.dup_of(s.sub.fd());
  return s.fd.get();
}

void set_wait_options(PySubscriber& self, double spin, double min_interval) {
  SubState& s = open_state(self);
  WaitOptions o;
  o.spin = duration_option("spin", spin);
  o.min_interval = duration_option("min_interval", min_interval);
  SubLock lock(s);  // a waiting thread reads them between its slices
  o.safety_net = s.sub.wait_options().safety_net;
  s.sub.set_wait_options(o);
}

py::dict wait_options(const PySubscriber& self) {
  SubState& s = open_state(self);
  SubLock lock(s);
  const WaitOptions o = s.sub.wait_options();
  py::dict d;
  d["spin"] = std::chrono::duration<double>(o.spin).count();
  d["min_interval"] = std::chrono::duration<double>(o.min_interval).count();
  return d;
}

py::object wake_group(const PySubscriber& self) {
  const std::shared_ptr<GroupState> g = self.state->group.lock();
  if (!g || g->owner == nullptr) return py::none();
  return py::reinterpret_borrow<py::object>(g->owner);
}

}  // namespace

void register_subscriber(py::module_& m) {
  auto cls = py::class_<PySubscriber>(m, "Subscriber", R"doc(
A cursor on a topic, made by Topic.subscribe(). It reads batches in place with poll().

To sleep until messages come: wait() (blocking, without the GIL), arm() and fileno() (selectors and
event loops), a WakeGroup (many subscribers, one thread), or ``async for batch in sub`` (asyncio).
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
            if (s.closed) throw_closed_subscriber();
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
Leaves the topic (and its WakeGroup). Releases the outstanding batch first, under the zero-copy
rule: BufferError (and the subscriber stays open) if buffers derived from it are still alive. A
wait() in another thread raises Closed; fileno() becomes readable, so that a selector or event loop
watching it wakes up and finds Closed. Idempotent.
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

  // ---- wake-ups ------------------------------------------------------------------------------
  cls.def("arm", &arm, R"doc(
Asks to be woken: False when matching messages are waiting already (poll them), True
when fileno() becomes readable at the next matching publish (once: arm again after
polling).

Messages the tag mask skips are consumed. Releases the outstanding batch first, under
the zero-copy rule (BufferError while buffers derived from it are alive). On a closed
topic: False while unread messages remain, then raises Closed. Never blocks.
)doc")
      .def("wait", &wait, py::arg("timeout") = py::none(), R"doc(
Blocks until pushed or until ``timeout`` seconds pass (None: no timeout), without
the GIL.

True when woken by a matching publish, or at once when matching messages are waiting;
False on timeout. After the topic (or hub) is closed: True while unread messages
remain, then raises Closed. Raises Closed when the subscriber is closed, also by another
thread while this one waits: the wait runs in slices of at most 50 ms and looks for that
between two slices. Releases the outstanding batch first, under the zero-copy rule.
Honours set_wait_options(). Raises Error for a member of a WakeGroup (wait on the
group), ValueError for a negative timeout.
)doc")
      .def("fileno", &fileno, R"doc(
The eventfd that wakes this subscriber, for selectors and event loops.

It becomes readable once after arm() returned True and a matching message was
published (then poll(), which drains it, and arm() again). Readiness is a hint; poll()
is the truth. For a member of a WakeGroup, the group's eventfd. The number stays valid
while the subscriber object lives; close() makes it readable.
)doc")
      .def("set_wait_options", &set_wait_options, py::kw_only(), py::arg("spin") = 0.0,
           py::arg("min_interval") = 0.0, R"doc(
Client-side control of wait(), in seconds. spin: wait() first checks for messages this long
(without the GIL) before it parks: lower latency when messages come fast, a busy core meanwhile.
min_interval: at least this long between two wake-ups wait() returns; pushes inside it are
coalesced into one (rate limiting). 0 turns either off.
)doc")
      .def_property_readonly("wait_options", &wait_options,
                             "The options of set_wait_options(): {\"spin\": s, \"min_interval\": s}.")
      .def_property_readonly("wake_group", &wake_group,
                             "The WakeGroup this subscriber belongs to, or None.");
}

}  // namespace pushpoll::python

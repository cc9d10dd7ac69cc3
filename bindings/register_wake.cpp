// pushpoll.WakeGroup, and what the wake-up bindings share: timeouts, the subscriber's eventfd.
//
// A C++ WakeGroup has one owner at a time and points at the C++ cores of its members. Here the
// GroupState mutex serializes its users, and the group keeps its members (SubState and the Python
// Subscriber object) alive while they are in it. group.wait() arms members, which changes their
// C++ state, so it holds every member's mutex too, in the lock order of common.hpp; like
// Subscriber.wait() it waits in slices of kWaitSlice and drops every lock between two.
#include <pybind11/stl.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "common.hpp"

namespace pushpoll::python {

// ---- shared helpers -----------------------------------------------------------------------------

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

void OwnedFd::dup_of(int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    throw Error(std::string("pushpoll: cannot duplicate the subscriber's eventfd: ") +
                std::strerror(errno));
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = copy;
}

void OwnedFd::signal() const noexcept {
  if (fd_ >= 0) (void)::eventfd_write(fd_, 1);
}

std::chrono::nanoseconds from_seconds(double seconds) {
  seconds = std::clamp(seconds, -kMaxSeconds, kMaxSeconds);
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(seconds * 1e9)));
}

std::chrono::nanoseconds wait_timeout(const std::optional<double>& seconds) {
  if (!seconds) return std::chrono::nanoseconds(-1);
  const double s = *seconds;
  if (std::isnan(s)) throw py::value_error("pushpoll: timeout is NaN");
  if (s < 0) throw py::value_error("pushpoll: timeout must not be negative (None waits forever)");
  if (s >= kMaxSeconds) return std::chrono::nanoseconds(-1);
  return from_seconds(s);
}

std::chrono::nanoseconds duration_option(const char* what, double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds) || seconds > kMaxSeconds) {
    throw py::value_error(std::string("pushpoll: ") + what +
                          " must be a finite number of seconds >= 0");
  }
  return from_seconds(seconds);
}

GroupState::Member leave_group(GroupState& g, SubState& s) {
  g.group.remove(s.sub);
  GroupState::Member m = std::move(g.members[s.group_id]);
  g.members[s.group_id] = GroupState::Member{};
  s.group.reset();
  s.group_id = 0;
  return m;
}

namespace {

[[noreturn]] void throw_closed_group() { throw Closed("pushpoll: the wake group is closed"); }

// Takes every member out and closes the group: fileno() becomes readable (an event loop watching
// it wakes and finds Closed); the eventfd itself is closed with the C++ group, when the last
// reference to the state is gone. GLock and SLock: StateLock, or ReentrantLock in deallocation.
template <class GLock, class SLock>
void close_group(GroupState& g) {
  std::vector<GroupState::Member> dropped;  // dropped after the locks
  {
    GLock lock(g);
    if (g.closed) return;
    for (std::size_t id = 0; id < g.members.size(); ++id) {
      if (!g.members[id].state) continue;
      const std::shared_ptr<SubState> member = g.members[id].state;
      SLock member_lock(*member);
      dropped.push_back(leave_group(g, *member));
    }
    g.closed = true;
    g.owner = nullptr;
    (void)::eventfd_write(g.group.fd(), 1);
  }
}

// The members' states in id order: a snapshot that keeps them alive once the group lock (or the
// GIL, which guards the members list) is let go.
std::vector<std::shared_ptr<SubState>> member_states(const GroupState& g) {
  std::vector<std::shared_ptr<SubState>> states;
  for (const auto& m : g.members) {
    if (m.state) states.push_back(m.state);
  }
  return states;
}

std::size_t member_count(const GroupState& g) {
  return static_cast<std::size_t>(
      std::count_if(g.members.begin(), g.members.end(),
                    [](const GroupState::Member& member) { return member.state != nullptr; }));
}

GroupState& open_group(const PyWakeGroup& self) {
  if (self.state->closed) throw_closed_group();
  return *self.state;
}

std::uint32_t add(const py::object& self, const py::object& subscriber) {
  auto& pg = self.cast<PyWakeGroup&>();
  if (!py::isinstance<PySubscriber>(subscriber)) {
    throw py::type_error("pushpoll: WakeGroup.add() takes a Subscriber");
  }
  const std::shared_ptr<SubState> s_keep = subscriber.cast<PySubscriber&>().state;
  const std::shared_ptr<GroupState> g_keep = pg.state;
  GroupState& g = open_group(pg);
  SubState& s = *s_keep;
  if (s.closed) throw_closed_subscriber();
  if (s.hub != g.hub) throw Error("pushpoll: a wake group takes subscribers of its own hub only");
  GroupLock group_lock(g);
  if (g.closed) throw_closed_group();
  SubLock lock(s);
  if (s.closed) throw_closed_subscriber();
  if (const auto other = s.group.lock()) {
    throw Error(other == g_keep ? "pushpoll: the subscriber is in this wake group already"
                                : "pushpoll: the subscriber is in another wake group");
  }
  const std::uint32_t id = g.group.add(s.sub);
  if (g.members.size() <= id) g.members.resize(id + 1);
  g.members[id] = GroupState::Member{subscriber, s_keep};
  s.group = g_keep;
  s.group_id = id;
  g.owner = self.ptr();
  return id;
}

void remove(const PyWakeGroup& self, PySubscriber& subscriber) {
  const std::shared_ptr<GroupState> g_keep = self.state;
  const std::shared_ptr<SubState> s_keep = subscriber.state;
  GroupState& g = *g_keep;
  SubState& s = *s_keep;
  GroupState::Member dropped;  // dropped after the locks
  if (g.closed || s.group.lock() != g_keep) return;
  GroupLock group_lock(g);
  SubLock lock(s);
  if (s.group.lock() != g_keep) return;  // left meanwhile
  dropped = leave_group(g, s);
}

std::vector<std::uint32_t> wait(const PyWakeGroup& self, std::optional<double> timeout_seconds) {
  const std::shared_ptr<GroupState> keep = self.state;
  GroupState& g = *keep;
  using clock = Deadline::clock;
  const Deadline deadline(timeout_seconds);
  std::vector<std::uint32_t> ids;
  for (bool first = true;; first = false) {
    if (g.closed) throw_closed_group();
    {
      GroupLock group_lock(g);
      if (g.closed) throw_closed_group();
      // Every member's lock, in id order: the group arms them. Membership cannot change while the
      // group lock is held (add, remove and Subscriber.close() take it first).
      const auto members = member_states(g);  // declared before the locks: outlives them
      std::vector<std::unique_ptr<SubLock>> locks;
      locks.reserve(members.size());
      for (const auto& m : members) locks.push_back(std::make_unique<SubLock>(*m));
      for (const auto& m : members) {
        if (first) {
          // Arming a member releases its outstanding batch: under the zero-copy rule.
          if (!release_outstanding(*m)) throw py::error_already_set();
        } else if (m->pin != nullptr) {
          // Another thread polled it between two slices and holds its batch: report it.
          ids.push_back(m->group_id);
        }
      }
      if (ids.empty()) {
        const std::chrono::nanoseconds slice = deadline.slice(clock::now());
        if (members.empty() && deadline.at() == clock::time_point::max()) {
          throw Error("pushpoll: wait() without a timeout on a wake group with no members: nothing could wake it");
        }
        // A member whose topic is closed and fully read is never reported; once every member is,
        // the C++ group raises Closed (as a single subscriber's wait() does).
        NoGil nogil;
        const auto ready = g.group.wait(slice);
        ids.assign(ready.begin(), ready.end());
      }
    }
    if (!ids.empty()) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      return ids;
    }
    if (deadline.passed(clock::now())) return ids;
    check_signals();  // between two slices: Ctrl-C raises KeyboardInterrupt within one slice
    // Copied first: yielding releases the GIL, and with it the members list.
    const auto members = member_states(g);
    yield_to_queued(g);
    for (const auto& m : members) yield_to_queued(*m);
  }
}

void close(const PyWakeGroup& self) { close_group<GroupLock, SubLock>(*self.state); }

std::vector<std::uint32_t> ready(const PyWakeGroup& self) {
  const std::shared_ptr<GroupState> keep = self.state;
  GroupState& g = open_group(self);
  GroupLock lock(g);
  if (g.closed) throw_closed_group();
  const auto ids = g.group.ready();
  return {ids.begin(), ids.end()};
}

}  // namespace

PyWakeGroup::~PyWakeGroup() {
  if (!state) return;
  try {
    // Deallocation may run in a thread that holds one of these locks further up its stack (the
    // garbage collector runs at allocations): take them only if another thread holds them.
    close_group<ReentrantLock<GroupState>, ReentrantLock<SubState>>(*state);
  } catch (...) {
    // Nothing above throws once the locks are held; a destructor must not either.
  }
}

void register_wake(py::module_& m) {
  py::class_<PyWakeGroup>(m, "WakeGroup", R"doc(
Subscribers served by one thread (or one event loop) share one eventfd: the notifier
writes each distinct eventfd once per round, so waking many parked subscribers costs one
write per group.

    group = pushpoll.WakeGroup(hub)
    ids = [group.add(s) for s in subs]          # 0, 1, 2, ...
    for i in group.wait(timeout=1.0):           # the members pushed (or with messages)
        with group[i].poll() as batch: ...

Members are subscribers of the same hub (or, with a Remote, of that connection's topics); the
group keeps them alive while they are in it.
A member is woken through the group only: its wait() raises Error, its fileno() is the
group's. Closing a member takes it out of the group. Safe to use from several threads
(calls are serialized), though one serving thread is the intended use. A context manager
that closes the group on exit; ``async for ids in group`` serves it from asyncio.
)doc")
      .def(py::init([](const PyHub& hub) {
             if (hub.closed) throw Closed("pushpoll: the hub is closed");
             return PyWakeGroup(std::make_shared<GroupState>(hub.state));
           }),
           py::arg("hub"))
      .def(py::init([](const PyRemote& remote) { return PyWakeGroup(std::make_shared<GroupState>(remote.state)); }),
           py::arg("hub"))
      .def("add", &add, py::arg("subscriber"), R"doc(
Adds a subscriber of the group's hub; returns its id in the group (0, 1, 2, ...; ids of removed
members are reused). Raises Error if it is in a group already, Closed if it or the group is closed.
)doc")
      .def("remove", &remove, py::arg("subscriber"), R"doc(
Takes a subscriber out of the group (it gets its own eventfd back). A subscriber that is not a
member is ignored.
)doc")
      .def("wait", &wait, py::arg("timeout") = py::none(), R"doc(
Arms every member; returns at once the sorted ids of members with unread matching messages, if
any; otherwise blocks, without the GIL, until pushed (returns the ids pushed) or until ``timeout``
seconds pass (returns []). None: no timeout. Releases the members' outstanding batches first,
under the zero-copy rule (BufferError while buffers derived from one are alive).
A member whose topic is closed is reported while it has unread messages (also ones its tags skip:
a poll moves past them), and never once it is fully read; when every member is so, raises Closed
(as a single subscriber's wait() does). Raises Closed when the group is closed, also by another
thread while this one waits (the wait runs in slices of at most 50 ms). Error for a wait without
timeout on a group with no members.
)doc")
      .def("ready", &ready, R"doc(
After fileno() became readable in an external event loop: drains it and returns the sorted ids of
the members pushed. Members are armed by wait() (``wait(0)`` arms them without blocking) or by
their own arm().
)doc")
      .def(
          "fileno",
          [](const PyWakeGroup& self) { return open_group(self).group.fd(); },
          "The group's eventfd, for selectors and event loops (then call ready()). Valid while the "
          "group object lives; close() makes it readable.")
      .def("close", &close,
           "Takes every member out and closes the group: its methods raise Closed. Idempotent.")
      .def_property_readonly(
          "closed", [](const PyWakeGroup& self) { return self.state->closed; }, "True after close().")
      .def(
          "__len__",
          [](const PyWakeGroup& self) { return member_count(*self.state); },
          "The number of members.")
      .def(
          "__getitem__",
          [](const PyWakeGroup& self, std::uint32_t id) {
            const auto& members = self.state->members;
            if (id >= members.size() || !members[id].state) {
              throw py::key_error("pushpoll: no member with id " + std::to_string(id));
            }
            return members[id].object;
          },
          py::arg("id"), "The member Subscriber with this id; KeyError if none.")
      .def(
          "__iter__",
          [](const PyWakeGroup& self) {
            py::list ids;
            const auto& members = self.state->members;
            for (std::size_t id = 0; id < members.size(); ++id) {
              if (members[id].state) ids.append(id);
            }
            return py::iter(ids);
          },
          "The ids of the members, in order (a snapshot).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](const PyWakeGroup& self, const py::args&) { close(self); })
      .def("__repr__", [](const PyWakeGroup& self) {
        const GroupState& g = *self.state;
        if (g.closed) return std::string("<pushpoll.WakeGroup closed>");
        return "<pushpoll.WakeGroup members=" + std::to_string(member_count(g)) +
               " fd=" + std::to_string(g.group.fd()) + ">";
      });
}

}  // namespace pushpoll::python
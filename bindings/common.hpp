// bindings/common.hpp — what the register_*.cpp files share: the lifetime-owning states behind the
// Python objects, the GIL and lock helpers, argument parsing for the fast-call entry points, and
// the error translation.
//
// Ownership (C++ lifetimes are the caller's job; in Python any order of close() and garbage
// collection must be safe):
//
//   Hub ─────────────┐
//   Topic ───────────┼──> shared_ptr<HubState>    the C++ Hub dies with the last of them
//   Subscriber ──────┴──> shared_ptr<SubState> ──> shared_ptr<HubState>
//   Batch ──> BatchMemory ──> shared_ptr<SubState>  a Batch keeps its subscriber subscribed
//   Message ──> Batch;  memoryview ──> BatchMemory  a view keeps its batch's memory mapped
//   WakeGroup ──> shared_ptr<GroupState> ──> the member Subscriber objects, and shared_ptr<HubState>
//   SubState ··> weak_ptr<GroupState>               a member finds its group, never keeps it alive
//
// No reference cycles: a Batch holds the views it handed out, and they hold BatchMemory, never the
// Batch. register_batch.cpp states the zero-copy rule built on this.
//
// Threads: every object is used with the GIL held. The GIL is released only around waits and large
// copies (see kGilFreeBytes), never while Python objects are touched.
//
// Lock order: a GroupState's mutex before the mutex of any SubState; SubState mutexes of one group
// in member-id order. A subscriber belongs to at most one group, so no cycle can form. Blocking
// waits run in slices (kWaitSlice) and drop every lock between two slices, so close() and the other
// methods get in within one slice (see register_subscriber.cpp, "Waiting").
#pragma once
#include <pybind11/pybind11.h>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "pushpoll/pushpoll.hpp"
#include "pushpoll/remote.hpp"

namespace pushpoll::python {

namespace py = pybind11;

/// Payloads larger than this are copied into the ring without the GIL.
inline constexpr std::size_t kGilFreeBytes = 64 * 1024;

/// Longest C++ wait a blocking Python wait makes before it drops its locks and looks again: the
/// bound on how long close() (or any other call on the same object) queues behind a waiter. A
/// slice that times out re-arms once (one heavy barrier): about 20 re-arms per second per waiter.
inline constexpr std::chrono::milliseconds kWaitSlice{50};

/// A file descriptor owned by a Python-side state, closed with it.
class OwnedFd {
 public:
  OwnedFd() = default;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd();
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// Owns a duplicate (close-on-exec) of `fd`. Throws Error when out of descriptors.
  void dup_of(int fd);
  /// Makes the eventfd readable: wakes whoever selects on it.
  void signal() const noexcept;

 private:
  int fd_ = -1;
};

struct GroupState;

/// Shared by every Python object that belongs to one hub: the C++ Hub is destroyed when the last of
/// them is, so Hub.close() only closes (Subscriber and Claim values must not outlive a C++ Hub).
/// For topics of another process (pushpoll.connect()), the connection instead: `remote`.
struct HubState {
  explicit HubState(HubOptions options) : local(std::in_place, std::move(options)) {}
  explicit HubState(Remote r) : remote(std::move(r)) {}
  /// The hub; only for a state made from HubOptions (PyHub's).
  [[nodiscard]] Hub& hub() noexcept { return *local; }
  std::optional<Hub> local;
  std::optional<Remote> remote;
};

struct PinObject;

/// One Python Subscriber: the C++ subscriber and its outstanding batch, shared with the Python
/// objects of that batch. Members are destroyed in reverse order: batch, subscriber, then hub.
struct SubState {
  SubState(std::shared_ptr<HubState> h, Topic* t, Subscriber s)
      : hub(std::move(h)), topic(t), sub(std::move(s)) {}
  SubState(const SubState&) = delete;
  SubState& operator=(const SubState&) = delete;

  std::shared_ptr<HubState> hub;
  Topic* topic;
  // Guards `sub` and `batch` (a C++ Subscriber has one owner at a time). Held with the GIL, so only
  // a thread that blocks without the GIL can make another wait for it; see SubLock.
  std::mutex mutex;
  // Threads blocked on `mutex`: a waiter lets them in between two slices (see kWaitSlice).
  std::atomic<int> queued{0};
  // A duplicate of the subscriber's eventfd, made by fileno(): the number handed to selectors and
  // event loops stays valid (and is not reused) until this state is gone, although the C++
  // subscriber closes its own descriptor when it unsubscribes. close() makes it readable.
  // Declared before `sub`: destroyed after it.
  OwnedFd fd;
  Subscriber sub;
  Batch batch;  // the batch polled last; released before the next poll
  // The rest is guarded by the GIL.
  bool held = false;         // `mutex` is held through a SubLock (possibly by a thread without the GIL)
  std::thread::id holder{};  // the thread holding it, while held
  PinObject* pin = nullptr;  // Python side of `batch` while it is outstanding (borrowed)
  bool closed = false;
  std::uint64_t final_cursor = 0;  // cursor at close()
  // Wake-ups: the wait options are the C++ subscriber's (see wait() in register_subscriber.cpp).
  std::weak_ptr<GroupState> group;  // while a member of a WakeGroup
  std::uint32_t group_id = 0;
};

/// One Python WakeGroup: the C++ group and its members. A member's SubState is kept alive (and its
/// Python Subscriber object, so that the ids the group returns stay meaningful) while it is in the
/// group. Members are declared before `group`: ~WakeGroup touches their C++ subscribers.
struct GroupState {
  struct Member {
    py::object object;  // the Python Subscriber; touched with the GIL only
    std::shared_ptr<SubState> state;
  };
  explicit GroupState(std::shared_ptr<HubState> h)
      : hub(std::move(h)), group(hub->local ? hub->local->notifier() : hub->remote->notifier()) {}
  GroupState(const GroupState&) = delete;
  GroupState& operator=(const GroupState&) = delete;

  std::shared_ptr<HubState> hub;
  std::vector<Member> members;  // by id; empty entries for free ids (GIL and `mutex`)
  // Guards `group` (one owner at a time) and `members`; see the lock order above.
  std::mutex mutex;
  std::atomic<int> queued{0};
  WakeGroup group;
  // The rest is guarded by the GIL.
  bool held = false;
  std::thread::id holder{};
  bool closed = false;
  PyObject* owner = nullptr;  // the Python WakeGroup (borrowed), while it has members
};

/// The Python Hub. Hub.close() closes the C++ hub; it is destroyed with the last shared owner.
struct PyHub {
  std::shared_ptr<HubState> state;
  bool closed = false;
};

/// The Python Topic. A C++ Topic lives as long as its hub.
struct PyTopic {
  std::shared_ptr<HubState> hub;
  Topic* topic;
};

/// The Python Server (Hub.serve()). Declared hub first: the server stops before its hub can go.
struct PyServer {
  std::shared_ptr<HubState> hub;
  Server server;
  bool closed = false;
};

/// The Python Remote (pushpoll.connect()): the connection, shared with the topics and subscribers
/// it hands out.
struct PyRemote {
  std::shared_ptr<HubState> state;
};

/// Hub.serve() (register_remote.cpp).
PyServer serve_hub(PyHub& self, const std::string& path, const std::vector<uid_t>& subscriber_uids,
                   const std::vector<gid_t>& subscriber_gids, const std::vector<uid_t>& publisher_uids,
                   const std::vector<gid_t>& publisher_gids);

/// The Python Subscriber.
struct PySubscriber {
  std::shared_ptr<SubState> state;
};

/// The Python WakeGroup. Destroying it takes the members out of the group.
struct PyWakeGroup {
  explicit PyWakeGroup(std::shared_ptr<GroupState> s) : state(std::move(s)) {}
  PyWakeGroup(PyWakeGroup&&) noexcept = default;
  PyWakeGroup(const PyWakeGroup&) = delete;
  PyWakeGroup& operator=(const PyWakeGroup&) = delete;
  ~PyWakeGroup();
  std::shared_ptr<GroupState> state;
};

/// The exception pthread_exit() unwinds a thread with. A thread that takes the GIL back while the
/// interpreter finalizes (a daemon thread blocked in a wait when the program ends) is ended that
/// way: it must pass through every catch-all, rethrown, and through no noexcept function.
#if defined(__GLIBCXX__)
using ForcedUnwind = abi::__forced_unwind;
#else
struct ForcedUnwind {};  // never thrown
#endif

/// Releases the GIL for its scope. Nothing Python may be touched inside, but check_signals().
class NoGil {
 public:
  NoGil() noexcept : state_(PyEval_SaveThread()) {}
  // noexcept(false): taking the GIL back may end the thread (see ForcedUnwind).
  ~NoGil() noexcept(false) {
    if (!held_) PyEval_RestoreThread(state_);
  }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;

  /// Takes the GIL for a moment to run Python's signal handlers (Ctrl-C raises KeyboardInterrupt
  /// there). True when one raised: the Python error is set; leave the wait and report it.
  bool check_signals() {
    held_ = true;  // if taking it ends the thread, the destructor must not take it again
    PyEval_RestoreThread(state_);
    const bool raised = PyErr_CheckSignals() != 0;
    state_ = PyEval_SaveThread();
    held_ = false;
    return raised;
  }

 private:
  PyThreadState* state_;
  bool held_ = false;
};

/// With the GIL held, between two slices of a wait: runs Python's signal handlers; throws
/// error_already_set when one raised (Ctrl-C: KeyboardInterrupt), as time.sleep() does.
inline void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

/// Takes SubState::mutex (or GroupState::mutex) with the GIL held. A thread holds the mutex for long
/// only while it blocks without the GIL, so waiting for it happens without the GIL too: no
/// lock-order inversion. `held` tells code that runs from deallocations (which may not block, and
/// may run in the thread that holds the lock) to leave the batch for the lock holder; `queued`
/// counts the threads waiting, which a slicing waiter lets in (see yield_to_queued()).
template <class State>
class StateLock {
 public:
  explicit StateLock(State& s) : state_(s), lock_(s.mutex, std::try_to_lock) {
    if (!lock_.owns_lock()) {
      // Relaxed: a hint for the waiter's courtesy loop; the mutex orders everything else.
      state_.queued.fetch_add(1, std::memory_order_relaxed);
      {
        NoGil nogil;
        lock_.lock();
        state_.queued.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as the add above
      }
    }
    state_.held = true;
    state_.holder = std::this_thread::get_id();
  }
  ~StateLock() {
    state_.held = false;
    state_.holder = std::thread::id{};
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  State& state_;
  std::unique_lock<std::mutex> lock_;
};

using SubLock = StateLock<SubState>;
using GroupLock = StateLock<GroupState>;

/// Like StateLock, for deallocation paths: when this very thread holds the lock further up its
/// stack (a deallocation run by the garbage collector at an allocation inside a locked section, where
/// no C++ call on the object is in progress), it proceeds without taking it again.
template <class State>
class ReentrantLock {
 public:
  explicit ReentrantLock(State& s) {
    if (!(s.held && s.holder == std::this_thread::get_id())) lock_.emplace(s);
  }

 private:
  std::optional<StateLock<State>> lock_;
};

/// Between two wait slices, with no lock held: lets the threads queued on `s` take it first. Short
/// sleeps rather than yields: a queued thread may itself wait behind another holder for a slice.
template <class State>
void yield_to_queued(const State& s) {
  // Relaxed: see StateLock.
  while (s.queued.load(std::memory_order_relaxed) > 0) {
    NoGil nogil;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

/// The longest duration a Python number of seconds stands for: about 30 years. Longer ones are
/// capped (or refused, or mean forever: each caller says), so that nanoseconds never overflow.
inline constexpr double kMaxSeconds = 1e9;

/// Seconds (not NaN: the caller rejects it with its own message) as nanoseconds, rounded, capped
/// to +-kMaxSeconds.
std::chrono::nanoseconds from_seconds(double seconds);

/// A Python timeout in seconds (None: forever) as the C++ wait takes it: negative means forever.
/// Raises ValueError for a negative or NaN timeout; math.inf (or over kMaxSeconds) is forever.
std::chrono::nanoseconds wait_timeout(const std::optional<double>& seconds);

/// A duration in seconds (>= 0, finite) for an option called `what`; ValueError otherwise.
std::chrono::nanoseconds duration_option(const char* what, double seconds);

/// When a blocking Python wait gives up, and how long its next C++ wait (a slice) may be.
class Deadline {
 public:
  using clock = std::chrono::steady_clock;
  /// A Python timeout, as wait_timeout() takes it (ValueError for a negative or NaN one).
  explicit Deadline(const std::optional<double>& timeout_seconds) {
    const std::chrono::nanoseconds timeout = wait_timeout(timeout_seconds);
    forever_ = timeout.count() < 0;
    at_ = forever_ ? clock::time_point::max() : clock::now() + timeout;
  }
  /// The deadline; time_point::max() for a wait without one.
  [[nodiscard]] clock::time_point at() const noexcept { return at_; }
  [[nodiscard]] bool passed(clock::time_point now) const noexcept { return !forever_ && now >= at_; }
  /// The C++ wait to make at `now`: kWaitSlice, or what is left of the timeout when that is less.
  [[nodiscard]] std::chrono::nanoseconds slice(clock::time_point now) const noexcept {
    if (forever_) return kWaitSlice;  // at_ - now would overflow
    return std::clamp<std::chrono::nanoseconds>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(at_ - now), std::chrono::nanoseconds(0),
        kWaitSlice);
  }

 private:
  bool forever_ = false;
  clock::time_point at_;
};

/// A Python object's bytes (PyBUF_SIMPLE: contiguous, any item type), held for the scope. Never
/// moved: some exporters expect the Py_buffer they filled in to come back to them.
class Buffer {
 public:
  explicit Buffer(PyObject* obj) {
    if (PyObject_GetBuffer(obj, &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
  }
  Buffer(Buffer&&) = delete;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer& operator=(Buffer&&) = delete;
  ~Buffer() {
    if (view_.obj != nullptr) PyBuffer_Release(&view_);
  }
  [[nodiscard]] std::span<const std::byte> span() const noexcept {
    return {static_cast<const std::byte*>(view_.buf), static_cast<std::size_t>(view_.len)};
  }
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(view_.len); }

 private:
  Py_buffer view_;
};

// ---- errors (register_errors.cpp) ----

/// Sets the Python exception for the C++ exception in flight. Call it inside a catch block; returns
/// nullptr so that a fast-call entry point can `return set_error();`.
PyObject* set_error() noexcept;

/// What a method of a closed Subscriber raises.
[[noreturn]] inline void throw_closed_subscriber() {
  throw Closed("pushpoll: the subscriber is closed");
}

// ---- fast-call argument parsing ----

/// Sorts the arguments of a METH_FASTCALL | METH_KEYWORDS call into `out` (one entry per name,
/// nullptr when absent). The first `required` names must be given. Returns false with TypeError set.
bool parse_args(const char* function, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                std::initializer_list<const char*> names, std::size_t required, PyObject** out);

/// Adds a METH_FASTCALL | METH_KEYWORDS method to a pybind11 class. `def` must outlive the module.
void add_fast_method(py::handle cls, PyMethodDef* def);

// ---- batches (register_batch.cpp) ----

/// Polls `s` into a new Python Batch; releases the outstanding batch first, under the zero-copy
/// rule. Returns nullptr with the Python error set.
PyObject* poll_batch(const std::shared_ptr<SubState>& s, std::size_t max_messages);
/// Releases the outstanding batch of `s` under the zero-copy rule. The caller holds the GIL and
/// s.mutex. Returns false with BufferError set when buffers derived from it are still alive.
bool release_outstanding(SubState& s);

// ---- wake groups (register_wake.cpp) ----

/// Takes `s` out of its group `g`. The caller holds the GIL, g.mutex and s.mutex (in that order).
/// Returns the group's reference to the member: the caller drops it after unlocking (dropping it
/// may free the subscriber, whose mutex must not be held then).
GroupState::Member leave_group(GroupState& g, SubState& s);

// ---- registration ----
void register_errors(py::module_& m);
void register_hub(py::module_& m);
void register_topic(py::module_& m);
void register_subscriber(py::module_& m);
void register_batch(py::module_& m);
void register_wake(py::module_& m);
void register_remote(py::module_& m);

}  // namespace pushpoll::python

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
//
// No reference cycles: a Batch holds the views it handed out, and they hold BatchMemory, never the
// Batch. register_batch.cpp states the zero-copy rule built on this.
//
// Threads: every object is used with the GIL held. The GIL is released only around waits and large
// copies (see kGilFreeBytes), never while Python objects are touched.
#pragma once
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "pushpoll/pushpoll.hpp"

namespace pushpoll::python {

namespace py = pybind11;

/// Payloads larger than this are copied into the ring without the GIL.
inline constexpr std::size_t kGilFreeBytes = 64 * 1024;

/// Shared by every Python object that belongs to one hub: the C++ Hub is destroyed when the last of
/// them is, so Hub.close() only closes (Subscriber and Claim values must not outlive a C++ Hub).
struct HubState {
  explicit HubState(HubOptions options) : hub(std::move(options)) {}
  Hub hub;
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
  Subscriber sub;
  Batch batch;  // the batch polled last; released before the next poll
  // The rest is guarded by the GIL.
  bool held = false;         // `mutex` is held through a SubLock (possibly by a thread without the GIL)
  PinObject* pin = nullptr;  // Python side of `batch` while it is outstanding (borrowed)
  bool closed = false;
  std::uint64_t final_cursor = 0;  // cursor at close()
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

/// The Python Subscriber.
struct PySubscriber {
  std::shared_ptr<SubState> state;
};

/// Releases the GIL for its scope. Nothing Python may be touched inside.
class NoGil {
 public:
  NoGil() noexcept : state_(PyEval_SaveThread()) {}
  ~NoGil() { PyEval_RestoreThread(state_); }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;

 private:
  PyThreadState* state_;
};

/// Takes SubState::mutex with the GIL held. A thread holds the mutex for long only while it blocks
/// without the GIL, so waiting for it happens without the GIL too: no lock-order inversion.
/// SubState::held tells code that runs from deallocations (which may not block, and may run in the
/// thread that holds the lock) to leave the batch for the lock holder.
class SubLock {
 public:
  explicit SubLock(SubState& s) : state_(s), lock_(s.mutex, std::try_to_lock) {
    if (!lock_.owns_lock()) {
      NoGil nogil;
      lock_.lock();
    }
    state_.held = true;
  }
  ~SubLock() { state_.held = false; }
  SubLock(const SubLock&) = delete;
  SubLock& operator=(const SubLock&) = delete;

 private:
  SubState& state_;
  std::unique_lock<std::mutex> lock_;
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

// ---- registration ----
void register_errors(py::module_& m);
void register_hub(py::module_& m);
void register_topic(py::module_& m);
void register_subscriber(py::module_& m);
void register_batch(py::module_& m);

}  // namespace pushpoll::python

// pushpoll.Batch and pushpoll.Message: zero-copy views of the ring, and the rule that keeps them safe.
//
// The zero-copy rule. Every view of a batch's bytes (Message.data, Batch.as_arrays().data) is a
// read-only memoryview exported by the batch's BatchMemory object, which counts live exports.
// Releasing the batch (release(), the end of a `with` block, the next poll(), Subscriber.close(),
// or garbage collection of the Batch) first releases every memoryview the batch handed out, so that
// using one afterwards raises ValueError. Buffers derived from those views (a numpy array, a
// memoryview slice, a memoryview of a memoryview) cannot be released that way: while any is alive,
// releasing raises BufferError and the batch stays held (as mmap.close() does). Garbage collection
// cannot raise: the batch then stays held until the last derived buffer is gone, or until the
// subscriber polls again (which raises BufferError while any is alive).
//
// These types are written against the C API, not pybind11: they run once per message, where
// pybind11's per-call overhead would cost more than the work. They are heap types, so instances
// keep a reference to their type.
#include <algorithm>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "common.hpp"

namespace pushpoll::python {

struct BatchObject;

/// Exporter of a batch's bytes (Python type pushpoll._core.BatchMemory). Memoryviews keep it (and
/// through it the subscriber and hub) alive; it counts them, and keeps the C++ batch held while any
/// is exported: it pins the batch.
struct PinObject {
  PyObject_HEAD
  std::shared_ptr<SubState> sub;  // constructed in place
  BatchObject* owner;             // the Batch object (borrowed); null once it is gone
  Py_ssize_t exports;             // live buffer exports
  const std::byte* pending_ptr;   // what the next export shows: set just before it, under the GIL
  Py_ssize_t pending_len;
  bool pending;
  bool released;  // the C++ batch was released (or there was none): no more exports
  bool intact;    // Batch::release() result
};

struct BatchObject {
  PyObject_HEAD
  PinObject* pin;                // strong
  std::vector<PyObject*> views;  // memoryviews handed out, strong; constructed in place
  std::size_t prune_at;
  Batch::iterator begin;
  std::uint64_t size, gap, first_seq, end_seq, span_bytes;
};

namespace {

struct MessageObject {
  PyObject_HEAD
  BatchObject* batch;  // strong
  PyObject* data;      // the memoryview returned by .data, cached; may be null
  const std::byte* ptr;
  Py_ssize_t len;
  std::uint64_t seq;
  std::uint8_t tag;
  bool aborted;
};

struct IteratorObject {
  PyObject_HEAD
  BatchObject* batch;  // strong
  Batch::iterator it;
};

PyTypeObject* pin_type = nullptr;
PyTypeObject* batch_type = nullptr;
PyTypeObject* message_type = nullptr;
PyTypeObject* iterator_type = nullptr;
PyTypeObject* arrays_type = nullptr;
PyObject* release_name = nullptr;  // "release", interned
PyObject* cast_name = nullptr;     // "cast", interned

constexpr std::size_t kMinPrune = 64;

const char* const kReleasedMessage =
    "pushpoll: the batch was released: its bytes may have been reused (copy them, e.g. "
    "bytes(m.data), before the batch is released)";

// ---- releasing ----------------------------------------------------------------------------------

bool is_released_view(PyObject* view) {
  return (reinterpret_cast<PyMemoryViewObject*>(view)->flags & _Py_MEMORYVIEW_RELEASED) != 0;
}

// Drops our reference to a view we handed out; if someone else still holds it, releases it first so
// that it raises ValueError from now on. A view that cannot be released (it is exported itself)
// keeps its export on the pin, which the caller sees in pin->exports.
void drop_view(PyObject* view) {
  if (Py_REFCNT(view) > 1) {
    PyObject* r = PyObject_CallMethodNoArgs(view, release_name);
    if (r != nullptr) {
      Py_DECREF(r);
    } else {
      PyErr_Clear();
    }
  }
  Py_DECREF(view);
}

void release_views(BatchObject* b) {
  std::vector<PyObject*> views;
  views.swap(b->views);
  for (PyObject* v : views) drop_view(v);
  b->prune_at = kMinPrune;
}

// Releases the C++ batch. Caller holds the GIL and the subscriber's mutex.
void finish_release(PinObject* pin) {
  SubState& s = *pin->sub;
  pin->intact = s.batch.release();
  pin->released = true;
  if (s.pin == pin) s.pin = nullptr;
}

// The zero-copy rule. Caller holds the GIL and the subscriber's mutex.
bool release_pin(PinObject* pin) {
  if (pin->released) return true;
  if (pin->owner != nullptr) release_views(pin->owner);
  if (pin->exports > 0) {
    PyErr_Format(PyExc_BufferError,
                 "pushpoll: cannot release the batch: %zd buffer(s) derived from its messages are "
                 "still alive (a numpy array, a memoryview slice or a memoryview of m.data); copy "
                 "what you need and delete them first",
                 pin->exports);
    return false;
  }
  finish_release(pin);
  return true;
}

// A pin whose Batch object is gone and whose last export just went: release the C++ batch now if
// the subscriber is free; otherwise its next poll() or close() does (see release_outstanding()).
// Called from deallocations: it never blocks.
void release_orphan(PinObject* pin) {
  if (pin->released || pin->owner != nullptr || pin->exports > 0) return;
  SubState& s = *pin->sub;
  if (s.held) return;  // maybe by this very thread: never try_lock a mutex one may own
  std::unique_lock<std::mutex> lock(s.mutex, std::try_to_lock);
  if (lock.owns_lock()) finish_release(pin);
}

// Keeps the exception being handled (if any) across a deallocation that calls into Python.
class SavedError {
 public:
#if PY_VERSION_HEX >= 0x030C0000
  SavedError() noexcept : exc_(PyErr_GetRaisedException()) {}
  ~SavedError() { PyErr_SetRaisedException(exc_); }
#else
  SavedError() noexcept { PyErr_Fetch(&type_, &exc_, &traceback_); }
  ~SavedError() { PyErr_Restore(type_, exc_, traceback_); }
#endif
  SavedError(const SavedError&) = delete;
  SavedError& operator=(const SavedError&) = delete;

 private:
#if PY_VERSION_HEX < 0x030C0000
  PyObject* type_;
  PyObject* traceback_;
#endif
  PyObject* exc_;
};

// ---- BatchMemory -------------------------------------------------------------------------------

int pin_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* pin = reinterpret_cast<PinObject*>(self);
  if (!pin->pending || pin->released) {
    view->obj = nullptr;
    PyErr_SetString(PyExc_BufferError,
                    "pushpoll: batch memory is viewed through Message.data or Batch.as_arrays()");
    return -1;
  }
  pin->pending = false;
  // Read-only: PyBuffer_FillInfo refuses PyBUF_WRITABLE requests with BufferError.
  if (PyBuffer_FillInfo(view, self, const_cast<std::byte*>(pin->pending_ptr), pin->pending_len, 1,
                        flags) != 0) {
    return -1;
  }
  ++pin->exports;
  return 0;
}

void pin_releasebuffer(PyObject* self, Py_buffer*) {
  auto* pin = reinterpret_cast<PinObject*>(self);
  --pin->exports;
  if (pin->exports == 0 && pin->owner == nullptr) release_orphan(pin);
}

void pin_dealloc(PyObject* self) {
  auto* pin = reinterpret_cast<PinObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  if (!pin->released) {
    release_orphan(pin);
    // The subscriber's mutex was busy: the C++ batch stays in SubState and is released by the
    // next poll() or close().
    if (!pin->released && pin->sub->pin == pin) pin->sub->pin = nullptr;
  }
  pin->sub.~shared_ptr<SubState>();
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot pin_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&pin_dealloc)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(&pin_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(&pin_releasebuffer)},
    {Py_tp_doc, const_cast<char*>("The memory of one batch: exports its bytes and counts the exports.")},
    {0, nullptr}};

PyType_Spec pin_spec = {"pushpoll._core.BatchMemory", sizeof(PinObject), 0, Py_TPFLAGS_DEFAULT,
                        pin_slots};

PinObject* new_pin(std::shared_ptr<SubState> sub) {
  auto* pin = reinterpret_cast<PinObject*>(PyType_GenericAlloc(pin_type, 0));
  if (pin == nullptr) return nullptr;
  new (&pin->sub) std::shared_ptr<SubState>(std::move(sub));
  pin->owner = nullptr;
  pin->exports = 0;
  pin->pending_ptr = nullptr;
  pin->pending_len = 0;
  pin->pending = false;
  pin->released = true;
  pin->intact = true;
  return pin;
}

// A read-only memoryview of [ptr, ptr + len), exported by the batch's pin and tracked by the batch.
PyObject* make_view(BatchObject* b, const std::byte* ptr, Py_ssize_t len) {
  // Drop views nobody else holds, so that a long batch does not accumulate them.
  if (b->views.size() >= b->prune_at) {
    std::size_t kept = 0;
    for (PyObject* v : b->views) {
      if (Py_REFCNT(v) == 1) {
        Py_DECREF(v);
      } else {
        b->views[kept++] = v;
      }
    }
    b->views.resize(kept);
    b->prune_at = std::max(kMinPrune, 2 * kept);
  }
  PinObject* pin = b->pin;
  pin->pending = true;
  pin->pending_ptr = ptr;
  pin->pending_len = len;
  PyObject* view = PyMemoryView_FromObject(reinterpret_cast<PyObject*>(pin));
  pin->pending = false;
  if (view == nullptr) return nullptr;
  try {
    b->views.push_back(view);
  } catch (const std::bad_alloc&) {
    Py_DECREF(view);
    return PyErr_NoMemory();
  }
  Py_INCREF(view);
  return view;
}

// ---- Message ------------------------------------------------------------------------------------

void message_dealloc(PyObject* self) {
  auto* m = reinterpret_cast<MessageObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  Py_XDECREF(m->data);
  Py_DECREF(m->batch);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyObject* message_seq(PyObject* self, void*) {
  return PyLong_FromUnsignedLongLong(reinterpret_cast<MessageObject*>(self)->seq);
}

PyObject* message_tag(PyObject* self, void*) {
  return PyLong_FromLong(reinterpret_cast<MessageObject*>(self)->tag);
}

PyObject* message_aborted(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<MessageObject*>(self)->aborted ? 1 : 0);
}

PyObject* message_data(PyObject* self, void*) {
  auto* m = reinterpret_cast<MessageObject*>(self);
  if (m->data != nullptr && !is_released_view(m->data)) {
    Py_INCREF(m->data);
    return m->data;
  }
  if (m->batch->pin->released) {
    PyErr_SetString(PyExc_ValueError, kReleasedMessage);
    return nullptr;
  }
  PyObject* view = make_view(m->batch, m->ptr, m->len);
  if (view == nullptr) return nullptr;
  Py_INCREF(view);
  Py_XSETREF(m->data, view);
  return view;
}

PyObject* message_repr(PyObject* self) {
  auto* m = reinterpret_cast<MessageObject*>(self);
  return PyUnicode_FromFormat("Message(seq=%llu, tag=%d, len=%zd%s)",
                              static_cast<unsigned long long>(m->seq), static_cast<int>(m->tag),
                              m->len, m->aborted ? ", aborted=True" : "");
}

PyGetSetDef message_getset[] = {
    {"seq", &message_seq, nullptr, "Sequence number in the topic (0, 1, 2, ...).", nullptr},
    {"tag", &message_tag, nullptr, "0..63, chosen by the publisher.", nullptr},
    {"aborted", &message_aborted, nullptr,
     "True for a claim dropped without commit: data is empty.", nullptr},
    {"data", &message_data, nullptr,
     "The payload: a read-only memoryview INTO the ring, no copy. Valid until the batch is "
     "released; then it raises ValueError (copy with bytes(m.data) to keep it). "
     "numpy.frombuffer(m.data, ...) shares the memory; such a derived buffer must be deleted "
     "before the batch is released (see Batch).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot message_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&message_dealloc)},
    {Py_tp_getset, message_getset},
    {Py_tp_repr, reinterpret_cast<void*>(&message_repr)},
    {Py_tp_doc, const_cast<char*>(
                    "One message of a batch, read in place: seq, tag, aborted, data. seq, tag and "
                    "aborted stay readable after the batch is released; data does not.")},
    {0, nullptr}};

PyType_Spec message_spec = {"pushpoll.Message", sizeof(MessageObject), 0, Py_TPFLAGS_DEFAULT,
                            message_slots};

// ---- iteration ----------------------------------------------------------------------------------

void iterator_dealloc(PyObject* self) {
  auto* it = reinterpret_cast<IteratorObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  Py_DECREF(it->batch);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyObject* iterator_next(PyObject* self) {
  auto* it = reinterpret_cast<IteratorObject*>(self);
  if (it->it == Batch::iterator{}) return nullptr;  // StopIteration
  BatchObject* b = it->batch;
  if (b->pin->released) {
    PyErr_SetString(PyExc_ValueError, kReleasedMessage);
    return nullptr;
  }
  auto* m = PyObject_New(MessageObject, message_type);
  if (m == nullptr) return nullptr;
  const Message msg = *it->it;
  ++it->it;
  Py_INCREF(b);
  m->batch = b;
  m->data = nullptr;
  m->ptr = msg.data.data();
  m->len = static_cast<Py_ssize_t>(msg.data.size());
  m->seq = msg.seq;
  m->tag = msg.tag;
  m->aborted = msg.aborted;
  return reinterpret_cast<PyObject*>(m);
}

PyType_Slot iterator_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&iterator_dealloc)},
    {Py_tp_iter, reinterpret_cast<void*>(&PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(&iterator_next)},
    {0, nullptr}};

PyType_Spec iterator_spec = {"pushpoll._core.BatchIterator", sizeof(IteratorObject), 0,
                             Py_TPFLAGS_DEFAULT, iterator_slots};

// ---- Batch --------------------------------------------------------------------------------------

void batch_dealloc(PyObject* self) {
  auto* b = reinterpret_cast<BatchObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  {
    SavedError saved;
    release_views(b);
    PinObject* pin = b->pin;
    pin->owner = nullptr;
    release_orphan(pin);  // unless derived buffers are alive, or the subscriber is busy
    Py_DECREF(pin);
  }
  b->views.~vector<PyObject*>();
  type->tp_free(self);
  Py_DECREF(type);
}

BatchObject* new_batch(PinObject* pin) {
  auto* b = reinterpret_cast<BatchObject*>(PyType_GenericAlloc(batch_type, 0));
  if (b == nullptr) return nullptr;
  new (&b->views) std::vector<PyObject*>();
  new (&b->begin) Batch::iterator();
  Py_INCREF(pin);
  b->pin = pin;
  pin->owner = b;
  b->prune_at = kMinPrune;
  b->size = b->gap = b->first_seq = b->end_seq = b->span_bytes = 0;
  return b;
}

PyObject* batch_release(PyObject* self, PyObject*) {
  PinObject* pin = reinterpret_cast<BatchObject*>(self)->pin;
  if (!pin->released) {
    try {
      SubLock lock(*pin->sub);
      if (!release_pin(pin)) return nullptr;
    } catch (const ForcedUnwind&) {
      throw;
    } catch (...) {
      return set_error();
    }
  }
  return PyBool_FromLong(pin->intact ? 1 : 0);
}

PyObject* batch_enter(PyObject* self, PyObject*) {
  Py_INCREF(self);
  return self;
}

PyObject* batch_exit(PyObject* self, PyObject* const*, Py_ssize_t) {
  PyObject* r = batch_release(self, nullptr);
  if (r == nullptr) return nullptr;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

PyObject* batch_iter(PyObject* self) {
  auto* b = reinterpret_cast<BatchObject*>(self);
  auto* it = PyObject_New(IteratorObject, iterator_type);
  if (it == nullptr) return nullptr;
  Py_INCREF(b);
  it->batch = b;
  new (&it->it) Batch::iterator(b->begin);
  return reinterpret_cast<PyObject*>(it);
}

Py_ssize_t batch_len(PyObject* self) {
  return static_cast<Py_ssize_t>(reinterpret_cast<BatchObject*>(self)->size);
}

// A read-only typed memoryview over a copy of `bytes` (format "q", "Q" or "B").
PyObject* typed_view(const void* data, std::size_t bytes, const char* format) {
  PyObject* raw = PyBytes_FromStringAndSize(static_cast<const char*>(data), static_cast<Py_ssize_t>(bytes));
  if (raw == nullptr) return nullptr;
  PyObject* view = PyMemoryView_FromObject(raw);
  Py_DECREF(raw);
  if (view == nullptr) return nullptr;
  PyObject* fmt = PyUnicode_FromString(format);
  PyObject* typed = fmt == nullptr ? nullptr : PyObject_CallMethodOneArg(view, cast_name, fmt);
  Py_XDECREF(fmt);
  Py_DECREF(view);
  return typed;
}

PyObject* batch_as_arrays(PyObject* self, PyObject*) {
  auto* b = reinterpret_cast<BatchObject*>(self);
  if (b->size != 0 && b->pin->released) {
    PyErr_SetString(PyExc_ValueError, kReleasedMessage);
    return nullptr;
  }
  std::vector<Message> messages;
  std::vector<std::int64_t> offsets, lengths;
  std::vector<std::uint64_t> seqs;
  std::vector<std::uint8_t> tags;
  PyObject* data = nullptr;
  try {
    messages.reserve(static_cast<std::size_t>(b->size));
    for (Batch::iterator it = b->begin; it != Batch::iterator{}; ++it) messages.push_back(*it);
    const std::size_t n = messages.size();
    offsets.resize(n);
    lengths.resize(n);
    seqs.resize(n);
    tags.resize(n);
    if (n == 0) {
      static const char empty[1] = {0};
      data = PyMemoryView_FromMemory(const_cast<char*>(empty), 0, PyBUF_READ);
    } else {
      const std::byte* lo = messages[0].data.data();
      const std::byte* hi = lo;
      for (const Message& m : messages) {
        lo = std::min(lo, m.data.data());
        hi = std::max(hi, m.data.data() + m.data.size());
      }
      for (std::size_t i = 0; i < n; ++i) {
        offsets[i] = static_cast<std::int64_t>(messages[i].data.data() - lo);
        lengths[i] = static_cast<std::int64_t>(messages[i].data.size());
        seqs[i] = messages[i].seq;
        tags[i] = messages[i].tag;
      }
      data = make_view(b, lo, static_cast<Py_ssize_t>(hi - lo));
    }
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
  if (data == nullptr) return nullptr;
  PyObject* result = PyStructSequence_New(arrays_type);
  if (result == nullptr) {
    Py_DECREF(data);
    return nullptr;
  }
  PyStructSequence_SetItem(result, 0, data);
  PyObject* columns[4] = {
      typed_view(offsets.data(), offsets.size() * sizeof(std::int64_t), "q"),
      typed_view(lengths.data(), lengths.size() * sizeof(std::int64_t), "q"),
      typed_view(seqs.data(), seqs.size() * sizeof(std::uint64_t), "Q"),
      typed_view(tags.data(), tags.size(), "B")};
  bool failed = false;
  for (Py_ssize_t i = 0; i < 4; ++i) {
    if (columns[i] == nullptr) {
      failed = true;
      Py_INCREF(Py_None);
      columns[i] = Py_None;
    }
    PyStructSequence_SetItem(result, i + 1, columns[i]);
  }
  if (failed) {
    Py_DECREF(result);
    return nullptr;
  }
  return result;
}

PyObject* batch_repr(PyObject* self) {
  auto* b = reinterpret_cast<BatchObject*>(self);
  return PyUnicode_FromFormat("<pushpoll.Batch first_seq=%llu len=%llu gap=%llu%s>",
                              static_cast<unsigned long long>(b->first_seq),
                              static_cast<unsigned long long>(b->size),
                              static_cast<unsigned long long>(b->gap),
                              b->pin->released ? " released" : "");
}

PyObject* batch_u64(std::uint64_t v) { return PyLong_FromUnsignedLongLong(v); }
PyObject* batch_gap(PyObject* self, void*) { return batch_u64(reinterpret_cast<BatchObject*>(self)->gap); }
PyObject* batch_first_seq(PyObject* self, void*) {
  return batch_u64(reinterpret_cast<BatchObject*>(self)->first_seq);
}
PyObject* batch_end_seq(PyObject* self, void*) {
  return batch_u64(reinterpret_cast<BatchObject*>(self)->end_seq);
}
PyObject* batch_span_bytes(PyObject* self, void*) {
  return batch_u64(reinterpret_cast<BatchObject*>(self)->span_bytes);
}
PyObject* batch_released(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<BatchObject*>(self)->pin->released ? 1 : 0);
}
PyObject* batch_intact(PyObject* self, void*) {
  const PinObject* pin = reinterpret_cast<BatchObject*>(self)->pin;
  if (!pin->released) Py_RETURN_NONE;
  return PyBool_FromLong(pin->intact ? 1 : 0);
}

PyMethodDef batch_methods[] = {
    {"release", &batch_release, METH_NOARGS,
     "release($self, /)\n--\n\n"
     "Advances the subscriber's cursor past the batch. Returns False if the batch may have been "
     "overwritten while it was held (overflow=\"overwrite\", or after a detach): do not trust what "
     "was read. Releases every view handed out first (they raise ValueError from then on); raises "
     "BufferError, and the batch stays held, while buffers derived from them are alive. Idempotent."},
    {"as_arrays", &batch_as_arrays, METH_NOARGS,
     "as_arrays($self, /)\n--\n\n"
     "The whole batch at once, for numeric consumers: a BatchArrays (data, offsets, lengths, seqs, "
     "tags). data is one read-only memoryview INTO the ring (no copy) covering every payload of the "
     "batch; message i is data[offsets[i] : offsets[i] + lengths[i]]. When the batch wraps around "
     "the end of the ring, data spans the ring and holds bytes of other messages between: index it "
     "only through offsets and lengths. offsets and lengths are int64 memoryviews, seqs uint64, "
     "tags uint8 (numpy.asarray() takes them without a copy). data follows the zero-copy rule of "
     "Message.data."},
    {"__enter__", &batch_enter, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&batch_exit)),
     METH_FASTCALL, "Releases the batch (see release())."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef batch_getset[] = {
    {"gap", &batch_gap, nullptr,
     "Messages lost just before this batch (lapped in overwrite mode, or detached).",
     nullptr},
    {"first_seq", &batch_first_seq, nullptr,
     "Sequence number of the first message covered (also when its tag was filtered out).", nullptr},
    {"end_seq", &batch_end_seq, nullptr,
     "One past the last message covered: the subscriber's cursor after release.", nullptr},
    {"span_bytes", &batch_span_bytes, nullptr, "Ring bytes covered (framing and padding included).",
     nullptr},
    {"released", &batch_released, nullptr, "True once the batch is released.", nullptr},
    {"intact", &batch_intact, nullptr,
     "None until released; then False if the batch may have been overwritten while held.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot batch_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&batch_dealloc)},
    {Py_tp_iter, reinterpret_cast<void*>(&batch_iter)},
    {Py_sq_length, reinterpret_cast<void*>(&batch_len)},
    {Py_tp_methods, batch_methods},
    {Py_tp_getset, batch_getset},
    {Py_tp_repr, reinterpret_cast<void*>(&batch_repr)},
    {Py_tp_doc, const_cast<char*>(R"doc(
Consecutive messages of one subscriber, read in place (zero-copy). Made by
Subscriber.poll().

Iterate it for Message objects, or take everything at once with as_arrays(). len() counts
the messages that match the subscriber's tags. A context manager: ``with sub.poll() as
batch:`` releases the batch on exit.

The zero-copy rule: views of the batch (Message.data, as_arrays().data) point INTO the ring,
so a batch is held (the cursor does not advance) until it is released: by release(), at the
end of the ``with`` block, by the next poll(), by Subscriber.close(), or when the Batch is
garbage-collected. Releasing releases every view the batch handed out: using one afterwards
raises ValueError. Buffers derived from those views (numpy.frombuffer(m.data), a slice
m.data[2:], memoryview(m.data)) keep the memory in use: while any is alive, releasing raises
BufferError and the batch stays held. Delete them (or copy what you need) first. A Batch
garbage-collected while some are alive stays held until they are gone. In overwrite mode
the bytes may change while held; release() (and then intact) says whether they did.
)doc")},
    {0, nullptr}};

PyType_Spec batch_spec = {"pushpoll.Batch", sizeof(BatchObject), 0, Py_TPFLAGS_DEFAULT, batch_slots};

PyStructSequence_Field arrays_fields[] = {
    {"data", "Read-only memoryview INTO the ring covering every payload of the batch."},
    {"offsets", "int64 (format \"q\"): where message i starts in data."},
    {"lengths", "int64 (format \"q\"): payload bytes of message i."},
    {"seqs", "uint64 (format \"Q\"): sequence number of message i."},
    {"tags", "uint8 (format \"B\"): tag of message i."},
    {nullptr, nullptr}};

PyStructSequence_Desc arrays_desc = {
    "pushpoll.BatchArrays",
    "A batch as arrays (Batch.as_arrays()): message i is data[offsets[i] : offsets[i] + lengths[i]].",
    arrays_fields, static_cast<int>(std::size(arrays_fields) - 1)};  // without the sentinel

PyTypeObject* ready_type(py::module_& m, PyType_Spec* spec, const char* export_name) {
  auto* type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(spec));
  if (type == nullptr) throw py::error_already_set();
  type->tp_new = nullptr;  // made only by pushpoll itself
  if (export_name != nullptr) m.add_object(export_name, py::handle(reinterpret_cast<PyObject*>(type)));
  return type;
}

}  // namespace

PyObject* poll_batch(const std::shared_ptr<SubState>& state, std::size_t max_messages) {
  SubState& s = *state;
  if (s.closed) throw_closed_subscriber();
  // Python objects first: allocating may run the garbage collector, i.e. arbitrary code, which must
  // not run while the subscriber's mutex is held.
  PinObject* pin = new_pin(state);
  if (pin == nullptr) return nullptr;
  BatchObject* b = new_batch(pin);
  Py_DECREF(pin);  // the batch holds it
  if (b == nullptr) return nullptr;
  auto result = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(b));
  {
    SubLock lock(s);
    if (s.closed) throw_closed_subscriber();
    if (!release_outstanding(s)) throw py::error_already_set();
    s.batch = s.sub.poll(max_messages);
    b->size = s.batch.size();
    b->gap = s.batch.gap();
    b->first_seq = s.batch.first_seq();
    b->end_seq = s.batch.end_seq();
    b->span_bytes = s.batch.span_bytes();
    b->begin = s.batch.begin();
    if (b->end_seq != b->first_seq) {  // records covered: the batch is outstanding
      pin->released = false;
      s.pin = pin;
    }
  }
  return result.release().ptr();
}

bool release_outstanding(SubState& s) {
  if (s.pin != nullptr) return release_pin(s.pin);
  s.batch.release();  // a batch whose Python objects are gone already (or none)
  return true;
}

void register_batch(py::module_& m) {
  release_name = PyUnicode_InternFromString("release");
  cast_name = PyUnicode_InternFromString("cast");
  if (release_name == nullptr || cast_name == nullptr) throw py::error_already_set();
  pin_type = ready_type(m, &pin_spec, nullptr);
  message_type = ready_type(m, &message_spec, "Message");
  iterator_type = ready_type(m, &iterator_spec, nullptr);
  batch_type = ready_type(m, &batch_spec, "Batch");
  arrays_type = PyStructSequence_NewType(&arrays_desc);
  if (arrays_type == nullptr) throw py::error_already_set();
  m.add_object("BatchArrays", py::handle(reinterpret_cast<PyObject*>(arrays_type)));
}

}  // namespace pushpoll::python

// Exceptions: pushpoll::Error and its subclasses become pushpoll.Error, Full, Closed, InvalidCursor,
// MessageTooLarge, ClaimExpired and Refused (same hierarchy), carrying the C++ message. Also the fast-call
// helpers.
#include <new>
#include <stdexcept>

#include "common.hpp"

namespace pushpoll::python {
namespace {

// Owned by the module for the life of the process (single-phase init, never unloaded).
PyObject* error_type = nullptr;
PyObject* full_type = nullptr;
PyObject* closed_type = nullptr;
PyObject* invalid_cursor_type = nullptr;
PyObject* too_large_type = nullptr;
PyObject* claim_expired_type = nullptr;
PyObject* refused_type = nullptr;

PyObject* new_exception(py::module_& m, const char* name, const char* doc, PyObject* base) {
  // Named "pushpoll.X": that is where users import it from, and where pickle looks for it.
  const std::string qualified = std::string("pushpoll.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.add_object(name, py::handle(type));  // add_object takes a new reference; ours stays with us
  return type;
}

// Sets the Python error for a pushpoll exception; false for any other exception.
bool set_pushpoll_error(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const Full& e) {
    // Full.published: how many messages of a batch went out before it stayed full.
    PyObject* exc = PyObject_CallFunction(full_type, "s", e.what());
    if (exc == nullptr) return true;  // the error of the call is set instead
    PyObject* published = PyLong_FromUnsignedLongLong(e.published());
    if (published == nullptr || PyObject_SetAttrString(exc, "published", published) != 0) {
      Py_XDECREF(published);
      Py_DECREF(exc);
      return true;
    }
    Py_DECREF(published);
    PyErr_SetObject(full_type, exc);
    Py_DECREF(exc);
  } catch (const Closed& e) {
    PyErr_SetString(closed_type, e.what());
  } catch (const InvalidCursor& e) {
    PyErr_SetString(invalid_cursor_type, e.what());
  } catch (const MessageTooLarge& e) {
    PyErr_SetString(too_large_type, e.what());
  } catch (const ClaimExpired& e) {
    PyErr_SetString(claim_expired_type, e.what());
  } catch (const Refused& e) {
    PyErr_SetString(refused_type, e.what());
  } catch (const Interrupted& e) {
    // The interrupt check left the signal handler's exception (KeyboardInterrupt) set: keep it.
    if (PyErr_Occurred() == nullptr) PyErr_SetString(error_type, e.what());
  } catch (const Error& e) {
    PyErr_SetString(error_type, e.what());
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

PyObject* set_error() noexcept {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const Error&) {
    set_pushpoll_error(std::current_exception());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "pushpoll: unknown C++ exception");
  }
  return nullptr;
}

bool parse_args(const char* function, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                std::initializer_list<const char*> names, std::size_t required, PyObject** out) {
  const auto count = static_cast<Py_ssize_t>(names.size());
  for (Py_ssize_t i = 0; i < count; ++i) out[i] = nullptr;
  if (nargs > count) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", function, count,
                 nargs);
    return false;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
  if (kwnames != nullptr) {
    const Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      Py_ssize_t i = 0;
      for (const char* name : names) {
        if (PyUnicode_CompareWithASCIIString(key, name) == 0) break;
        ++i;
      }
      if (i == count) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", function, key);
        return false;
      }
      if (out[i] != nullptr) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", function, key);
        return false;
      }
      out[i] = args[nargs + k];
    }
  }
  std::size_t i = 0;
  for (const char* name : names) {
    if (i < required && out[i] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", function, name);
      return false;
    }
    ++i;
  }
  return true;
}

void add_fast_method(py::handle cls, PyMethodDef* def) {
  PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), def);
  if (descr == nullptr) throw py::error_already_set();
  const int rc = PyObject_SetAttrString(cls.ptr(), def->ml_name, descr);
  Py_DECREF(descr);
  if (rc != 0) throw py::error_already_set();
}

void register_errors(py::module_& m) {
  error_type = new_exception(
      m, "Error",
      "Base of every error pushpoll raises. The message says what went wrong and why.",
      PyExc_Exception);
  full_type = new_exception(
      m, "Full",
      "A blocking publish found no room within the topic's publish_timeout (overflow=\"block\"): a "
      "subscriber is not keeping up. Its ``published`` attribute says how many messages of a "
      "publish_many() went out before it (the rest did not; 0 for a single publish).",
      error_type);
  // A class attribute too, so that any Full (also one raised by Python code) has it.
  {
    PyObject* zero = PyLong_FromLong(0);
    if (zero == nullptr || PyObject_SetAttrString(full_type, "published", zero) != 0) {
      Py_XDECREF(zero);
      throw py::error_already_set();
    }
    Py_DECREF(zero);
  }
  closed_type = new_exception(
      m, "Closed", "The topic, its hub or the subscriber was closed.", error_type);
  invalid_cursor_type = new_exception(
      m, "InvalidCursor",
      "A start position older than the topic's oldest retained message or newer than its head.",
      error_type);
  too_large_type = new_exception(
      m, "MessageTooLarge",
      "A message larger than the topic's max_message, or a batch that cannot fit the ring.",
      error_type);
  claim_expired_type = new_exception(
      m, "ClaimExpired",
      "Messages whose publisher stalled between claiming and committing them for longer than the "
      "topic's claim_timeout: they went out as aborted messages.",
      error_type);
  // Both a pushpoll.Error and a PermissionError: `except PermissionError` catches it too.
  {
    PyObject* bases = PyTuple_Pack(2, error_type, PyExc_PermissionError);
    if (bases == nullptr) throw py::error_already_set();
    refused_type = new_exception(
        m, "Refused",
        "Not allowed: the hub's server does not admit this process's user or group, or a publish "
        "on a topic of another process. Also a PermissionError.",
        bases);
    Py_DECREF(bases);
  }
  // Functions bound through pybind11 raise the same classes.
  py::register_exception_translator([](std::exception_ptr p) {
    if (p && !set_pushpoll_error(p)) std::rethrow_exception(p);
  });
}

}  // namespace pushpoll::python

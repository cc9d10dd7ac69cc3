// pushpoll._core — the extension module behind the `pushpoll` package.
#include "common.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "Compiled core of pushpoll; import the `pushpoll` package instead.";
  m.attr("__version__") = PUSHPOLL_VERSION;
  m.attr("ALL_TAGS") = pushpoll::kAllTags;
  m.attr("MAX_TAG") = pushpoll::kMaxTag;
  // The floor under every per-call path: a pybind11 function that does nothing (benchmarks).
  m.def("_noop", [] {}, "Does nothing; times a pybind11 call (benchmarks).");
  pushpoll::python::register_errors(m);
  pushpoll::python::register_batch(m);
  pushpoll::python::register_hub(m);
  pushpoll::python::register_topic(m);
  pushpoll::python::register_subscriber(m);
  pushpoll::python::register_wake(m);
  pushpoll::python::register_remote(m);
}

// pushpoll.Server (Hub.serve()) and pushpoll.connect(): other processes read a hub's topics.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "common.hpp"
#include "pushpoll/io/shared_memory.hpp"

namespace pushpoll::python {
namespace {

void close(PyServer& self) {
  if (self.closed) return;
  self.closed = true;
  py::gil_scoped_release nogil;  // joins the server's thread
  self.server.close();
}

PyTopic remote_topic(PyRemote& self, std::string_view name) {
  Topic* t = nullptr;
  {
    py::gil_scoped_release nogil;  // a round trip to the server
    t = &self.state->remote->topic(name);
  }
  return PyTopic{self.state, t};
}

}  // namespace

PyServer serve_hub(PyHub& self, const std::string& path, const std::vector<uid_t>& subscriber_uids,
               const std::vector<gid_t>& subscriber_gids, const std::vector<uid_t>& publisher_uids,
               const std::vector<gid_t>& publisher_gids) {
  if (self.closed) throw Closed("pushpoll: the hub is closed");
  if (!std::dynamic_pointer_cast<io::SharedMemory>(self.state->hub().memory())) {
    throw Error("pushpoll: Hub.serve() needs a hub whose topics live in shared memory: make it with "
                "pushpoll.Hub(shared=True)");
  }
  ServeOptions o;
  o.subscriber_uids = subscriber_uids;
  o.subscriber_gids = subscriber_gids;
  o.publisher_uids = publisher_uids;
  o.publisher_gids = publisher_gids;
  return PyServer{self.state, pushpoll::serve(self.state->hub(), path, std::move(o))};
}

void register_remote(py::module_& m) {
  py::class_<PyServer>(m, "Server", R"doc(
Serves a hub's topics, present and future, to other processes on an AF_UNIX socket, until
closed (or collected); then it removes the socket file. Made by Hub.serve(). A context
manager that closes the server on exit.
)doc")
      .def_property_readonly("path", [](const PyServer& s) { return s.server.path(); },
                             "The socket's path.")
      .def_property_readonly("admitted", [](const PyServer& s) { return s.server.admitted(); },
                             "Peers admitted so far.")
      .def_property_readonly("refused", [](const PyServer& s) { return s.server.refused(); },
                             "Peers refused so far.")
      .def_property_readonly("closed", [](const PyServer& s) { return s.closed; }, "True after close().")
      .def("close", &close, "Stops serving and removes the socket file. Idempotent.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyServer& self, const py::args&) { close(self); }, "Closes the server.")
      .def("__repr__", [](const PyServer& s) {
        return "<pushpoll.Server path='" + s.server.path() + "'" + (s.closed ? " closed>" : ">");
      });

  py::class_<PyRemote>(m, "Remote", R"doc(
A connection to another process's hub, made by pushpoll.connect(). Its topics are the same
Topic type, mapped read-only: subscribe, poll (zero-copy), wait, fileno and asyncio work as
in-process; publish() goes through the hub when it lets this process publish, else raises
Refused.
)doc")
      .def("topic", &remote_topic, py::arg("name"), R"doc(
The hub's topic ``name``, mapped read-only. Raises Error naming it if the hub has none,
Closed if the hub's process is gone.
)doc")
      .def_property_readonly("connected", [](const PyRemote& r) { return r.state->remote->connected(); },
                             "Whether the hub's process still answers (a hint).")
      .def("__repr__", [](const PyRemote& r) {
        return std::string("<pushpoll.Remote") + (r.state->remote->connected() ? ">" : " disconnected>");
      });

  m.def(
      "connect",
      [](const std::string& path) {
        std::optional<Remote> r;
        {
          py::gil_scoped_release nogil;
          r.emplace(pushpoll::connect(path));
        }
        return PyRemote{std::make_shared<HubState>(std::move(*r))};
      },
      py::arg("path"), R"doc(
Connects to a hub served at ``path`` (Hub.serve()) in another process; returns a Remote.
Raises Refused when the server does not admit this process's user or group, Error when
nothing serves there.
)doc");
}

}  // namespace pushpoll::python

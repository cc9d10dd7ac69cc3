#include "sysinfo.hpp"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <pushpoll/io/notifier.hpp>

#include "config.hpp"

#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
#include <zmq.h>
#endif

namespace pushpoll::harness {

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    // x86: "model name"; arm64: "CPU part" is a number, so fall back to "Hardware" or "Processor".
    for (const char* key : {"model name", "Hardware", "Processor"}) {
      if (line.rfind(key, 0) == 0) {
        const auto colon = line.find(':');
        if (colon != std::string::npos) return trim(line.substr(colon + 1));
      }
    }
  }
  return "unknown";
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

nlohmann::json machine_info() {
  utsname u{};
  ::uname(&u);
  std::string why;
  const bool uring = io::io_uring_available(&why);
  nlohmann::json j{{"cpu", cpu_model()},
                   {"cpus_online", ::sysconf(_SC_NPROCESSORS_ONLN)},
                   {"kernel", std::string(u.sysname) + " " + u.release},
                   {"arch", std::string(u.machine)},
                   {"compiler", trim(compiler())},
#if defined(PUSHPOLL_BENCH_BUILD_TYPE)
                   {"build_type", PUSHPOLL_BENCH_BUILD_TYPE},
#else
                   {"build_type", "unknown"},
#endif
#if defined(NDEBUG)
                   {"assertions", false},
#else
                   {"assertions", true},
#endif
                   {"boost", std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000)},
                   {"io_uring", uring ? "available" : "unavailable: " + why}};
#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  j["libzmq"] = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
#else
  j["libzmq"] = nullptr;
#endif
  return j;
}

ProcessSnapshot snapshot_process() {
  ProcessSnapshot s;
  // This process and its reaped children: the reader processes of a design that has them
  // (pushpoll-ipc), which are reaped before the run's last snapshot.
  rusage ru{}, kids{};
  ::getrusage(RUSAGE_SELF, &ru);
  ::getrusage(RUSAGE_CHILDREN, &kids);
  const auto seconds = [](const timeval& a, const timeval& b) {
    return static_cast<double>(a.tv_sec + b.tv_sec) + static_cast<double>(a.tv_usec + b.tv_usec) / 1e6;
  };
  s.user_s = seconds(ru.ru_utime, kids.ru_utime);
  s.sys_s = seconds(ru.ru_stime, kids.ru_stime);
  s.voluntary_switches = static_cast<std::uint64_t>(ru.ru_nvcsw + kids.ru_nvcsw);
  s.involuntary_switches = static_cast<std::uint64_t>(ru.ru_nivcsw + kids.ru_nivcsw);
  s.maxrss_kib = static_cast<std::uint64_t>(ru.ru_maxrss);
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "syscr:") {
      s.syscr = value;
      s.have_io = true;
    } else if (key == "syscw:") {
      s.syscw = value;
    }
  }
  return s;
}

std::uint64_t peak_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      std::uint64_t kib = 0;
      ss >> kib;
      return kib;
    }
  }
  return 0;
}

double loadavg_1min() {
  double l = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

}  // namespace pushpoll::harness

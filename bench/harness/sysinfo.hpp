// sysinfo.hpp — the machine a run happened on, and the process counters a run measures.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace pushpoll::harness {

/// CPU model, CPU count, kernel, compiler, build type, library versions, io_uring availability.
nlohmann::json machine_info();

/// What getrusage(RUSAGE_SELF) and /proc/self/io say now.
struct ProcessSnapshot {
  double user_s = 0, sys_s = 0;
  std::uint64_t voluntary_switches = 0, involuntary_switches = 0;
  std::uint64_t maxrss_kib = 0;
  std::uint64_t syscr = 0, syscw = 0;  ///< read()/write()-family syscalls (0 if not available)
  bool have_io = false;
};
ProcessSnapshot snapshot_process();

/// The 1-minute load average (how busy the machine is: others' work competes for the CPUs); -1 if
/// unknown.
double loadavg_1min();

/// VmHWM of this process (its own peak resident set, in KiB); 0 if unknown.
std::uint64_t peak_rss_kib();

}  // namespace pushpoll::harness

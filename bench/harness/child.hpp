// child.hpp — runs one design of one workload in this process and reports on a file descriptor.
#pragma once
#include <string>

#include "config.hpp"

namespace pushpoll::harness {

/// Runs `design` on `cfg`; writes progress lines {"type":"progress",...} and finally one
/// {"type":"result","result":{...}} line to `out_fd`. Returns the process exit status.
int child_main(const Config& cfg, const std::string& design, int out_fd);

}  // namespace pushpoll::harness

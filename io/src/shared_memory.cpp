// Sealed memfd regions (the owner's) and read-only mappings of them (another process's).
#include "pushpoll/io/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "pushpoll/errors.hpp"

namespace pushpoll::io {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

SharedMemory::~SharedMemory() {
  for (const auto& [region, fd] : fds_) ::close(fd);
}

void* SharedMemory::allocate(std::size_t bytes, std::size_t alignment) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (alignment > page) {
    throw Error("pushpoll: shared memory regions are page-aligned; " + std::to_string(alignment) +
                " bytes of alignment asked");
  }
  const int fd = ::memfd_create("pushpoll-topic", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw Error("pushpoll: memfd_create for a topic region failed: " + errno_text());
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    ::close(fd);
    throw std::bad_alloc();  // the topic's error names the size
  }
  void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (region == MAP_FAILED) {
    ::close(fd);
    throw std::bad_alloc();
  }
  // The owner's writable mapping exists; from now on nobody can make another, nor resize it.
  // F_SEAL_FUTURE_WRITE keeps this mapping writable and refuses write() and writable mappings to
  // everyone (mprotect() of a read-only mapping too).
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
    const std::string why = errno_text();
    ::munmap(region, bytes);
    ::close(fd);
    throw Error("pushpoll: cannot seal a topic region (the kernel needs F_SEAL_FUTURE_WRITE, Linux 5.1): " + why);
  }
  std::lock_guard lock(mutex_);
  fds_.emplace(region, fd);
  return region;
}

void SharedMemory::deallocate(void* region, std::size_t bytes, std::size_t) noexcept {
  ::munmap(region, bytes);
  std::lock_guard lock(mutex_);
  if (auto it = fds_.find(region); it != fds_.end()) {
    ::close(it->second);
    fds_.erase(it);
  }
}

int SharedMemory::descriptor(const void* region) const noexcept {
  std::lock_guard lock(mutex_);
  auto it = fds_.find(region);
  return it == fds_.end() ? -1 : it->second;
}

void* MappedRegion::allocate(std::size_t, std::size_t) {
  throw Error("pushpoll: a mapped region of another process cannot allocate");
}

void MappedRegion::deallocate(void* region, std::size_t bytes, std::size_t) noexcept {
  ::munmap(region, bytes);
}

}  // namespace pushpoll::io

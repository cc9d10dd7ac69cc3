// pushpoll/io/shared_memory.hpp — topic regions another process can map read-only.
//
// Each region is its own memfd (no name in any file system: nothing is left in /dev/shm when a
// process dies), mapped shared and writable in the owner, then sealed: its size can no longer change
// and nobody can map it writable again, so a process handed the descriptor (pushpoll/remote.hpp)
// can only map it read-only. After fork(), parent and child share such a region (a heap region
// would be copied): let only one of them publish.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>

#include "pushpoll/memory.hpp"

namespace pushpoll::io {

/// A MemoryProvider of sealed memfd regions: HubOptions::memory for a hub that is served.
class SharedMemory final : public MemoryProvider {
 public:
  SharedMemory() = default;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory() override;

  void* allocate(std::size_t bytes, std::size_t alignment) override;
  void deallocate(void* region, std::size_t bytes, std::size_t alignment) noexcept override;
  /// The memfd behind a region from allocate(), or -1. Valid until the region is deallocated.
  [[nodiscard]] int descriptor(const void* region) const noexcept;

 private:
  mutable std::mutex mutex_;
  std::map<const void*, int> fds_;
};

/// A region of another process mapped read-only: deallocate() unmaps it. Never allocates.
class MappedRegion final : public MemoryProvider {
 public:
  void* allocate(std::size_t bytes, std::size_t alignment) override;
  void deallocate(void* region, std::size_t bytes, std::size_t alignment) noexcept override;
};

}  // namespace pushpoll::io

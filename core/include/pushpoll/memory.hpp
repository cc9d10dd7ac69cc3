// pushpoll/memory.hpp — where a topic's shared region lives.
//
// A topic keeps all of its shared state (ring header, subscriber slots, records) in one contiguous
// region that is addressed by offsets, never by pointers. The region comes from a MemoryProvider, so
// that it can later live in shared memory (other processes subscribe) or in a file (persistence).
#pragma once
#include <cstddef>
#include <memory>

namespace pushpoll {

/// Supplies and takes back the memory of a topic's region. Thread-safety: called under the hub's lock.
class MemoryProvider {
 public:
  virtual ~MemoryProvider() = default;
  /// Returns `bytes` bytes aligned to `alignment` (a power of two), or throws.
  virtual void* allocate(std::size_t bytes, std::size_t alignment) = 0;
  /// Returns a region obtained from allocate() with the same size and alignment.
  virtual void deallocate(void* region, std::size_t bytes, std::size_t alignment) noexcept = 0;
};

/// The default provider: the process heap.
class HeapMemory final : public MemoryProvider {
 public:
  void* allocate(std::size_t bytes, std::size_t alignment) override;
  void deallocate(void* region, std::size_t bytes, std::size_t alignment) noexcept override;
};

}  // namespace pushpoll

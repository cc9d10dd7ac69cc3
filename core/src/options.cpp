// TopicOptions: validation, comparison, description; and the default memory provider.
#include <new>
#include <sstream>

#include "pushpoll/detail/ring.hpp"
#include "pushpoll/errors.hpp"
#include "pushpoll/memory.hpp"
#include "pushpoll/options.hpp"

namespace pushpoll {

namespace {
constexpr std::uint32_t kMaxSubscribers = std::uint32_t{1} << 20;

bool power_of_two(std::uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }
}  // namespace

void TopicOptions::validate() const {
  if (capacity < 4096 || !power_of_two(capacity)) {
    throw Error("pushpoll: capacity " + std::to_string(capacity) +
                " is invalid: it must be a power of two of at least 4096 bytes");
  }
  if (capacity > detail::kMaxCapacity) {
    throw Error("pushpoll: capacity " + std::to_string(capacity) + " is over the limit of " +
                std::to_string(detail::kMaxCapacity) + " bytes (16 GiB)");
  }
  if (index_size != 0 && (index_size < 64 || !power_of_two(index_size))) {
    throw Error("pushpoll: index_size " + std::to_string(index_size) +
                " is invalid: it must be 0 (the default) or a power of two of at least 64");
  }
  if (effective_index_size() > detail::kMaxIndexSize) {
    throw Error("pushpoll: index_size " + std::to_string(effective_index_size()) + " is over the limit of " +
                std::to_string(detail::kMaxIndexSize) + " messages");
  }
  if (max_message > detail::kMaxMessage) {
    throw Error("pushpoll: max_message " + std::to_string(max_message) + " is over the limit of " +
                std::to_string(detail::kMaxMessage) + " bytes");
  }
  if (max_message != 0 && max_message > capacity / 4) {
    throw Error("pushpoll: max_message " + std::to_string(max_message) +
                " is over a quarter of the capacity (" + std::to_string(capacity / 4) + " bytes)");
  }
  if (max_subscribers == 0) throw Error("pushpoll: max_subscribers must be at least 1");
  if (max_subscribers > kMaxSubscribers) {
    throw Error("pushpoll: max_subscribers " + std::to_string(max_subscribers) + " is over the limit of " +
                std::to_string(kMaxSubscribers));
  }
  if (publish_timeout.count() < 0 || stall_timeout.count() < 0 || claim_timeout.count() < 0) {
    throw Error("pushpoll: publish_timeout, stall_timeout and claim_timeout must not be negative");
  }
}

bool TopicOptions::same_as(const TopicOptions& o) const noexcept {
  return capacity == o.capacity && effective_index_size() == o.effective_index_size() &&
         effective_max_message() == o.effective_max_message() && overflow == o.overflow &&
         publish_timeout == o.publish_timeout && stall_timeout == o.stall_timeout &&
         claim_timeout == o.claim_timeout && max_subscribers == o.max_subscribers &&
         single_producer == o.single_producer;
}

std::string TopicOptions::describe() const {
  std::ostringstream out;
  out << "capacity=" << capacity << " index_size=" << effective_index_size()
      << " max_message=" << effective_max_message()
      << " overflow=" << (overflow == Overflow::block ? "block" : "overwrite")
      << " publish_timeout=" << publish_timeout.count() << "ns"
      << " stall_timeout=" << stall_timeout.count() << "ns"
      << " claim_timeout=" << claim_timeout.count() << "ns"
      << " max_subscribers=" << max_subscribers
      << " single_producer=" << (single_producer ? "true" : "false");
  return out.str();
}

void* HeapMemory::allocate(std::size_t bytes, std::size_t alignment) {
  return ::operator new(bytes, std::align_val_t{alignment});
}

void HeapMemory::deallocate(void* region, std::size_t, std::size_t alignment) noexcept {
  ::operator delete(region, std::align_val_t{alignment});
}

}  // namespace pushpoll

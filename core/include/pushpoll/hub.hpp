// pushpoll/hub.hpp — the hub: owns topics by name.
//
// Lifetimes: topics live as long as their hub; Subscriber, Batch and Claim values must be destroyed
// before the hub (debug builds assert it). Thread-safety: every method is safe from any thread.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pushpoll/memory.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/topic.hpp"

namespace pushpoll {

/// How a hub is built.
struct HubOptions {
  /// Where topic regions live; the process heap when null.
  std::shared_ptr<MemoryProvider> memory;
};

class Hub {
 public:
  Hub();
  explicit Hub(HubOptions options);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  /// The topic called `name`, created with `options` if new. For an existing name with other
  /// options, throws Error naming both. Throws Error for invalid options, Closed after close().
  Topic& topic(std::string_view name, const TopicOptions& options);
  /// The topic called `name`: the existing one, or a new one with default options.
  Topic& topic(std::string_view name);
  /// The topic called `name`, or nullptr.
  [[nodiscard]] Topic* find(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> topic_names() const;
  /// Closes every topic (see Topic::close()); later topic() calls throw Closed. Idempotent.
  void close() noexcept;

 private:
  Topic& create(std::string_view name, const TopicOptions& options);

  HubOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Topic>, std::less<>> topics_;
  bool closed_ = false;
};

}  // namespace pushpoll

#include "pushpoll/hub.hpp"

#include <algorithm>

namespace pushpoll {

// Hub::Hub() and Hub::Hub(HubOptions) are defined in pushpoll::io (io/src/hub_io.cpp): they make
// io's notifier.

namespace {

/// Topics whose last reference went while a Claim still pointed into them: kept rather than freed
/// under the claim, and freed at exit once no claim is open on them any more (the claim committed
/// or dropped meanwhile). The price of a claim that outlived its hub and subscribers is its topic's
/// memory until exit, not a use-after-free.
struct Orphans {
  std::mutex mutex;
  std::vector<Topic*> topics;
};
Orphans& orphans() {
  static auto* o = new Orphans;  // never destroyed: a claim may end during static destruction
  return *o;
}

/// Frees the orphans whose claims have all ended.
void sweep_orphans() noexcept {
  auto& o = orphans();
  std::vector<Topic*> ended;
  {
    std::lock_guard lock(o.mutex);
    const auto open = std::partition(o.topics.begin(), o.topics.end(), [](Topic* t) { return t->claims_open(); });
    ended.assign(open, o.topics.end());
    o.topics.erase(open, o.topics.end());
  }
  for (Topic* t : ended) delete t;
}

struct SweepAtExit {
  SweepAtExit() = default;
  SweepAtExit(const SweepAtExit&) = delete;
  SweepAtExit& operator=(const SweepAtExit&) = delete;
  ~SweepAtExit() { sweep_orphans(); }
};

/// The deleter of every topic: frees it, unless a claim is still open on it.
void free_topic(Topic* topic) noexcept {
  if (topic->claims_open()) {
    static SweepAtExit at_exit;
    try {
      auto& o = orphans();
      std::lock_guard lock(o.mutex);
      o.topics.push_back(topic);
    } catch (...) {  // out of memory: leak it unrecorded
    }
    return;
  }
  delete topic;
}

}  // namespace

Hub::Hub(HubOptions options, std::shared_ptr<detail::Notifier> notifier)
    : options_(std::move(options)), notifier_(std::move(notifier)) {
  if (!notifier_) throw Error("pushpoll: a hub needs a notifier");
  if (!options_.memory) options_.memory = std::make_shared<HeapMemory>();
}

Hub::~Hub() {
  close();
  topics_.clear();  // topics still subscribed live on; see free_topic() for claims
}

Topic& Hub::create(std::string_view name, const TopicOptions& options) {
  options.validate();
  auto topic = std::shared_ptr<Topic>(
      new Topic(std::string(name), options, options_.memory, notifier_), free_topic);
  Topic& ref = *topic;
  topics_.emplace(std::string(name), std::move(topic));
  notifier_->topic_added(ref);
  return ref;
}

Topic& Hub::topic(std::string_view name, const TopicOptions& options) {
  std::lock_guard lock(mutex_);
  if (closed_) throw Closed("pushpoll: the hub is closed");
  if (auto it = topics_.find(name); it != topics_.end()) {
    if (!it->second->options().same_as(options)) {
      throw Error("pushpoll: topic '" + std::string(name) + "' exists with other options (" +
                  it->second->options().describe() + "); asked for (" + options.describe() + ")");
    }
    return *it->second;
  }
  return create(name, options);
}

Topic& Hub::topic(std::string_view name) {
  std::lock_guard lock(mutex_);
  if (closed_) throw Closed("pushpoll: the hub is closed");
  if (auto it = topics_.find(name); it != topics_.end()) return *it->second;
  return create(name, TopicOptions{});
}

Topic* Hub::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Hub::topic_names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, topic] : topics_) names.push_back(name);
  return names;
}

Backend Hub::backend() const noexcept {
  return notifier_->backend();
}

WakeStats Hub::wake_stats() const noexcept { return notifier_->stats(); }

void Hub::close() noexcept {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (auto& [name, topic] : topics_) topic->close();
}

}  // namespace pushpoll

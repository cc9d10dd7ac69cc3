// The subscriber side of wake-ups: arming, waiting, wake groups. No syscalls here: the eventfd
// operations go through the notifier seam (detail/notifier.hpp), implemented in pushpoll::io.
//
// The handshake (docs/DESIGN.md, "The arming handshake"):
//   subscriber: wake = armed; armed += 1 (seq_cst); heavy barrier; if mark[cursor] done: disarm
//   publisher:  mark[seq] = seq (release); light barrier; if armed != 0: notify
// and the edge trigger: the notifier moves a slot armed -> notified by CAS and only the winner
// writes the eventfd; the subscriber returns it to idle in its next poll()/arm(), draining the fd.
#include <algorithm>
#include <thread>

#include "pushpoll/detail/deadline.hpp"
#include "pushpoll/hub.hpp"
#include "pushpoll/topic.hpp"

namespace pushpoll {

using detail::kWakeArmed;
using detail::kWakeIdle;
using detail::kWakeNotified;

namespace {

void take_notification(detail::SubscriberCore& c) noexcept {
  // Relaxed: only this subscriber moves its slot out of `notified`.
  c.own_slot().wake.store(kWakeIdle, std::memory_order_relaxed);
  // The arming ends here (see the round in io/src/notifier.cpp: it leaves the count to us).
  // Relaxed: `armed` only tells publishers whether to look; a late decrement costs
  // publishers empty rounds, never a wake-up. (A seat's count is its owner's.)
  if (!c.read_only) c.ring.state().armed.fetch_sub(1, std::memory_order_relaxed);
  // A group member's wake-up went to the group's eventfd, which the group drains.
  if (c.group == nullptr && c.own_fd >= 0) {
    detail::Notifier* n = c.topic->notifier();
    n->count_subscriber_syscall();
    if (n->drain(c.own_fd)) return;
    // The notifier wins armed -> notified before it writes, so the write may not have landed yet.
    // Left alone, it would land after this drain and keep a level-triggered event loop on a stale
    // readiness: wait until no round runs on the topic (the write has landed), then drain again.
    // (The rounds of another process's topic cannot be waited for from here: there, a late write
    // is a spurious readiness, which the next poll or arm drains.)
    c.topic->quiesce_notifier();
    n->count_subscriber_syscall();
    (void)n->drain(c.own_fd);
  }
}

void disarm(detail::SubscriberCore& c) noexcept {
  auto& slot = c.own_slot();
  std::uint32_t w = kWakeArmed;
  // seq_cst CAS against the notifier's armed -> notified CAS: exactly one ends the arming.
  if (slot.wake.compare_exchange_strong(w, kWakeIdle, std::memory_order_seq_cst)) {
    // Relaxed: as in take_notification(). (A seat's count is its owner's: its next round ends it.)
    if (!c.read_only) c.ring.state().armed.fetch_sub(1, std::memory_order_relaxed);
  } else if (w == kWakeNotified) {
    take_notification(c);
  }
}

bool has_matching(detail::SubscriberCore& c) {
  c.release_outstanding();
  if (c.gapped()) return true;  // a gap to report is news: the next poll reports it
  // seq_cst: the load half of SYNC(arm) on the subscriber side (after the heavy barrier): the
  // commit mark at the cursor.
  const std::uint64_t word = c.ring.entry(c.cursor).word.load(std::memory_order_seq_cst);
  if (!detail::entry_done(word, c.cursor)) {
    // An uncommitted claim in the way (a later message done) is timed here too, and expired after
    // claim_timeout; wait()'s safety net also looks at the claim word.
    return c.held_up() && c.held_back();
  }
  if (c.tag_mask == kAllTags) return true;
  // Skip, and consume, the messages the mask does not take.
  detail::MessageWalk walk(c.ring, c.cursor, c.max_message);
  detail::RecordView r;
  bool found = false;
  std::uint64_t seq = c.cursor;
  while (walk.next(r)) {
    if (detail::accepts(c.tag_mask, r.tag)) {
      found = true;
      break;
    }
    seq = walk.seq();
  }
  // Validate the walk as poll() does; a lapped cursor is news (a gap) for the next poll.
  if (c.ring.overtaken(c.cursor)) return true;
  if (seq != c.cursor) {
    c.cursor = seq;
    // Release: as in release_outstanding(): our reads happen-before the bytes are reused.
    c.own_slot().cursor_seq.store(seq, std::memory_order_release);
  }
  return found;
}

/// A subscriber of a topic mapped from another process is pushed through its seat (the owner
/// writes its eventfd, or its wake group's); one with a private slot (no seat) polls.
void check_wakeable(const detail::SubscriberCore& c) {
  if (c.read_only && c.private_slot) {
    throw Error("pushpoll: topic '" + c.topic->name() + "' belongs to another process and this subscriber has no "
                "seat there: it can only poll");
  }
}

int open_fd(detail::SubscriberCore& c) {
  check_wakeable(c);
  if (c.own_fd < 0) {
    c.own_fd = c.topic->notifier()->open_eventfd();
    if (c.read_only) {
      try {
        c.topic->owner()->set_wake_fd(*c.topic, c.slot_ptr, c.own_fd);
      } catch (...) {
        c.topic->notifier()->close_fd(c.own_fd);
        c.own_fd = -1;
        throw;
      }
    }
    // Relaxed: published to the notifier by the seq_cst RMWs of the next arming.
    if (c.group == nullptr) c.own_slot().fd.store(c.own_fd, std::memory_order_relaxed);
  }
  return c.own_fd;
}

enum class ArmStep : std::uint8_t { ready, armed, announced };

/// First half of arming: returns `ready` when messages (or a close) are waiting, `armed` when it
/// was armed already, `announced` when it armed now and needs the heavy barrier and a re-check.
ArmStep arm_begin(detail::SubscriberCore& c) {
  Topic& t = *c.topic;
  detail::Notifier* n = t.notifier();
  if (c.group == nullptr && c.own_fd < 0) (void)open_fd(c);
  auto& slot = c.own_slot();
  auto& s = c.ring.state();
  // Relaxed: our own slot; only the notifier can move it (armed -> notified), and we re-read it.
  std::uint32_t w = slot.wake.load(std::memory_order_relaxed);
  if (w == kWakeNotified) {
    take_notification(c);
    w = kWakeIdle;
  }
  if (t.closed() || has_matching(c)) {
    if (w == kWakeArmed) disarm(c);
    return ArmStep::ready;
  }
  if (w == kWakeArmed) return ArmStep::armed;
  // SYNC(arm), subscriber side: announce; the caller runs the heavy barrier, then arm_finish().
  slot.wake.store(kWakeArmed, std::memory_order_seq_cst);
  if (c.read_only) {
    // Another process's topic: its owner counts, queues and re-checks this arming (and runs the
    // barrier that orders its publishers) once told; our own re-check follows as usual.
    t.owner()->armed(&slot);
    n->count_arm();
    return ArmStep::announced;
  }
  // seq_cst exchange: either the notifier, which stores queued = 0 before reading `wake`, sees
  // this arming, or we see queued == 0 and push the slot again.
  if (slot.queued.exchange(1, std::memory_order_seq_cst) == 0) (void)t.armed_set().push(c.slot);
  // seq_cst: the store half of SYNC(arm) that publishers test (they load `armed` after their
  // head store); the heavy barrier the caller runs next orders it before our re-check of head.
  s.armed.fetch_add(1, std::memory_order_seq_cst);
  n->count_arm();
  return ArmStep::announced;
}

/// Second half, after the heavy barrier: the re-check. True if still armed.
bool arm_finish(detail::SubscriberCore& c) {
  // seq_cst load of `closed` after the arming: pairs with the seq_cst exchange in close().
  if (c.ring.state().closed.load(std::memory_order_seq_cst) != 0 || has_matching(c)) {
    disarm(c);
    return false;
  }
  return true;
}

bool arm(detail::SubscriberCore& c) {
  switch (arm_begin(c)) {
    case ArmStep::ready: return false;
    case ArmStep::armed: return true;
    case ArmStep::announced: break;
  }
  // (Another process's topic: its owner ran the barrier that matters, for its publishers.)
  if (!c.read_only) c.topic->notifier()->heavy_barrier();
  return arm_finish(c);
}

/// arm() for many: arms the cores at(0), ..., at(n - 1) (null ones skipped) behind one heavy
/// barrier per notifier involved, then re-checks those it announced. Appends to `ready` the
/// indices of the cores that have news (they are left unarmed).
template <class Index, class At>
void arm_many(std::size_t n, At&& at, std::vector<Index>& ready) {
  thread_local std::vector<std::size_t> announced;
  thread_local std::vector<detail::Notifier*> barriers;
  announced.clear();
  barriers.clear();
  for (std::size_t i = 0; i < n; ++i) {
    detail::SubscriberCore* c = at(i);
    if (c == nullptr) continue;
    switch (arm_begin(*c)) {
      case ArmStep::ready: ready.push_back(static_cast<Index>(i)); break;
      case ArmStep::armed: break;
      case ArmStep::announced: {
        announced.push_back(i);
        detail::Notifier* notifier = c->topic->notifier();
        if (std::find(barriers.begin(), barriers.end(), notifier) == barriers.end()) {
          barriers.push_back(notifier);
        }
        break;
      }
    }
  }
  // In practice one hub: one membarrier for the whole set.
  for (detail::Notifier* notifier : barriers) notifier->heavy_barrier();
  for (const std::size_t i : announced) {
    if (!arm_finish(*at(i))) ready.push_back(static_cast<Index>(i));
  }
}

}  // namespace

void Subscriber::take_notification() noexcept { pushpoll::take_notification(*core_); }
void Subscriber::disarm() noexcept { pushpoll::disarm(*core_); }
bool Subscriber::has_matching() { return pushpoll::has_matching(*core_); }
bool Subscriber::arm() { return pushpoll::arm(*core_); }

bool Subscriber::arm_all(std::span<Subscriber* const> subscribers, std::vector<std::size_t>& ready) {
  for (Subscriber* sub : subscribers) {
    if (sub->core_->group != nullptr) {
      throw Error("pushpoll: a wake-group member is armed through WakeGroup::wait(), not arm_all()");
    }
  }
  ready.clear();
  arm_many(subscribers.size(), [subscribers](std::size_t i) { return subscribers[i]->core_.get(); }, ready);
  return ready.empty();
}

int Subscriber::fd() {
  auto& c = *core_;
  if (c.group != nullptr) return c.group->fd();
  return open_fd(c);
}

namespace {
/// wait() in progress on a subscriber (see SubscriberCore::leaving).
class Waiting {
 public:
  explicit Waiting(detail::SubscriberCore& c) noexcept : c_(c) {
    c_.waiters.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see unsubscribe()
  }
  ~Waiting() {
    c_.waiters.fetch_sub(1, std::memory_order_release);  // release: our last access to the core
  }
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;
  /// Throws Closed if the Subscriber is being destroyed by another thread.
  void check(Topic& t) const {
    if (c_.leaving.load(std::memory_order_seq_cst) != 0) [[unlikely]] {  // seq_cst: see unsubscribe()
      disarm(c_);
      throw Closed("pushpoll: a subscriber of topic '" + t.name() +
                   "' was destroyed by another thread while this one waited on it");
    }
  }

 private:
  detail::SubscriberCore& c_;
};
}  // namespace

bool Subscriber::wait(std::chrono::nanoseconds timeout) {
  auto& c = *core_;
  Topic& t = *c.topic;
  check_wakeable(c);
  const Waiting waiting(c);
  if (c.group != nullptr) {
    throw Error("pushpoll: a wake-group member is woken through WakeGroup::wait(), not wait()");
  }
  using clock = std::chrono::steady_clock;
  const auto deadline = detail::Deadline::after(timeout);
  const auto done = [&c](bool pushed) {
    if (pushed) c.last_wake = clock::now();
    return pushed;
  };
  // Client-side rate limit: pushes inside min_interval after the last wake-up coalesce into one.
  if (const auto until = next_wake_at(); until > clock::now()) {
    std::this_thread::sleep_until(std::min(until, deadline.at()));
  }
  if (c.wait_options.spin.count() > 0) {
    const auto spin_end = std::min(detail::Deadline::after(c.wait_options.spin).at(), deadline.at());
    do {
      if (has_matching()) return done(true);
      detail::cpu_relax();
    } while (clock::now() < spin_end);
  }
  detail::Notifier* n = t.notifier();
  for (;;) {
    waiting.check(t);
    if (!arm()) {
      if (t.closed() && !has_matching()) {
        throw Closed("pushpoll: topic '" + t.name() + "' is closed and fully read");
      }
      return done(true);
    }
    const std::chrono::nanoseconds left = deadline.left();
    // Block no longer than the safety net: then look at the log even without a push.
    const auto net = c.wait_options.safety_net;
    const bool netted = net.count() > 0 && (left.count() < 0 || left > net);
    const bool readable = n->block(c.own_fd, netted ? net : left);
    n->count_subscriber_syscall();
    waiting.check(t);
    auto& slot = c.own_slot();
    // Acquire: pairs with the notifier's seq_cst CAS armed -> notified.
    if (slot.wake.load(std::memory_order_acquire) == kWakeNotified) {
      take_notification();
      return done(true);
    }
    if (!readable && netted) {
      if (has_matching()) {  // messages came and no push did: recover, and count it
        disarm();
        n->count_recovered();
        return done(true);
      }
      // A claim that holds this subscriber back, wherever the next message is: expire it once it
      // has for claim_timeout (a publisher killed mid-claim must not park us forever).
      if (c.claim_pending() && c.held_back()) {
        disarm();
        return done(true);
      }
      continue;  // still armed: block again
    }
    if (!readable) {  // timed out: end the arming (the notifier may win the race: then pushed)
      disarm();
      return done(has_matching());
    }
    // Readable but not notified: a write from an earlier arming landed late. Drain and re-arm.
    (void)n->drain(c.own_fd);
    n->count_subscriber_syscall();
  }
}

Batch Subscriber::poll_wait(std::size_t max_messages, std::chrono::nanoseconds timeout) {
  Batch b = poll(max_messages);
  if (!b.empty() || b.gap() != 0) return b;
  if (!wait(timeout)) return b;
  return poll(max_messages);
}

// ---- wake groups ------------------------------------------------------------------------------

WakeGroup::WakeGroup(Hub& hub) : WakeGroup(hub.notifier()) {}

WakeGroup::WakeGroup(Topic& topic) : WakeGroup(topic.notifier_) {}

WakeGroup::WakeGroup(std::shared_ptr<detail::Notifier> notifier) : notifier_(std::move(notifier)) {
  if (!notifier_) throw Error("pushpoll: a wake group needs a notifier");
  fd_ = notifier_->open_eventfd();
}

namespace {
/// A member leaves its group: back to its own eventfd.
void leave_group(detail::SubscriberCore& c) noexcept {
  disarm(c);  // a pending notification went to the group's fd: take it while still a member
  c.group = nullptr;
  // Relaxed: published by the seq_cst RMWs of the subscriber's next arming (as in open_fd()).
  c.own_slot().fd.store(c.own_fd, std::memory_order_relaxed);
  if (c.read_only) {
    // The owner writes its copy of the group's eventfd for this seat: give it ours back (or
    // none, until we open one). An owner that is gone has nothing left to write.
    try {
      c.topic->owner()->set_wake_fd(*c.topic, c.slot_ptr, c.own_fd);
    } catch (const Error&) {
    }
  }
  // A round on the member's topic may still hold the group's fd: let it finish before anyone
  // closes that fd.
  c.topic->quiesce_notifier();
}
}  // namespace

WakeGroup::~WakeGroup() {
  for (detail::SubscriberCore* c : members_) {
    if (c != nullptr) leave_group(*c);
  }
  notifier_->close_fd(fd_);
}

std::uint32_t WakeGroup::add(Subscriber& subscriber) {
  auto& c = *subscriber.core_;
  if (c.group != nullptr) throw Error("pushpoll: the subscriber is already in a wake group");
  check_wakeable(c);
  if (c.topic->notifier() != notifier_.get()) {
    throw Error("pushpoll: topic '" + c.topic->name() + "' is not served by this wake group's hub or connection");
  }
  pushpoll::disarm(c);
  // Another process's topic: its owner writes the group's eventfd for this subscriber from now on.
  if (c.read_only) c.topic->owner()->set_wake_fd(*c.topic, c.slot_ptr, fd_);
  std::uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    members_[id] = &c;
  } else {
    id = static_cast<std::uint32_t>(members_.size());
    members_.push_back(&c);
  }
  c.group = this;
  c.group_id = id;
  // Relaxed: published by the seq_cst RMWs of the member's next arming.
  c.own_slot().fd.store(fd_, std::memory_order_relaxed);
  return id;
}

void WakeGroup::remove(Subscriber& subscriber) noexcept {
  auto& c = *subscriber.core_;
  if (c.group != this) return;
  members_[c.group_id] = nullptr;
  free_.push_back(c.group_id);
  leave_group(c);
}

std::span<const std::uint32_t> WakeGroup::ready() {
  (void)notifier_->drain(fd_);
  notifier_->count_subscriber_syscall();
  ready_.clear();
  for (std::uint32_t id = 0; id < members_.size(); ++id) {
    detail::SubscriberCore* c = members_[id];
    // Acquire: pairs with the notifier's CAS; the member's next poll sees what woke it.
    if (c != nullptr && c->own_slot().wake.load(std::memory_order_acquire) == kWakeNotified) {
      ready_.push_back(id);
    }
  }
  return ready_;
}

std::span<const std::uint32_t> WakeGroup::wait(std::chrono::nanoseconds timeout) {
  const auto deadline = detail::Deadline::after(timeout);
  for (;;) {
    // First look, without arming anybody: members with news are returned at once and nobody is
    // left armed behind the caller's back (a later publish would pay for a wake-up it does not
    // need). A member whose topic is closed and fully read has no news, ever again: it is not
    // reported, and once every member is like it the group is closed too.
    ready_.clear();
    std::size_t live = 0, finished = 0;
    for (std::uint32_t id = 0; id < members_.size(); ++id) {
      detail::SubscriberCore* c = members_[id];
      if (c == nullptr) continue;
      ++live;
      // Relaxed: our own slot; only we move it out of `notified` (take_notification()), and a
      // notification seen late is taken by the next look.
      if (c->own_slot().wake.load(std::memory_order_relaxed) == kWakeNotified) {
        take_notification(*c);
      }
      if (has_matching(*c)) {
        ready_.push_back(id);
      } else if (c->topic->closed()) {
        ++finished;
      }
    }
    if (live == 0 && deadline.forever()) {
      throw Error("pushpoll: wait() without a timeout on a wake group with no members: nothing could wake it");
    }
    if (!ready_.empty() || (live != 0 && finished == live)) {
      for (detail::SubscriberCore* c : members_) {
        if (c != nullptr) disarm(*c);
      }
      if (!ready_.empty()) return ready_;
      throw Closed("pushpoll: every member of the wake group is closed and fully read");
    }
    // Arm every member with one heavy barrier for all of them, then re-check each. A member that
    // turns out closed and fully read is left unarmed and unreported; the next look counts it.
    arm_many(members_.size(), [this](std::size_t i) { return members_[i]; }, ready_);
    if (!ready_.empty()) {
      std::erase_if(ready_, [this](std::uint32_t id) {
        detail::SubscriberCore* c = members_[id];
        return c->topic->closed() && !has_matching(*c);
      });
      if (!ready_.empty()) return ready_;
      // Only closed and read members were ready. If no member's topic is open, nothing is armed
      // and the next look throws Closed; otherwise the open ones are armed: block for them.
      const bool any_open = std::any_of(members_.begin(), members_.end(), [](detail::SubscriberCore* c) {
        return c != nullptr && !c->topic->closed();
      });
      if (!any_open) continue;
    }
    const std::chrono::nanoseconds left = deadline.left();
    if (left.count() == 0) return {};
    const bool readable = notifier_->block(fd_, left);
    notifier_->count_subscriber_syscall();
    if (readable) {
      (void)ready();
      std::erase_if(ready_, [this](std::uint32_t id) {
        detail::SubscriberCore* c = members_[id];
        return c->topic->closed() && !has_matching(*c);  // woken by the close: no news
      });
      if (!ready_.empty()) return ready_;
    } else if (deadline.passed()) {
      return {};
    }
  }
}

}  // namespace pushpoll

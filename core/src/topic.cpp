// A topic's life and its producers' slow paths: construction, closing, the committed frontier,
// the bias of a sole producer, claim expiry, batches and claims. Making room is in retire.cpp,
// subscribing in subscriber.cpp. docs/DESIGN.md has the protocol; detail/ring.hpp states the memory
// order of each shared word.
#include <algorithm>
#include <new>
#include <thread>

#include "pushpoll/topic.hpp"

namespace pushpoll {

namespace {
constexpr std::size_t kRegionAlign = 4096;
/// The first streak of lone CAS wins that earns the bias, and the most it grows to.
constexpr std::uint64_t kFirstBias = 256;
constexpr std::uint64_t kMostBias = std::uint64_t{1} << 24;

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
std::string quote(std::string_view name) { return "'" + std::string(name) + "'"; }
}  // namespace

// ---- topic lifecycle --------------------------------------------------------------------------

Topic::Topic(std::string name, const TopicOptions& options,
             std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier)
    : name_(std::move(name)),
      options_(options),
      max_message_(options.effective_max_message()),
      memory_(std::move(memory)),
      single_producer_(options.single_producer),
      overwrite_(options.overflow == Overflow::overwrite),
      notifier_(std::move(notifier)),
      asymmetric_(notifier_->asymmetric()),
      restartable_(notifier_->restartable() && detail::rseq_registered()),
      armed_set_(options.max_subscribers) {
  // The options were validated by Hub::create(), the only caller, before armed_set_ allocated.
  const std::uint64_t entries = options.effective_index_size();
  const std::size_t state_bytes = round_up(sizeof(detail::RingState), detail::kCacheLine);
  const std::size_t slots_bytes = sizeof(detail::SubscriberSlot) * options.max_subscribers;
  const std::size_t index_offset = round_up(state_bytes + slots_bytes, detail::kCacheLine);
  const std::size_t records_offset =
      round_up(index_offset + sizeof(detail::IndexEntry) * static_cast<std::size_t>(entries), kRegionAlign);
  region_bytes_ = records_offset + static_cast<std::size_t>(options.capacity);
  try {
    region_ = static_cast<std::byte*>(memory_->allocate(region_bytes_, kRegionAlign));
  } catch (const std::bad_alloc&) {
    throw Error("pushpoll: cannot allocate " + std::to_string(region_bytes_) + " bytes for topic " +
                quote(name_) + " (capacity " + std::to_string(options.capacity) + ", index_size " +
                std::to_string(entries) + ", max_subscribers " + std::to_string(options.max_subscribers) + ")");
  }

  auto* state = new (region_) detail::RingState{};
  state->capacity = options.capacity;
  state->mask = options.capacity - 1;
  state->index_size = entries;
  state->slots_offset = state_bytes;
  state->index_offset = index_offset;
  state->records_offset = records_offset;
  state->max_message = max_message_;
  state->max_subscribers = options.max_subscribers;
  // Free a sixteenth of the ring at a time: one retire walk (and gate scan) per that many bytes.
  state->retire_chunk = std::max<std::uint64_t>(options.capacity / 16, 256);
  state->bias_after.store(kFirstBias, std::memory_order_relaxed);
  state->overwrite = overwrite_ ? 1 : 0;
  state->single_producer = single_producer_ ? 1 : 0;
  for (std::uint32_t i = 0; i < options.max_subscribers; ++i) {
    new (region_ + state_bytes + i * sizeof(detail::SubscriberSlot)) detail::SubscriberSlot{};
  }
  // Entry i starts with the mark of seq i - entries, "the previous lap's message", so that seq i
  // finds it stale and nothing reads it as done.
  for (std::uint64_t i = 0; i < entries; ++i) {
    auto* e = new (region_ + index_offset + i * sizeof(detail::IndexEntry)) detail::IndexEntry{};
    e->word.store(((i - entries) & detail::kSeqMask) | detail::kEntryNoPos, std::memory_order_relaxed);
    e->info.store(0, std::memory_order_relaxed);
  }
  ring_ = detail::RingView(region_);
}

namespace {
/// The options a mapped region was made with, from its header; throws Error if the header does not
/// describe a region of `bytes` bytes (a view must never read outside its mapping).
TopicOptions mapped_options(const std::string& name, const std::byte* region, std::size_t bytes) {
  const auto bad = [&](const char* what) {
    return Error("pushpoll: the region of topic " + quote(name) + " (" + std::to_string(bytes) +
                 " bytes) has an invalid header: " + what);
  };
  if (bytes < sizeof(detail::RingState)) throw bad("shorter than its header");
  const auto& h = *reinterpret_cast<const detail::RingState*>(region);
  const auto pow2 = [](std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!pow2(h.capacity) || h.mask != h.capacity - 1 || !pow2(h.index_size)) throw bad("sizes");
  if (h.slots_offset < sizeof(detail::RingState) ||
      h.index_offset < h.slots_offset + std::uint64_t{h.max_subscribers} * sizeof(detail::SubscriberSlot) ||
      h.records_offset < h.index_offset + h.index_size * sizeof(detail::IndexEntry) ||
      h.records_offset > bytes || h.capacity > bytes - h.records_offset) {
    throw bad("offsets");
  }
  if (h.max_message == 0 || h.max_message > h.capacity) throw bad("max_message");
  TopicOptions o;
  o.capacity = h.capacity;
  o.max_message = h.max_message;
  o.index_size = h.index_size;
  o.max_subscribers = h.max_subscribers;
  o.overflow = h.overwrite != 0 ? Overflow::overwrite : Overflow::block;
  o.single_producer = h.single_producer != 0;
  return o;
}
}  // namespace

std::shared_ptr<Topic> Topic::view(std::string name, std::byte* region, std::size_t bytes,
                                   std::shared_ptr<MemoryProvider> memory,
                                   std::shared_ptr<detail::Notifier> notifier,
                                   std::shared_ptr<detail::OwnerLink> seats) {
  const TopicOptions options = mapped_options(name, region, bytes);
  return std::shared_ptr<Topic>(new Topic(ViewTag{}, std::move(name), options, region, bytes, std::move(memory),
                                          std::move(notifier), std::move(seats)));
}

Topic::Topic(ViewTag, std::string name, const TopicOptions& options, std::byte* region, std::size_t bytes,
             std::shared_ptr<MemoryProvider> memory, std::shared_ptr<detail::Notifier> notifier,
             std::shared_ptr<detail::OwnerLink> seats)
    : name_(std::move(name)),
      options_(options),
      max_message_(static_cast<std::uint32_t>(options.max_message)),
      memory_(std::move(memory)),
      region_bytes_(bytes),
      region_(region),
      ring_(region),
      single_producer_(options.single_producer),
      overwrite_(options.overflow == Overflow::overwrite),
      read_only_(true),
      notifier_(std::move(notifier)),
      armed_set_(1),
      owner_(std::move(seats)) {
  if (!notifier_) throw Error("pushpoll: a topic needs a notifier");
}

std::uint32_t Topic::add_seat(detail::SubscriberSlot* slot) {
  std::lock_guard lock(seats_mutex_);
  if (!seats_storage_) {
    seats_storage_ = std::make_unique<Seat[]>(kMaxSeats);
    // Release: the retirer that acquires the pointer sees the seats constructed.
    seats_.store(seats_storage_.get(), std::memory_order_release);
  }
  Seat* seats = seats_storage_.get();
  // Relaxed: seats_high_ is only written under the mutex we hold.
  const std::uint32_t high = seats_high_.load(std::memory_order_relaxed);
  std::uint32_t id = 0;
  while (id < high && seats[id].slot.load(std::memory_order_relaxed) != nullptr) ++id;
  if (id == kMaxSeats) {
    throw Error("pushpoll: topic " + quote(name_) + " has " + std::to_string(kMaxSeats) +
                " subscribers in other processes already");
  }
  // A fresh seat: not counted (remove_seat() ended that), no eventfd yet; an armed-set entry left
  // from its last user may still be popped, and finds this slot unarmed or serves it. Relaxed:
  // published by the seq_cst store below, which rounds and seat_armed() load first.
  seats[id].queued.store(0, std::memory_order_relaxed);
  seats[id].fd.store(-1, std::memory_order_relaxed);
  // seq_cst, the slot then the bound: the owner's half of SYNC(attach) for a seat, as take_slot()'s
  // CAS of slot_high; the other process attaches only after it hears back from us.
  seats[id].slot.store(slot, std::memory_order_seq_cst);
  if (id == high) seats_high_.store(high + 1, std::memory_order_seq_cst);
  return id;
}

void Topic::remove_seat(std::uint32_t id) noexcept {
  Seat* seat = nullptr;
  {
    std::lock_guard lock(seats_mutex_);
    if (!seats_storage_ || id >= kMaxSeats) return;
    seat = &seats_storage_[id];
    // seq_cst: a retirer that takes `retiring`, or a round that pops the seat, after this store
    // no longer finds the slot.
    seat->slot.store(nullptr, std::memory_order_seq_cst);
  }
  // One that found it before may still read the slot: wait until each lets go (a bounded walk; a
  // round).
  while (ring_.state().retiring.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  quiesce_notifier();
  // Its arming, if counted, ends here. Relaxed decrement: as a subscriber's (wake.cpp).
  if (seat->counted.exchange(0, std::memory_order_seq_cst) == 1) {
    ring_.state().armed.fetch_sub(1, std::memory_order_relaxed);
  }
  std::lock_guard lock(seats_mutex_);
  // Relaxed: rounds no longer reach this seat (quiesced above).
  if (const int fd = seat->fd.exchange(-1, std::memory_order_relaxed); fd >= 0) notifier_->close_fd(fd);
}

void Topic::set_seat_fd(std::uint32_t id, int fd) noexcept {
  std::lock_guard lock(seats_mutex_);
  if (!seats_storage_ || id >= kMaxSeats || seats_storage_[id].slot.load(std::memory_order_relaxed) == nullptr) {
    if (fd >= 0) notifier_->close_fd(fd);
    return;
  }
  // Relaxed: published to rounds by the seq_cst exchanges of the next seat_armed(). A descriptor
  // replaced while a round may hold the old number: let the round finish before closing it.
  const int old = seats_storage_[id].fd.exchange(fd, std::memory_order_relaxed);
  if (old >= 0) {
    quiesce_notifier();
    notifier_->close_fd(old);
  }
}

void Topic::seat_armed(std::uint32_t id) noexcept {
  Seat* seats = seats_.load(std::memory_order_acquire);  // pairs with add_seat()'s release
  if (seats == nullptr || id >= kMaxSeats) return;
  Seat& seat = seats[id];
  detail::SubscriberSlot* slot = seat.slot.load(std::memory_order_seq_cst);
  if (slot == nullptr || slot->wake.load(std::memory_order_seq_cst) != detail::kWakeArmed) return;
  auto& s = ring_.state();
  // SYNC(arm), done by the owner for its seat: count it (seq_cst; publishers load `armed` after
  // their commit), queue it (seq_cst exchange, as a subscriber's own arming), then the heavy
  // barrier, then the re-check.
  if (seat.counted.exchange(1, std::memory_order_seq_cst) == 0) s.armed.fetch_add(1, std::memory_order_seq_cst);
  if (seat.queued.exchange(1, std::memory_order_seq_cst) == 0) (void)armed_set_.push(kSeatBase + id);
  notifier_->count_arm();
  notifier_->heavy_barrier();
  // The re-check, on the untrusted cursor: behind the oldest is news (a gap), past the frontier
  // is nothing. seq_cst loads after the barrier: the load half of SYNC(arm).
  const std::uint64_t cursor = slot->cursor_seq.load(std::memory_order_seq_cst);
  const bool news = s.closed.load(std::memory_order_seq_cst) != 0 ||
                    cursor < s.retire_seq.load(std::memory_order_seq_cst) || ring_.done(cursor);
  if (!news) return;
  std::uint32_t w = detail::kWakeArmed;
  // seq_cst CAS, as a round's: exactly one of us, a round and the subscriber ends the arming.
  if (slot->wake.compare_exchange_strong(w, detail::kWakeNotified, std::memory_order_seq_cst)) {
    if (seat.counted.exchange(0, std::memory_order_seq_cst) == 1) s.armed.fetch_sub(1, std::memory_order_relaxed);
    // Relaxed: written under seats_mutex_ before the arming's exchanges, which we read after.
    if (const int fd = seat.fd.load(std::memory_order_relaxed); fd >= 0) notifier_->signal(fd);
  }
}

detail::WakeTarget Topic::wake_target(std::uint32_t index) noexcept {
  if (index < kSeatBase) {
    detail::SubscriberSlot& slot = ring_.slot(index);
    return {&slot, &slot.queued, &slot.fd, nullptr};
  }
  Seat* seats = seats_.load(std::memory_order_acquire);  // pairs with add_seat()'s release
  const std::uint32_t id = index - kSeatBase;
  if (seats == nullptr || id >= kMaxSeats) return {};
  Seat& seat = seats[id];
  // seq_cst: against remove_seat()'s store, which then waits for this round to end.
  return {seat.slot.load(std::memory_order_seq_cst), &seat.queued, &seat.fd, &seat.counted};
}

Topic::~Topic() {
  notifier_->topic_gone(*this);
  memory_->deallocate(region_, region_bytes_, kRegionAlign);
}

void Topic::close() noexcept {
  // seq_cst: a subscriber arming checks `closed` after its seq_cst arming (SYNC(arm)), so that
  // either it sees the close or topic_closed() below sees it armed.
  if (read_only_) return;  // another process's topic: only its owner closes it
  if (ring_.state().closed.exchange(1, std::memory_order_seq_cst) != 0) return;
  notifier_->topic_closed(*this);
}

void Topic::quiesce_notifier() noexcept {
  // Another process's topic: its rounds run there (its owner quiesces them when it unseats one of
  // our subscribers); nothing to wait for here, and its round flag is not ours to take.
  if (read_only_) return;
  notifier_->quiesce(*this);
}

void Topic::check_open() const {
  if (closed()) throw Closed("pushpoll: topic " + quote(name_) + " is closed");
}

bool Topic::owner_gone() const noexcept { return owner_ && !owner_->owner_alive(); }

void Topic::throw_read_only() const {
  throw Refused("pushpoll: topic " + quote(name_) +
                " belongs to another process and is mapped read-only here: claims are refused (publish() "
                "goes through its owner)");
}

std::uint64_t Topic::publish_through_owner(std::span<const std::byte> data, unsigned tag) {
  if (!owner_) {
    throw Refused("pushpoll: topic " + quote(name_) + " belongs to another process, and no link to it publishes");
  }
  return owner_->publish(*this, data, tag);
}

void Topic::check_size(std::size_t size) const {
  if (size > max_message_) {
    throw MessageTooLarge("pushpoll: message of " + std::to_string(size) +
                          " bytes is over max_message (" + std::to_string(max_message_) +
                          " bytes) of topic " + quote(name_));
  }
}

// ---- wake-ups ---------------------------------------------------------------------------------

void Topic::wake(std::uint64_t last, std::uint64_t tag_bits) noexcept {
  // What our commit made visible is `last` and every message done after it (committed by others
  // while a claim before them held them back): their tags too, or a subscriber that wants only
  // theirs, armed while the earlier claim was pending, would sleep through them. Bounded: past
  // that, every tag.
  detail::MessageWalk walk(ring_, last + 1, max_message_);
  detail::RecordView r;
  for (unsigned n = 0; walk.next(r); ++n) {
    if (n == 4096) {
      tag_bits = kAllTags;
      break;
    }
    tag_bits |= std::uint64_t{1} << (r.tag & 63u);
  }
  notifier_->notify(*this, tag_bits);
}

// ---- the committed frontier -------------------------------------------------------------------

std::uint64_t Topic::head() const noexcept {
  auto& s = ring_.state();
  // Acquire, both: the scan starts at a retained message known to be below the frontier (the
  // readers' hint, pairing with its release, or the retire point, pairing with SYNC(retire)), and
  // acquires each mark it passes (SYNC(commit)).
  std::uint64_t h = std::max(s.visible_hint.load(std::memory_order_acquire), oldest());
  while (ring_.done(h)) ++h;
  if (!read_only_) ring_.raise_visible_hint(h);
  return h;
}

TopicStats Topic::stats() const noexcept {
  auto& s = ring_.state();
  TopicStats out;
  out.head = head();
  out.oldest = oldest();
  // Relaxed: statistics; the claim word is unpacked against the retire point loaded after it.
  const std::uint64_t w = s.claim.load(std::memory_order_relaxed);
  out.bytes_claimed = detail::claim_pos(w, s.retire_pos.load(std::memory_order_acquire));
  out.subscribers = s.subscribers.load(std::memory_order_relaxed);
  out.full_waits = s.full_waits.load(std::memory_order_relaxed);
  out.held_waits = s.held_waits.load(std::memory_order_relaxed);
  out.full_timeouts = s.full_timeouts.load(std::memory_order_relaxed);
  out.detaches = s.detaches.load(std::memory_order_relaxed);
  out.laps = s.laps.load(std::memory_order_relaxed);
  out.retire_walks = s.retire_walks.load(std::memory_order_relaxed);
  out.gate_scans = s.gate_scans.load(std::memory_order_relaxed);
  out.aborted = s.aborted.load(std::memory_order_relaxed);
  out.expired = s.expired.load(std::memory_order_relaxed);
  out.bias_revocations = s.revocations.load(std::memory_order_relaxed);
  out.clamped_cursors = s.clamped.load(std::memory_order_relaxed);
  return out;
}

// ---- the bias of a sole producer --------------------------------------------------------------

void Topic::count_streak() noexcept {
  auto& s = ring_.state();
  const std::uint64_t me = detail::thread_token();
  // Relaxed, all three: a heuristic on the claim line we just wrote; a race only delays the bias.
  if (s.last_claimer.load(std::memory_order_relaxed) != me) {
    s.last_claimer.store(me, std::memory_order_relaxed);
    s.streak.store(0, std::memory_order_relaxed);
    return;
  }
  const std::uint64_t streak = s.streak.load(std::memory_order_relaxed) + 1;
  s.streak.store(streak, std::memory_order_relaxed);
  if (streak >= s.bias_after.load(std::memory_order_relaxed)) [[unlikely]] try_bias(me);
}

void Topic::try_bias(std::uint64_t me) noexcept {
  auto& s = ring_.state();
  s.streak.store(0, std::memory_order_relaxed);
  // Only a thread the kernel restarts may store without a compare-and-swap.
  if (!detail::rseq_thread_registered()) return;
  std::uint64_t none = 0;
  // seq_cst: ordered before the flag below; a revoker that sees the flag sees us as the owner.
  if (!s.owner.compare_exchange_strong(none, me, std::memory_order_seq_cst)) return;
  // Raise the flag on the claim word: from now on everybody else revokes before claiming, and our
  // restartable stores check both. A CAS: the word may move under us until the flag is up.
  std::uint64_t w = s.claim.load(std::memory_order_relaxed);
  while (!(w & detail::kClaimBiased) &&
         !s.claim.compare_exchange_weak(w, w | detail::kClaimBiased, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
  }
}

void Topic::lower_bias_flag() noexcept {
  auto& s = ring_.state();
  // seq_cst, as every access to the flag and the owner word.
  std::uint64_t w = s.claim.load(std::memory_order_relaxed);
  while ((w & detail::kClaimBiased) &&
         !s.claim.compare_exchange_weak(w, w & ~detail::kClaimBiased, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
  }
}

void Topic::revoke_bias() noexcept {
  auto& s = ring_.state();
  // seq_cst throughout: the owner word orders the revocation (flag cleared before owner -> 0).
  std::uint64_t o = s.owner.load(std::memory_order_seq_cst);
  if (o == 0) {
    // Revoked already. The flag may still be up: a thread that took the owner word can be revoked
    // before it raises the flag, and then raise it. With no owner, no restartable claim can pass
    // its check, so lowering it is safe (if someone takes the bias meanwhile, it only loses the
    // flag, and with it the fast path, until it earns them again).
    lower_bias_flag();
    return;
  }
  if (o != detail::kRevoking) {
    if (!s.owner.compare_exchange_strong(o, detail::kRevoking, std::memory_order_seq_cst)) return;
    // Relaxed: statistics and a heuristic; a contended topic earns the bias ever more slowly.
    s.revocations.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t after = s.bias_after.load(std::memory_order_relaxed);
    s.bias_after.store(std::min(after * 2, kMostBias), std::memory_order_relaxed);
  }
  // The owner is no longer `o`: every restartable store that checked it before now is either
  // visible or restarted (and then fails its check). Whoever finds kRevoking does this itself
  // rather than wait for the revoker, so no producer waits for another.
  notifier_->restart_sequences();
  lower_bias_flag();
  std::uint64_t revoking = detail::kRevoking;
  s.owner.compare_exchange_strong(revoking, 0, std::memory_order_seq_cst);
}

// ---- claim expiry -----------------------------------------------------------------------------

bool Topic::expire(std::uint64_t seq) noexcept {
  auto& s = ring_.state();
  detail::IndexEntry& e = ring_.entry(seq);
  // Acquire: a mark that is done for `seq` was committed; nothing to do.
  std::uint64_t word = e.word.load(std::memory_order_acquire);
  if (!stale_for(word, seq)) return false;
  // Committers store with restartable sequences that check expiries_begun: move it, then restart
  // every sequence in flight. After that, a committer that read the old count has either stored
  // (we see the mark below) or restarts and takes the compare-and-swap path. seq_cst RMW: ordered
  // before the membarrier's full barrier. (Counted also without restartable sequences: cheap, and
  // the count is one mechanism.)
  s.expiries_begun.fetch_add(1, std::memory_order_seq_cst);
  if (restartable_) notifier_->restart_sequences();
  bool won = false;
  word = e.word.load(std::memory_order_acquire);
  std::uint64_t info = e.info.load(std::memory_order_relaxed);
  while (stale_for(word, seq)) {
    // The same compare-and-swap as a committer's: exactly one of us moves the entry to `seq`.
    if (detail::cas_entry(e, word, info, (seq & detail::kSeqMask) | detail::kEntryAborted | detail::kEntryNoPos, 0)) {
      won = true;
      break;
    }
  }
  if (won) {
    s.expired.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    // Whatever was committed behind the claim is visible now: wake who waits for it. An aborted
    // message carries tag 0.
    after_commit(seq, 1);
  }
  return won;
}

// ---- batches and claims -----------------------------------------------------------------------

std::uint64_t Topic::publish(std::span<const std::byte> data, unsigned tag,
                             const std::function<bool()>& interrupted) {
  std::uint64_t seq = 0;
  publish_one(data, tag, Wait::yes, seq, &interrupted);
  return seq;
}

std::uint64_t Topic::publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag) {
  return publish_batch_impl(messages, tag, nullptr);
}

std::uint64_t Topic::publish_batch(std::span<const std::span<const std::byte>> messages, unsigned tag,
                                   const std::function<bool()>& interrupted) {
  return publish_batch_impl(messages, tag, &interrupted);
}

std::uint64_t Topic::publish_batch_impl(std::span<const std::span<const std::byte>> messages, unsigned tag,
                                        const std::function<bool()>* interrupted) {
  check_tag(tag);
  check_open();
  if (messages.empty()) throw Error("pushpoll: publish_batch needs at least one message");
  if (read_only_) {
    // One message at a time through the owner: not all-or-nothing, so a Full says how many went.
    std::uint64_t seq = 0, done = 0;
    for (const auto& m : messages) {
      check_size(m.size());
      try {
        seq = publish_through_owner(m, tag);
      } catch (const Full& e) {
        throw Full(e.what(), done);
      }
      ++done;
    }
    return seq;
  }
  for (const auto& m : messages) check_size(m.size());
  // One claim per chunk of at most half the ring and half the index, so that a chunk always fits.
  const std::uint64_t bytes_limit = ring_.capacity() / 2;
  const std::uint64_t count_limit = ring_.index_size() / 2;
  std::uint64_t last = 0;
  std::size_t i = 0;
  while (i < messages.size()) {
    std::size_t j = i;
    std::uint64_t bytes = 0;
    while (j < messages.size() && j - i < count_limit &&
           (j == i || bytes + detail::record_bytes(messages[j].size()) <= bytes_limit)) {
      bytes += detail::record_bytes(messages[j].size());
      ++j;
    }
    try {
      last = publish_chunk(messages.subspan(i, j - i), tag, interrupted);
    } catch (const Full&) {
      throw_full(i);
    }
    i = j;
  }
  return last;
}

void Topic::throw_full(std::uint64_t published) const {
  const std::string waited = "pushpoll: topic " + quote(name_) + " stayed full for publish_timeout (" +
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                options_.publish_timeout).count()) + " ms)";
  if (published == 0) throw Full(waited + ": a subscriber is not keeping up", 0);
  throw Full(waited + " after the first " + std::to_string(published) +
                 " messages of the batch were published (the rest were not): a subscriber is not keeping up",
             published);
}

std::uint64_t Topic::publish_chunk(std::span<const std::span<const std::byte>> messages, unsigned tag,
                                   const std::function<bool()>* interrupted) {
  const auto layout = [this, messages](std::uint64_t p) noexcept {
    for (const auto& m : messages) {
      const std::uint64_t bytes = detail::record_bytes(m.size());
      p = ring_.placement(p, bytes) + bytes;
    }
    return p;
  };
  detail::Reservation r;
  reserve(messages.size(), layout, Wait::yes, r, interrupted);
  std::uint64_t p = r.pos;
  for (const auto& m : messages) {
    const std::uint64_t bytes = detail::record_bytes(m.size());
    p = ring_.placement(p, bytes);
    write_payload(p, m);
    p += bytes;
  }
  // Each message commits its own entry; readers see them one by one. A commit can only fail if
  // this thread stalled for claim_timeout: that message went out aborted.
  p = r.pos;
  std::uint64_t lost = 0;
  for (std::uint64_t k = 0; k < messages.size(); ++k) {
    const std::uint64_t bytes = detail::record_bytes(messages[k].size());
    p = ring_.placement(p, bytes);
    if (!commit(r.seq + k, detail::pack_info(p, messages[k].size(), tag), 0, r.epoch)) ++lost;
    p += bytes;
  }
  after_commit(r.seq + messages.size() - 1, std::uint64_t{1} << tag);
  if (lost != 0) {
    notice_expiry(lost);
    throw ClaimExpired("pushpoll: " + std::to_string(lost) + " of " + std::to_string(messages.size()) +
                       " messages of a batch on topic " + quote(name_) +
                       " were aborted: their publisher stalled for claim_timeout before committing them");
  }
  return r.seq + messages.size() - 1;
}

Claim Topic::claim(std::size_t size) {
  Claim c;
  (void)claim_impl(size, Wait::yes, c);
  return c;
}

bool Topic::try_claim(std::size_t size, Claim& out) { return claim_impl(size, Wait::no, out); }

bool Topic::claim_impl(std::size_t size, Wait wait, Claim& out) {
  check_size(size);
  check_open();
  if (read_only_) {
    // Another process's topic: its owner claims for us (the payload goes through memory we share
    // with it). Waits for room there as claim() does; try_claim() waits too.
    if (!owner_) throw_read_only();
    const detail::OwnerLink::RemoteClaim rc = owner_->claim(*this, size);
    out = Claim(this, rc.seq, rc.token, 0, rc.data);
    return true;
  }
  const std::uint64_t bytes = detail::record_bytes(size);
  detail::Reservation r;
  if (!reserve(1, [this, bytes](std::uint64_t p) noexcept { return ring_.placement(p, bytes) + bytes; }, wait, r)) {
    return false;
  }
  const std::uint64_t start = ring_.placement(r.pos, bytes);
  out = Claim(this, r.seq, detail::pack_info(start, size, 0), r.epoch, std::span<std::byte>(ring_.at(start), size));
  return true;
}

bool Topic::claims_open() const noexcept {
  const auto& s = ring_.state();
  // Relaxed: called when the last reference to the topic goes, after (in the caller's own
  // synchronisation) every claim that ended before; a claim ending concurrently is a race with
  // the topic's destruction that no check can make safe.
  const std::uint64_t h = head();
  if (detail::claim_seq(s.claim.load(std::memory_order_relaxed), h) > h) return true;
  return s.expiries_noticed.load(std::memory_order_relaxed) != s.expired.load(std::memory_order_relaxed);
}

void Topic::notice_expiry(std::uint64_t count) noexcept {
  // Relaxed: read by claims_open() only, after the caller's own synchronisation.
  ring_.state().expiries_noticed.fetch_add(count, std::memory_order_relaxed);
}

std::uint64_t Claim::commit(unsigned tag) {
  if (topic_ == nullptr) throw Error("pushpoll: commit() on a claim that is no longer active");
  Topic::check_tag(tag);
  Topic* t = topic_;
  end();
  if (t->read_only_) return t->owner_->commit(*t, info_, tag);  // info_: the owner's token
  if (!t->commit(seq_, (info_ & ~(std::uint64_t{63} << detail::kInfoTagShift)) | (std::uint64_t{tag} << detail::kInfoTagShift), 0, epoch_)) {
    t->notice_expiry(1);
    throw ClaimExpired("pushpoll: the claim of seq " + std::to_string(seq_) + " on topic '" + t->name() +
                       "' was held longer than claim_timeout and went out as an aborted message");
  }
  t->after_commit(seq_, std::uint64_t{1} << tag);
  return seq_;
}

void Claim::abort() noexcept {
  if (topic_ == nullptr) return;
  Topic* t = topic_;
  end();
  if (t->read_only_) return t->owner_->abort(*t, info_);
  if (!t->commit(seq_, info_, detail::kEntryAborted, epoch_)) {  // expired: aborted already
    t->notice_expiry(1);
    return;
  }
  t->after_commit(seq_, 1);  // an aborted message carries tag 0
  t->ring_.state().aborted.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
}

Claim& Claim::operator=(Claim&& other) noexcept {
  if (this != &other) {
    abort();
    topic_ = other.topic_;
    seq_ = other.seq_;
    info_ = other.info_;
    epoch_ = other.epoch_;
    data_ = other.data_;
    other.end();
  }
  return *this;
}

}  // namespace pushpoll

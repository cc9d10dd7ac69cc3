// Fuzz target: decodes input bytes into ring operations (publish, claim+commit, claim+abort, claims
// held across other operations and committed later, batch publish, poll, release, subscribe) on a
// small overwrite-mode topic whose claims expire at once when they hold anybody back, and checks
// every subscriber against a plain std::deque model of the topic's messages.
//
// With clang it is a libFuzzer target (ASan+UBSan); with any compiler, tests/fuzz/replay.cpp runs it
// over the seed corpus and a few thousand seeded random inputs, as a regression test.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include <pushpoll/pushpoll.hpp>

namespace {

struct Model {
  enum class State : std::uint8_t { committed, aborted, pending };
  struct Entry {
    std::vector<std::byte> data;
    std::uint8_t tag = 0;
    State state = State::committed;
  };
  std::uint64_t first = 0;  // seq of the oldest message still in `entries`
  std::deque<Entry> entries;

  [[nodiscard]] std::uint64_t head() const noexcept { return first + entries.size(); }
  void push(std::vector<std::byte> data, std::uint8_t tag, State state) {
    entries.push_back(Entry{std::move(data), tag, state});
    while (entries.size() > 4096 && entries.front().state != State::pending) {  // bounded model
      entries.pop_front();
      ++first;
    }
  }
  Entry* at(std::uint64_t seq) { return seq < first || seq >= head() ? nullptr : &entries[seq - first]; }
};

/// A claim held across other operations, with what it will be committed as.
struct Held {
  pushpoll::Claim claim;
  std::uint64_t seq;
  std::vector<std::byte> data;
};

[[noreturn]] void fail(const char* what) {
  (void)what;
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pushpoll::HubOptions hub_options;
  hub_options.backend = pushpoll::Backend::syscall;
  pushpoll::Hub hub(hub_options);
  pushpoll::TopicOptions opt;
  opt.capacity = 4096;
  opt.overflow = pushpoll::Overflow::overwrite;
  opt.max_subscribers = 8;
  opt.claim_timeout = std::chrono::nanoseconds(1);  // expire as soon as a claim holds anybody back
  pushpoll::Topic& t = hub.topic("fuzz", opt);
  Model model;
  std::vector<Held> held;
  std::vector<pushpoll::Subscriber> subs;
  subs.push_back(t.subscribe(pushpoll::Start::oldest));
  std::vector<std::uint64_t> expected(1, 0);  // next seq each subscriber should see
  std::size_t i = 0;
  auto next = [&]() -> std::uint8_t { return i < size ? data[i++] : 0; };
  while (i < size) {
    const std::uint8_t op = next();
    const std::size_t len = static_cast<std::size_t>(next()) * 4 % (t.max_message() + 1);
    const std::uint8_t tag = next() % 64;
    std::vector<std::byte> payload(len);
    for (std::size_t k = 0; k < len; ++k) payload[k] = static_cast<std::byte>(op + k);
    switch (op % 8) {
      case 0:
        if (t.publish(payload, tag) != model.head()) fail("seq");
        model.push(payload, tag, Model::State::committed);
        break;
      case 1: {
        auto c = t.claim(len);
        if (c.seq() != model.head()) fail("claim seq");
        if (len != 0) std::memcpy(c.data().data(), payload.data(), len);
        c.commit(tag);
        model.push(payload, tag, Model::State::committed);
        break;
      }
      case 2: {
        auto c = t.claim(len);
        c.abort();
        model.push({}, 0, Model::State::aborted);
        break;
      }
      case 3: {
        std::vector<std::span<const std::byte>> spans(1 + tag % 4, std::span<const std::byte>(payload));
        t.publish_batch(spans, tag);
        for (std::size_t k = 0; k < spans.size(); ++k) model.push(payload, tag, Model::State::committed);
        break;
      }
      case 4:
        if (subs.size() < 4) {
          subs.push_back(t.subscribe(pushpoll::Start::latest));
          expected.push_back(t.head());
        }
        break;
      case 5:  // claim and hold it across what follows
        if (held.size() < 2) {
          auto c = t.claim(len);
          if (c.seq() != model.head()) fail("held claim seq");
          if (len != 0) std::memcpy(c.data().data(), payload.data(), len);
          held.push_back(Held{std::move(c), model.head(), payload});
          model.push({}, 0, Model::State::pending);
        }
        break;
      case 6:  // commit a held claim: it may have expired meanwhile
        if (!held.empty()) {
          const std::size_t k = tag % held.size();
          Held h = std::move(held[k]);
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
          Model::Entry* e = model.at(h.seq);
          if (e == nullptr || e->state == Model::State::committed) fail("held claim lost from the model");
          bool expired = false;
          try {
            h.claim.commit(tag);
          } catch (const pushpoll::ClaimExpired&) {
            expired = true;
          }
          if (e->state == Model::State::aborted && !expired) fail("a claim seen expired committed later");
          if (expired) {
            e->state = Model::State::aborted;
          } else {
            *e = Model::Entry{h.data, tag, Model::State::committed};
          }
        }
        break;
      default: {
        const std::size_t which = tag % subs.size();
        pushpoll::Batch b = subs[which].poll(1 + len % 64);
        std::uint64_t seq = expected[which] + b.gap();
        if (b.first_seq() != seq) fail("gap accounting");
        for (const pushpoll::Message& m : b) {
          Model::Entry* e = model.at(m.seq);
          if (m.seq != seq || e == nullptr) fail("order");
          if (e->state == Model::State::pending) {
            // Only an expiry makes a held claim readable: as an aborted message.
            if (!m.aborted || !m.data.empty()) fail("an uncommitted claim was read");
            e->state = Model::State::aborted;
          } else if (m.aborted != (e->state == Model::State::aborted) || (!m.aborted && m.tag != e->tag)) {
            fail("flags");
          } else if (!m.aborted && (m.data.size() != e->data.size() ||
                                    (!m.data.empty() && std::memcmp(m.data.data(), e->data.data(), m.data.size()) != 0))) {
            fail("payload");
          }
          ++seq;
        }
        if (!b.release()) fail("single-threaded batches are never overwritten while held");
        expected[which] = seq;
        break;
      }
    }
  }
  return 0;
}

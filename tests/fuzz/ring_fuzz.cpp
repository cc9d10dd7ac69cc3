// libFuzzer target: decodes input bytes into ring operations (publish, claim+commit, claim+abort,
// batch publish, poll, release, subscribe) on a small overwrite-mode topic and checks every
// subscriber against a plain std::deque model of the topic's messages. Built with ASan+UBSan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>

#include <pushpoll/pushpoll.hpp>

namespace {

struct Model {
  std::uint64_t first = 0;                   // seq of the oldest message still in `messages`
  std::deque<std::vector<std::byte>> messages;
  std::deque<std::uint8_t> tags;
  std::deque<bool> aborted;
  void push(std::vector<std::byte> data, std::uint8_t tag, bool was_aborted) {
    messages.push_back(std::move(data));
    tags.push_back(tag);
    aborted.push_back(was_aborted);
    while (messages.size() > 4096) {  // bounded model: far more than the ring can retain
      messages.pop_front();
      tags.pop_front();
      aborted.pop_front();
      ++first;
    }
  }
};

[[noreturn]] void fail(const char* what) {
  __builtin_trap();
  (void)what;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pushpoll::Hub hub(pushpoll::HubOptions{.backend = pushpoll::Backend::syscall});
  pushpoll::TopicOptions opt;
  opt.capacity = 4096;
  opt.overflow = pushpoll::Overflow::overwrite;
  opt.max_subscribers = 8;
  pushpoll::Topic& t = hub.topic("fuzz", opt);
  Model model;
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
    switch (op % 6) {
      case 0:
        if (t.publish(payload, tag) != model.first + model.messages.size()) fail("seq");
        model.push(payload, tag, false);
        break;
      case 1: {
        auto c = t.claim(len);
        if (len != 0) std::memcpy(c.data().data(), payload.data(), len);
        c.commit(tag);
        model.push(payload, tag, false);
        break;
      }
      case 2: {
        auto c = t.claim(len);
        c.abort();
        model.push({}, 0, true);
        break;
      }
      case 3: {
        std::vector<std::span<const std::byte>> spans(1 + tag % 4, std::span<const std::byte>(payload));
        t.publish_batch(spans, tag);
        for (std::size_t k = 0; k < spans.size(); ++k) model.push(payload, tag, false);
        break;
      }
      case 4:
        if (subs.size() < 4) {
          subs.push_back(t.subscribe(pushpoll::Start::latest));
          expected.push_back(t.head());
        }
        break;
      default: {
        const std::size_t which = tag % subs.size();
        pushpoll::Batch b = subs[which].poll(1 + len % 64);
        std::uint64_t seq = expected[which] + b.gap();
        if (b.first_seq() != seq) fail("gap accounting");
        for (const pushpoll::Message& m : b) {
          if (m.seq != seq || seq < model.first) fail("order");
          const std::size_t k = static_cast<std::size_t>(seq - model.first);
          if (m.aborted != model.aborted[k] || m.tag != model.tags[k]) fail("flags");
          if (!m.aborted && (m.data.size() != model.messages[k].size() ||
                             (!m.data.empty() &&
                              std::memcmp(m.data.data(), model.messages[k].data(), m.data.size()) != 0))) {
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

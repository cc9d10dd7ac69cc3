// Uses the installed headers and libraries: publishes, claims, polls, batches, a wake-up through the
// hub's backend. check.cmake builds it twice: as a Release project, and as a Debug project (no
// NDEBUG) under AddressSanitizer against the same release-built library, so that any public class
// whose layout depended on NDEBUG (or any other macro a user may set differently) would make this
// program's inline code read or write past an object the library allocated.
#include <pushpoll/pushpoll.hpp>

#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

int check(bool ok, int code, const char* what) {
  if (!ok) std::fprintf(stderr, "consumer: %s\n", what);
  return ok ? 0 : code;
}

}  // namespace

int main() {
  pushpoll::Hub hub;
  pushpoll::Topic& topic = hub.topic("installed");
  pushpoll::Subscriber sub = topic.subscribe();
  if (!sub.arm()) return 1;  // nothing published yet: armed
  const char text[] = "found";
  topic.publish(std::as_bytes(std::span(text)));
  if (!sub.wait(std::chrono::seconds(5))) return 2;  // the push arrived through the notifier
  int seen = 0;
  sub.poll().for_each([&](const pushpoll::Message& m) { seen += m.data.size() == sizeof text; });
  if (int rc = check(seen == 1, 3, "the published message was not read")) return rc;

  // The inline paths: publish, claim and commit, poll, iterate, move and release batches.
  pushpoll::TopicOptions opt;
  opt.capacity = 1 << 16;
  pushpoll::Topic& t = hub.topic("inline", opt);
  std::vector<pushpoll::Subscriber> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(t.subscribe(pushpoll::Start::oldest, i == 2 ? 1u << 5 : pushpoll::kAllTags));
  std::uint64_t published = 0;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    char payload[64];
    std::memset(payload, static_cast<int>(i), sizeof payload);
    if (i % 7 == 0) {
      pushpoll::Claim c = t.claim(sizeof payload);
      std::memcpy(c.data().data(), payload, sizeof payload);
      c.commit(5);
    } else {
      t.publish(std::as_bytes(std::span(payload)), static_cast<unsigned>(i % 3));
    }
    ++published;
    if (i % 50 == 49) {
      for (auto& s : subs) {
        std::vector<pushpoll::Batch> held;
        for (pushpoll::Batch b = s.poll(17); !b.empty() || b.end_seq() != b.first_seq(); b = s.poll(17)) {
          for (const pushpoll::Message& m : b) {
            if (m.data.size() != 64 || static_cast<unsigned char>(m.data[0]) != static_cast<unsigned char>(m.seq)) {
              return check(false, 4, "a message read back wrong");
            }
          }
          if (!b.release()) return check(false, 5, "a batch was overwritten in block mode");
          held.push_back(std::move(b));  // released: moving it keeps nothing alive
        }
      }
    }
  }
  // A batch that outlives its subscriber is released safely (and reported not intact).
  std::optional<pushpoll::Subscriber> late(t.subscribe(pushpoll::Start::oldest));
  pushpoll::Batch orphan = late->poll(10);
  late.reset();
  if (int rc = check(!orphan.release(), 6, "an orphaned batch released as intact")) return rc;
  const pushpoll::TopicStats stats = t.stats();
  if (int rc = check(stats.head == published, 7, "head is not what was published")) return rc;
  std::printf("consumer: %d message(s), %llu more published and read, backend %s\n", seen,
              static_cast<unsigned long long>(published), std::string(pushpoll::to_string(hub.backend())).c_str());
  return 0;
}

// Reads topic "ticks" of another process's hub (remote_feed, or python/examples/remote_feed.py)
// in place, parked between messages, until the topic is closed.
#include <pushpoll/pushpoll.hpp>
#include <pushpoll/remote.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/tmp/pushpoll-feed.sock";
  std::uint64_t count = 0;
  double last = 0;
  try {
    pushpoll::Remote remote = pushpoll::connect(path);  // pushpoll::Refused if not admitted
    pushpoll::Subscriber sub = remote.topic("ticks").subscribe(pushpoll::Start::oldest);
    for (;;) {
      pushpoll::Batch batch = sub.poll_wait(1024, std::chrono::seconds(1));  // throws Closed at the end
      if (batch.gap() != 0) std::printf("lost %llu ticks\n", static_cast<unsigned long long>(batch.gap()));
      for (const pushpoll::Message& m : batch) {
        if (m.data.size() == sizeof(double)) std::memcpy(&last, m.data.data(), sizeof(double));  // read in place
        ++count;
      }
    }
  } catch (const pushpoll::Closed&) {
    std::printf("the feed closed: %llu ticks read, the last at %.2f\n", static_cast<unsigned long long>(count), last);
  } catch (const pushpoll::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

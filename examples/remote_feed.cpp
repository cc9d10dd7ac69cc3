// A feed in one process, read by others: serves topic "ticks" at the socket path given (default
// /tmp/pushpoll-feed.sock), publishes a tick every millisecond (10,000 of them, or the count
// given second), then closes the topic (readers see Closed once they have read everything).
//
//   remote_feed /tmp/feed.sock &
//   remote_reader /tmp/feed.sock                         # C++
//   python python/examples/remote_reader.py /tmp/feed.sock   # Python
#include <pushpoll/io/shared_memory.hpp>
#include <pushpoll/pushpoll.hpp>
#include <pushpoll/remote.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/tmp/pushpoll-feed.sock";
  const std::uint64_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10'000;
  pushpoll::HubOptions options;
  options.memory = std::make_shared<pushpoll::io::SharedMemory>();  // other processes map the topics
  pushpoll::Hub hub(options);
  pushpoll::Topic& ticks = hub.topic("ticks");
  try {
    pushpoll::Server server = hub.serve(path);  // this user's processes may read
    std::printf("serving 'ticks' at %s\n", path);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let readers connect first
    for (std::uint64_t i = 0; i < count; ++i) {
      const double price = 100.0 + static_cast<double>(i % 100) / 100.0;
      ticks.publish(std::as_bytes(std::span(&price, 1)));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ticks.close();
    std::printf("published %llu ticks to %llu readers\n", static_cast<unsigned long long>(ticks.head()),
                static_cast<unsigned long long>(server.admitted()));
  } catch (const pushpoll::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

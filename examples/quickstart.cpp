// A producer thread publishes numbered messages; two subscribers on another thread poll batches and
// check the sequence. Prints what each side did.
#include <pushpoll/pushpoll.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

int main() {
  pushpoll::Hub hub;
  pushpoll::TopicOptions opt;
  opt.capacity = 1 << 16;
  pushpoll::Topic& topic = hub.topic("quickstart", opt);
  pushpoll::Subscriber all = topic.subscribe(pushpoll::Start::oldest);
  pushpoll::Subscriber odd = topic.subscribe(pushpoll::Start::oldest, /*tag_mask=*/1u << 1);

  constexpr std::uint64_t kMessages = 1'000'000;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < kMessages; ++i) {
      std::byte payload[16];
      std::memcpy(payload, &i, sizeof i);
      std::memset(payload + 8, static_cast<int>(i & 0xff), 8);
      topic.publish(payload, /*tag=*/static_cast<unsigned>(i & 1));
    }
  });
  std::uint64_t got_all = 0, got_odd = 0, batches = 0, errors = 0;
  while (got_all < kMessages) {
    for (const pushpoll::Message& m : all.poll(4096)) {
      std::uint64_t v;
      std::memcpy(&v, m.data.data(), sizeof v);
      errors += (v != m.seq || m.seq != got_all);
      ++got_all;
    }
    for (const pushpoll::Message& m : odd.poll(4096)) {
      errors += (m.tag != 1);
      ++got_odd;
    }
    ++batches;
  }
  producer.join();
  while (odd.lag() != 0) {
    for ([[maybe_unused]] const auto& m : odd.poll()) ++got_odd;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("published %llu messages of 16 B on topic '%s' in %.3f s (%.1f M/s)\n",
              static_cast<unsigned long long>(topic.head()), topic.name().c_str(), secs,
              static_cast<double>(kMessages) / secs / 1e6);
  std::printf("subscriber 'all' read %llu in %llu polls; subscriber 'odd' (tag 1) read %llu\n",
              static_cast<unsigned long long>(got_all), static_cast<unsigned long long>(batches),
              static_cast<unsigned long long>(got_odd));
  const auto st = topic.stats();
  std::printf("ring full waits %llu, retire walks %llu, gate scans %llu, errors %llu\n",
              static_cast<unsigned long long>(st.full_waits), static_cast<unsigned long long>(st.retire_walks),
              static_cast<unsigned long long>(st.gate_scans), static_cast<unsigned long long>(errors));
  return errors == 0 && got_odd == kMessages / 2 ? 0 : 1;
}

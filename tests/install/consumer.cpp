// Uses the installed headers and libraries: a publish, a poll, a wake-up through the hub's backend.
#include <pushpoll/pushpoll.hpp>

#include <cstdio>
#include <span>
#include <string>

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
  std::printf("consumer: %d message(s), backend %s\n", seen, std::string(pushpoll::to_string(hub.backend())).c_str());
  return seen == 1 ? 0 : 3;
}

#include "scenarios.hpp"

#include <stdexcept>

namespace pushpoll::harness {

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;

Config base(const char* phase, const char* title) {
  Config c;
  c.phase = phase;
  c.title = title;
  return c;
}

/// N = 1,000 subscribers on one reader thread, 64 B, each design as fast as it goes: delivered
/// messages/s and CPU per message (the first bar of the issue).
Config fanout(std::uint64_t duration_ns, std::vector<std::string> designs) {
  Config c = base("fanout-1000-max", "1,000 subscribers on 1 reader thread, 64 B, publishing as fast as each design allows");
  c.subscribers = 1000;
  c.threads = 1;
  c.rate_max = true;
  c.duration_ns = duration_ns;
  c.designs = std::move(designs);
  return c;
}

/// `subscribers` on `threads` reader threads, published to at `rate` messages/s (0: idle).
Config fixed_rate(const char* phase, const char* title, unsigned subscribers, unsigned threads, double rate,
                  std::uint64_t duration_ns, std::vector<std::string> designs) {
  Config c = base(phase, title);
  c.subscribers = subscribers;
  c.threads = threads;
  c.rate_max = false;
  c.rate = rate;
  c.duration_ns = duration_ns;
  c.designs = std::move(designs);
  return c;
}

/// One subscriber at a fixed moderate rate: publish-to-receive latency against polling.
Config latency_one(std::uint64_t duration_ns) {
  return fixed_rate("latency-1-10k", "1 subscriber, 64 B at 10,000 msgs/s: publish-to-receive latency", 1, 1, 10'000,
                    duration_ns, {"pushpoll", "poll-1ms", "poll-100us", "spsc-push", "zmq"});
}

/// 1,000 subscribers, wake groups, fixed moderate rate: latency against polling.
Config latency_thousand(std::uint64_t duration_ns) {
  // pushpoll-groups: a WakeGroup per thread, all members armed behind one barrier; pushpoll: each
  // subscriber armed on its own (one membarrier each).
  return fixed_rate("latency-1000-groups", "1,000 subscribers on 2 reader threads with wake groups, 64 B at 1,000 msgs/s",
                    1000, 2, 1'000, duration_ns, {"pushpoll-groups", "pushpoll", "poll-1ms"});
}

/// Nothing published: what waiting costs.
Config idle(std::uint64_t duration_ns) {
  return fixed_rate("idle-1000", "1,000 subscribers on 2 reader threads, nothing published: the cost of waiting", 1000,
                    2, 0, duration_ns, {"pushpoll-groups", "pushpoll", "poll-1ms", "poll-100us", "spsc-push", "zmq"});
}

}  // namespace

std::string scenario_help() {
  return "default: 1,000 subscribers at max rate, then 100 subscribers at 10k msgs/s (about 30 s; "
         "what `make run` runs)\n"
         "fanout1000: 1,000 subscribers on one thread at max rate: pushpoll vs spsc-push vs zmq\n"
         "latency: p99 at a fixed rate for 1 subscriber vs polling; 1,000 with wake groups; idle cost\n"
         "bars: fanout1000 + latency (every bar of the benchmark issue; about a minute; on a busy machine "
         "add --realtime)";
}

Scenario make_scenario(const std::string& name) {
  Scenario s;
  if (name == "default") {
    s.phases.push_back(fanout(2 * kSecond, {"pushpoll", "poll-1ms", "spsc-push", "zmq"}));
    s.phases.push_back(fixed_rate("latency-100-10k", "100 subscribers on 1 reader thread, 64 B at 10,000 msgs/s", 100,
                                  1, 10'000, 2 * kSecond,
                                  {"pushpoll", "pushpoll-groups", "poll-1ms", "poll-100us", "spsc-push", "zmq"}));
  } else if (name == "fanout1000") {
    s.phases.push_back(fanout(3 * kSecond, {"pushpoll", "pushpoll-groups", "spsc-push", "zmq", "poll-1ms"}));
  } else if (name == "latency") {
    s.phases = {latency_one(3 * kSecond), latency_thousand(3 * kSecond), idle(2 * kSecond)};
  } else if (name == "bars") {
    s.phases = {fanout(3 * kSecond, {"pushpoll", "pushpoll-groups", "spsc-push", "zmq", "poll-1ms"}), latency_one(3 * kSecond),
                latency_thousand(3 * kSecond), idle(2 * kSecond)};
  } else {
    throw std::invalid_argument("unknown scenario '" + name + "' (default, fanout1000, latency, bars)");
  }
  return s;
}

}  // namespace pushpoll::harness

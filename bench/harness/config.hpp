// config.hpp — one workload (a phase of a run), the designs it is run through, and their parsing.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pushpoll::harness {

/// A workload. Every design of a phase runs exactly this, each in its own process.
struct Config {
  std::string phase = "custom";      ///< a short name for the phase (tables, JSON, plots)
  std::string title;                 ///< one line saying what the phase shows
  unsigned publishers = 1;           ///< P publisher threads
  unsigned subscribers = 100;        ///< N subscribers
  unsigned threads = 1;              ///< T reader threads; subscriber i is served by thread i % T
  std::uint32_t size = 64;           ///< message size in bytes (payload, header included)
  bool rate_max = true;              ///< publish as fast as the design lets the publishers
  double rate = 0;                   ///< otherwise: messages/s in total over all publishers; 0 = idle
  std::uint64_t duration_ns = 2'000'000'000;  ///< publishing time
  std::uint64_t messages = 0;        ///< total messages to publish (0: no limit); whichever ends first
  bool lossless = true;              ///< overflow: block (lossless) or overwrite/drop
  std::string backend = "auto";      ///< pushpoll: auto | io_uring | syscall
  std::string notify = "publisher";  ///< pushpoll: publisher | background
  std::string barrier = "asymmetric";  ///< pushpoll: the arming barrier, asymmetric (membarrier) | symmetric
  std::uint64_t coalesce_ns = 50'000;  ///< pushpoll: background coalescing window
  bool sqpoll = false;               ///< pushpoll: io_uring SQPOLL
  unsigned tags = 1;                 ///< message i of a publisher gets tag i % tags; subscriber s takes tag s % tags
  bool wake_groups = false;          ///< `pushpoll` uses one WakeGroup per reader thread
  std::uint64_t spin_ns = 0;         ///< pushpoll readers: keep polling this long before arming
  /// Most messages taken from one subscriber per poll. Large by default: Subscriber::poll(max) finds
  /// the end of a whole backlog in O(1) but walks every record when the backlog exceeds `max`.
  unsigned batch = 65536;
  std::uint64_t ring_bytes = std::uint64_t{1} << 20;  ///< pushpoll / polling: topic capacity
  /// Time every n-th delivery of each subscriber; 0: automatic (every one at a fixed rate, every
  /// 64th at the maximum rate, where hundreds of millions a second would otherwise be timed).
  unsigned sample_every = 0;
  unsigned queue_depth = 1000;       ///< spsc-push queue and ZeroMQ high-water mark, in messages
  bool pin = false;                  ///< pin publisher and reader threads to CPUs round-robin
  int nice = 0;                      ///< scheduling niceness of each design's process (< 0 needs privilege)
  std::uint64_t send_spin_ns = 0;    ///< fixed rate: publishers spin this long before each send, not sleep
  bool realtime = false;             ///< SCHED_FIFO (priority 1) for fixed-rate and idle runs (needs privilege)
  std::vector<std::string> designs;  ///< the designs to run, in order

  /// The sampling stride in effect: sample_every, or its automatic value.
  [[nodiscard]] unsigned sample_stride() const noexcept {
    return sample_every != 0 ? sample_every : rate_max ? 64u : 1u;
  }
  /// Messages publisher p publishes at most (UINT64_MAX without a count limit).
  [[nodiscard]] std::uint64_t message_limit(unsigned p) const noexcept;
  /// Throws std::invalid_argument saying what is wrong.
  void validate() const;
  /// "P=1 N=1000 T=1 64 B rate=max 2 s block" and so on.
  [[nodiscard]] std::string summary() const;
};

void to_json(nlohmann::json& j, const Config& c);
void from_json(const nlohmann::json& j, Config& c);

/// A design named on the command line.
struct DesignSpec {
  enum class Kind { pushpoll, pushpoll_groups, pushpoll_sentinel, pushpoll_ipc, polling, spsc_push, zmq };
  Kind kind = Kind::pushpoll;
  std::string name;              ///< as given, normalised (e.g. "poll-1ms")
  std::uint64_t delay_ns = 0;    ///< polling: the sleep between passes
};

/// Parses "pushpoll", "pushpoll-groups", "pushpoll-sentinel", "pushpoll-ipc", "poll-<DELAY>" (poll-1ms, poll-100us,
/// poll-0), "spsc-push", "zmq". Throws std::invalid_argument naming the accepted forms.
DesignSpec parse_design(std::string_view name);
/// Whether this build includes the ZeroMQ design.
bool have_zmq() noexcept;

/// "1.5s", "200ms", "100us", "50ns"; a bare number is in `bare_unit_ns` units. Throws on junk.
std::uint64_t parse_duration_ns(std::string_view text, std::uint64_t bare_unit_ns);
/// "max" (returns nullopt), "0" (idle), "10000", "10k", "2.5M": messages per second.
std::optional<double> parse_rate(std::string_view text);
/// "64", "4k" / "4KiB" (x1024), "1M" / "1MiB", "1G": bytes.
std::uint64_t parse_bytes(std::string_view text);
/// "10000", "10k", "1.5M": a count.
std::uint64_t parse_count(std::string_view text);

/// 1234 -> "1.23k", 2.5e6 -> "2.50M" (three significant digits).
std::string si(double v);
/// Nanoseconds, human: "850 ns", "12.3 us", "1.05 ms", "2.00 s".
std::string human_ns(double ns);
/// Nanoseconds as the shortest duration literal parse_duration_ns() reads back ("1ms", "100us").
std::string duration_literal(std::uint64_t ns);

}  // namespace pushpoll::harness

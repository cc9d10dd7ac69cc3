#include "config.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "workload.hpp"

namespace pushpoll::harness {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Splits "12.5ms" into 12.5 and "ms". Throws when there is no number.
std::pair<double, std::string> number_and_unit(std::string_view text, std::string_view what) {
  const std::string s = lower(text);
  const auto digit = [&s](std::size_t k) {
    return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])) != 0;
  };
  std::size_t i = 0;
  while (digit(i) || (i < s.size() && s[i] == '.')) ++i;
  // An exponent ("1e6", "2.5e-3") only when digits follow the 'e' (so "1ms" stays 1 and "ms").
  if (i > 0 && i < s.size() && s[i] == 'e') {
    std::size_t k = i + 1;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
    if (digit(k)) {
      while (digit(k)) ++k;
      i = k;
    }
  }
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, v);
  if (i == 0 || ec != std::errc{} || ptr != s.data() + i || !std::isfinite(v) || v < 0) {
    throw std::invalid_argument("invalid " + std::string(what) + " '" + std::string(text) + "'");
  }
  std::string unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  return {v, unit};
}

std::uint64_t to_u64(double v, std::string_view text, std::string_view what) {
  if (v > 1.8e19) throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "' is too large");
  return static_cast<std::uint64_t>(std::llround(v));
}

}  // namespace

std::uint64_t parse_duration_ns(std::string_view text, std::uint64_t bare_unit_ns) {
  const auto [v, unit] = number_and_unit(text, "duration");
  double scale;
  if (unit.empty()) {
    scale = static_cast<double>(bare_unit_ns);
  } else if (unit == "ns") {
    scale = 1;
  } else if (unit == "us" || unit == "µs") {
    scale = 1e3;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "s") {
    scale = 1e9;
  } else if (unit == "m" || unit == "min") {
    scale = 60e9;
  } else {
    throw std::invalid_argument("invalid duration '" + std::string(text) + "' (units: ns, us, ms, s, min)");
  }
  return to_u64(v * scale, text, "duration");
}

std::optional<double> parse_rate(std::string_view text) {
  if (lower(text) == "max") return std::nullopt;
  std::string t = lower(text);
  if (t.size() > 2 && t.substr(t.size() - 2) == "/s") t.resize(t.size() - 2);
  const auto [v, unit] = number_and_unit(t, "rate");
  if (unit.empty()) return v;
  if (unit == "k") return v * 1e3;
  if (unit == "m") return v * 1e6;
  if (unit == "g") return v * 1e9;
  throw std::invalid_argument("invalid rate '" + std::string(text) + "' (max, or messages/s: 5000, 10k, 1.5M)");
}

std::uint64_t parse_bytes(std::string_view text) {
  const auto [v, unit] = number_and_unit(text, "size");
  double scale;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    scale = 1024.0;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    scale = 1024.0 * 1024.0;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    scale = 1024.0 * 1024.0 * 1024.0;
  } else {
    throw std::invalid_argument("invalid size '" + std::string(text) + "' (bytes, or with k, M, G: x1024)");
  }
  return to_u64(v * scale, text, "size");
}

std::uint64_t parse_count(std::string_view text) {
  const auto [v, unit] = number_and_unit(text, "count");
  double scale;
  if (unit.empty()) {
    scale = 1;
  } else if (unit == "k") {
    scale = 1e3;
  } else if (unit == "m") {
    scale = 1e6;
  } else if (unit == "g") {
    scale = 1e9;
  } else {
    throw std::invalid_argument("invalid count '" + std::string(text) + "' (e.g. 5000, 10k, 2M)");
  }
  return to_u64(v * scale, text, "count");
}

std::string si(double v) {
  // The unit is picked after rounding to three digits, so that 999,600 reads "1.00M", not "1000k".
  const char* suffix = "";
  double x = v;
  for (const auto& [div, s] : {std::pair{1e9, "G"}, std::pair{1e6, "M"}, std::pair{1e3, "k"}}) {
    if (std::fabs(v) / div >= 0.9995) {
      x = v / div;
      suffix = s;
      break;
    }
  }
  char buf[32];
  if (*suffix == '\0' && x == std::floor(x)) {
    std::snprintf(buf, sizeof buf, "%.0f", x);
  } else {
    const double a = std::fabs(x);
    std::snprintf(buf, sizeof buf, a >= 99.95 ? "%.0f%s" : a >= 9.995 ? "%.1f%s" : "%.2f%s", x, suffix);
  }
  return buf;
}

std::string human_ns(double ns) {
  char buf[32];
  const auto fmt = [&](double v, const char* unit) {
    std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v, unit);
  };
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (ns < 1e6) {
    fmt(ns / 1e3, "us");
  } else if (ns < 1e9) {
    fmt(ns / 1e6, "ms");
  } else {
    fmt(ns / 1e9, "s");
  }
  return buf;
}

std::string duration_literal(std::uint64_t ns) {
  if (ns == 0) return "0";
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

DesignSpec parse_design(std::string_view name) {
  const std::string n = lower(name);
  DesignSpec d;
  d.name = n;
  if (n == "pushpoll") {
    d.kind = DesignSpec::Kind::pushpoll;
  } else if (n == "pushpoll-groups") {
    d.kind = DesignSpec::Kind::pushpoll_groups;
  } else if (n == "pushpoll-sentinel") {
    d.kind = DesignSpec::Kind::pushpoll_sentinel;
  } else if (n == "pushpoll-ipc") {
    d.kind = DesignSpec::Kind::pushpoll_ipc;
  } else if (n == "spsc-push") {
    d.kind = DesignSpec::Kind::spsc_push;
  } else if (n == "zmq") {
    d.kind = DesignSpec::Kind::zmq;
  } else if (n.rfind("poll-", 0) == 0) {
    d.kind = DesignSpec::Kind::polling;
    d.delay_ns = parse_duration_ns(n.substr(5), 1'000'000);
    d.name = "poll-" + duration_literal(d.delay_ns);
  } else {
    throw std::invalid_argument("unknown design '" + std::string(name) +
                                "' (pushpoll, pushpoll-groups, pushpoll-sentinel, pushpoll-ipc, poll-<DELAY> such as poll-1ms or "
                                "poll-100us, spsc-push, zmq)");
  }
  return d;
}

bool have_zmq() noexcept {
#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
  return true;
#else
  return false;
#endif
}

std::uint64_t Config::message_limit(unsigned p) const noexcept {
  if (messages == 0) return std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t base = messages / publishers;
  return base + (p < messages % publishers ? 1 : 0);
}

void Config::validate() const {
  const auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (publishers < 1 || publishers > 64) fail("--publishers must be 1..64");
  if (subscribers < 1 || subscribers > 16384) fail("--subscribers must be 1..16384");
  if (threads < 1 || threads > 256) fail("--threads must be 1..256");
  if (threads > subscribers) fail("--threads must not exceed --subscribers");
  if (size < sizeof(PayloadHeader) || size > 65536) {
    fail("--size must be " + std::to_string(sizeof(PayloadHeader)) + "..65536 bytes (the payload carries a " +
         std::to_string(sizeof(PayloadHeader)) + "-byte header: tag, publisher, sequence, send times)");
  }
  if (!rate_max && (rate < 0 || !std::isfinite(rate))) fail("--rate must be max or >= 0");
  if (duration_ns == 0 && messages == 0) fail("give a --duration or a --messages count");
  if (tags < 1 || tags > 64) fail("--tags must be 1..64");
  if (batch < 1) fail("--batch must be >= 1");
  if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0) fail("--ring-bytes must be a power of two >= 4096");
  if (static_cast<std::uint64_t>(size) + 64 > ring_bytes / 4) fail("--size must fit a quarter of --ring-bytes");
  if (queue_depth < 2) fail("--queue-depth must be >= 2");
  if (backend != "auto" && backend != "io_uring" && backend != "syscall") fail("--backend must be auto, io_uring or syscall");
  if (notify != "publisher" && notify != "background") fail("--notify must be publisher or background");
  if (barrier != "asymmetric" && barrier != "symmetric") fail("--barrier must be asymmetric or symmetric");
  if (nice < -20 || nice > 19) fail("--nice must be -20..19");
  if (designs.empty()) fail("--designs is empty");
  for (const auto& d : designs) (void)parse_design(d);
}

std::string Config::summary() const {
  std::string s = "P=" + std::to_string(publishers) + " N=" + std::to_string(subscribers) +
                  " T=" + std::to_string(threads) + " " + std::to_string(size) + " B";
  if (rate_max) {
    s += " rate=max";
  } else if (rate == 0) {
    s += " rate=0 (idle)";
  } else {
    s += " rate=" + si(rate) + "/s";
  }
  if (duration_ns != 0) s += " " + human_ns(static_cast<double>(duration_ns));
  if (messages != 0) s += " msgs=" + si(static_cast<double>(messages));
  s += lossless ? " lossless" : " lossy";
  if (tags > 1) s += " tags=" + std::to_string(tags);
  if (wake_groups) s += " wake-groups";
  if (realtime && !rate_max) s += " SCHED_FIFO";
  if (sample_stride() != 1) s += " timing 1/" + std::to_string(sample_stride());
  if (send_spin_ns != 0) s += " send-spin=" + human_ns(static_cast<double>(send_spin_ns));
  if (nice != 0) s += " nice=" + std::to_string(nice);
  return s;
}

void to_json(nlohmann::json& j, const Config& c) {
  j = nlohmann::json{{"phase", c.phase},
                     {"title", c.title},
                     {"publishers", c.publishers},
                     {"subscribers", c.subscribers},
                     {"threads", c.threads},
                     {"size", c.size},
                     {"rate", c.rate_max ? nlohmann::json("max") : nlohmann::json(c.rate)},
                     {"duration_ns", c.duration_ns},
                     {"messages", c.messages},
                     {"overflow", c.lossless ? "block" : "overwrite"},
                     {"backend", c.backend},
                     {"notify", c.notify},
                     {"barrier", c.barrier},
                     {"coalesce_ns", c.coalesce_ns},
                     {"sqpoll", c.sqpoll},
                     {"tags", c.tags},
                     {"wake_groups", c.wake_groups},
                     {"spin_ns", c.spin_ns},
                     {"batch", c.batch},
                     {"ring_bytes", c.ring_bytes},
                     {"sample_every", c.sample_stride()},
                     {"queue_depth", c.queue_depth},
                     {"pin", c.pin},
                     {"nice", c.nice},
                     {"realtime", c.realtime},
                     {"send_spin_ns", c.send_spin_ns},
                     {"designs", c.designs}};
}

void from_json(const nlohmann::json& j, Config& c) {
  c.phase = j.at("phase").get<std::string>();
  c.title = j.at("title").get<std::string>();
  c.publishers = j.at("publishers").get<unsigned>();
  c.subscribers = j.at("subscribers").get<unsigned>();
  c.threads = j.at("threads").get<unsigned>();
  c.size = j.at("size").get<std::uint32_t>();
  const auto& rate = j.at("rate");
  c.rate_max = rate.is_string();
  c.rate = c.rate_max ? 0.0 : rate.get<double>();
  c.duration_ns = j.at("duration_ns").get<std::uint64_t>();
  c.messages = j.at("messages").get<std::uint64_t>();
  c.lossless = j.at("overflow").get<std::string>() == "block";
  c.backend = j.at("backend").get<std::string>();
  c.notify = j.at("notify").get<std::string>();
  c.barrier = j.at("barrier").get<std::string>();
  c.coalesce_ns = j.at("coalesce_ns").get<std::uint64_t>();
  c.sqpoll = j.at("sqpoll").get<bool>();
  c.tags = j.at("tags").get<unsigned>();
  c.wake_groups = j.at("wake_groups").get<bool>();
  c.spin_ns = j.at("spin_ns").get<std::uint64_t>();
  c.batch = j.at("batch").get<unsigned>();
  c.ring_bytes = j.at("ring_bytes").get<std::uint64_t>();
  c.sample_every = j.at("sample_every").get<unsigned>();
  c.queue_depth = j.at("queue_depth").get<unsigned>();
  c.pin = j.at("pin").get<bool>();
  c.nice = j.at("nice").get<int>();
  c.realtime = j.at("realtime").get<bool>();
  c.send_spin_ns = j.at("send_spin_ns").get<std::uint64_t>();
  c.designs = j.at("designs").get<std::vector<std::string>>();
}

}  // namespace pushpoll::harness

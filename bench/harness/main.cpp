// pushpoll-bench — load-tests push-to-poll (pushpoll) against the designs it replaces: polling with
// sleep(DELAY), server push through per-subscriber queues, and ZeroMQ inproc PUB/SUB. Each design
// runs the same workload in its own process (this program re-executed with a hidden --child option);
// the parent shows progress, collects each result as JSON through a pipe and prints the tables.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "child.hpp"
#include "config.hpp"
#include "report.hpp"
#include "scenarios.hpp"
#include "sysinfo.hpp"

namespace ph = pushpoll::harness;
using nlohmann::json;

namespace {

const char* const kDefaultDesigns = "pushpoll,poll-1ms,poll-100us,spsc-push,zmq";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char c : s) {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string iso_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// The live one-line progress display (stderr, when it is a terminal).
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  void update(const std::string& label, double elapsed, double published, double delivered) {
    if (!enabled_) return;
    const double dt = elapsed - last_elapsed_;
    if (dt > 0.05) {
      rate_ = (delivered - last_delivered_) / dt;
      last_elapsed_ = elapsed;
      last_delivered_ = delivered;
    }
    std::fprintf(stderr, "\r\033[K  %s  %5.1f s  published %s  delivered %s  (%s/s)", label.c_str(), elapsed,
                 ph::si(published).c_str(), ph::si(delivered).c_str(), ph::si(rate_).c_str());
    std::fflush(stderr);
  }
  void start(const std::string& label) {
    last_elapsed_ = last_delivered_ = rate_ = 0;
    if (!enabled_) return;
    std::fprintf(stderr, "\r\033[K  %s  setting up...", label.c_str());
    std::fflush(stderr);
  }
  void clear() {
    if (!enabled_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  double last_elapsed_ = 0, last_delivered_ = 0, rate_ = 0;
};

json failed(const std::string& design, const std::string& why, bool skipped = false) {
  return json{{"design", design}, {"ok", false}, {"skipped", skipped}, {"error", why}};
}

/// Runs one design in a child process (this program, re-executed) and returns its result.
json run_design(const ph::Config& cfg, const std::string& design, Progress& progress, const std::string& label,
                double timeout_s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failed(design, "pipe2 failed");
  const std::string cfg_text = json(cfg).dump();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return failed(design, "fork failed");
  }
  if (pid == 0) {
    // dup2 clears close-on-exec on the copy: fd 3 reaches the child image, nothing else does.
    if (::dup2(fds[1], 3) < 0) ::_exit(127);
    const char* args[] = {"pushpoll-bench", "--child", design.c_str(), "--child-config", cfg_text.c_str(),
                          "--result-fd", "3", nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(args));
    ::_exit(127);
  }
  ::close(fds[1]);
  progress.start(label);
  std::string buffer;
  json result;
  const auto start = std::chrono::steady_clock::now();
  bool timed_out = false;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, 200);
    if (rc < 0 && errno != EINTR) break;
    if (rc > 0) {
      char chunk[65536];
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the child closed its end (exited)
      buffer.append(chunk, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        const std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        json msg = json::parse(line, nullptr, false);
        if (msg.is_discarded()) continue;
        if (msg.value("type", "") == "progress") {
          progress.update(label, msg.value("elapsed_s", 0.0), msg.value("published", 0.0), msg.value("delivered", 0.0));
        } else if (msg.value("type", "") == "result") {
          result = msg.at("result");
        }
      }
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout_s) {
      ::kill(pid, SIGKILL);
      timed_out = true;
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  progress.clear();
  if (timed_out) return failed(design, "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s (killed)");
  if (result.is_null()) {
    if (WIFSIGNALED(status)) return failed(design, "child killed by signal " + std::to_string(WTERMSIG(status)));
    return failed(design, "child exited with status " + std::to_string(WEXITSTATUS(status)) + " and no result");
  }
  return result;
}

void print_machine(std::FILE* out, const json& m) {
  std::fprintf(out, "machine: %s, %d CPUs, %s, %s, %s build%s\n", m.value("cpu", "?").c_str(),
               m.value("cpus_online", 0), m.value("kernel", "?").c_str(), m.value("compiler", "?").c_str(),
               m.value("build_type", "?").c_str(), m.value("assertions", false) ? " (assertions on)" : "");
}

/// Everything the command line sets: the workload (in `config`, or as text parsed into it), the
/// run, and the hidden options of a child process.
struct Cli {
  ph::Config config;
  std::string scenario, phase_name = "custom", rate = "max", duration = "2s", messages = "0", size = "64",
                        coalesce = "50us", spin = "0", ring = "1MiB", send_spin = "0", overflow = "block",
                        designs = kDefaultDesigns, json_path;
  bool quiet = false;
  double timeout_s = 0;
  std::string child_design, child_config;
  int result_fd = -1;
};

void add_workload_options(CLI::App& app, Cli& a) {
  ph::Config& cli = a.config;
  app.add_option("--scenario", a.scenario, "a preset: default, fanout1000, latency, bars (options given also override it)");
  app.add_option("--name", a.phase_name, "name of the workload given by options (tables, JSON, plot files)")
      ->capture_default_str();
  app.add_option("-P,--publishers", cli.publishers, "publisher threads")->capture_default_str();
  app.add_option("-N,--subscribers", cli.subscribers, "subscribers")->capture_default_str();
  app.add_option("-T,--threads", cli.threads,
                 "reader threads; each multiplexes its subscribers (subscriber i on thread i % T) with epoll")
      ->capture_default_str();
  app.add_option("-s,--size", a.size, "message size in bytes, 24.. (k = x1024)")->capture_default_str();
  app.add_option("-r,--rate", a.rate,
                 "max, or messages/s in total (10k, 1.5M) on a fixed schedule, latency measured from the "
                 "intended send time (coordinated-omission safe); 0 = idle")
      ->capture_default_str();
  app.add_option("-d,--duration", a.duration, "publishing time per design (500ms, 3s)")->capture_default_str();
  app.add_option("-m,--messages", a.messages, "stop after this many messages in total (0: no limit)")->capture_default_str();
  app.add_option("--overflow", a.overflow,
                 "block: lossless, every delivery checked exactly-once-in-order; overwrite: lossy (pushpoll "
                 "overwrites, the others drop), losses counted as gaps")
      ->check(CLI::IsMember({"block", "overwrite"}))
      ->capture_default_str();
  app.add_option("--tags", cli.tags,
                 "spread messages over K tags (message i: tag i % K); subscriber s takes tag s % K only")
      ->capture_default_str();
  app.add_option("--batch", cli.batch, "most messages taken from one subscriber per poll")->capture_default_str();
  app.add_option("--sample-every", cli.sample_every,
                 "time every n-th delivery of each subscriber (0: every one at a fixed rate, every 64th at "
                 "the maximum rate); every delivery is checked regardless")
      ->capture_default_str();
  app.add_option("--ring-bytes", a.ring, "pushpoll / polling topic capacity (power of two)")->capture_default_str();
  app.add_option("--queue-depth", cli.queue_depth, "spsc-push queue and ZeroMQ high-water mark, in messages")
      ->capture_default_str();
}

void add_pushpoll_options(CLI::App& app, Cli& a) {
  ph::Config& cli = a.config;
  app.add_option("--backend", cli.backend, "pushpoll wake-up backend: auto, io_uring, syscall")
      ->check(CLI::IsMember({"auto", "io_uring", "syscall"}))
      ->capture_default_str();
  app.add_option("--notify", cli.notify, "pushpoll notifier: publisher (inline) or background")
      ->check(CLI::IsMember({"publisher", "background"}))
      ->capture_default_str();
  app.add_option("--barrier", cli.barrier,
                 "pushpoll arming barrier: asymmetric (membarrier per arming, publishers pay nothing) or "
                 "symmetric (a fence per publish, arming cheap)")
      ->check(CLI::IsMember({"asymmetric", "symmetric"}))
      ->capture_default_str();
  app.add_option("--coalesce", a.coalesce, "pushpoll background notifier's coalescing window")->capture_default_str();
  app.add_flag("--sqpoll", cli.sqpoll, "pushpoll: io_uring with a kernel submission thread");
  app.add_flag("--wake-groups", cli.wake_groups, "pushpoll: one WakeGroup (one eventfd) per reader thread");
  app.add_option("--spin", a.spin, "pushpoll readers keep polling this long before arming (0: arm at once)")
      ->capture_default_str();
}

void add_run_options(CLI::App& app, Cli& a) {
  ph::Config& cli = a.config;
  app.add_flag("--pin", cli.pin, "pin publisher and reader threads to CPUs, round-robin");
  app.add_option("--nice", cli.nice,
                 "niceness of each design's process, -20..19 (below 0 needs root), which also gets a session "
                 "(scheduling autogroup) of its own at that niceness: shields the measurement from other work "
                 "on a shared machine")
      ->capture_default_str();
  app.add_option("--send-spin", a.send_spin,
                 "fixed rate: publishers sleep until this long before each send, then spin (a sharper "
                 "schedule for latency runs, at the cost of publisher CPU)")
      ->capture_default_str();
  app.add_flag("--realtime", cli.realtime,
               "fixed-rate and idle runs: each design's threads SCHED_FIFO (needs root). On a busy machine "
               "timer and wake-up delays of milliseconds otherwise dominate latency tails. Max-rate runs stay "
               "at normal priority (busy FIFO threads would take the CPUs from everything else)");
  app.add_option("--designs", a.designs,
                 "comma-separated: pushpoll, pushpoll-groups (a WakeGroup per thread), pushpoll-sentinel (a "
                 "thread arms one subscriber per tag mask for all), pushpoll-ipc (each reader thread's subscribers in a "
                 "process of its own, mapping the topic read-only), poll-<DELAY> (poll-1ms, poll-100us, "
                 "poll-10ms), spsc-push, zmq")
      ->capture_default_str();
  app.add_option("--json", a.json_path, "write every result (and the machine) to this file as JSON");
  app.add_flag("-q,--quiet", a.quiet, "no progress display and no per-design lines: only the tables");
  app.add_option("--timeout", a.timeout_s, "kill a design's process after this many seconds (default: 60 + 4 x duration)");
  app.add_option("--child", a.child_design)->group("");
  app.add_option("--child-config", a.child_config)->group("");
  app.add_option("--result-fd", a.result_fd)->group("");
}

/// The phases to run: the command line's workload, or a scenario's phases with every option given
/// on the command line applied over each. Throws on a bad value.
std::vector<ph::Config> build_phases(const CLI::App& app, Cli& a) {
  ph::Config& cli = a.config;
  cli.size = static_cast<std::uint32_t>(ph::parse_bytes(a.size));
  const auto r = ph::parse_rate(a.rate);
  cli.rate_max = !r.has_value();
  cli.rate = r.value_or(0.0);
  cli.duration_ns = ph::parse_duration_ns(a.duration, 1'000'000'000);
  cli.messages = ph::parse_count(a.messages);
  cli.lossless = a.overflow == "block";
  cli.coalesce_ns = ph::parse_duration_ns(a.coalesce, 1'000);
  cli.spin_ns = ph::parse_duration_ns(a.spin, 1'000);
  cli.send_spin_ns = ph::parse_duration_ns(a.send_spin, 1'000);
  cli.ring_bytes = ph::parse_bytes(a.ring);
  cli.designs = split_list(a.designs);

  std::vector<ph::Config> phases;
  if (a.scenario.empty()) {
    cli.phase = a.phase_name;
    cli.title = "the workload given on the command line";
    phases.push_back(cli);
  } else {
    const std::vector<std::pair<const char*, std::function<void(ph::Config&)>>> overrides = {
        {"--publishers", [&](ph::Config& c) { c.publishers = cli.publishers; }},
        {"--subscribers", [&](ph::Config& c) { c.subscribers = cli.subscribers; }},
        {"--threads", [&](ph::Config& c) { c.threads = cli.threads; }},
        {"--size", [&](ph::Config& c) { c.size = cli.size; }},
        {"--rate", [&](ph::Config& c) { c.rate_max = cli.rate_max; c.rate = cli.rate; }},
        {"--duration", [&](ph::Config& c) { c.duration_ns = cli.duration_ns; }},
        {"--messages", [&](ph::Config& c) { c.messages = cli.messages; }},
        {"--overflow", [&](ph::Config& c) { c.lossless = cli.lossless; }},
        {"--backend", [&](ph::Config& c) { c.backend = cli.backend; }},
        {"--notify", [&](ph::Config& c) { c.notify = cli.notify; }},
        {"--barrier", [&](ph::Config& c) { c.barrier = cli.barrier; }},
        {"--coalesce", [&](ph::Config& c) { c.coalesce_ns = cli.coalesce_ns; }},
        {"--sqpoll", [&](ph::Config& c) { c.sqpoll = cli.sqpoll; }},
        {"--tags", [&](ph::Config& c) { c.tags = cli.tags; }},
        {"--wake-groups", [&](ph::Config& c) { c.wake_groups = cli.wake_groups; }},
        {"--spin", [&](ph::Config& c) { c.spin_ns = cli.spin_ns; }},
        {"--batch", [&](ph::Config& c) { c.batch = cli.batch; }},
        {"--ring-bytes", [&](ph::Config& c) { c.ring_bytes = cli.ring_bytes; }},
        {"--sample-every", [&](ph::Config& c) { c.sample_every = cli.sample_every; }},
        {"--queue-depth", [&](ph::Config& c) { c.queue_depth = cli.queue_depth; }},
        {"--pin", [&](ph::Config& c) { c.pin = cli.pin; }},
        {"--nice", [&](ph::Config& c) { c.nice = cli.nice; }},
        {"--realtime", [&](ph::Config& c) { c.realtime = cli.realtime; }},
        {"--send-spin", [&](ph::Config& c) { c.send_spin_ns = cli.send_spin_ns; }},
        {"--designs", [&](ph::Config& c) { c.designs = cli.designs; }},
    };
    for (ph::Config c : ph::make_scenario(a.scenario).phases) {
      for (const auto& [name, apply] : overrides) {
        if (app.get_option(name)->count() > 0) apply(c);
      }
      phases.push_back(c);
    }
  }
  for (auto& c : phases) {
    for (auto& d : c.designs) d = ph::parse_design(d).name;
    c.validate();
  }
  return phases;
}

void print_design_line(std::FILE* out, const std::string& d, const json& r) {
  if (r.value("ok", false)) {
    const json& l = r.at("latency_ns");
    std::fprintf(out, "   %-16s %9s delivered/s  p99 %-9s  %s violations  (%.1f s)\n", d.c_str(),
                 ph::si(r.at("delivered_per_s").get<double>()).c_str(),
                 l.value("count", 0) > 0 ? ph::human_ns(l.at("p99").get<double>()).c_str() : "-",
                 std::to_string(r.at("violations").at("total").get<std::uint64_t>()).c_str(),
                 r.at("elapsed_s").get<double>());
  } else {
    std::fprintf(out, "   %-16s %s: %s\n", d.c_str(), r.value("skipped", false) ? "skipped" : "FAILED",
                 r.value("error", std::string("?")).c_str());
  }
  std::fflush(out);
}

/// Tallies of a whole run: deliveries that broke exactly-once-in-order, designs that failed to run.
struct Tally {
  std::uint64_t violations = 0, failures = 0;
};

/// Runs every design of one phase, printing as it goes; returns the phase's JSON.
json run_phase(const ph::Config& c, const Cli& a, Progress& progress, std::FILE* out, Tally& tally) {
  const bool show = !a.quiet;
  std::fprintf(out, "\n== %s: %s\n   %s\n", c.phase.c_str(), c.title.c_str(), c.summary().c_str());
  const double load = ph::loadavg_1min();
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (show && !(c.realtime && !c.rate_max) && cpus > 0 && load > 0.75 * static_cast<double>(cpus)) {
    std::fprintf(out, "   note: load average %.1f on %ld CPUs: other work competes for the CPUs, and latency tails "
                 "will include its scheduling delays (--realtime shields the runs)\n", load, cpus);
  }
  std::fflush(out);
  json results = json::array();
  const double timeout = a.timeout_s > 0 ? a.timeout_s : 60.0 + 4.0 * static_cast<double>(c.duration_ns) / 1e9;
  for (std::size_t di = 0; di < c.designs.size(); ++di) {
    const std::string& d = c.designs[di];
    json r;
    if (ph::parse_design(d).kind == ph::DesignSpec::Kind::zmq && !ph::have_zmq()) {
      r = failed(d, "built without ZeroMQ (libzmq not found at configure time)", true);
    } else {
      char label[96];
      std::snprintf(label, sizeof label, "[%zu/%zu] %-16s", di + 1, c.designs.size(), d.c_str());
      r = run_design(c, d, progress, label, timeout);
    }
    if (!r.value("ok", false) && !r.value("skipped", false)) ++tally.failures;
    if (r.value("ok", false)) tally.violations += r.at("violations").at("total").get<std::uint64_t>();
    if (show) print_design_line(out, d, r);
    results.push_back(r);
  }
  json phase{{"config", json(c)}, {"results", results}, {"comparison", ph::comparison_json(results)}};
  ph::print_phase(out, phase);
  if (show) {
    std::fprintf(out, "\nDesigns:\n");
    for (const auto& r : results) {
      if (r.contains("description")) {
        std::fprintf(out, "  %-16s %s\n", r.value("design", "").c_str(), r.value("description", "").c_str());
      }
    }
  }
  std::fflush(out);
  return phase;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "pushpoll-bench: the same workload through push-to-poll (pushpoll) and the designs it replaces "
      "(polling with sleep(DELAY), server push with per-subscriber queues, ZeroMQ inproc PUB/SUB), "
      "each design in its own process; ends with a side-by-side table."};
  app.get_formatter()->column_width(34);
  Cli a;
  add_workload_options(app, a);
  add_pushpoll_options(app, a);
  add_run_options(app, a);
  app.footer(std::string("\nScenarios:\n") + ph::scenario_help() +
             "\n\nExit status: 0 when every design ran and every check held; 1 when a delivery check failed "
             "(lossless mode: each subscriber must receive every message exactly once, in order); 2 when a "
             "design failed to run.");
  CLI11_PARSE(app, argc, argv);

  if (!a.child_design.empty()) {
    try {
      ph::Config c = json::parse(a.child_config).get<ph::Config>();
      return ph::child_main(c, a.child_design, a.result_fd);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pushpoll-bench --child: %s\n", e.what());
      return 2;
    }
  }
  std::vector<ph::Config> phases;
  try {
    phases = build_phases(app, a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pushpoll-bench: %s\n", e.what());
    return 2;
  }

  // Children inherit nothing of ours but fd 3; a broken pipe to a dead child must not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  const json machine = ph::machine_info();
  json doc{{"tool", "pushpoll-bench"},
           {"schema", 1},
           {"started", iso_now()},
           {"scenario", a.scenario.empty() ? json(nullptr) : json(a.scenario)},
           {"argv", std::vector<std::string>(argv, argv + argc)},
           {"machine", machine},
           {"phases", json::array()}};
  Progress progress(!a.quiet && ::isatty(STDERR_FILENO) != 0);
  std::FILE* out = stdout;
  if (!a.quiet) {
    std::fprintf(out, "pushpoll-bench%s\n", a.scenario.empty() ? "" : (" --scenario " + a.scenario).c_str());
    print_machine(out, machine);
  }
  const auto write_json = [&] {
    if (a.json_path.empty()) return;
    std::ofstream f(a.json_path);
    f << doc.dump(1) << "\n";
    if (!f) std::fprintf(stderr, "pushpoll-bench: cannot write %s\n", a.json_path.c_str());
  };
  Tally tally;
  for (const ph::Config& c : phases) {
    doc["phases"].push_back(run_phase(c, a, progress, out, tally));
    write_json();  // after each phase: a run cut short keeps what it measured
  }
  doc["violations"] = tally.violations;
  doc["failures"] = tally.failures;
  write_json();
  if (tally.violations != 0) {
    std::fprintf(out, "\nVIOLATIONS: %llu deliveries broke exactly-once-in-order (see the tables)\n",
                 static_cast<unsigned long long>(tally.violations));
  }
  if (tally.failures != 0) {
    std::fprintf(out, "\n%llu design run(s) FAILED\n", static_cast<unsigned long long>(tally.failures));
  }
  return tally.failures != 0 ? 2 : tally.violations != 0 ? 1 : 0;
}

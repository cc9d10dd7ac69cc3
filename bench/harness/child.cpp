// One design, one process: builds the design, runs the workload, measures it, and writes the result
// as one JSON line to the parent (progress lines before it). Running each design in a fresh process
// gives each its own peak memory, its own CPU account and no leftovers from the previous design.
#include "child.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <thread>

#include "sysinfo.hpp"
#include "workload.hpp"

namespace pushpoll::harness {

std::unique_ptr<Design> make_design(const DesignSpec& spec, const Config& cfg) {
  switch (spec.kind) {
    case DesignSpec::Kind::pushpoll:
    case DesignSpec::Kind::pushpoll_groups:
    case DesignSpec::Kind::pushpoll_sentinel:
    case DesignSpec::Kind::pushpoll_ipc:
    case DesignSpec::Kind::polling:
      return make_pushpoll_design(spec, cfg);
    case DesignSpec::Kind::spsc_push:
      return make_spsc_push_design(cfg);
    case DesignSpec::Kind::zmq:
#if defined(PUSHPOLL_BENCH_HAVE_ZMQ)
      return make_zmq_design(cfg);
#else
      throw std::runtime_error("this pushpoll-bench was built without ZeroMQ (libzmq not found at configure time)");
#endif
  }
  throw std::logic_error("unknown design kind");
}

namespace {

void write_line(int fd, const nlohmann::json& j) {
  std::string s = j.dump();
  s.push_back('\n');
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the parent went away
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

nlohmann::json latency_json(const LatencyHistogram& h) {
  nlohmann::json cdf = nlohmann::json::array();
  for (const auto& [v, f] : h.cdf()) cdf.push_back({v, f});
  return {{"count", h.count()},
          {"min", h.min()},
          {"mean", h.mean()},
          {"p50", h.percentile(50)},
          {"p90", h.percentile(90)},
          {"p99", h.percentile(99)},
          {"p999", h.percentile(99.9)},
          {"max", h.max()},
          {"cdf", cdf}};
}

double per(double num, double den) { return den > 0 ? num / den : 0.0; }

/// The process a design runs in: exact sleeps, the niceness and scheduling asked for, and as many
/// descriptors as the hard limit allows.
void prepare_process(const Config& cfg) {
  // Sleeps end when asked, not up to 50 us later: the publishers' schedule and the polling designs'
  // DELAY are then what they say (this favours polling, if anything).
  (void)::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  if (cfg.nice != 0) {
    // With autogroup scheduling (the default on most distributions) niceness only weighs threads
    // against others of the same session: a session of its own, its autogroup at this niceness, and
    // the process at it too, so that the weight holds against the rest of the machine.
    (void)::setsid();
    if (std::FILE* f = std::fopen("/proc/self/autogroup", "w")) {
      std::fprintf(f, "%d", cfg.nice);
      std::fclose(f);
    }
    if (::setpriority(PRIO_PROCESS, 0, cfg.nice) != 0) {
      std::fprintf(stderr, "pushpoll-bench: setpriority(%d) refused (needs CAP_SYS_NICE below 0); running at the "
                   "default priority\n", cfg.nice);
    }
  }
  if (cfg.realtime && !cfg.rate_max) {
    // Fixed-rate and idle runs only: at the maximum rate busy threads would take the CPUs from
    // everything else. Threads created from here on inherit the policy.
    sched_param sp{};
    sp.sched_priority = 1;
    if (::sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
      std::fprintf(stderr, "pushpoll-bench: SCHED_FIFO refused (needs CAP_SYS_NICE); running at the default "
                   "priority\n");
    }
  }
  // One descriptor per subscriber (eventfds, sockets) and more: allow as many as the hard limit does.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &nofile);
  }
}

/// What the process and the design had done when the gate opened and when the readers finished.
struct Window {
  DesignCounters c0, c1;
  ProcessSnapshot s0, s1;
  std::uint64_t t0 = 0, t_end = 0, t_published = 0, peak_kib = 0;
};

/// Starts the readers and publishers, opens the gate, reports progress until the readers are done,
/// and joins them.
Window run_threads(const Config& cfg, RunContext& ctx, Design& design, std::vector<Checker>& checkers,
                   std::vector<ReaderStats>& stats, int out_fd) {
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      if (cfg.pin) (void)pin_to_cpu(cfg.publishers + t);
      (void)ctx.arrive_and_wait();
      const double cpu0 = thread_cpu_s();
      try {
        design.serve(t, checkers[t], stats[t]);
      } catch (const std::exception& e) {
        ctx.fail("reader " + std::to_string(t) + ": " + e.what());
      }
      ctx.reader_cpu[t] = thread_cpu_s() - cpu0;
      ctx.reader_finished();
    });
  }
  for (unsigned p = 0; p < cfg.publishers; ++p) {
    threads.emplace_back([&, p] { run_publisher(ctx, design, p); });
  }

  ctx.wait_arrivals(cfg.threads + cfg.publishers);
  Window w;
  w.c0 = design.counters();
  w.s0 = snapshot_process();
  w.t0 = now_ns();
  ctx.open_gate(w.t0);

  const auto report_progress = [&](std::uint64_t now) {
    std::uint64_t pub = 0, del = 0;
    for (const auto& p : ctx.published) pub += p.value.load(std::memory_order_relaxed);
    for (const auto& d : ctx.delivered) del += d.value.load(std::memory_order_relaxed);
    write_line(out_fd, {{"type", "progress"},
                        {"elapsed_s", static_cast<double>(now - w.t0) / 1e9},
                        {"published", pub},
                        {"delivered", del}});
  };
  // The last publisher to finish tells the readers (RunContext::publisher_finished()); meanwhile
  // this thread only reports progress, 5 times a second.
  ctx.wait_readers(200'000'000, [&] { report_progress(now_ns()); });
  for (auto& th : threads) th.join();
  w.t_end = std::max(ctx.readers_end.load(std::memory_order_relaxed), w.t0);
  w.t_published = std::clamp(ctx.publishers_end.load(std::memory_order_relaxed), w.t0, w.t_end);
  w.s1 = snapshot_process();
  w.c1 = design.counters();
  w.peak_kib = peak_rss_kib();
  report_progress(w.t_end);
  return w;
}

/// What was delivered, how fast, how late, and whether exactly once and in order.
void add_deliveries(nlohmann::json& result, const Config& cfg, const RunContext& ctx, const ReaderStats& all,
                    const Checker::Totals& v, const Window& w) {
  std::uint64_t published = 0;
  for (const std::uint64_t n : ctx.published_final) published += n;
  LatencyHistogram lag;
  for (const auto& h : ctx.send_lag) lag.merge(h);
  const double elapsed = static_cast<double>(w.t_end - w.t0) / 1e9;
  const double publish_s = static_cast<double>(w.t_published - w.t0) / 1e9;
  // Exactly once, in order: in lossless mode any loss is a violation; in lossy mode losses are
  // gaps, but duplicates, reorderings and malformed deliveries are still violations.
  const std::uint64_t lost = v.skipped + v.missing;
  const std::uint64_t torn_violations = cfg.lossless ? all.torn : 0;
  const std::uint64_t violations = v.out_of_order + v.malformed + torn_violations + (cfg.lossless ? lost : 0);

  result["lossless"] = cfg.lossless;
  result["published"] = published;
  result["delivered"] = all.delivered;
  result["expected_deliveries"] = v.expected;
  result["delivered_bytes"] = all.bytes;
  result["elapsed_s"] = elapsed;
  result["publish_s"] = publish_s;
  result["drain_s"] = elapsed - publish_s;
  result["published_per_s"] = per(static_cast<double>(published), publish_s);
  result["published_bytes_per_s"] = per(static_cast<double>(published) * cfg.size, publish_s);
  result["delivered_per_s"] = per(static_cast<double>(all.delivered), elapsed);
  result["delivered_bytes_per_s"] = per(static_cast<double>(all.bytes), elapsed);
  result["latency_ns"] = latency_json(all.latency);
  result["deliveries_sampled"] = all.sampled;
  result["transit_ns"] = {{"count", all.transit.count()},
                          {"p50", all.transit.percentile(50)},
                          {"p90", all.transit.percentile(90)},
                          {"p99", all.transit.percentile(99)},
                          {"p999", all.transit.percentile(99.9)},
                          {"max", all.transit.max()}};
  result["send_lag_ns"] = {{"count", lag.count()}, {"p50", lag.percentile(50)}, {"p99", lag.percentile(99)}, {"max", lag.max()}};
  result["gaps"] = lost;
  result["transport_gaps"] = all.transport_gaps;
  result["violations"] = {{"total", violations},
                          {"skipped", v.skipped},
                          {"missing", v.missing},
                          {"out_of_order", v.out_of_order},
                          {"malformed", v.malformed},
                          {"torn_batches", all.torn},
                          {"subscribers_short", v.subscribers_short}};
  result["readers"] = {{"passes", all.passes},
                       {"batches", all.batches},
                       {"blocking_waits", all.sleeps},
                       {"aborted_records", all.aborted_records}};
}

/// What it cost: syscalls, CPU, context switches, memory, wake-ups.
void add_costs(nlohmann::json& result, const RunContext& ctx, const Design& design, const ReaderStats& all,
               const Window& w) {
  const double elapsed = static_cast<double>(w.t_end - w.t0) / 1e9;
  const double delivered = static_cast<double>(all.delivered);
  const double cpu_user = w.s1.user_s - w.s0.user_s, cpu_sys = w.s1.sys_s - w.s0.sys_s;
  const double cpu = cpu_user + cpu_sys;
  double pub_cpu = 0, rd_cpu = 0;
  for (const double x : ctx.publisher_cpu) pub_cpu += x;
  for (const double x : ctx.reader_cpu) rd_cpu += x;
  const std::uint64_t sc_pub = w.c1.publisher_syscalls - w.c0.publisher_syscalls;
  const std::uint64_t sc_notifier = w.c1.notifier_syscalls - w.c0.notifier_syscalls;
  const std::uint64_t sc_sub = w.c1.subscriber_syscalls - w.c0.subscriber_syscalls;
  const std::uint64_t rw = w.s1.have_io ? (w.s1.syscr - w.s0.syscr) + (w.s1.syscw - w.s0.syscw) : 0;
  const bool partial = design.syscalls_partial();
  // Where the transport's own syscalls are invisible (ZeroMQ), add the read()/write() calls the
  // kernel counted for the process: a lower bound.
  const std::uint64_t sc_total = sc_pub + sc_notifier + sc_sub + all.syscalls + (partial ? rw : 0);

  result["wakeups_sent"] = w.c1.wakeups_sent - w.c0.wakeups_sent;
  result["wakeups_coalesced"] = w.c1.wakeups_coalesced - w.c0.wakeups_coalesced;
  result["syscalls"] = {{"publishers", sc_pub},
                        {"notifier", sc_notifier},
                        {"transport_reader_side", sc_sub},
                        {"readers", all.syscalls},
                        {"proc_read_write", rw},
                        {"partial", partial},
                        {"total", sc_total},
                        {"per_delivered", per(static_cast<double>(sc_total), delivered)},
                        {"per_s", per(static_cast<double>(sc_total), elapsed)}};
  result["cpu"] = {{"user_s", cpu_user},
                   {"sys_s", cpu_sys},
                   {"total_s", cpu},
                   {"per_million_delivered_s", per(cpu, delivered / 1e6)},
                   {"publishers_s", pub_cpu},
                   {"readers_s", rd_cpu},
                   {"other_threads_s", std::max(0.0, cpu - pub_cpu - rd_cpu)},
                   {"percent_of_one_cpu", per(cpu * 100.0, elapsed)}};
  result["context_switches"] = {{"voluntary", w.s1.voluntary_switches - w.s0.voluntary_switches},
                                {"involuntary", w.s1.involuntary_switches - w.s0.involuntary_switches}};
  result["peak_rss_kib"] = w.peak_kib != 0 ? w.peak_kib : w.s1.maxrss_kib;
  result["ru_maxrss_kib"] = w.s1.maxrss_kib;
}

}  // namespace

int child_main(const Config& cfg, const std::string& design_name, int out_fd) {
  prepare_process(cfg);
  const double load_at_start = loadavg_1min();
  const DesignSpec spec = parse_design(design_name);
  nlohmann::json result{{"design", spec.name}, {"ok", false}};
  try {
    std::unique_ptr<Design> design = make_design(spec, cfg);
    RunContext ctx(cfg);
    design->setup(ctx);
    result["description"] = design->description();

    std::vector<Checker> checkers;
    checkers.reserve(cfg.threads);
    for (unsigned t = 0; t < cfg.threads; ++t) checkers.emplace_back(cfg, ctx.subs_of_thread[t]);
    std::vector<ReaderStats> stats(cfg.threads);
    const Window w = run_threads(cfg, ctx, *design, checkers, stats, out_fd);

    ReaderStats all;
    Checker::Totals v;
    for (unsigned t = 0; t < cfg.threads; ++t) {
      checkers[t].finish(ctx.published_final);
      v += checkers[t].totals();
      all.merge(stats[t]);
    }
    result["ok"] = true;
    add_deliveries(result, cfg, ctx, all, v, w);
    result["loadavg_at_start"] = load_at_start;
    add_costs(result, ctx, *design, all, w);
    result["details"] = design->details();
    const std::string failure = ctx.failure();
    if (!failure.empty()) {
      result["ok"] = false;
      result["error"] = failure;
    }
    write_line(out_fd, {{"type", "result"}, {"result", result}});
    return failure.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    result["ok"] = false;
    result["error"] = e.what();
    write_line(out_fd, {{"type", "result"}, {"result", result}});
    return 1;
  }
}

}  // namespace pushpoll::harness

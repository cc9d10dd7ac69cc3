#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "config.hpp"

namespace pushpoll::harness {

namespace {

using nlohmann::json;

/// Display width of a UTF-8 string (counts code points: enough for "µ" and "×").
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::optional<double> number(const json& r, const json::json_pointer& p) {
  if (!r.contains(p)) return std::nullopt;
  const json& v = r.at(p);
  if (!v.is_number()) return std::nullopt;
  return v.get<double>();
}

bool has_deliveries(const json& r) { return r.value("delivered", 0.0) > 0; }

std::string ratio_text(double x) {
  char buf[32];
  if (x >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f×", x);
  } else if (x >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f×", x);
  } else if (x >= 0.1) {
    std::snprintf(buf, sizeof buf, "%.2f×", x);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f×", x);
  }
  return buf;
}

std::string mib(double kib) {
  char buf[32];
  std::snprintf(buf, sizeof buf, kib >= 100 * 1024 ? "%.0f MiB" : "%.1f MiB", kib / 1024.0);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string sig3(double v) {
  if (v == 0) return "0";
  char buf[32];
  const double a = std::fabs(v);
  std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : a >= 0.01 ? "%.3f" : "%.2g", v);
  return buf;
}

struct Metric {
  const char* name;
  const char* pointer;
  bool needs_deliveries;
  std::string (*format)(double);
};

std::string fmt_rate(double v) { return si(v) + "/s"; }
std::string fmt_ns(double v) { return human_ns(v); }
std::string fmt_kib(double v) { return mib(v); }
std::string fmt_pct(double v) { return fixed(v, v >= 10 ? 0 : 1) + " %"; }

const Metric kMetrics[] = {
    {"delivered/s", "/delivered_per_s", true, fmt_rate},
    {"p50", "/latency_ns/p50", true, fmt_ns},
    {"p99", "/latency_ns/p99", true, fmt_ns},
    {"CPU s/M msgs", "/cpu/per_million_delivered_s", true, sig3},
    {"CPU %", "/cpu/percent_of_one_cpu", false, fmt_pct},
    {"syscalls/msg", "/syscalls/per_delivered", true, sig3},
    {"peak RSS", "/peak_rss_kib", false, fmt_kib},
};

const json* reference_of(const json& results) {
  const json* ref = nullptr;
  for (const auto& r : results) {
    if (!r.value("ok", false)) continue;
    const std::string d = r.value("design", "");
    if (d == "pushpoll") return &r;
    if (ref == nullptr && d.rfind("pushpoll", 0) == 0) ref = &r;
  }
  return ref;
}

}  // namespace

void Table::print(std::FILE* out) const {
  std::vector<std::size_t> w(header.size(), 0);
  for (std::size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(row[i]));
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const std::string c = i < cells.size() ? cells[i] : "";
      const std::string pad(w[i] - width(c), ' ');
      if (i != 0) s += "  ";
      s += i == 0 ? c + pad : pad + c;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::fprintf(out, "%s\n", s.c_str());
  };
  line(header);
  std::size_t total = 0;
  for (std::size_t i = 0; i < w.size(); ++i) total += w[i] + (i != 0 ? 2 : 0);
  std::string rule;
  for (std::size_t i = 0; i < total; ++i) rule += "-";
  std::fprintf(out, "%s\n", rule.c_str());
  for (const auto& row : rows) line(row);
}

Table results_table(const json& results) {
  Table t;
  t.header = {"design", "published/s", "delivered/s", "MB/s", "p50", "p90", "p99", "p99.9", "max", "transit p99", "send lag p99", "gaps", "violations"};
  for (const auto& r : results) {
    const std::string d = r.value("design", "?");
    if (!r.value("ok", false)) {
      t.rows.push_back({d, r.value("skipped", false) ? "skipped: " + r.value("error", std::string()) :
                                                      "FAILED: " + r.value("error", std::string())});
      continue;
    }
    const bool lat = r.at("latency_ns").value("count", 0) > 0;
    const auto l = [&](const char* k) { return lat ? human_ns(r.at("latency_ns").at(k).get<double>()) : "-"; };
    const std::uint64_t viol = r.at("violations").at("total").get<std::uint64_t>();
    const json& lag = r.at("send_lag_ns");
    const json& transit = r.at("transit_ns");
    t.rows.push_back({d, si(r.at("published_per_s").get<double>()), si(r.at("delivered_per_s").get<double>()),
                      fixed(r.at("delivered_bytes_per_s").get<double>() / 1e6, 1), l("p50"), l("p90"), l("p99"),
                      l("p999"), l("max"),
                      transit.value("count", 0) > 0 ? human_ns(transit.at("p99").get<double>()) : "-",
                      lag.value("count", 0) > 0 ? human_ns(lag.at("p99").get<double>()) : "-",
                      si(r.at("gaps").get<double>()), viol == 0 ? "0" : std::to_string(viol) + " !"});
  }
  return t;
}

Table cost_table(const json& results) {
  Table t;
  t.header = {"design", "wake-ups sent", "coalesced", "syscalls", "syscalls/msg", "CPU s", "CPU s/M msgs", "CPU %", "ctx sw/s", "peak RSS"};
  for (const auto& r : results) {
    if (!r.value("ok", false)) continue;
    const json& sc = r.at("syscalls");
    const bool partial = sc.value("partial", false);
    const double el = r.at("elapsed_s").get<double>();
    const double csw = r.at("context_switches").at("voluntary").get<double>() +
                       r.at("context_switches").at("involuntary").get<double>();
    const bool del = has_deliveries(r);
    t.rows.push_back({r.value("design", "?"), si(r.at("wakeups_sent").get<double>()),
                      si(r.at("wakeups_coalesced").get<double>()),
                      (partial ? "≥" : "") + si(sc.at("total").get<double>()),
                      del ? (partial ? "≥" : "") + sig3(sc.at("per_delivered").get<double>()) : "-",
                      fixed(r.at("cpu").at("total_s").get<double>(), 2),
                      del ? sig3(r.at("cpu").at("per_million_delivered_s").get<double>()) : "-",
                      fmt_pct(r.at("cpu").at("percent_of_one_cpu").get<double>()),
                      si(el > 0 ? csw / el : 0), mib(r.at("peak_rss_kib").get<double>())});
  }
  return t;
}

json comparison_json(const json& results) {
  json out = json::object();
  const json* ref = reference_of(results);
  if (ref == nullptr) return out;
  for (const auto& r : results) {
    if (!r.value("ok", false)) continue;
    json row = json::object();
    for (const Metric& m : kMetrics) {
      const auto p = json::json_pointer(m.pointer);
      const auto a = number(r, p), b = number(*ref, p);
      const bool usable = !m.needs_deliveries || (has_deliveries(r) && has_deliveries(*ref));
      row[m.name] = (usable && a && b && *b > 0) ? json(*a / *b) : json(nullptr);
    }
    out[r.value("design", "?")] = row;
  }
  return out;
}

Table comparison_table(const json& results, std::string* reference) {
  Table t;
  const json* ref = reference_of(results);
  if (ref == nullptr) return t;
  if (reference != nullptr) *reference = ref->value("design", "");
  t.header = {"design"};
  for (const Metric& m : kMetrics) t.header.emplace_back(m.name);
  for (const auto& r : results) {
    if (!r.value("ok", false)) continue;
    std::vector<std::string> row{r.value("design", "?")};
    for (const Metric& m : kMetrics) {
      const auto p = json::json_pointer(m.pointer);
      const auto a = number(r, p), b = number(*ref, p);
      const bool usable = !m.needs_deliveries || (has_deliveries(r) && has_deliveries(*ref));
      if (!usable || !a) {
        row.emplace_back("-");
        continue;
      }
      std::string cell = m.format(*a);
      if (std::string(m.pointer) == "/syscalls/per_delivered" && r.at("syscalls").value("partial", false)) {
        cell = "≥" + cell;
      }
      if (b && *b > 0) cell += " (" + ratio_text(*a / *b) + ")";
      row.push_back(cell);
    }
    t.rows.push_back(row);
  }
  return t;
}

void print_phase(std::FILE* out, const json& phase) {
  const json& results = phase.at("results");
  std::fprintf(out, "\nResults: %s\n", phase.at("config").at("phase").get<std::string>().c_str());
  results_table(results).print(out);
  const json& cfg = phase.at("config");
  const auto stride = cfg.at("sample_every").get<unsigned>();
  const std::string timed =
      stride == 1 ? "" : ", 1 in " + std::to_string(stride) + " deliveries of each subscriber timed";
  std::fprintf(out, "Latency: publish to receive, %s%s. Transit: from the actual send. Send lag: how late "
               "publishers started sends (part of every latency).\n",
               cfg.at("rate").is_string() ? "at the maximum rate mostly time queued in a full buffer"
                                          : "from the intended send time on a fixed schedule",
               timed.c_str());
  std::fprintf(out, "\nCosts (measured over the whole run, all threads of the design's process)\n");
  cost_table(results).print(out);
  std::string ref;
  const Table cmp = comparison_table(results, &ref);
  if (cmp.rows.empty()) {
    std::fprintf(out, "\n(no pushpoll design in this phase: no comparison)\n");
    return;
  }
  std::fprintf(out, "\nSide by side, (ratio) = design / %s. delivered/s: higher is better; the rest: lower is better\n",
               ref.c_str());
  cmp.print(out);
}

}  // namespace pushpoll::harness

// report.hpp — the tables printed at the end of a phase, from the results' JSON.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pushpoll::harness {

/// A plain text table: first column left-aligned, the others right-aligned.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  void print(std::FILE* out) const;
};

/// Throughput, latency and correctness, one row per design.
Table results_table(const nlohmann::json& results);
/// Costs: wake-ups, syscalls, CPU, memory.
Table cost_table(const nlohmann::json& results);
/// The side-by-side comparison: each design's value and its ratio to pushpoll's. Empty (no rows)
/// when no pushpoll design ran.
Table comparison_table(const nlohmann::json& results, std::string* reference = nullptr);
/// The ratios of comparison_table() as JSON: {design: {metric: design / pushpoll}}.
nlohmann::json comparison_json(const nlohmann::json& results);

/// Prints a phase: its results, costs and the comparison, with a legend.
void print_phase(std::FILE* out, const nlohmann::json& phase);

}  // namespace pushpoll::harness

// scenarios.hpp — named presets: a scenario is a list of phases, each a workload run through a list
// of designs. Options given on the command line override every phase of a scenario.
#pragma once
#include <string>
#include <vector>

#include "config.hpp"

namespace pushpoll::harness {

struct Scenario {
  std::vector<Config> phases;
};

/// The names of the presets with a one-line description each, for --help.
std::string scenario_help();
/// The preset called `name`; throws std::invalid_argument listing the names.
Scenario make_scenario(const std::string& name);

}  // namespace pushpoll::harness

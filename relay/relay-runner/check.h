#pragma once

#include <string>
#include <vector>

#include "relay/relay-runner/config.h"

namespace relay::runner {

/// One finding of check_runner: the key it is about, and what was found.
struct RunnerCheck {
  std::string key;  // "[handler] command", "[kick] listen (UDP)" ...
  bool ok = true;
  std::string message;
};

/// What a runner of `config` will meet at start: its handler command found
/// and executable (through PATH, as the runner runs it) or its webhook URL
/// well-formed, the database answering within seconds (unless `offline`),
/// and its kick and status ports free (or held by this very runner).
std::vector<RunnerCheck> check_runner(const RunnerConfig& config, bool offline);

/// relay-runner --check-config of a loaded configuration: prints every
/// check and returns 0 when all pass, else 2 (so the unit's ExecStartPre
/// stops the start, naming the key).
int check_config(const RunnerConfig& config, bool offline);

}  // namespace relay::runner

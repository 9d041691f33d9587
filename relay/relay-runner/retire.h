#pragma once

#include <string>

#include "relay/relay-runner/config.h"

namespace relay::runner {

/// relay-runner retire-group NAME: removes consumer group NAME from the
/// database of `config` (relay/runner/queue.h, retire_group) and says what
/// it did. Returns 0 when retired; 2 for a group that does not exist; 1
/// while a runner of the group holds a lease, or the database fails.
int retire_group_command(const RunnerConfig& config, const std::string& name);

}  // namespace relay::runner

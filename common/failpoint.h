#pragma once

#include <string_view>

namespace relay {

/// Test-only crash points (docs/testing.md, "Failpoints"): when the environment variable
/// RELAY_FAILPOINT names this point, the process kills itself with SIGKILL
/// here, as a power cut would, so tests can reach the moments between two
/// durable steps. Costs one comparison otherwise.
void failpoint(std::string_view name);

}  // namespace relay

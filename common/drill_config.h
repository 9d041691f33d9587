#pragma once

// [[drill]] tables (docs/config.md) and when their slots fall: read apart
// from config.cc, as [[escalation]] is, so that each stays short.

#include <cstdint>

#include "common/config.h"
#include "common/toml_section.h"

namespace relay {

/// Reads every [[drill]] table of `top` into config.drills; the node and
/// peers must be read already (targets are checked against them).
void read_drills(TomlSection& top, Config& config);

/// The latest slot of `drill` at or before `now_unix_ms` (Unix ms): a
/// multiple of `every`, or the last weekly (daily) `at` on the local clock.
std::int64_t last_slot(const DrillSchedule& drill, std::int64_t now_unix_ms);

/// The time between two slots of `drill` (a week, a day, or `every`).
std::chrono::milliseconds slot_spacing(const DrillSchedule& drill);

}  // namespace relay

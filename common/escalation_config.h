#pragma once

// [[escalation]] tables (docs/config.md): read apart from config.cc, which
// reads everything else, so that each stays short.

#include "common/config.h"
#include "common/toml_section.h"

namespace relay {

/// Reads every [[escalation]] table of `top` into config.escalations; the
/// node and peers must be read already (targets are checked against them).
void read_escalations(TomlSection& top, Config& config);

}  // namespace relay

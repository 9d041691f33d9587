#pragma once

// The drill panel (issue 21, [[drill]]): each drilled site's last drill and
// its time to acknowledge, shown apart from the other panels so that each
// output (verdict, HTML, JSON, metrics) takes it with one call.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "relay/status/snapshot.h"

namespace relay::status {

/// One line per site whose drill alarm is open ("drill not acknowledged at
/// SITE ..."): ALARM reasons of the verdict.
std::vector<std::string> drill_alarms(const Snapshot& s);
/// The page's "Drills" section; empty when no [[drill]] is configured.
std::string drills_html(const Snapshot& s);
/// /api/status "drills": per site, its last drill, its answer and its alarm.
nlohmann::ordered_json drills_json(const Snapshot& s);
/// The relay_drill_* families of /metrics (Prometheus text).
std::string drills_metrics(const Snapshot& s);

}  // namespace relay::status

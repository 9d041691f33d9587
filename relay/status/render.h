#pragma once

#include <string>

#include "relay/status/snapshot.h"

namespace relay::status {

// Each panel of the page has a JSON endpoint (docs/status.md). JSON is built
// with nlohmann::ordered_json: keys in a fixed order, integers as integers.

/// /api/status: verdict, process, database, outbox, queue, own job, peers, counters.
std::string status_json(const Snapshot& s);
/// /api/events: recent events, with each target's receipt at their origin.
std::string events_json(const Snapshot& s);
/// /api/alarms: open duress alarms, supervision alarms, untaken duress.
std::string alarms_json(const Snapshot& s);
/// /api/logs: the last lines of stdout and stderr.
std::string logs_json(const Snapshot& s);
/// /metrics: Prometheus text format 0.0.4.
std::string metrics_text(const Snapshot& s);
/// /: the page; refreshes itself in place, needs nothing from the internet.
std::string status_html(const Snapshot& s);

}  // namespace relay::status

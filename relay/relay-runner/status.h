#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "relay/relay-runner/runs.h"
#include "relay/runner/consume_loop.h"
#include "relay/runner/queue.h"

namespace relay::runner {

/// An incident line of the runner's captured log (common/log.h with_fields:
/// handled, failed, dead_lettered, alarm_raised, alarm_cleared).
struct Incident {
  std::string time;  // as logged
  std::string level;
  std::string incident;
  std::string message;  // the line without its fields
  std::vector<std::pair<std::string, std::string>> fields;
};

/// The incident lines among captured log lines, newest first.
std::vector<Incident> incidents_in(const std::vector<std::string>& lines);

/// What relay-runner knows at one moment; built by the server per request.
struct RunnerStatus {
  std::string group;
  std::string name;
  std::vector<std::string> types;
  std::string handler;  // the command or the URL
  LoopStats loop;
  /// Read from the database; nullopt while it does not answer.
  std::optional<GroupBacklog> backlog;
  std::uint64_t kicks = 0;
  std::uint64_t notifies = 0;
  bool listening = false;
  double uptime_seconds = 0;

  /// The runner's own stdout and stderr (relay/capture), and where.
  struct Logs {
    bool captured = false;
    std::string why_not;  // when not captured
    std::string dir;
    /// Oldest first; filled only for the page and /api/status.
    std::vector<std::string> stdout_lines;
    std::vector<std::string> stderr_lines;
  } logs;
  /// From logs.stderr_lines, newest first.
  std::vector<Incident> incidents;
  /// The recent handler runs, newest first, and why they are not on disk.
  std::vector<RunRecord> runs;
  std::string runs_why_not;
};

/// Renderings, exposed for tests. JSON keys keep this order; counts are integers.
std::string runner_status_json(const RunnerStatus& s);
std::string runner_metrics_text(const RunnerStatus& s);
/// Everything shown is HTML-escaped: handler output and log lines are hostile.
std::string runner_status_html(const RunnerStatus& s);
/// False while the database is down or a duress keeps failing (/healthz 503).
bool runner_healthy(const RunnerStatus& s);

}  // namespace relay::runner

#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/capture/log_files.h"
#include "relay/runner/consume_loop.h"

namespace relay::runner {

/// Runs the page lists, newest first; the files keep between this and twice it.
inline constexpr std::size_t kKeptRuns = 50;

/// One handler run of a row, as the page shows it.
struct RunRecord {
  std::int64_t queue_id = 0;
  std::string event_id;  // empty for relayd's own rows
  std::string type;
  int priority = 2;
  int attempt = 0;
  std::int64_t finished_unix_ms = 0;
  std::int64_t duration_ms = 0;
  /// "handled", "retried", "dead-lettered" or "alarm" (a duress failing past
  /// duress_alarm_after, retried).
  std::string outcome;
  std::string error;
  /// What the handler said, bounded (Outcome::output): hostile text.
  std::string output;
};

/// The record of a run the loop saved, finished at `now_unix_ms`.
RunRecord run_record(const Row& row, const Outcome& outcome, const RetryDecision& decision,
                     std::int64_t now_unix_ms);

/// One line of `runs.log` (a JSON object; invalid UTF-8 replaced), and back:
/// nullopt for a line that is not one (torn by a crash, cut at its bound).
std::string run_line(const RunRecord& run);
std::optional<RunRecord> parse_run_line(std::string_view line);

/// The last kKeptRuns runs: in memory, and in `<dir>/runs.log` (and
/// runs.log.1) written through at each run like the captured output
/// (relay/capture/log_files.h), so the page shows the runs before a crash or
/// a restart. Thread-safe (the loop's workers add, the page reads).
class RunLog {
 public:
  /// Reads the runs already in `dir`. Without a folder (or one that cannot
  /// be written: why_not() says so) runs are kept in memory only.
  explicit RunLog(std::optional<std::filesystem::path> dir);

  void add(RunRecord run);
  /// Newest first.
  std::vector<RunRecord> recent() const;
  /// Why runs are not kept on disk; empty when they are.
  std::string why_not() const;

 private:
  mutable std::mutex mutex_;
  std::deque<RunRecord> runs_;  // oldest first
  std::optional<capture::LogWriter> file_;
  std::string why_not_;
};

}  // namespace relay::runner

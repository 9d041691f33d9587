#include "relay/relay-runner/runs.h"

#include <nlohmann/json.hpp>

namespace relay::runner {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kRunsFile = "runs";
// A run's line: the output's 4 KiB (command_handler.cc) at six bytes per
// escaped byte, the error and the row's fields; a longer one is cut and
// then skipped when read back, never shown half.
constexpr std::size_t kMaxRunLineBytes = 64 * 1024;

}  // namespace

RunRecord run_record(const Row& row, const Outcome& outcome, const RetryDecision& decision,
                     std::int64_t now_unix_ms) {
  RunRecord r;
  r.queue_id = row.queue_id;
  r.event_id = row.event_id;
  r.type = row.type;
  r.priority = row.priority;
  r.attempt = row.attempts;
  r.finished_unix_ms = now_unix_ms;
  r.duration_ms = outcome.took.count();
  r.outcome = outcome.ok                                                 ? "handled"
              : decision.action == RetryDecision::Action::dead_letter ? "dead-lettered"
              : decision.alarm                                         ? "alarm"
                                                                       : "retried";
  r.error = outcome.error;
  r.output = outcome.output;
  return r;
}

std::string run_line(const RunRecord& run) {
  const Json j = {{"queue_id", run.queue_id},       {"event_id", run.event_id},
                  {"type", run.type},               {"priority", run.priority},
                  {"attempt", run.attempt},         {"finished_unix_ms", run.finished_unix_ms},
                  {"duration_ms", run.duration_ms}, {"outcome", run.outcome},
                  {"error", run.error},             {"output", run.output}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<RunRecord> parse_run_line(std::string_view line) {
  const auto j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    RunRecord r;
    r.queue_id = j.at("queue_id").get<std::int64_t>();
    r.event_id = j.at("event_id").get<std::string>();
    r.type = j.at("type").get<std::string>();
    r.priority = j.at("priority").get<int>();
    r.attempt = j.at("attempt").get<int>();
    r.finished_unix_ms = j.at("finished_unix_ms").get<std::int64_t>();
    r.duration_ms = j.at("duration_ms").get<std::int64_t>();
    r.outcome = j.at("outcome").get<std::string>();
    r.error = j.at("error").get<std::string>();
    r.output = j.at("output").get<std::string>();
    return r;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

RunLog::RunLog(std::optional<std::filesystem::path> dir) {
  if (!dir) {
    why_not_ = "no folder for it";
    return;
  }
  // Both files (up to twice the runs): a torn last line does not cost a run.
  for (const auto& line : capture::read_tail(*dir, kRunsFile, 2 * kKeptRuns + 1)) {
    if (auto run = parse_run_line(line)) runs_.push_back(std::move(*run));
  }
  while (runs_.size() > kKeptRuns) runs_.pop_front();
  try {
    file_.emplace(*dir, kRunsFile, kKeptRuns, kMaxRunLineBytes);
  } catch (const std::exception& e) {
    why_not_ = e.what();
  }
}

void RunLog::add(RunRecord run) {
  std::lock_guard lock(mutex_);
  if (file_) {
    try {
      file_->append(run_line(run));
    } catch (const std::exception& e) {
      why_not_ = e.what();  // the disk full: the page still shows them from memory
    }
  }
  runs_.push_back(std::move(run));
  while (runs_.size() > kKeptRuns) runs_.pop_front();
}

std::vector<RunRecord> RunLog::recent() const {
  std::lock_guard lock(mutex_);
  return {runs_.rbegin(), runs_.rend()};
}

std::string RunLog::why_not() const {
  std::lock_guard lock(mutex_);
  return why_not_;
}

}  // namespace relay::runner

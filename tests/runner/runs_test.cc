// The recent runs the runner's page lists: kept on disk as each run ends.
#include "relay/relay-runner/runs.h"

#include <doctest/doctest.h>

#include <fstream>

#include "tests/support/temp_dir.h"

using namespace relay::runner;
using relay::test::TempDir;
using namespace std::chrono_literals;

namespace {

Row row(std::int64_t id) {
  Row r;
  r.queue_id = id;
  r.type = "duress";
  r.event_id = "hq:" + std::to_string(id);
  r.priority = kDuressPriority;
  r.attempts = 3;
  return r;
}

}  // namespace

TEST_CASE("a run's outcome as the page names it") {
  Outcome ok{true};
  ok.took = 35ms;
  ok.output = "sent\n";
  const auto handled = run_record(row(1), ok, {}, 1000);
  CHECK(handled.outcome == "handled");
  CHECK(handled.duration_ms == 35);
  CHECK(handled.output == "sent\n");
  CHECK(handled.finished_unix_ms == 1000);
  RetryDecision alarm;
  alarm.alarm = true;
  CHECK(run_record(row(1), {false, "exit 1"}, alarm, 0).outcome == "alarm");
  CHECK(run_record(row(1), {false, "exit 1"}, {}, 0).outcome == "retried");
  RetryDecision dead;
  dead.action = RetryDecision::Action::dead_letter;
  CHECK(run_record(row(1), {false, "exit 1"}, dead, 0).outcome == "dead-lettered");
}

TEST_CASE("the last 50 runs survive a restart, newest first, and a torn line is skipped") {
  TempDir dir;
  {
    RunLog log(dir.path());
    CHECK(log.why_not().empty());
    for (int i = 1; i <= 120; ++i) {
      Outcome o{i % 2 == 0, i % 2 == 0 ? "" : "exit 1"};
      o.output = "run " + std::to_string(i) + " said \xff <b>\n";
      log.add(run_record(row(i), o, {}, i));
    }
    CHECK(log.recent().size() == kKeptRuns);
    CHECK(log.recent().front().queue_id == 120);
  }
  // A crash in the middle of a line leaves half of it.
  { std::ofstream(dir / "runs.log", std::ios::app) << "{\"queue_id\": 121, \"event"; }
  RunLog again(dir.path());
  const auto runs = again.recent();
  REQUIRE(runs.size() == kKeptRuns);
  CHECK(runs.front().queue_id == 120);
  CHECK(runs.back().queue_id == 71);
  CHECK(runs.front().outcome == "handled");
  CHECK(runs[1].error == "exit 1");
  CHECK(runs.front().output.starts_with("run 120 said "));
  // Bounded on disk: the two files hold at most twice the runs shown.
  std::size_t lines = 0;
  for (const char* f : {"runs.log", "runs.log.1"}) {
    std::ifstream in(dir / f);
    for (std::string l; std::getline(in, l);) ++lines;
  }
  CHECK(lines <= 2 * kKeptRuns + 1);
}

TEST_CASE("without a folder the runs are kept in memory, and the page says why") {
  RunLog log(std::nullopt);
  log.add(run_record(row(1), {true}, {}, 0));
  CHECK(log.recent().size() == 1);
  CHECK_FALSE(log.why_not().empty());
}

// relay-runner's status renderings: JSON shape, health verdict, metrics.
#include "relay/relay-runner/status.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "common/log.h"

using namespace relay::runner;
using namespace std::chrono_literals;

namespace {

RunnerStatus sample() {
  RunnerStatus s;
  s.group = "popup";
  s.name = "popup-1";
  s.types = {"duress"};
  s.handler = "/usr/local/bin/popup";
  s.loop.handled = 3;
  s.loop.failed = 2;
  s.loop.dead_lettered = 1;
  s.loop.last_error = "row 9: gateway <down>";
  s.backlog = GroupBacklog{4, 1500ms, 1, {}};
  s.kicks = 5;
  return s;
}

}  // namespace

TEST_CASE("status JSON: counts as integers, keys in a stable order") {
  const auto j = nlohmann::json::parse(runner_status_json(sample()));
  CHECK(j["handled"].is_number_integer());
  CHECK(j["handled"] == 3);
  CHECK(j["failed"] == 2);
  CHECK(j["dead_lettered"] == 1);
  CHECK(j["pending"] == 4);
  CHECK(j["lag_ms"] == 1500);
  CHECK(j["last_error"] == "row 9: gateway <down>");
  CHECK(j["healthy"] == true);
  const auto text = runner_status_json(sample());
  CHECK(text.find("\"group\"") < text.find("\"handled\""));
  CHECK(text.find("\"handled\"") < text.find("\"pending\""));
}

TEST_CASE("a failing duress or a silent database makes the runner unhealthy") {
  auto s = sample();
  CHECK(runner_healthy(s));
  s.backlog->alarms.push_back({"popup", 12, "clinic-north:7", 5, "exit status 1"});
  CHECK_FALSE(runner_healthy(s));
  CHECK(runner_status_html(s).find("DURESS NOT HANDLED: row 12") != std::string::npos);
  const auto j = nlohmann::json::parse(runner_status_json(s));
  CHECK(j["alarms"][0]["queue_id"] == 12);
  CHECK(j["alarms"][0]["attempts"] == 5);
  s = sample();
  s.loop.database_up = false;
  CHECK_FALSE(runner_healthy(s));
  s = sample();
  s.backlog.reset();
  CHECK_FALSE(runner_healthy(s));
  CHECK(nlohmann::json::parse(runner_status_json(s))["pending"].is_null());
}

TEST_CASE("metrics carry the group label and the counts") {
  const auto m = runner_metrics_text(sample());
  CHECK(m.find("relay_runner_handled_total{group=\"popup\"} 3\n") != std::string::npos);
  CHECK(m.find("relay_runner_dead_lettered_total{group=\"popup\"} 1\n") != std::string::npos);
  CHECK(m.find("relay_runner_pending{group=\"popup\"} 4\n") != std::string::npos);
  CHECK(m.find("relay_runner_lag_seconds{group=\"popup\"} 1.5\n") != std::string::npos);
  CHECK(m.find("relay_runner_duress_alarms{group=\"popup\"} 0\n") != std::string::npos);
}

TEST_CASE("the page escapes what it shows") {
  CHECK(runner_status_html(sample()).find("gateway &lt;down&gt;") != std::string::npos);
}

namespace {

/// A status with what a hostile handler and a hostile row can put on the page.
RunnerStatus with_hostile_output() {
  auto s = sample();
  s.logs.captured = true;
  s.logs.dir = "/var/lib/relaymesh/runner-popup/log";
  s.logs.stdout_lines = {"stdout <b>bold</b>"};
  const std::string incident =
      "2026-01-01T03:00:00.000 warn " +
      relay::with_fields("group popup: row 9 (hq:3, <notification>) failed (attempt 1): <i>x</i>",
                         {{"incident", "failed"}, {"queue_id", "9"}, {"reason", "<i>x</i>"}});
  s.logs.stderr_lines = {"2026-01-01T02:59:00.000 info runner popup-1 of group popup consuming",
                         incident, "\xff\xfe not UTF-8 <img src=x onerror=alert(1)>"};
  s.incidents = incidents_in(s.logs.stderr_lines);
  RunRecord run;
  run.queue_id = 9;
  run.event_id = "hq:3";
  run.type = "<notification>";
  run.attempt = 1;
  run.duration_ms = 12;
  run.outcome = "retried";
  run.error = "sh: exit status 1: <i>x</i>";
  run.output = "</pre><script>alert(1)</script>\n\xff\xfe";
  s.runs = {run};
  return s;
}

}  // namespace

TEST_CASE("the page shows the runs, incidents and captured lines, and escapes every one of them") {
  const auto page = runner_status_html(with_hostile_output());
  CHECK(page.find("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(page.find("&lt;img src=x onerror=alert(1)&gt;") != std::string::npos);
  CHECK(page.find("stdout &lt;b&gt;bold&lt;/b&gt;") != std::string::npos);
  CHECK(page.find("runner popup-1 of group popup consuming") != std::string::npos);
  CHECK(page.find("row 9 (hq:3, &lt;notification&gt;) attempt 1: retried in 12 ms") !=
        std::string::npos);
  // The page has no script of its own, so any tag of these would be the input's.
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("<img") == std::string::npos);
  CHECK(page.find("<i>") == std::string::npos);
  CHECK(page.find("<b>") == std::string::npos);
  CHECK(page.find("<tr data-incident=\"failed\">") != std::string::npos);
}

TEST_CASE("incident lines are found among the captured lines, newest first, without their fields") {
  const auto s = with_hostile_output();
  REQUIRE(s.incidents.size() == 1);
  const auto& i = s.incidents.front();
  CHECK(i.incident == "failed");
  CHECK(i.level == "warn");
  CHECK(i.time == "2026-01-01T03:00:00.000");
  CHECK(i.message == "group popup: row 9 (hq:3, <notification>) failed (attempt 1): <i>x</i>");
  const auto later = "2026-01-01T03:00:01.000 warn " +
                     relay::with_fields("group popup: DURESS row 9 handled after 3 failed attempts",
                                        {{"incident", "alarm_cleared"}, {"queue_id", "9"}});
  auto lines = s.logs.stderr_lines;
  lines.push_back(later);
  const auto both = incidents_in(lines);
  REQUIRE(both.size() == 2);
  CHECK(both[0].incident == "alarm_cleared");
  CHECK(both[1].incident == "failed");
}

TEST_CASE("status JSON has the captured lines, the incidents and the runs, whatever their bytes") {
  const auto j = nlohmann::json::parse(runner_status_json(with_hostile_output()));
  CHECK(j["logs"]["captured"] == true);
  CHECK(j["logs"]["stdout"][0] == "stdout <b>bold</b>");
  CHECK(j["logs"]["stderr"].size() == 3);
  CHECK(j["incidents"][0]["incident"] == "failed");
  CHECK(j["incidents"][0]["fields"]["QUEUE_ID"] == "9");
  CHECK(j["runs"][0]["queue_id"] == 9);
  CHECK(j["runs"][0]["outcome"] == "retried");
  CHECK(j["runs"][0]["output"].get<std::string>().starts_with("</pre><script>"));
}

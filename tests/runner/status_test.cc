// relay-runner's status renderings: JSON shape, health verdict, metrics.
#include "relay/relay-runner/status.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

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

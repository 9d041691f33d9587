#include "relay/status/drills.h"

#include <spdlog/fmt/fmt.h>

#include <sstream>

#include "common/html.h"
#include "common/log.h"
#include "relay/status/verdict.h"

namespace relay::status {
namespace {

using Json = nlohmann::ordered_json;

const net::DrillView* view_of(const Snapshot& s) {
  if (!s.daemon || (s.daemon->drills.sites.empty() && s.daemon->drills.next.empty()))
    return nullptr;
  return &s.daemon->drills;
}

/// "acknowledged", "waiting", "missed", or "none" before the first drill.
std::string state_of(const net::DrillSite& d) {
  if (d.drill_id.empty()) return "none";
  if (d.ack_ms >= 0) return "acknowledged";
  return d.missed ? "missed" : "waiting";
}

std::string answer_text(const Snapshot& s, const net::DrillSite& d) {
  const auto state = state_of(d);
  if (state == "none") return "no drill yet";
  if (state == "acknowledged") {
    return fmt::format("acknowledged by {} after {}{}", d.acknowledged_by, age_text(d.ack_ms),
                       d.ack_ms > d.window_ms ? " (late)" : "");
  }
  if (state == "waiting") {
    return fmt::format(
        "waiting: the window ends in {}",
        age_text(std::max<std::int64_t>(0, d.sent_unix_ms + d.window_ms - s.now_unix_ms)));
  }
  return fmt::format("drill not acknowledged at {} within {}", d.site, age_text(d.window_ms));
}

}  // namespace

std::vector<std::string> drill_alarms(const Snapshot& s) {
  std::vector<std::string> out;
  const auto* view = view_of(s);
  if (view == nullptr) return out;
  for (const auto& d : view->sites) {
    if (!d.alarm) continue;
    out.push_back(fmt::format(
        "drill not acknowledged at {}: drill {} had no answer from {} within its window (alarm "
        "since {}); a person there acknowledges a drill (relayctl ack ID, or a relay-runner with "
        "[runner] acknowledge) to clear it",
        d.site, d.alarm_drill, d.site, local_time(d.alarm_since_unix_ms)));
  }
  return out;
}

std::string drills_html(const Snapshot& s) {
  const auto* view = view_of(s);
  if (view == nullptr) return "";
  std::ostringstream h;
  h << "<section id=drills><h2>Drills</h2>";
  if (view->stale) {
    h << "<p class=warn>as of "
      << (view->read_unix_ms > 0 ? local_time(view->read_unix_ms) : "never")
      << ": the database does not answer, no drill goes meanwhile</p>";
  }
  h << "<table><tr><th>site</th><th>last drill</th><th>sent</th><th>answer</th></tr>";
  for (const auto& d : view->sites) {
    const auto state = state_of(d);
    h << "<tr data-site=\"" << escape_html(d.site) << "\" data-state=\"" << state << "\"><td>"
      << escape_html(d.site) << "</td><td>"
      << (d.drill_id.empty() ? "" : escape_html(d.drill_id + " (" + d.schedule + ")"))
      << "</td><td>" << (d.sent_unix_ms > 0 ? local_time(d.sent_unix_ms) : "") << "</td><td"
      << (d.alarm ? " class=alarm" : "") << ">" << escape_html(answer_text(s, d));
    if (d.alarm && state != "missed") {
      h << "; alarm open since " << local_time(d.alarm_since_unix_ms) << " (drill "
        << escape_html(d.alarm_drill) << " not acknowledged)";
    }
    h << "</td></tr>";
  }
  h << "</table><p class=muted>next: ";
  for (const auto& [name, at] : view->next)
    h << escape_html(name) << " at " << local_time(at) << ' ';
  h << "</p></section>";
  return h.str();
}

Json drills_json(const Snapshot& s) {
  Json out = Json::array();
  const auto* view = view_of(s);
  if (view == nullptr) return out;
  for (const auto& d : view->sites) {
    Json j;
    j["site"] = d.site;
    j["state"] = state_of(d);
    j["drill"] = d.drill_id.empty() ? Json(nullptr) : Json(d.drill_id);
    j["schedule"] = d.schedule.empty() ? Json(nullptr) : Json(d.schedule);
    j["sent_unix_ms"] = d.sent_unix_ms > 0 ? Json(d.sent_unix_ms) : Json(nullptr);
    j["window_ms"] = d.window_ms;
    j["acknowledged_by"] = d.acknowledged_by.empty() ? Json(nullptr) : Json(d.acknowledged_by);
    j["ack_ms"] = d.ack_ms >= 0 ? Json(d.ack_ms) : Json(nullptr);
    j["alarm"] = d.alarm;
    j["alarm_since_unix_ms"] = d.alarm ? Json(d.alarm_since_unix_ms) : Json(nullptr);
    j["as_of_unix_ms"] = view->read_unix_ms;
    out.push_back(j);
  }
  return out;
}

std::string drills_metrics(const Snapshot& s) {
  const auto* view = view_of(s);
  if (view == nullptr) return "";
  std::ostringstream m;
  // Site ids are [a-z0-9-]: nothing to escape in the label.
  auto family = [&](const char* name, const char* help, auto value) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
    for (const auto& d : view->sites)
      m << name << "{site=\"" << d.site << "\"} " << value(d) << '\n';
  };
  family("relay_drill_alarm", "1 while the site has not acknowledged its last drill in time.",
         [](const net::DrillSite& d) { return d.alarm ? 1 : 0; });
  family("relay_drill_last_sent_timestamp_seconds",
         "Unix time of the last drill sent to the site; 0 if none.",
         [](const net::DrillSite& d) { return d.sent_unix_ms / 1000; });
  family("relay_drill_ack_seconds",
         "Time the site took to acknowledge its last drill; -1 while unacknowledged.",
         [](const net::DrillSite& d) { return d.ack_ms < 0 ? -1.0 : d.ack_ms / 1000.0; });
  return m.str();
}

}  // namespace relay::status

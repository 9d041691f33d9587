#include "relay/relay-runner/status.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "common/html.h"
#include "common/log.h"

namespace relay::runner {
namespace {

using Json = nlohmann::ordered_json;

std::string label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

double mean_latency(const LoopStats& l) {
  return l.started == 0 ? 0.0 : l.start_latency_seconds / static_cast<double>(l.started);
}

Json run_json(const RunRecord& r) {
  return {{"queue_id", r.queue_id},       {"event_id", r.event_id},
          {"type", r.type},               {"priority", r.priority},
          {"attempt", r.attempt},         {"finished_unix_ms", r.finished_unix_ms},
          {"duration_ms", r.duration_ms}, {"outcome", r.outcome},
          {"error", r.error},             {"output", r.output}};
}

Json logs_json(const RunnerStatus& s) {
  Json incidents = Json::array();
  for (const auto& i : s.incidents) {
    Json fields = Json::object();
    for (const auto& [name, value] : i.fields) fields[name] = value;
    incidents.push_back({{"time", i.time},
                         {"level", i.level},
                         {"incident", i.incident},
                         {"message", i.message},
                         {"fields", fields}});
  }
  Json runs = Json::array();
  for (const auto& r : s.runs) runs.push_back(run_json(r));
  return {{"logs",
           {{"captured", s.logs.captured},
            {"why_not", s.logs.why_not},
            {"dir", s.logs.dir},
            {"stdout", s.logs.stdout_lines},
            {"stderr", s.logs.stderr_lines}}},
          {"incidents", incidents},
          {"runs", runs},
          {"runs_why_not", s.runs_why_not}};
}

/// "2026-01-01T03:00:00.000 warn message | fields": the time and level words.
std::pair<std::string, std::string> time_and_level(std::string_view line) {
  const auto first = line.find(' ');
  if (first == std::string_view::npos) return {};
  const auto second = line.find(' ', first + 1);
  if (second == std::string_view::npos) return {};
  return {std::string(line.substr(0, first)), std::string(line.substr(first + 1, second - first - 1))};
}

void status_html(std::ostringstream& h, const RunnerStatus& s) {
  if (!s.loop.database_up) {
    h << "<p class=bad>PostgreSQL is not answering: " << escape_html(s.loop.database_error)
      << ". Rows wait in message_queue.</p>";
  }
  if (s.backlog) {
    for (const auto& a : s.backlog->alarms) {
      h << "<p class=bad>DURESS NOT HANDLED: row " << a.queue_id << " (" << escape_html(a.event_id)
        << ") failed " << a.attempts << " times: " << escape_html(a.last_error)
        << ". Still retrying.</p>";
    }
  }
  h << "<p>types: ";
  for (const auto& t : s.types) h << escape_html(t) << ' ';
  h << "<br>handler: " << escape_html(s.handler) << "</p><p>handled " << s.loop.handled
    << ", failed " << s.loop.failed << ", dead-lettered " << s.loop.dead_lettered
    << ", expired unhandled " << s.loop.expired << ", cleared unhandled " << s.loop.cleared
    << ", exercises acknowledged " << s.loop.acknowledged;
  if (s.backlog) {
    h << "<br>pending " << s.backlog->pending << ", lag " << s.backlog->lag.count()
      << " ms, dead letters " << s.backlog->dead_letters;
  }
  h << "<br>last error: " << escape_html(s.loop.last_error) << "</p><p>kicks " << s.kicks
    << ", notifies " << s.notifies << (s.listening ? " (listening)" : " (not listening)")
    << "</p>";
}

void incidents_html(std::ostringstream& h, const RunnerStatus& s) {
  h << "<section id=incidents><h2>Incidents</h2>";
  if (s.incidents.empty()) {
    h << "<p>none in the captured log</p></section>";
    return;
  }
  h << "<table><tr><th>time<th>level<th>incident<th>what</tr>";
  for (const auto& i : s.incidents) {
    h << "<tr data-incident=\"" << escape_html(i.incident) << "\"><td>" << escape_html(i.time)
      << "<td>" << escape_html(i.level) << "<td>" << escape_html(i.incident) << "<td>"
      << escape_html(i.message) << "</tr>";
  }
  h << "</table></section>";
}

void runs_html(std::ostringstream& h, const RunnerStatus& s) {
  h << "<section id=runs><h2>Recent handler runs</h2>";
  if (!s.runs_why_not.empty()) {
    h << "<p class=warn>runs are not kept on disk: " << escape_html(s.runs_why_not) << "</p>";
  }
  if (s.runs.empty()) h << "<p>none yet</p>";
  for (const auto& r : s.runs) {
    h << "<div class=run data-queue-id=" << r.queue_id << " data-outcome=\"" << escape_html(r.outcome)
      << "\"><h3>row " << r.queue_id << " ("
      << escape_html(r.event_id.empty() ? r.type : r.event_id + ", " + r.type) << ") attempt "
      << r.attempt << ": " << escape_html(r.outcome) << " in " << r.duration_ms << " ms, "
      << escape_html(local_time(r.finished_unix_ms)) << "</h3>";
    if (!r.error.empty()) h << "<p class=" << (r.outcome == "handled" ? "warn" : "bad") << ">"
                            << escape_html(r.error) << "</p>";
    h << "<pre class=output>" << escape_html(r.output) << "</pre></div>";
  }
  h << "</section>";
}

void lines_html(std::ostringstream& h, const char* id, const std::vector<std::string>& lines) {
  h << "<h3>" << id << " (last " << lines.size() << " lines)</h3><pre id=" << id << ">";
  for (const auto& line : lines) h << escape_html(line) << "\n";
  h << "</pre>";
}

void logs_html(std::ostringstream& h, const RunnerStatus& s) {
  h << "<section id=logs data-captured=\"" << (s.logs.captured ? "yes" : "no")
    << "\"><h2>relay-runner's output</h2>";
  if (!s.logs.captured) {
    h << "<p class=warn>output is not captured: " << escape_html(s.logs.why_not) << "</p>";
  } else {
    h << "<p>in " << escape_html(s.logs.dir) << "</p>";
    lines_html(h, "stderr", s.logs.stderr_lines);
    lines_html(h, "stdout", s.logs.stdout_lines);
  }
  h << "</section>";
}

}  // namespace

std::vector<Incident> incidents_in(const std::vector<std::string>& lines) {
  std::vector<Incident> out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    auto fields = parse_fields(*it);
    if (!fields) continue;
    Incident i;
    for (auto& [name, value] : *fields) {
      if (name == "INCIDENT") i.incident = value;
    }
    if (i.incident.empty()) continue;
    std::tie(i.time, i.level) = time_and_level(*it);
    // The message: what follows the level, up to the field mark whose
    // suffix parse_fields took. From the end: a mark before that one yields
    // the same fields (parse_fields reads on to it), a mark after it a part.
    const auto start = i.time.size() + i.level.size() + 2;
    std::string_view rest = std::string_view(*it).substr(std::min(start, it->size()));
    for (auto mark = rest.rfind(" | "); mark != std::string_view::npos;
         mark = mark == 0 ? std::string_view::npos : rest.rfind(" | ", mark - 1)) {
      if (parse_fields(rest.substr(mark)) == fields) {
        rest = rest.substr(0, mark);
        break;
      }
    }
    i.message = std::string(rest);
    i.fields = std::move(*fields);
    out.push_back(std::move(i));
  }
  return out;
}

bool runner_healthy(const RunnerStatus& s) {
  return s.loop.database_up && s.backlog && s.backlog->alarms.empty();
}

std::string runner_status_json(const RunnerStatus& s) {
  Json j;
  j["group"] = s.group;
  j["name"] = s.name;
  j["types"] = s.types;
  j["handler"] = s.handler;
  j["healthy"] = runner_healthy(s);
  j["uptime_seconds"] = static_cast<std::int64_t>(s.uptime_seconds);
  j["handled"] = s.loop.handled;
  j["failed"] = s.loop.failed;
  j["dead_lettered"] = s.loop.dead_lettered;
  j["expired"] = s.loop.expired;
  j["cleared"] = s.loop.cleared;
  j["acknowledged"] = s.loop.acknowledged;
  j["last_error"] = s.loop.last_error;
  j["database"] = {{"up", s.loop.database_up}, {"error", s.loop.database_error}};
  if (s.backlog) {
    j["pending"] = s.backlog->pending;
    j["lag_ms"] = static_cast<std::int64_t>(s.backlog->lag.count());
    j["dead_letters"] = s.backlog->dead_letters;
    Json alarms = Json::array();
    for (const auto& a : s.backlog->alarms) {
      alarms.push_back({{"queue_id", a.queue_id},
                        {"event_id", a.event_id},
                        {"attempts", a.attempts},
                        {"last_error", a.last_error}});
    }
    j["alarms"] = alarms;
  } else {
    j["pending"] = nullptr;
    j["lag_ms"] = nullptr;
    j["dead_letters"] = nullptr;
    j["alarms"] = nullptr;
  }
  j["wakeups"] = {{"kicks", s.kicks}, {"notifies", s.notifies}, {"listening", s.listening}};
  j["mean_start_latency_ms"] = static_cast<std::int64_t>(mean_latency(s.loop) * 1000);
  j.update(logs_json(s));
  // Handler output and log lines may hold any bytes: never a throw for them.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string runner_metrics_text(const RunnerStatus& s) {
  std::ostringstream m;
  const std::string g = "{group=\"" + label(s.group) + "\"}";
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << g << ' ' << value << '\n';
  };
  metric("relay_runner_handled_total", "counter", "Rows handled.", s.loop.handled);
  metric("relay_runner_failed_total", "counter", "Failed attempts (retried or dead-lettered).",
         s.loop.failed);
  metric("relay_runner_dead_lettered_total", "counter", "Rows moved to runner_dead_letters.",
         s.loop.dead_lettered);
  metric("relay_runner_expired_total", "counter",
         "Rows completed without running the handler: past their expiry.", s.loop.expired);
  metric("relay_runner_cleared_total", "counter",
         "Rows completed without running the handler: cleared or cancelled by their origin.", s.loop.cleared);
  metric("relay_runner_acknowledged_total", "counter",
         "Exercises handled and acknowledged by this runner ([runner] acknowledge).",
         s.loop.acknowledged);
  metric("relay_runner_database_up", "gauge", "1 while PostgreSQL answers.",
         s.loop.database_up ? 1 : 0);
  metric("relay_runner_kicks_total", "counter", "Kick datagrams received.", s.kicks);
  metric("relay_runner_notifies_total", "counter", "NOTIFYs received.", s.notifies);
  metric("relay_runner_output_captured", "gauge",
         "1 while stdout and stderr are captured for the status page.", s.logs.captured ? 1 : 0);
  // One summary family (no quantiles): a scraper takes _sum and _count as
  // its parts, and rate(_sum) / rate(_count) is the mean; two counters
  // named so are refused (promtool check metrics).
  m << "# HELP relay_runner_start_latency_seconds From relayd's insert to the handler's start.\n"
    << "# TYPE relay_runner_start_latency_seconds summary\n"
    << "relay_runner_start_latency_seconds_sum" << g << ' ' << s.loop.start_latency_seconds << '\n'
    << "relay_runner_start_latency_seconds_count" << g << ' ' << s.loop.started << '\n';
  if (s.backlog) {
    metric("relay_runner_pending", "gauge", "Rows of the group's types not yet done.",
           s.backlog->pending);
    metric("relay_runner_lag_seconds", "gauge", "Age of the oldest pending row.",
           std::chrono::duration<double>(s.backlog->lag).count());
    metric("relay_runner_dead_letters", "gauge", "Rows in runner_dead_letters for the group.",
           s.backlog->dead_letters);
    metric("relay_runner_duress_alarms", "gauge", "Duress rows that keep failing.",
           s.backlog->alarms.size());
  }
  return m.str();
}

std::string runner_status_html(const RunnerStatus& s) {
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>"
       "<title>relay-runner "
    << escape_html(s.group)
    << "</title><style>body{font-family:sans-serif;margin:2em}.bad{background:#c00;color:#fff;"
       "padding:.3em}.warn{background:#fd0;padding:.3em}pre{background:#f4f4f4;padding:.5em;"
       "max-height:30em;overflow:auto;white-space:pre-wrap;word-break:break-all}"
       "td,th{text-align:left;padding:.1em .5em;vertical-align:top}</style></head><body>"
       "<h1>relay-runner "
    << escape_html(s.group) << " (" << escape_html(s.name) << ")</h1>";
  status_html(h, s);
  incidents_html(h, s);
  runs_html(h, s);
  logs_html(h, s);
  h << "<p><a href=/api/status>/api/status</a> <a href=/metrics>/metrics</a> "
       "<a href=/healthz>/healthz</a></p></body></html>";
  return h.str();
}

}  // namespace relay::runner

#include <spdlog/fmt/fmt.h>

#include <ctime>
#include <sstream>

#include "common/html.h"
#include "common/log.h"
#include "relay/net/incident_log.h"
#include "relay/status/drills.h"
#include "relay/status/render.h"
#include "relay/status/verdict.h"

namespace relay::status {
namespace {

std::string esc(std::string_view s) {
  return escape_html(s);
}

std::string clock_time(std::int64_t unix_ms) {
  return unix_ms <= 0 ? "never" : local_time(unix_ms);
}

/// "12 s ago" with the clock time on hover.
std::string ago(const Snapshot& s, std::int64_t unix_ms) {
  if (unix_ms <= 0) return "never";
  return fmt::format("<span title=\"{}\">{} ago</span>", clock_time(unix_ms),
                     age_text(s.now_unix_ms - unix_ms));
}

const char* css_class(Verdict::Level level) {
  switch (level) {
    case Verdict::Level::ok:
      return "ok";
    case Verdict::Level::degraded:
      return "degraded";
    case Verdict::Level::alarm:
      return "alarm";
  }
  return "alarm";
}

// Refreshes the page in place every 2 s: fetch, parse, swap the body's
// content. No flicker, no reload, and no script or font from elsewhere.
// Log panes stay scrolled to the end unless the reader scrolled up.
constexpr const char* kScript = R"js(
<script>
(function () {
  async function refresh() {
    try {
      const res = await fetch(location.href, {cache: 'no-store'});
      if (!res.ok && res.status !== 503) throw new Error(res.status);
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const pinned = {};
      document.querySelectorAll('pre.log').forEach(function (p) {
        pinned[p.id] = p.scrollTop + p.clientHeight >= p.scrollHeight - 4;
      });
      document.title = doc.title;
      document.getElementById('page').replaceWith(doc.getElementById('page'));
      document.querySelectorAll('pre.log').forEach(function (p) {
        if (pinned[p.id] !== false) p.scrollTop = p.scrollHeight;
      });
      document.getElementById('stale').hidden = true;
    } catch (e) {
      document.getElementById('stale').hidden = false;
    }
  }
  document.querySelectorAll('pre.log').forEach(function (p) { p.scrollTop = p.scrollHeight; });
  setInterval(refresh, 2000);
})();
</script>)js";

constexpr const char* kStyle = R"css(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f6f6}
#verdict{padding:.8em 1.5em;color:#fff}#verdict h1{margin:0;font-size:1.6em}
#verdict ul{margin:.3em 0 0;padding-left:1.2em}
.ok{background:#2e7d32}.degraded{background:#e6a700;color:#222!important}
.alarm{background:#b71c1c;color:#fff}.as-of,.as-of td,.as-of th{background:#fff4cc;color:#222}
section{background:#fff;margin:1em 1.5em;padding:.6em 1em;border-radius:4px;box-shadow:0 1px 2px #0002}
h2{font-size:1.1em;margin:.2em 0 .5em}table{border-collapse:collapse;width:100%}
td,th{padding:.25em .8em .25em 0;text-align:left;vertical-align:top}th{font-weight:600;color:#555}
tr.bad td{background:#fde0e0}tr.warn td{background:#fff4cc}.muted{color:#777}tr.bad .muted{color:#555}
pre.log{max-height:24em;overflow:auto;background:#111;color:#ddd;padding:.5em;font-size:12px;margin:0}
.stale{background:#555;color:#fff;padding:.3em 1.5em}nav a{margin-right:1em}
</style>)css";

void verdict_header(std::ostringstream& h, const Snapshot& s, const Verdict& v) {
  h << "<header id=verdict class=" << css_class(v.level) << " data-verdict=\""
    << level_name(v.level) << "\"><h1>" << esc(s.process.node) << ": " << level_name(v.level)
    << "</h1><ul id=reasons>";
  for (const auto& r : v.reasons) h << "<li>" << esc(r) << "</li>";
  if (v.reasons.empty()) h << "<li>every peer alive, the database answers, nothing waits</li>";
  h << "</ul></header>";
}

void receipts_cell(std::ostringstream& h, const Snapshot& s, const store::ConsoleView::Event& e) {
  if (!e.own) {
    h << "<td class=muted>kept at " << esc(e.origin) << "</td>";
    return;
  }
  h << "<td>";
  for (const auto& [target, at] : e.receipts) {
    h << "<div class=receipt data-target=\"" << esc(target) << "\" data-state=\""
      << (at > 0 ? "delivered" : "pending") << "\">" << esc(target) << ": "
      << (at > 0 ? "delivered " + ago(s, at) : "<b>pending</b>") << "</div>";
  }
  h << "</td>";
}

/// Its origin's [[escalation]] under an alarm: how far it went, and whether
/// anyone answered.
void escalation_row(std::ostringstream& h, const store::ConsoleView::Event& e) {
  if (e.escalations == 0) return;
  h << "<tr class=\"escalation" << (e.acks.empty() ? " bad" : "") << "\" data-escalated-of=\""
    << esc(e.id) << "\" data-rounds=" << e.escalations << "><td></td><td colspan=7>escalated "
    << e.escalations << (e.escalations == 1 ? " time" : " times")
    << (e.acks.empty() ? ", nobody acknowledged" : "")
    << (e.escalation_max > 0 ? " (at most " + std::to_string(e.escalation_max) + ")" : "")
    << "</td></tr>";
}

/// Its life under an alert, a row per step in the order stored here: a
/// person's answer, its origin's updates and cancel, escalations seen at a
/// target (the origin sums its own up in escalation_row).
void history_rows(std::ostringstream& h, const store::ConsoleView::Event& e) {
  for (const auto& step : e.history) {
    const std::string after =
        std::to_string((step.created_unix_ms - e.created_unix_ms) / 1000) + " s after";
    std::string what;
    if (step.kind == "ack") {
      what = "acknowledged by " + esc(step.by) + " at " + esc(step.site) + ", " + after + " (" +
             esc(step.ack) + ")" + (step.text.empty() ? "" : ": " + esc(step.text));
    } else if (step.kind == "update") {
      what = "updated by " + esc(step.site) + (step.by.empty() ? "" : " (" + esc(step.by) + ")") +
             ", " + after + ": " + esc(step.text);
    } else if (step.kind == "cancel") {
      what = "cancelled by " + esc(step.site) + " as sent in error, " + after +
             (step.text.empty() ? "" : ": " + esc(step.text));
    } else if (step.kind == "escalation" && e.escalations == 0) {
      what = "escalated by " + esc(step.site) + " (round " + std::to_string(step.round) + "), " +
             after;
    } else {
      continue;  // an all-clear shows in the stored cell
    }
    h << "<tr class=" << esc(step.kind) << " data-" << esc(step.kind) << "-of=\"" << esc(e.id)
      << "\"><td></td><td colspan=7>" << what << "</td></tr>";
  }
}

/// A duress accepted through the control socket and not yet in the
/// database (`spooled`) has no stored time and no receipts recorded yet.
void event_row(std::ostringstream& h, const Snapshot& s, const store::ConsoleView::Event& e,
               bool spooled = false) {
  const bool duress = e.kind == "duress";
  const bool ended = e.state == "cleared" || e.state == "cancelled";
  h << "<tr class=\"event" << (duress && !ended ? " bad" : "") << "\" data-event=\"" << esc(e.id)
    << "\" data-kind=\"" << esc(e.kind) << "\" data-state=\"" << esc(e.state) << "\""
    << (spooled ? " data-spooled=yes" : "") << "><td>" << esc(e.id) << "</td><td>"
    << (e.exercise ? "[EXERCISE] " : "") << esc(e.kind) << " / " << esc(e.priority) << "</td><td>"
    << esc(e.state) << "</td><td>" << esc(e.title) << "</td><td>" << esc(e.location) << "</td><td>"
    << esc(e.sender) << "</td><td>";
  if (spooled) {
    h << "accepted " << ago(s, e.created_unix_ms)
      << ", <b>in the spool</b>: sent, not yet in the database</td><td>receipts are recorded "
         "once the database takes it</td></tr>";
    escalation_row(h, e);
    return;
  }
  h << ago(s, e.stored_unix_ms)
    << (e.cleared_by.empty() ? "" : "<br>cleared by " + esc(e.cleared_by)) << "</td>";
  receipts_cell(h, s, e);
  h << "</tr>";
  if (!e.outside_policy.empty()) {
    // A duress delivered all the same (anything else is refused).
    h << "<tr class=\"outside-policy bad\" data-outside-policy-of=\"" << esc(e.id)
      << "\"><td></td><td colspan=7><b>outside the mesh policy</b>: " << esc(e.outside_policy)
      << "</td></tr>";
  }
  history_rows(h, e);
  escalation_row(h, e);
}

/// Panels read from the database say when, while it does not answer: what
/// they show is what it held then (a row taken since is still listed).
void as_of(std::ostringstream& h, const Snapshot& s) {
  if (!database_stale(s)) return;
  h << "<p class=as-of>as of " << clock_time(s.database.last_ok_unix_ms) << " ("
    << age_text(s.now_unix_ms - s.database.last_ok_unix_ms)
    << " ago), when the database last answered</p>";
}

constexpr const char* kEventHead =
    "<tr><th>event</th><th>kind</th><th>state</th><th>title</th><th>location</th><th>by</th>"
    "<th>stored</th><th>receipts</th></tr>";

void alarms_section(std::ostringstream& h, const Snapshot& s) {
  h << "<section id=alarms><h2>Open duress alarms</h2>";
  as_of(h, s);
  const auto* view = s.database.view ? &*s.database.view : nullptr;
  const bool listed = !s.spooled_duress.empty() || (view && !view->open_duress.empty());
  if (listed) {
    h << "<table>" << kEventHead;
    for (const auto& e : s.spooled_duress) event_row(h, s, e, true);
    if (view)
      for (const auto& e : view->open_duress) event_row(h, s, e);
    h << "</table>";
  }
  const auto* untaken = view && view->queue.oldest_duress ? &*view->queue.oldest_duress : nullptr;
  if (untaken) {
    h << "<p id=untaken-duress class=" << (untaken->age_ms >= kDuressUntakenAlarmMs ? "alarm" : "")
      << ">duress " << esc(untaken->event_id) << " waits in message_queue for "
      << age_text(untaken->age_ms) << " (row " << untaken->id
      << "): " << esc(untaken_text(*untaken)) << "</p>";
  }
  for (const auto& a : s.database.runner_alarms) {
    h << "<p class=\"runner-alarm alarm\">DURESS NOT HANDLED: duress " << esc(a.event_id)
      << " (row " << a.queue_id << ") keeps failing in relay-runner group " << esc(a.group)
      << " after " << a.attempts << " attempts: " << esc(a.last_error) << "</p>";
  }
  // "None" only where nothing follows: never above an alarm of its own.
  if (!view) {
    h << "<p class=muted>" << (listed ? "the rest is unknown" : "unknown")
      << ": the database has not been read</p>";
  } else if (!listed && !untaken && s.database.runner_alarms.empty()) {
    h << "<p class=muted>none in the last 24 h</p>";
  }
  h << "</section>";
}

/// A peer that is not alive has no round trip now: its last one is marked so.
std::string rtt_text(const mesh::PeerStatus& p, const std::string& state) {
  if (!p.heard) return "-";
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(p.srtt).count();
  return (state == "alive" ? "" : "last ") + std::to_string(ms) + " ms";
}

/// The peer's session and mesh key as the wire layer knows them.
std::string wire_text(const net::DaemonStatus& d, const std::string& peer) {
  auto it = d.wire.find(peer);
  if (it == d.wire.end()) return "";
  const auto& w = it->second;
  std::string out = w.session ? "boot " + std::to_string(w.boot) : "no session";
  if (w.key_id != 0) out += ", key id " + std::to_string(w.key_id);
  if (w.missing_key != 0) {
    out += ", <b>seals with key id " + std::to_string(w.missing_key) + ", not held here</b>";
  }
  return out;
}

void peers_section(std::ostringstream& h, const Snapshot& s) {
  h << "<section id=peers><h2>Peers</h2>";
  if (!s.daemon) {
    h << "<p class=muted>unknown: " << esc(s.daemon_missing) << "</p></section>";
    return;
  }
  const auto* view = s.database.view ? &*s.database.view : nullptr;
  h << "<table><tr><th>peer</th><th>state</th><th>last heard</th><th>rtt</th><th>queued</th>"
       "<th>in flight</th><th>receipts pending"
    << (database_stale(s) ? " (as of " + clock_time(s.database.last_ok_unix_ms) + ")" : "")
    << "</th><th>receipts owed to it</th><th>session, key</th></tr>";
  for (const auto& p : s.daemon->peers) {
    const std::string state = net::peer_state(p);
    const char* cls = p.alarmed ? "bad" : state != "alive" ? "warn" : "";
    std::int64_t pending = 0;
    if (view) {
      if (auto it = view->receipts_pending.find(p.id); it != view->receipts_pending.end())
        pending = it->second;
    }
    h << "<tr class=\"peer " << cls << "\" data-peer=\"" << esc(p.id) << "\" data-state=\"" << state
      << "\" data-alarm=\"" << (p.alarmed ? "yes" : "no") << "\"><td>" << esc(p.id) << "</td><td>"
      << (p.alarmed ? "<b>SUPERVISION ALARM</b>, " : "") << state
      << (state == "degraded" ? ": " + esc(net::degraded_reason(p)) : "")
      << (p.paths_up.size() > 1 ? "<br>paths " + esc(net::paths_text(p)) : "") << "</td><td>"
      << (p.heard ? age_text(silent_ms(*s.daemon, p)) + " ago" : "never") << "</td><td>"
      << rtt_text(p, state) << "</td><td>" << p.queued << "</td><td>" << p.in_flight << "</td><td>"
      << pending << "</td><td>" << p.receipts_owed << "</td><td>" << wire_text(*s.daemon, p.id)
      << "</td></tr>";
  }
  h << "</table></section>";
}

void events_section(std::ostringstream& h, const Snapshot& s) {
  h << "<section id=events><h2>Recent events</h2>";
  as_of(h, s);
  if (!s.database.view || s.database.view->recent.empty()) {
    h << "<p class=muted>"
      << (s.database.view ? "none yet" : "unknown: the database has not been read")
      << "</p></section>";
    return;
  }
  h << "<table>" << kEventHead;
  for (const auto& e : s.database.view->recent) event_row(h, s, e);
  h << "</table></section>";
}

void database_section(std::ostringstream& h, const Snapshot& s) {
  const auto& db = s.database;
  const char* word = db.state == DatabaseState::State::up     ? "up"
                     : db.state == DatabaseState::State::down ? "DOWN"
                                                              : "never reached yet";
  h << "<section id=database data-state=\"" << word << "\"><h2>Local database</h2><table>"
    << "<tr><th>state</th><td>" << word << "</td></tr><tr><th>last successful check</th><td>"
    << ago(s, db.last_ok_unix_ms) << "</td></tr>";
  if (!db.error.empty()) {
    h << "<tr class=bad><th>error</th><td>" << esc(db.error)
      << (db.detail.empty() ? "" : " (library: " + esc(db.detail) + ")") << "</td></tr>";
  }
  if (db.view) {
    const auto& v = *db.view;
    if (database_stale(s)) {
      h << "<tr class=as-of><th>as of</th><td>" << clock_time(db.last_ok_unix_ms)
        << ", when the database last answered: the rows below are what it held then</td></tr>";
    }
    h << "<tr><th>outbox backlog</th><td>" << v.outbox.backlog << " rows"
      << (v.outbox.oldest_age_ms ? ", oldest " + age_text(*v.outbox.oldest_age_ms) : "")
      << "</td></tr><tr" << (v.outbox.rejected_last_hour > 0 ? " class=warn" : "")
      << "><th>rejected rows</th><td>" << v.outbox.rejected_last_hour << " in the last hour, "
      << v.outbox.rejected_total << " in outbox_rejected";
    for (const auto& r : v.outbox.recent_rejected)
      h << "<br>row " << r.id << ", " << ago(s, r.at_unix_ms) << ": " << esc(r.reason);
    h << "</td></tr><tr><th>message_queue</th><td id=queue>" << v.queue.rows
      << (v.queue.rows == 1 ? " row" : " rows") << " untaken";
    if (v.queue.oldest) {
      h << "; oldest: row " << v.queue.oldest->id << " (" << esc(v.queue.oldest->type)
        << "), waiting " << age_text(v.queue.oldest->age_ms);
    }
    h << "</td></tr>";
  }
  h << "</table><h2>This node's own job</h2><table>";
  for (const auto& part : s.health) {
    const bool failing = part.state == net::ComponentHealth::State::failing;
    h << "<tr class=\"part" << (failing ? " bad" : "") << "\" data-part=\"" << esc(part.name)
      << "\"><th>" << esc(part.name) << "</th><td>"
      << (failing ? "FAILING since " + ago(s, part.failing_since_unix_ms) + ": " + esc(part.error)
          : part.state == net::ComponentHealth::State::ok ? "ok, " + ago(s, part.last_ok_unix_ms)
                                                          : std::string("not exercised yet"))
      << "</td></tr>";
  }
  h << "</table></section>";
}

void process_section(std::ostringstream& h, const Snapshot& s) {
  h << "<section id=process><h2>relayd</h2><table><tr><th>node</th><td>" << esc(s.process.node)
    << "</td></tr><tr><th>version</th><td>" << esc(s.process.version)
    << "</td></tr><tr><th>pid</th><td>" << s.process.pid << "</td></tr><tr><th>up for</th><td>"
    << age_text(s.now_unix_ms - s.process.started_unix_ms) << " (since "
    << clock_time(s.process.started_unix_ms) << ")</td></tr><tr><th>config</th><td>"
    << esc(s.process.config_path) << "</td></tr><tr><th>mesh policy</th><td data-policy=\""
    << esc(s.process.policy_digest) << "\">" << s.process.policy_clear_rules << " [[clear]] "
    << (s.process.policy_clear_rules == 1 ? "rule" : "rules") << ", "
    << s.process.policy_send_rules << " [[send]] "
    << (s.process.policy_send_rules == 1 ? "rule" : "rules") << ", digest "
    << esc(s.process.policy_digest.substr(0, 8)) << "\u2026</td></tr>";
  if (s.daemon) {
    const auto& d = *s.daemon;
    h << "<tr><th>counters</th><td>datagrams sent " << d.stats.datagrams_sent << ", accepted "
      << d.accepted << "; events stored " << d.stats.events_stored << ", retransmissions "
      << d.stats.retransmissions << "; kicks " << d.kicks << ", notifies " << d.notifies
      << "</td></tr><tr><th>datagrams dropped</th><td>";
    bool any = false;
    for (const auto& [reason, n] : d.rejected) {
      if (n == 0) continue;
      h << (any ? ", " : "") << esc(reason) << " " << n;
      any = true;
    }
    h << (any ? "" : "none") << "</td></tr>";
  }
  h << "</table></section>";
}

void log_pane(std::ostringstream& h, const char* id, const char* name,
              const std::vector<std::string>& lines) {
  h << "<h2>" << name << " (last " << lines.size() << " lines)</h2><pre class=log id=" << id << ">";
  for (const auto& line : lines) h << esc(line) << '\n';
  h << "</pre>";
}

void logs_section(std::ostringstream& h, const Snapshot& s) {
  h << "<section id=logs data-captured=\"" << (s.logs.captured ? "yes" : "no") << "\">";
  if (!s.logs.captured) {
    h << "<p class=warn>output is not captured: " << esc(s.logs.why_not) << "</p>";
  }
  log_pane(h, "stderr", "stderr", s.logs.stderr_lines);
  log_pane(h, "stdout", "stdout", s.logs.stdout_lines);
  h << "<p class=muted>kept in " << esc(s.logs.dir) << " (previous runs included)</p></section>";
}

}  // namespace

std::string status_html(const Snapshot& s) {
  const Verdict v = judge(s);
  std::ostringstream h;
  h << "<!doctype html><html lang=en><head><meta charset=utf-8>"
       "<meta name=viewport content=\"width=device-width\"><title>"
    << level_name(v.level) << " - relayd " << esc(s.process.node) << "</title>" << kStyle
    << "</head><body><div id=stale class=stale hidden>not answering: showing the last state "
       "received</div><div id=page>";
  verdict_header(h, s, v);
  alarms_section(h, s);
  h << drills_html(s);
  peers_section(h, s);
  events_section(h, s);
  database_section(h, s);
  process_section(h, s);
  logs_section(h, s);
  h << "<section><nav><a href=api/status>/api/status</a><a href=api/events>/api/events</a>"
       "<a href=api/alarms>/api/alarms</a><a href=api/logs>/api/logs</a>"
       "<a href=metrics>/metrics</a><a href=healthz>/healthz</a></nav><p class=muted>as of "
    << clock_time(s.now_unix_ms) << "</p></section></div>" << kScript << "</body></html>";
  return h.str();
}

}  // namespace relay::status

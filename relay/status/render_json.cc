#include <nlohmann/json.hpp>

#include "relay/net/incident_log.h"
#include "relay/status/drills.h"
#include "relay/status/render.h"
#include "relay/status/verdict.h"

namespace relay::status {
namespace {

using Json = nlohmann::ordered_json;

std::string dump(const Json& j) {
  // Invalid UTF-8 (a title from a peer) is replaced, never an exception.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Json optional_ms(std::int64_t unix_ms) {
  return unix_ms > 0 ? Json(unix_ms) : Json(nullptr);
}

const char* database_word(DatabaseState::State state) {
  switch (state) {
    case DatabaseState::State::never_reached:
      return "never reached";
    case DatabaseState::State::up:
      return "up";
    case DatabaseState::State::down:
      return "down";
  }
  return "down";
}

const char* part_word(net::ComponentHealth::State state) {
  switch (state) {
    case net::ComponentHealth::State::unknown:
      return "not yet";
    case net::ComponentHealth::State::ok:
      return "ok";
    case net::ComponentHealth::State::failing:
      return "failing";
  }
  return "failing";
}

/// `spooled`: accepted through the control socket, not yet in the database
/// (no stored time, no receipts recorded yet).
Json event_json(const store::ConsoleView::Event& e, bool spooled = false) {
  Json j;
  j["id"] = e.id;
  j["origin"] = e.origin;
  j["seq"] = e.seq;
  j["kind"] = e.kind;
  j["priority"] = e.priority;
  j["title"] = e.title;
  j["location"] = e.location;
  j["sender"] = e.sender;
  j["exercise"] = e.exercise;
  j["created_unix_ms"] = e.created_unix_ms;
  j["stored_unix_ms"] = spooled ? Json(nullptr) : Json(e.stored_unix_ms);
  j["spooled"] = spooled;
  j["targets"] = e.targets;
  j["cleared_by"] = e.cleared_by.empty() ? Json(nullptr) : Json(e.cleared_by);
  j["outside_policy"] = e.outside_policy.empty() ? Json(nullptr) : Json(e.outside_policy);
  j["state"] = e.state.empty() ? Json(nullptr) : Json(e.state);
  Json history = Json::array();
  for (const auto& step : e.history) {
    Json j_step{{"id", step.id}, {"kind", step.kind}, {"site", step.site},
                {"by", step.by}, {"text", step.text}, {"created_unix_ms", step.created_unix_ms}};
    if (step.kind == "ack") j_step["state"] = step.ack;
    if (step.kind == "escalation") j_step["round"] = step.round;
    history.push_back(j_step);
  }
  j["history"] = history;
  if (!e.acks.empty()) {
    Json acks = Json::array();
    for (const auto& a : e.acks) {
      acks.push_back({{"by", a.by},
                      {"site", a.site},
                      {"state", a.state},
                      {"created_unix_ms", a.created_unix_ms},
                      {"seconds_after", (a.created_unix_ms - e.created_unix_ms) / 1000.0}});
    }
    j["acknowledgements"] = acks;
  }
  if (e.escalations > 0) {
    j["escalations"] = e.escalations;
    j["escalation_max"] = e.escalation_max;
    j["escalation_unanswered"] = e.acks.empty();
  }
  if (e.own && !spooled) {
    Json receipts = Json::array();
    for (const auto& [target, at] : e.receipts) {
      Json r;
      r["target"] = target;
      r["state"] = at > 0 ? "delivered" : "pending";
      r["delivered_unix_ms"] = optional_ms(at);
      receipts.push_back(r);
    }
    j["receipts"] = receipts;
  } else {
    j["receipts"] = nullptr;  // kept at the origin
  }
  return j;
}

Json queue_row_json(const std::optional<store::ConsoleView::QueueRow>& row) {
  if (!row) return nullptr;
  Json j;
  j["id"] = row->id;
  j["type"] = row->type;
  j["age_ms"] = row->age_ms;
  j["priority"] = row->priority;
  j["event_id"] = row->event_id.empty() ? Json(nullptr) : Json(row->event_id);
  j["groups_pending"] = row->groups_pending;
  j["groups_done"] = row->groups_done;
  return j;
}

Json verdict_json(const Snapshot& s) {
  const Verdict v = judge(s);
  Json j;
  j["level"] = level_name(v.level);
  j["reasons"] = v.reasons;
  return j;
}

Json peers_json(const Snapshot& s) {
  Json peers = Json::array();
  if (!s.daemon) return peers;
  const auto* view = s.database.view ? &*s.database.view : nullptr;
  for (const auto& p : s.daemon->peers) {
    Json j;
    j["id"] = p.id;
    j["state"] = net::peer_state(p);
    j["alarm"] = p.alarmed;
    j["store_alarm"] = p.store_alarmed;
    j["last_heard_ms_ago"] = p.heard ? Json(silent_ms(*s.daemon, p)) : Json(nullptr);
    // The last round trip measured; a live figure only while the peer is alive.
    j["rtt_ms"] = p.heard
                      ? Json(std::chrono::duration_cast<std::chrono::milliseconds>(p.srtt).count())
                      : Json(nullptr);
    j["queued"] = p.queued;
    j["in_flight"] = p.in_flight;
    j["degraded_reason"] =
        net::peer_state(p) == "degraded" ? Json(net::degraded_reason(p)) : Json(nullptr);
    if (p.health) {
      j["store"] = {{"up", p.health->store_up()},
                    {"down_ms", p.health->store_down_ms()},
                    {"spool_depth", p.health->spool_depth()},
                    {"spool_oldest_ms", p.health->spool_oldest_ms()}};
    } else {
      j["store"] = nullptr;
    }
    j["unacked_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(p.unacked_for).count();
    Json paths = Json::array();
    for (std::size_t i = 0; i < p.paths_up.size(); ++i) {
      paths.push_back(
          {{"path", i + 1}, {"up", static_cast<bool>(p.paths_up[i])}, {"best", i == p.best_path}});
    }
    j["paths"] = paths;
    j["pacing_bytes_per_second"] = static_cast<std::int64_t>(p.pacing_rate.bytes_per_second());
    j["queue_delay_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(queue_delay(p)).count();
    std::int64_t pending = 0;
    if (view) {
      if (auto it = view->receipts_pending.find(p.id); it != view->receipts_pending.end())
        pending = it->second;
    }
    j["receipts_pending"] = pending;
    j["receipts_owed_to_it"] = p.receipts_owed;
    if (auto w = s.daemon->wire.find(p.id); w != s.daemon->wire.end()) {
      j["session_boot"] = w->second.session ? Json(w->second.boot) : Json(nullptr);
      j["key_id"] = w->second.key_id != 0 ? Json(w->second.key_id) : Json(nullptr);
      j["missing_key_id"] =
          w->second.missing_key != 0 ? Json(w->second.missing_key) : Json(nullptr);
      j["drift"] = w->second.drift;
    }
    peers.push_back(j);
  }
  return peers;
}

}  // namespace

Json runner_alarms_json(const Snapshot& s) {
  Json list = Json::array();
  for (const auto& a : s.database.runner_alarms) {
    list.push_back({{"group", a.group},
                    {"queue_id", a.queue_id},
                    {"event_id", a.event_id},
                    {"attempts", a.attempts},
                    {"last_error", a.last_error}});
  }
  return list;
}

std::string status_json(const Snapshot& s) {
  Json out;
  out["node"] = s.process.node;
  out["verdict"] = verdict_json(s);
  out["healthy"] = health_problems(s).empty();
  Json process;
  process["version"] = s.process.version;
  process["pid"] = s.process.pid;
  process["config"] = s.process.config_path;
  process["started_unix_ms"] = s.process.started_unix_ms;
  process["uptime_seconds"] = (s.now_unix_ms - s.process.started_unix_ms) / 1000;
  process["now_unix_ms"] = s.now_unix_ms;
  process["state_dir"] = s.process.state_dir;
  Json policy;
  policy["digest"] = s.process.policy_digest;
  policy["digest_short"] = s.process.policy_digest.substr(0, 8);
  policy["clear_rules"] = s.process.policy_clear_rules;
  policy["send_rules"] = s.process.policy_send_rules;
  process["policy"] = policy;
  out["process"] = process;

  Json disk;
  disk["path"] = s.process.state_dir;
  disk["free_bytes"] = s.state_disk.free_bytes;
  disk["size_bytes"] = s.state_disk.size_bytes;
  disk["full"] = !state_dir_problem(s).empty();
  out["state_dir"] = disk;

  Json db;
  db["state"] = database_word(s.database.state);
  db["up"] = s.database.state == DatabaseState::State::up;
  db["error"] = s.database.error.empty() ? Json(nullptr) : Json(s.database.error);
  db["detail"] = s.database.detail.empty() ? Json(nullptr) : Json(s.database.detail);
  db["last_ok_unix_ms"] = optional_ms(s.database.last_ok_unix_ms);
  db["down_since_unix_ms"] = optional_ms(s.database.down_since_unix_ms);
  db["checked_unix_ms"] = optional_ms(s.database.checked_unix_ms);
  out["database"] = db;

  Json parts = Json::array();
  for (const auto& part : s.health) {
    Json j;
    j["part"] = part.name;
    j["state"] = part_word(part.state);
    j["error"] = part.error.empty() ? Json(nullptr) : Json(part.error);
    j["last_ok_unix_ms"] = optional_ms(part.last_ok_unix_ms);
    j["failing_since_unix_ms"] = optional_ms(part.failing_since_unix_ms);
    parts.push_back(j);
  }
  out["own_job"] = parts;
  out["core"] = !s.daemon                  ? Json(s.daemon_missing)
                : s.daemon->store_attached ? Json("running")
                                           : Json("running without its database");
  if (s.daemon) {
    out["spool"] = {{"depth", s.daemon->spool_depth},
                    {"capacity", s.daemon->spool_capacity},
                    {"oldest_age_ms",
                     s.daemon->spool_depth > 0 ? Json(s.daemon->spool_oldest_ms) : Json(nullptr)}};
  }

  if (s.database.view) {
    const auto& view = *s.database.view;
    Json outbox;
    outbox["backlog"] = view.outbox.backlog;
    outbox["oldest_age_ms"] =
        view.outbox.oldest_age_ms ? Json(*view.outbox.oldest_age_ms) : Json(nullptr);
    outbox["rejected_total"] = view.outbox.rejected_total;
    outbox["rejected_last_hour"] = view.outbox.rejected_last_hour;
    Json recent = Json::array();
    for (const auto& r : view.outbox.recent_rejected) {
      Json j;
      j["id"] = r.id;
      j["rejected_unix_ms"] = r.at_unix_ms;
      j["reason"] = r.reason;
      recent.push_back(j);
    }
    outbox["recent_rejected"] = recent;
    out["outbox"] = outbox;
    Json queue;
    queue["rows"] = view.queue.rows;
    queue["oldest"] = queue_row_json(view.queue.oldest);
    queue["oldest_duress"] = queue_row_json(view.queue.oldest_duress);
    out["message_queue"] = queue;
    out["runner_alarms"] = runner_alarms_json(s);
    out["as_of_unix_ms"] = view.database_now_unix_ms;
  } else {
    out["outbox"] = nullptr;
    out["message_queue"] = nullptr;
    out["as_of_unix_ms"] = nullptr;
  }
  out["peers"] = peers_json(s);
  out["drills"] = drills_json(s);

  Json counters;
  Json rejected = Json::object();
  if (s.daemon) {
    const auto& d = *s.daemon;
    counters["datagrams_sent"] = d.stats.datagrams_sent;
    counters["datagrams_accepted"] = d.accepted;
    counters["events_sent"] = d.stats.events_sent;
    counters["retransmissions"] = d.stats.retransmissions;
    counters["events_stored"] = d.stats.events_stored;
    counters["receipts_recorded"] = d.stats.receipts_recorded;
    counters["alarms_raised"] = d.stats.alarms_raised;
    counters["kicks"] = d.kicks;
    counters["notifies"] = d.notifies;
    counters["claims_paused"] = d.claims_paused;
    for (const auto& [reason, n] : d.rejected) rejected[reason] = n;
  }
  out["counters"] = counters;
  out["rejected"] = rejected;
  return dump(out);
}

std::string events_json(const Snapshot& s) {
  Json out;
  out["node"] = s.process.node;
  Json events = Json::array();
  if (s.database.view) {
    for (const auto& e : s.database.view->recent) events.push_back(event_json(e));
  }
  out["as_of_unix_ms"] =
      s.database.view ? Json(s.database.view->database_now_unix_ms) : Json(nullptr);
  out["events"] = events;
  return dump(out);
}

std::string alarms_json(const Snapshot& s) {
  Json out;
  out["node"] = s.process.node;
  Json duress = Json::array();
  for (const auto& e : s.spooled_duress) duress.push_back(event_json(e, true));
  if (s.database.view) {
    for (const auto& e : s.database.view->open_duress) duress.push_back(event_json(e));
  }
  out["open_duress"] = duress;
  // What the database listed, as of its last answer (stale while it is down).
  out["as_of_unix_ms"] =
      s.database.view ? Json(s.database.view->database_now_unix_ms) : Json(nullptr);
  out["database_up"] = s.database.state == DatabaseState::State::up;
  out["untaken_duress"] =
      s.database.view ? queue_row_json(s.database.view->queue.oldest_duress) : Json(nullptr);
  Json supervision = Json::array();
  if (s.daemon) {
    for (const auto& p : s.daemon->peers)
      if (p.alarmed) supervision.push_back(p.id);
  }
  out["supervision"] = supervision;
  out["runner"] = runner_alarms_json(s);
  Json drills = Json::array();
  for (const auto& d : drills_json(s))
    if (d["alarm"].get<bool>()) drills.push_back(d["site"]);
  out["drills"] = drills;
  return dump(out);
}

std::string logs_json(const Snapshot& s) {
  Json out;
  out["node"] = s.process.node;
  out["captured"] = s.logs.captured;
  out["why_not"] = s.logs.why_not.empty() ? Json(nullptr) : Json(s.logs.why_not);
  out["dir"] = s.logs.dir;
  out["stdout"] = s.logs.stdout_lines;
  out["stderr"] = s.logs.stderr_lines;
  return dump(out);
}

}  // namespace relay::status

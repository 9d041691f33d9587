#include "relay/status/verdict.h"

#include <spdlog/fmt/fmt.h>

#include "relay/net/incident_log.h"

namespace relay::status {
namespace {

void raise(Verdict& v, Verdict::Level level, std::string reason) {
  if (level > v.level) v.level = level;
  v.reasons.push_back(std::move(reason));
}

std::string database_problem(const Snapshot& s) {
  const auto& db = s.database;
  switch (db.state) {
    case DatabaseState::State::up:
      return "";
    case DatabaseState::State::never_reached:
      return "database: never reached since start" +
             (db.error.empty() ? std::string(" (first check pending)") : ": " + db.error);
    case DatabaseState::State::down:
      return fmt::format("database: down for {} (last ok {} ago): {}",
                         age_text(s.now_unix_ms - db.down_since_unix_ms),
                         age_text(s.now_unix_ms - db.last_ok_unix_ms), db.error);
  }
  return "";
}

}  // namespace

std::string state_dir_problem(const Snapshot& s) {
  const auto& disk = s.state_disk;
  if (s.process.state_dir.empty()) return "";
  if (!disk.known) {
    return fmt::format("state directory {} cannot be checked: {}", s.process.state_dir, disk.error);
  }
  if (disk.free_bytes >= kStateDirFullBytes) return "";
  return fmt::format(
      "state directory {} is full ({} KiB free of {} KiB): seqs and the spool need no new "
      "space and alarms still go out, but the captured log stops; free some space",
      s.process.state_dir, disk.free_bytes / 1024, disk.size_bytes / 1024);
}

const char* level_name(Verdict::Level level) {
  switch (level) {
    case Verdict::Level::ok:
      return "OK";
    case Verdict::Level::degraded:
      return "DEGRADED";
    case Verdict::Level::alarm:
      return "ALARM";
  }
  return "ALARM";
}

std::string age_text(std::int64_t ms) {
  if (ms < 0) ms = 0;
  const std::int64_t s = ms / 1000;
  if (s < 120) return fmt::format("{} s", s);
  if (s < 7200) return fmt::format("{} min", s / 60);
  if (s < 172800) return fmt::format("{} h {} min", s / 3600, s / 60 % 60);
  return fmt::format("{} days", s / 86400);
}

std::vector<std::string> health_problems(const Snapshot& s) {
  std::vector<std::string> out;
  if (auto why = database_problem(s); !why.empty()) out.push_back(std::move(why));
  if (!s.daemon) out.push_back("relay core: " + s.daemon_missing);
  if (s.daemon && s.daemon->spool_depth > 0) {
    out.push_back(fmt::format(
        "spool: {} duress alarms sent but not yet in the database, the oldest for {} ({} of {} "
        "places used)",
        s.daemon->spool_depth, age_text(s.daemon->spool_oldest_ms), s.daemon->spool_depth,
        s.daemon->spool_capacity));
  }
  for (const auto& part : s.health) {
    if (part.name == net::Health::kDatabase) continue;  // the periodic check says it above
    if (part.state == net::ComponentHealth::State::failing) {
      out.push_back(fmt::format("{}: failing for {}: {}", part.name,
                                age_text(s.now_unix_ms - part.failing_since_unix_ms), part.error));
    }
  }
  return out;
}

Verdict judge(const Snapshot& s) {
  Verdict v;
  using L = Verdict::Level;
  for (auto& why : health_problems(s)) raise(v, L::alarm, std::move(why));

  if (s.database.view) {
    const auto& view = *s.database.view;
    for (const auto& e : view.open_duress) {
      raise(v, L::alarm,
            fmt::format("{}duress {} open (no all-clear): \"{}\" at \"{}\" by \"{}\"",
                        e.exercise ? "[EXERCISE] " : "", e.id, e.title, e.location, e.sender));
    }
    if (const auto& row = view.queue.oldest_duress; row && row->age_ms >= kDuressUntakenAlarmMs) {
      raise(v, L::alarm,
            fmt::format("duress {} waits in message_queue for {}: no consumer has taken it",
                        row->event_id, age_text(row->age_ms)));
    }
    if (const auto& row = view.queue.oldest; row && row->age_ms >= kRowUntakenDegradedMs) {
      raise(v, L::degraded,
            fmt::format("message_queue row {} (type {}) untaken for {}", row->id, row->type,
                        age_text(row->age_ms)));
    }
    if (view.outbox.oldest_age_ms && *view.outbox.oldest_age_ms >= kOutboxStaleMs) {
      raise(v, L::degraded,
            fmt::format("{} outbox rows unclaimed, the oldest for {}", view.outbox.backlog,
                        age_text(*view.outbox.oldest_age_ms)));
    }
    if (!view.fsync || !view.full_page_writes) {
      raise(v, L::degraded,
            fmt::format("database durability: fsync = {}, full_page_writes = {}: a power cut can "
                        "lose what this database acknowledged (see [store] unsafe_durability)",
                        view.fsync ? "on" : "off", view.full_page_writes ? "on" : "off"));
    }
    if (view.outbox.rejected_last_hour > 0) {
      raise(v, L::degraded,
            fmt::format("{} outbox rows rejected in the last hour (see outbox_rejected)",
                        view.outbox.rejected_last_hour));
    }
  }
  for (const auto& a : s.database.runner_alarms) {
    raise(v, L::alarm,
          fmt::format("duress {} (message_queue row {}) keeps failing in relay-runner group \"{}\" "
                      "after {} attempts: {}",
                      a.event_id, a.queue_id, a.group, a.attempts, a.last_error));
  }
  if (s.daemon) {
    for (const auto& p : s.daemon->peers) {
      if (p.alarmed) {
        raise(v, L::alarm,
              fmt::format("supervision alarm: {} unreachable for {}", p.id,
                          age_text(silent_ms(*s.daemon, p))));
      } else if (p.store_alarmed) {
        raise(v, L::alarm,
              fmt::format("alarm: {} answers, but {}", p.id, net::degraded_reason(p)));
      } else if (net::peer_state(p) == "degraded") {
        raise(v, L::degraded,
              fmt::format("{} degraded: {}; back-pressure does not wait for it", p.id,
                          net::degraded_reason(p)));
      } else if (const auto state = net::peer_state(p); state != "alive") {
        raise(v, L::degraded,
              state == "not heard yet" ? fmt::format("{} not heard yet since start", p.id)
                                       : fmt::format("{} {}: silent for {}", p.id, state,
                                                     age_text(silent_ms(*s.daemon, p))));
      }
    }
    for (const auto& p : s.daemon->peers) {
      const bool some_down =
          std::find(p.paths_up.begin(), p.paths_up.end(), false) != p.paths_up.end();
      if (p.paths_up.size() > 1 && some_down && net::peer_state(p) != "down") {
        raise(v, L::degraded,
              fmt::format("{}: a path does not answer ({})", p.id, net::paths_text(p)));
      }
    }
    for (const auto& [peer, w] : s.daemon->wire) {
      for (const auto& d : w.drift) raise(v, L::degraded, "configuration drift: " + d);
      if (w.missing_key != 0) {
        raise(v, L::degraded,
              fmt::format("{} seals with key id {}, which this node does not hold (OPERATOR.md, "
                          "\"Rotating the mesh key\")",
                          peer, w.missing_key));
      }
    }
    if (s.daemon->stats.conflicts > 0) {
      raise(v, L::alarm,
            fmt::format("{} events arrived with content that differs from what is held under "
                        "their id: an origin numbered a seq twice (see the CONFLICT lines in the "
                        "log); the origin sends its own again under a fresh seq{}",
                        s.daemon->stats.conflicts,
                        s.daemon->stats.healed > 0
                            ? fmt::format(" ({} of this node's were sent again)",
                                          s.daemon->stats.healed)
                            : ""));
    }
    if (!s.daemon->numbering.ready) {
      raise(v, L::degraded,
            "numbering: asking peers what they hold of this node, as after every start (up to "
            "2 s); only duress and emergency alerts go out until then");
    }
    if (!s.daemon->reload_refused.empty()) {
      raise(v, L::degraded,
            "the last reload was refused; relayd runs on the configuration it had: " +
                s.daemon->reload_refused);
    }
    if (s.daemon->claims_paused) {
      raise(v, L::degraded,
            "back-pressure: normal and bulk outbox rows wait (too many own events undelivered)");
    }
  }
  if (auto why = state_dir_problem(s); !why.empty()) raise(v, L::degraded, std::move(why));
  if (!s.logs.captured && !s.logs.why_not.empty()) {
    raise(v, L::degraded, "output capture off: " + s.logs.why_not);
  }
  return v;
}

}  // namespace relay::status

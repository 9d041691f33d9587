#include "relay/status/verdict.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

#include "relay/net/incident_log.h"
#include "relay/status/drills.h"

namespace relay::status {
namespace {

void raise(Verdict& v, Verdict::Level level, std::string reason) {
  if (level > v.level) v.level = level;
  v.reasons.push_back(std::move(reason));
}

/// Parts that only write to the database: while its check fails, their
/// failure is the same one, said once in the database's reason.
bool needs_database(std::string_view part) {
  return part == net::Health::kUrgentLane || part == net::Health::kBulkLane ||
         part == net::Health::kOutboxClaim || part == net::Health::kOutboxListen;
}

/// The database's failure and what to do about it: the host to check.
std::string database_failure(const DatabaseState& db) {
  if (db.error != "database unreachable") return db.error;
  return fmt::format("{} at {}port {}: check that PostgreSQL runs there (pg_isready{} -p {})",
                     db.error, db.host.empty() ? "" : "host " + db.host + " ", db.port,
                     db.host.empty() ? "" : " -h " + db.host, db.port);
}

std::string database_problem(const Snapshot& s) {
  const auto& db = s.database;
  if (db.state == DatabaseState::State::up && check_overdue(s)) {
    return fmt::format(
        "database: its check has not answered for {} (a server or network that stopped "
        "answering mid-query?): what this page shows of it is as of {} ago; check with "
        "pg_isready{} -p {}",
        age_text(s.now_unix_ms - db.checked_unix_ms), age_text(s.now_unix_ms - db.last_ok_unix_ms),
        db.host.empty() ? "" : " -h " + db.host, db.port);
  }
  if (db.state == DatabaseState::State::up) return "";
  if (db.state == DatabaseState::State::never_reached && db.error.empty())
    return "database: never reached since start (first check pending)";
  std::string out = db.state == DatabaseState::State::never_reached
                        ? "database: never reached since start: "
                        : fmt::format("database: down for {} (last ok {} ago): ",
                                      age_text(s.now_unix_ms - db.down_since_unix_ms),
                                      age_text(s.now_unix_ms - db.last_ok_unix_ms));
  out += database_failure(db);
  std::string waiting;
  for (const auto& part : s.health) {
    if (part.state == net::ComponentHealth::State::failing && needs_database(part.name))
      waiting += (waiting.empty() ? "" : ", ") + part.name;
  }
  if (!waiting.empty()) out += "; " + waiting + " wait for it";
  if (!db.detail.empty()) out += " (library: " + db.detail + ")";
  return out;
}

/// A part's error in plain words: libpq and libpqxx's text for a lost
/// connection ("Could not obtain client encoding: not connected.") says
/// nothing to an operator, so it is the detail of "database unreachable".
std::string part_error(const std::string& error) {
  for (const char* lost : {"not connected", "server closed the connection", "could not connect",
                           "connection to server", "terminating connection", "Lost connection"}) {
    if (error.find(lost) != std::string::npos)
      return "database unreachable (library: " + error + ")";
  }
  return error;
}

/// Failing parts, those with the same error said once (two lanes that lost
/// the same database are one failure); the database's own and, while its
/// check fails, those waiting for it are said in the database's reason.
void failing_parts(const Snapshot& s, std::vector<std::string>& out) {
  struct Failure {
    std::string error, names;
    std::int64_t since = 0;
  };
  std::vector<Failure> said;
  for (const auto& part : s.health) {
    if (part.state != net::ComponentHealth::State::failing) continue;
    if (part.name == net::Health::kDatabase) continue;
    if (s.database.state != DatabaseState::State::up && needs_database(part.name)) continue;
    const auto error = part_error(part.error);
    auto it =
        std::find_if(said.begin(), said.end(), [&](const auto& f) { return f.error == error; });
    if (it == said.end()) {
      said.push_back({error, part.name, part.failing_since_unix_ms});
    } else {
      it->names += ", " + part.name;
      it->since = std::min(it->since, part.failing_since_unix_ms);
    }
  }
  for (const auto& f : said) {
    out.push_back(
        fmt::format("{}: failing for {}: {}", f.names, age_text(s.now_unix_ms - f.since), f.error));
  }
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

std::string untaken_text(const store::ConsoleView::QueueRow& row) {
  auto names = [](const std::vector<std::string>& groups) {
    std::string out;
    for (const auto& g : groups) out += fmt::format("{}\"{}\"", out.empty() ? "" : ", ", g);
    return out;
  };
  auto have = [](const std::vector<std::string>& groups) {
    return groups.size() == 1 ? "has" : "have";
  };
  constexpr const char* kRunnerUnits = "systemctl status 'relay-runner@*'";
  if (row.groups_pending.empty() && row.groups_done.empty()) {
    return fmt::format("no consumer has taken it; check that its relay-runner runs ({})",
                       kRunnerUnits);
  }
  if (row.groups_pending.empty()) {
    // Left behind: a group deleted from runner_groups by hand, say.
    return fmt::format(
        "every relay-runner group consuming type {} has finished it ({}), yet it stays; delete "
        "it (DELETE FROM message_queue WHERE id = {})",
        row.type, names(row.groups_done), row.id);
  }
  const auto& pending = row.groups_pending;
  return fmt::format(
      "relay-runner group{} {} {} not finished it{}; check that {} runners run ({}), or, for an "
      "integration that is gone, retire it (relay-runner retire-group {})",
      pending.size() == 1 ? "" : "s", names(pending), have(pending),
      row.groups_done.empty() ? ""
                              : fmt::format(" ({} {})", names(row.groups_done),
                                            have(row.groups_done)),
      pending.size() == 1 ? "its" : "their", kRunnerUnits, pending.front());
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
  failing_parts(s, out);
  return out;
}

Verdict judge(const Snapshot& s) {
  Verdict v;
  using L = Verdict::Level;
  for (auto& why : health_problems(s)) raise(v, L::alarm, std::move(why));

  // An all-clear goes through the outbox: for a spooled duress, not before
  // the database answers again.
  auto open_duress = [&](const store::ConsoleView::Event& e, bool spooled) {
    raise(v, L::alarm,
          fmt::format("{}duress {} open (no all-clear{}): \"{}\" at \"{}\" by \"{}\"; once it "
                      "is handled{}: relayctl all-clear {}",
                      e.exercise ? "[EXERCISE] " : "", e.id,
                      spooled ? "; in the spool, not yet in the database" : "", e.title,
                      e.location, e.sender, spooled ? " and the database answers again" : "",
                      e.id));
  };
  for (const auto& e : s.spooled_duress) open_duress(e, true);
  if (s.database.view) {
    const auto& view = *s.database.view;
    for (const auto& e : view.open_duress) open_duress(e, false);
    if (const auto& row = view.queue.oldest_duress; row && row->age_ms >= kDuressUntakenAlarmMs) {
      raise(v, L::alarm,
            fmt::format("duress {} (row {}) waits in message_queue for {}: {}", row->event_id,
                        row->id, age_text(row->age_ms), untaken_text(*row)));
    }
    if (const auto& row = view.queue.oldest; row && row->age_ms >= kRowUntakenDegradedMs) {
      raise(v, L::degraded,
            fmt::format("message_queue row {} (type {}) untaken for {}: {}", row->id, row->type,
                        age_text(row->age_ms), untaken_text(*row)));
    }
    if (view.outbox.oldest_age_ms && *view.outbox.oldest_age_ms >= kOutboxStaleMs) {
      raise(v, L::degraded,
            fmt::format("{} outbox rows unclaimed, the oldest for {}: relayd claims within "
                        "milliseconds; its log says why not (journalctl -u relayd)",
                        view.outbox.backlog, age_text(*view.outbox.oldest_age_ms)));
    }
    if (!view.fsync || !view.full_page_writes) {
      raise(v, L::degraded,
            fmt::format("database durability: fsync = {}, full_page_writes = {}: a power cut can "
                        "lose what this database acknowledged (see [store] unsafe_durability)",
                        view.fsync ? "on" : "off", view.full_page_writes ? "on" : "off"));
    }
    if (view.outbox.rejected_last_hour > 0) {
      raise(v, L::degraded,
            fmt::format("{} outbox rows rejected in the last hour: each says why in "
                        "outbox_rejected (SELECT id, reason FROM outbox_rejected ORDER BY id DESC)",
                        view.outbox.rejected_last_hour));
    }
  }
  for (const auto& a : s.database.runner_alarms) {
    raise(v, L::alarm,
          fmt::format("duress {} (message_queue row {}) keeps failing in relay-runner group \"{}\" "
                      "after {} attempts: {}; its log says more (journalctl -u "
                      "'relay-runner@*')",
                      a.event_id, a.queue_id, a.group, a.attempts, a.last_error));
  }
  for (auto& why : drill_alarms(s)) raise(v, L::alarm, std::move(why));
  if (const auto* view = s.database.view ? &*s.database.view : nullptr;
      view != nullptr && !view->refused.empty()) {
    const auto& last = view->refused.front();
    raise(v, L::alarm,
          fmt::format("{} of this node's events refused by their targets under the mesh policy in "
                      "the last 24 h (the latest: {} at {}): `relayctl receipts {}` says why; "
                      "check that this site's policy file is the mesh's (its digest on the page)",
                      view->refused_last_day, last.id, last.target, last.id));
  }
  if (s.daemon) {
    for (const auto& p : s.daemon->peers) {
      if (p.alarmed) {
        raise(v, L::alarm,
              fmt::format("supervision alarm: {} unreachable for {}: check that relayd runs at "
                          "{} and that UDP reaches it from here (its [[peer]] address)",
                          p.id, age_text(silent_ms(*s.daemon, p)), p.id));
      } else if (p.store_alarmed) {
        raise(v, L::alarm, fmt::format("alarm: {} answers, but {}", p.id, net::degraded_reason(p)));
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
            fmt::format(
                "{} events arrived with content that differs from what is held under "
                "their id: an origin numbered a seq twice (see the CONFLICT lines in the "
                "log); the origin sends its own again under a fresh seq{}",
                s.daemon->stats.conflicts,
                s.daemon->stats.healed > 0
                    ? fmt::format(" ({} of this node's were sent again)", s.daemon->stats.healed)
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
                s.daemon->reload_refused + "; fix it, then relayctl reload");
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

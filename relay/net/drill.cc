// Drills, supervised to the people (issue 21): link supervision proves the
// relays hear each other, a drill that a person (or a configured runner)
// must acknowledge proves someone reads the alerts. Everything here is
// derived from the database on each pass, never kept: which slot already
// has its drill (its data says which), who acknowledged what (KIND_ACK in
// the log), which alarms are open (relay_drill_alarms).
#include "relay/net/drill.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/drill_config.h"
#include "common/log.h"
#include "proto/relaymesh.pb.h"
#include "relay/net/daemon.h"
#include "relay/store/console.h"
#include "relay/store/rows.h"

namespace relay::net {
namespace {

using Json = nlohmann::json;

/// One of this node's drills, as its log holds it.
struct Drill {
  v1::Event event;
  std::string id;  // "origin:seq"
  std::string schedule;
  std::int64_t slot = 0;
  std::int64_t window_ms = 0;
};

/// A site's acknowledgement of one of this node's events.
struct Ack {
  std::string site, by;
  std::int64_t created_unix_ms = 0;
};

std::optional<v1::Event> parse_signed(const pqxx::field& field) {
  const pqxx::binarystring bytes(field);
  v1::SignedEvent signed_event;
  v1::Event e;
  if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()))
    return std::nullopt;
  return e;
}

/// The drill's own marks (its schedule, slot and window), from its data.
bool read_marks(const std::string& data, Drill& d) {
  // Any program may insert an exercise into the outbox: a row that only
  // looks like a drill must be passed over, never stop the watch.
  const Json j = Json::parse(data, nullptr, false);
  if (!j.is_object() || !j.contains("drill") || !j["drill"].is_string()) return false;
  for (const char* key : {"slot", "window_ms"}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<std::int64_t>() < 0)
      return false;
  }
  d.schedule = j["drill"].get<std::string>();
  d.slot = j["slot"].get<std::int64_t>();
  d.window_ms = j["window_ms"].get<std::int64_t>();
  return true;
}

// A weekly schedule's last drill is at most a week old: 8 days covers it
// (and [[drill]] every is at most a week).
constexpr const char* kOwnDrills =
    "SELECT signed FROM relay_event_log WHERE kind = 4 AND origin = $1 AND stored_at > now() - "
    "interval '8 days' ORDER BY stored_at DESC LIMIT 1000";
// Newest first: beyond the bound (a busy mesh, or a peer flooding
// acknowledgements), the latest answers are the ones that count.
constexpr const char* kAcks =
    "SELECT signed FROM relay_event_log WHERE kind = 7 AND stored_at > now() - interval '8 days' "
    "ORDER BY stored_at DESC LIMIT 10000";
constexpr const char* kPending =
    "SELECT data::text FROM outbox WHERE kind = 'test' AND data ? 'drill'";

/// This node's drills of the last 8 days, newest first.
std::vector<Drill> own_drills(pqxx::transaction_base& tx, const std::string& self) {
  std::vector<Drill> out;
  for (const auto& row : tx.exec_params(kOwnDrills, self)) {
    Drill d;
    auto e = parse_signed(row[0]);
    if (!e || !read_marks(e->data(), d)) continue;  // an exercise of a person's
    d.id = e->origin() + ":" + std::to_string(e->seq());
    d.event = std::move(*e);
    out.push_back(std::move(d));
  }
  return out;
}

/// Acknowledgements of the last 8 days of `self`'s events, by the event's id.
std::map<std::string, std::vector<Ack>> acks_of_own(pqxx::transaction_base& tx,
                                                    const std::string& self) {
  std::map<std::string, std::vector<Ack>> out;
  for (const auto& row : tx.exec(kAcks)) {
    auto e = parse_signed(row[0]);
    if (!e || e->references_size() != 1 || e->references(0).origin() != self) continue;
    const auto& r = e->references(0);
    out[r.origin() + ":" + std::to_string(r.seq())].push_back(
        {e->origin(), e->sender(), e->created_unix_ms()});
  }
  for (auto& [id, list] : out) std::reverse(list.begin(), list.end());  // oldest first
  return out;
}

std::string window_text(std::int64_t ms) {
  return ms < 120'000 ? std::to_string(ms / 1000) + " s" : std::to_string(ms / 60'000) + " min";
}

/// A relay.drill row for this site's consumers, in the transaction that
/// changed relay_drill_alarms.
void queue_row(pqxx::transaction_base& tx, const Json& data) {
  // Emergency, not duress: nobody is in danger, but a site that does not
  // read its alerts must not wait behind bulk rows to be told.
  tx.exec_params(
      "INSERT INTO message_queue (type, data, priority) VALUES ('relay.drill', $1::jsonb, 3)",
      data.dump());
}

/// The sites `drill` went to (resolved at this node when it was claimed).
std::vector<std::string> sites_of(const Config& config, const v1::Event& drill) {
  if (drill.resolved_size() > 0) return {drill.resolved().begin(), drill.resolved().end()};
  return store::target_nodes(config, {drill.targets().begin(), drill.targets().end()});
}

/// Raises the alarm of each site that let its last drill's window pass
/// unacknowledged, and clears it once the site acknowledges a drill; fills
/// the view's sites. Returns how many relay.drill rows it wrote.
int judge(pqxx::transaction_base& tx, const Config& config, const std::vector<Drill>& drills,
          std::int64_t now_ms, DrillView& view) {
  std::set<std::string> drilled;
  for (const auto& schedule : config.drills) {
    for (const auto& site : store::target_nodes(config, schedule.targets)) drilled.insert(site);
  }
  const auto acks = acks_of_own(tx, config.node.id);
  std::map<std::string, DrillSite> open;  // site -> alarm as stored
  for (const auto& row : tx.exec("SELECT site, drill, (extract(epoch FROM raised_at) * "
                                 "1000)::bigint FROM relay_drill_alarms")) {
    auto& d = open[row[0].as<std::string>()];
    d.alarm = true;
    d.alarm_drill = row[1].as<std::string>();
    d.alarm_since_unix_ms = row[2].as<std::int64_t>();
  }
  int rows = 0;
  auto clear = [&](const std::string& site, Json data) {
    if (tx.exec_params("DELETE FROM relay_drill_alarms WHERE site = $1 RETURNING 1", site).empty())
      return;
    data["site"] = site;
    data["state"] = "cleared";
    queue_row(tx, data);
    ++rows;
  };
  for (const auto& site : drilled) {
    DrillSite d = open.contains(site) ? open[site] : DrillSite{};
    d.site = site;
    const auto last = std::find_if(drills.begin(), drills.end(), [&](const Drill& drill) {
      const auto sites = sites_of(config, drill.event);
      return std::find(sites.begin(), sites.end(), site) != sites.end();
    });
    if (last != drills.end()) {
      d.schedule = last->schedule;
      d.drill_id = last->id;
      d.sent_unix_ms = last->event.created_unix_ms();
      d.window_ms = last->window_ms;
      if (auto it = acks.find(last->id); it != acks.end()) {
        for (const auto& ack : it->second) {
          if (ack.site != site) continue;  // a site answers for itself alone
          d.acknowledged_by = ack.by;
          d.ack_ms = std::max<std::int64_t>(0, ack.created_unix_ms - d.sent_unix_ms);
          break;
        }
      }
      d.missed = d.ack_ms < 0 && now_ms > d.sent_unix_ms + d.window_ms;
    }
    if (d.ack_ms >= 0 && d.alarm) {
      clear(site, {{"drill", d.drill_id},
                   {"schedule", d.schedule},
                   {"by", d.acknowledged_by},
                   {"ack_ms", d.ack_ms},
                   {"message", "drill acknowledged at " + site}});
      spdlog::info("drill {} acknowledged at {} by {} after {}: its drill alarm is cleared",
                   d.drill_id, site, d.acknowledged_by, window_text(d.ack_ms));
      d.alarm = false;
    } else if (d.missed && !d.alarm) {
      const bool raised = !tx.exec_params(
                                 "INSERT INTO relay_drill_alarms (site, drill) VALUES ($1, $2) "
                                 "ON CONFLICT DO NOTHING RETURNING 1",
                                 site, d.drill_id)
                               .empty();
      if (raised) {
        queue_row(tx, {{"site", site},
                       {"state", "raised"},
                       {"drill", d.drill_id},
                       {"schedule", d.schedule},
                       {"title", last->event.title()},
                       {"sent_at", d.sent_unix_ms},
                       {"window_ms", d.window_ms},
                       {"message", "drill not acknowledged at " + site}});
        ++rows;
        spdlog::error(
            "DRILL NOT ACKNOWLEDGED at {}: drill {} ({}) had no acknowledgement from {} "
            "within {}; the alarm stays until {} acknowledges a drill",
            site, d.drill_id, d.schedule, site, window_text(d.window_ms), site);
      }
      d.alarm = true;
      d.alarm_since_unix_ms = now_ms;
      d.alarm_drill = d.drill_id;
    }
    view.sites.push_back(std::move(d));
  }
  // A site no [[drill]] names any more is not waited for.
  for (const auto& [site, alarm] : open) {
    if (drilled.contains(site)) continue;
    clear(site, {{"drill", alarm.alarm_drill},
                 {"message", "no [[drill]] targets " + site + " any more"}});
    spdlog::info("drill alarm of {} cleared: no [[drill]] targets it any more", site);
  }
  if (rows > 0) tx.exec("SELECT pg_notify('message_queue', '')");
  return rows;
}

}  // namespace

DrillWatch::DrillWatch(Config config, std::function<void()> delivered,
                       std::chrono::milliseconds interval)
    : config_(std::move(config)),
      delivered_(std::move(delivered)),
      thread_(interval, [this] { check(); }) {}

void DrillWatch::start() {
  if (!config_.drills.empty()) thread_.start();
}

void DrillWatch::stop() {
  thread_.stop();
}

DrillView DrillWatch::view() const {
  std::lock_guard lock(mutex_);
  return view_;
}

void DrillWatch::check() {
  DrillView view;
  int rows = 0;
  try {
    auto& conn = watch_connection(conn_, config_.store.dsn);
    // One snapshot for the outbox and the log: a drill the claim moves from
    // one to the other meanwhile is seen in exactly one of them.
    pqxx::transaction<pqxx::isolation_level::repeatable_read> tx(conn, "drills");
    tx.exec("SET LOCAL statement_timeout = 3000");
    const std::int64_t now_ms = unix_ms_now();
    const auto drills = own_drills(tx, config_.node.id);
    std::map<std::string, std::int64_t> latest;  // schedule -> its latest slot with a drill
    auto note = [&](const Drill& d) {
      // A slot more than a spacing ahead of this clock was not made by it
      // (a clock stepped back is less): such a row would hold its schedule
      // back for good.
      for (const auto& schedule : config_.drills) {
        if (schedule.name == d.schedule && d.slot <= now_ms + slot_spacing(schedule).count())
          latest[d.schedule] = std::max(latest[d.schedule], d.slot);
      }
    };
    for (const auto& d : drills) note(d);
    for (const auto& row : tx.exec(kPending)) {
      Drill d;
      if (read_marks(row[0].as<std::string>(), d)) note(d);
    }
    const auto started = start_due(tx, now_ms, latest);
    rows = judge(tx, config_, drills, now_ms, view);
    tx.commit();
    for (const auto& [name, slot] : started) sent_[name] = slot;
    view.read_unix_ms = now_ms;
    for (const auto& schedule : config_.drills)
      view.next[schedule.name] = last_slot(schedule, now_ms) + slot_spacing(schedule).count();
  } catch (const pqxx::undefined_table&) {
    conn_.reset();  // relayd has not migrated yet: nothing is logged
  } catch (const std::exception& e) {
    // The database watch logs the outage; drills wait for the database.
    spdlog::debug("drills: database read failed: {}", one_line(e.what()));
    conn_.reset();
    std::lock_guard lock(mutex_);
    view_.stale = true;
    return;
  }
  if (rows > 0 && delivered_) delivered_();
  std::lock_guard lock(mutex_);
  view_ = std::move(view);
}

std::map<std::string, std::int64_t> DrillWatch::start_due(
    pqxx::transaction_base& tx, std::int64_t now_ms,
    const std::map<std::string, std::int64_t>& latest) {
  std::map<std::string, std::int64_t> started;
  for (const auto& schedule : config_.drills) {
    const std::int64_t slot = last_slot(schedule, now_ms);
    const auto had = latest.find(schedule.name);
    if ((had != latest.end() && had->second >= slot) || sent_[schedule.name] >= slot) continue;
    // Missed by more than its window (relayd or its database was down):
    // a late drill would be judged against a window already over.
    if (now_ms - slot > schedule.window.count()) {
      if (had != latest.end() && skipped_[schedule.name] != slot) {
        spdlog::warn(
            "drill {}: the slot {} s ago went by while relayd or its database was down, "
            "longer than its window ({}); skipped, the next goes in {} s",
            schedule.name, (now_ms - slot) / 1000, window_text(schedule.window.count()),
            (slot + slot_spacing(schedule).count() - now_ms) / 1000);
      }
      skipped_[schedule.name] = slot;
      continue;
    }
    const Json data{
        {"drill", schedule.name}, {"slot", slot}, {"window_ms", schedule.window.count()}};
    tx.exec_params(
        "INSERT INTO outbox (kind, targets, title, body, sender, data, exercise) "
        "VALUES ('test', $1::text[], $2, $3, $4, $5::jsonb, true)",
        store::text_array(schedule.targets), schedule.title,
        "This is a drill of the alert system, not an alarm: please acknowledge it within " +
            window_text(schedule.window.count()) + ".",
        "relayd " + config_.node.id + " (drill " + schedule.name + ")", data.dump());
    tx.exec("NOTIFY outbox");
    started[schedule.name] = slot;
    spdlog::info("drill {} goes to {}: each site acknowledges it within {}", schedule.name,
                 fmt::join(schedule.targets, ", "), window_text(schedule.window.count()));
  }
  return started;
}

void Daemon::start_drills() {
  // The watch writes relay.drill rows on its own connection; waking the
  // site's consumers (their kick ports) is this thread's.
  drills_ = std::make_unique<DrillWatch>(config_, [this] {
    asio::post(io_, [this] {
      if (!stopped_) consumer_kicks_.kick();
    });
  });
  drills_->start();
}

}  // namespace relay::net

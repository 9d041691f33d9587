#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "common/config.h"
#include "relay/net/periodic.h"

namespace relay::net {

/// How this node's last drill to one site went, as its log holds it.
struct DrillSite {
  std::string site;
  std::string schedule;           // the [[drill]] name; empty before the first drill
  std::string drill_id;           // "origin:seq"
  std::int64_t sent_unix_ms = 0;  // on this node's clock
  std::int64_t window_ms = 0;
  std::string acknowledged_by;  // who, as they gave it; empty: nobody yet
  std::int64_t ack_ms = -1;     // from the drill to the acknowledgement; -1: none
  bool missed = false;          // the window ended unacknowledged
  /// relay_drill_alarms holds the site: its alarm is open (perhaps from an
  /// earlier drill than this one), since when and for which drill.
  bool alarm = false;
  std::int64_t alarm_since_unix_ms = 0;
  std::string alarm_drill;
};

/// What the status page shows of drills.
struct DrillView {
  std::vector<DrillSite> sites;  // each site some [[drill]] targets, by name
  /// When each schedule's next drill goes (Unix ms), by schedule name.
  std::map<std::string, std::int64_t> next;
  /// When the database last answered the watch (0: never): the view is as of then.
  std::int64_t read_unix_ms = 0;
  bool stale = false;  // the last read failed
};

/// Runs the [[drill]] schedules on a thread and connection of its own, once
/// a second, like EscalationWatch: every timer is derived from the database
/// (the drills in the log and the outbox, the acknowledgements in the log,
/// the open alarms in relay_drill_alarms), so a kill -9 neither repeats
/// nor loses a drill or an alarm. A due drill is an outbox row of kind test
/// (relayd claims it like any other); a site that did not acknowledge its
/// last drill within the window raises a relay.drill row, and acknowledging
/// a drill again clears it. With the database down nothing happens, and the
/// view says as of when (docs/config.md, [[drill]]).
class DrillWatch {
 public:
  /// `delivered` is called (on the watch thread) after relay.drill rows commit.
  DrillWatch(Config config, std::function<void()> delivered,
             std::chrono::milliseconds interval = std::chrono::seconds(1));
  DrillWatch(const DrillWatch&) = delete;
  DrillWatch& operator=(const DrillWatch&) = delete;

  /// Starts the thread; nothing happens when no [[drill]] is configured.
  void start();
  void stop();
  /// The last view (safe from any thread).
  DrillView view() const;

 private:
  void check();
  /// Inserts the drills that are due, given each schedule's latest slot
  /// that has a drill (logged or in the outbox); returns their slots by
  /// schedule, which count as sent once the transaction commits.
  std::map<std::string, std::int64_t> start_due(pqxx::transaction_base& tx, std::int64_t now_ms,
                                                const std::map<std::string, std::int64_t>& latest);

  Config config_;
  std::function<void()> delivered_;
  std::unique_ptr<pqxx::connection> conn_;  // the watch thread's only
  // Slots this boot inserted a drill for (committed), or logged as skipped,
  // by schedule: a drill row the claim rejected is not inserted again every
  // second.
  std::map<std::string, std::int64_t> sent_;
  std::map<std::string, std::int64_t> skipped_;
  mutable std::mutex mutex_;  // guards view_
  DrillView view_;
  Periodic thread_;  // last: stopped before the members its pass uses
};

}  // namespace relay::net

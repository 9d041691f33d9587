#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/net/daemon.h"
#include "relay/net/health.h"
#include "relay/runner/queue.h"
#include "relay/store/console.h"

namespace relay::status {

/// The process itself.
struct ProcessInfo {
  std::string node;
  std::string version;
  std::string config_path;
  std::int64_t pid = 0;
  std::int64_t started_unix_ms = 0;
  std::string state_dir;  // [node] state_dir
  /// The mesh policy's digest (hex, Config::policy_digest) and its
  /// [[clear]] rules: what an operator compares between sites.
  std::string policy_digest{};
  std::size_t policy_clear_rules = 0;
  std::size_t policy_send_rules = 0;
};

/// The file system of the state directory, as statvfs says at the snapshot.
struct StateDisk {
  bool known = false;
  std::string error;  // why statvfs failed
  std::uint64_t free_bytes = 0;
  std::uint64_t size_bytes = 0;
};

/// The local database as the periodic check last found it.
struct DatabaseState {
  enum class State { never_reached, up, down };
  State state = State::never_reached;
  std::string error;   // of the last failed check, in plain words
  std::string detail;  // the library's own words for it
  /// Where the DSN points (empty host: libpq's default socket), for the next step.
  std::string host;
  std::string port = "5432";
  std::int64_t last_ok_unix_ms = 0;     // last successful check; 0: never
  std::int64_t down_since_unix_ms = 0;  // while down (or never reached: since start)
  std::int64_t checked_unix_ms = 0;     // last attempt
  /// What the last successful check read (kept, and shown as stale, while down),
  /// and when that read began: it sees what was committed before then.
  std::optional<store::ConsoleView> view;
  std::int64_t view_began_unix_ms = 0;
  /// Duress rows that relay-runner groups keep failing to handle (relay/runner).
  std::vector<runner::Alarm> runner_alarms;
};

/// The captured stdout and stderr (relay/capture).
struct LogTail {
  bool captured = false;
  std::string why_not;  // when not captured
  std::string dir;
  std::vector<std::string> stdout_lines;
  std::vector<std::string> stderr_lines;
};

/// Everything the status page, the JSON API, /metrics and /healthz show:
/// what the daemon knows, gathered in one place. Rendering (render_*.cc)
/// and judging (verdict.h) only read it.
struct Snapshot {
  std::int64_t now_unix_ms = 0;
  ProcessInfo process;
  /// The core's view (peers, counters); nullopt while there is no core
  /// (the database was never reached) or its thread did not answer.
  std::optional<net::DaemonStatus> daemon;
  std::string daemon_missing;  // why daemon is nullopt
  std::vector<net::ComponentHealth> health;
  DatabaseState database;
  /// Duress alarms in the spool (accepted, not yet in the database) that the
  /// database's view does not list: open alarms all the same.
  std::vector<store::ConsoleView::Event> spooled_duress;
  StateDisk state_disk;
  LogTail logs;  // filled for the page and /api/logs only
};

/// A check that has not ended for this long hangs (one starts every 2 s and
/// its statements give up after 5 s): a server or a network that stopped
/// answering mid-query, which TCP takes minutes to call a failure.
inline constexpr std::int64_t kCheckOverdueMs = 15'000;

inline bool check_overdue(const Snapshot& s) {
  return s.database.checked_unix_ms > 0 &&
         s.now_unix_ms - s.database.checked_unix_ms > kCheckOverdueMs;
}

/// True while what was read from the database is older than its last
/// check, or its check hangs: panels that show it say "as of" then.
inline bool database_stale(const Snapshot& s) {
  return s.database.view && (s.database.state != DatabaseState::State::up || check_overdue(s));
}

/// The queueing delay towards `peer`, never below zero. It is this round's
/// lowest round trip less the base one, both on this node's steady clock;
/// it read -3 ms once when the base was retaken from a later, longer sample
/// (fixed in the pacer by e1223b1), and a delay below zero means nothing.
inline mesh::Duration queue_delay(const mesh::PeerStatus& peer) {
  return std::max(peer.queue_delay, mesh::Duration::zero());
}

/// Milliseconds since the daemon last heard `peer`, as of its status.
inline std::int64_t silent_ms(const net::DaemonStatus& d, const mesh::PeerStatus& peer) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d.taken_at - peer.last_heard)
      .count();
}

}  // namespace relay::status

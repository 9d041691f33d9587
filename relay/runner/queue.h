#pragma once

#include <pqxx/connection>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/runner/retry.h"

namespace relay::runner {

/// One message_queue row as a group's runner handles it.
struct Row {
  std::int64_t queue_id = 0;  // message_queue.id: stable across retries, the id to dedupe on
  std::string type;
  std::string data;      // the row's JSON, as text
  int priority = 2;      // message_queue.priority: 4 duress ... 1 bulk
  int attempts = 0;      // this attempt included
  std::string event_id;  // "origin:seq"; empty for the relay's own alarms
  /// When relayd inserted the row (the start of its transaction), Unix time.
  std::chrono::microseconds inserted_at{0};
  /// The alert's expiry (data.expires), Unix time; none: it never expires.
  std::optional<std::chrono::milliseconds> expires;
  /// Its origin cancelled some event since (or shortly before) the row came.
  bool origin_cancelled = false;
};

/// A duress that keeps failing in one group.
struct Alarm {
  std::string group;
  std::int64_t queue_id = 0;
  std::string event_id;
  int attempts = 0;
  std::string last_error;
};

/// One group's backlog, read from the database.
struct GroupBacklog {
  std::int64_t pending = 0;          // rows of its types it has not finished
  std::chrono::milliseconds lag{0};  // age of the oldest of them
  std::int64_t dead_letters = 0;
  std::vector<Alarm> alarms;
};

/// Who is asking: the group, the types it consumes, and the runner's name
/// (leases are held under it; unique within the group).
struct Consumer {
  std::string group;
  std::vector<std::string> types;
  std::string name;
};

/// Session settings for a runner's connection. Runner writes commit
/// asynchronously: losing one in a database crash only repeats a handler
/// run, which handlers tolerate anyway (at least once, deduped on the id).
void prepare_session(pqxx::connection_base& conn);

/// Records the group and its types (replacing earlier ones); returns the
/// types it had before ("a, b") if they differed.
std::optional<std::string> register_group(pqxx::connection_base& conn, const Consumer& who);

/// Frees the leases held under this runner's name: rows a previous run of
/// it (killed mid-handler) had taken are handled again at once.
std::size_t release_leases(pqxx::connection_base& conn, const Consumer& who);

/// Adds the group's state for message_queue rows it has not seen yet;
/// serialized per group so runners of one group do not collide.
std::size_t ingest(pqxx::connection_base& conn, const Consumer& who);

/// Leases up to `batch` rows that are due, duress first, then oldest first,
/// skipping rows other runners hold; `min_priority` narrows to urgent rows.
std::vector<Row> claim(pqxx::connection_base& conn, const Consumer& who, std::size_t batch,
                       std::chrono::milliseconds lease, int min_priority = 0);

/// Why the row's event is over, if it is: "cleared by ORIGIN:SEQ" (an
/// all-clear of an alarm) or "cancelled by ORIGIN:SEQ" (its origin's cancel
/// of any event), stored here since the row arrived or shortly before. Such
/// a row is not handed over.
std::optional<std::string> ended_by(pqxx::connection_base& conn, const Row& row);

/// The group is done with the row; deletes it from message_queue if every
/// group consuming its type is done too.
void complete(pqxx::connection_base& conn, const Consumer& who, std::int64_t queue_id);

/// If `row` is an exercise (data says exercise) of an alert, completes it
/// for the group and, in the same transaction, inserts an outbox row of
/// kind 'ack' in `state` by the runner's name, answering its event; true
/// then. False, with nothing done, for any other row.
bool complete_acknowledging(pqxx::connection_base& conn, const Consumer& who, const Row& row,
                            const std::string& state);

/// Records a failed attempt: retry after the decision's delay (with an alarm
/// for a duress), or move the row to runner_dead_letters.
void fail(pqxx::connection_base& conn, const Consumer& who, std::int64_t queue_id,
          const std::string& error, const RetryDecision& decision);

/// Time until the group's next retry or lease expiry falls due, if any.
std::optional<std::chrono::milliseconds> next_due(pqxx::connection_base& conn, const Consumer& who);

/// The group's backlog: pending rows, lag, dead letters and alarms.
GroupBacklog backlog(pqxx::connection_base& conn, const Consumer& who);

/// Failing duress rows of every group, for relayd's status page.
std::vector<Alarm> alarms(pqxx::connection_base& conn);

/// A lease a runner holds on a row: its handler is working on it (or was,
/// until the lease runs out, if the runner died).
struct Lease {
  std::string runner;
  std::int64_t queue_id = 0;
  std::chrono::milliseconds remaining{0};
};

/// What retire_group did, or why it did nothing.
struct Retirement {
  enum class Outcome { retired, no_such_group, leased };
  Outcome outcome = Outcome::retired;
  /// no_such_group: the groups there are.
  std::vector<std::string> groups;
  /// The retired group's types.
  std::vector<std::string> types;
  /// message_queue rows deleted: those the retired group alone still owed.
  std::int64_t removed = 0;
  /// Its types that no remaining group consumes, with the rows of each left
  /// in message_queue (for a plain consumer or a group registered later).
  std::vector<std::pair<std::string, std::int64_t>> unconsumed;
  /// Rows it gave up on: they stay in runner_dead_letters.
  std::int64_t dead_letters = 0;
  /// leased: the live leases of its runners (a few).
  std::vector<Lease> leases;
};

/// Removes consumer group `name` and, in the same transaction, every
/// message_queue row of its types that each remaining group consuming that
/// type has finished (complete()'s rule), so that no row waits for it. Does
/// nothing while one of its runners holds a lease: that runner is running,
/// or died less than a lease ago.
Retirement retire_group(pqxx::connection_base& conn, const std::string& name);

}  // namespace relay::runner

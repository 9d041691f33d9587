#include "relay/runner/queue.h"

#include <pqxx/pqxx>

#include <algorithm>

#include "relay/store/rows.h"

namespace relay::runner {
namespace {

// When message_queue row q may go: no group consuming its type still owes it
// (each has handled or dead-lettered it).
constexpr const char* kAllGroupsDone =
    "NOT EXISTS (SELECT 1 FROM runner_groups g WHERE q.type = ANY (g.types) AND NOT EXISTS ("
    "SELECT 1 FROM runner_rows r WHERE r.grp = g.name AND r.queue_id = q.id "
    "AND (r.done_at IS NOT NULL OR r.dead)))";

// The last step of a group on a row: delete it from message_queue once no
// group consuming its type still owes it. Callers first lock the row
// (FOR NO KEY UPDATE) in an earlier statement of the same transaction, so
// two groups finishing at once cannot both see the other as unfinished and
// leave the row behind (each statement reads with a fresh snapshot).
std::string delete_if_all_done(std::int64_t queue_id) {
  return "DELETE FROM message_queue q WHERE q.id = " + std::to_string(queue_id) + " AND " +
         kAllGroupsDone;
}

constexpr const char* kIngest = R"sql(
INSERT INTO runner_rows (grp, queue_id, priority)
SELECT $1, q.id,
       -- A duress row is retried for ever whatever priority it was given:
       -- the kind is what relayd put in data (4 is kDuressPriority).
       CASE WHEN jsonb_typeof(q.data) = 'object' AND q.data->>'kind' = 'duress'
            THEN greatest(q.priority, 4) ELSE q.priority END
FROM message_queue q
WHERE q.type = ANY ($2::text[])
  AND NOT EXISTS (SELECT 1 FROM runner_rows r WHERE r.grp = $1 AND r.queue_id = q.id)
ORDER BY q.id
ON CONFLICT DO NOTHING
)sql";

// A short transaction: the lease is what keeps other runners of the group
// away while the handler runs, not a lock (an open transaction would bloat
// the queue and pin the row for as long as a handler hangs).
constexpr const char* kClaim = R"sql(
WITH c AS (
  SELECT r.grp, r.queue_id FROM runner_rows r
  WHERE r.grp = $1 AND r.done_at IS NULL AND NOT r.dead AND r.available_at <= now()
    AND (r.lease_until IS NULL OR r.lease_until < now()) AND r.priority >= $5
  ORDER BY r.priority DESC, r.queue_id
  LIMIT $3
  FOR UPDATE OF r SKIP LOCKED)
UPDATE runner_rows r
SET lease_until = now() + $4::bigint * interval '1 millisecond', leased_by = $2,
    attempts = r.attempts + 1
FROM c, message_queue q
WHERE r.grp = c.grp AND r.queue_id = c.queue_id AND q.id = r.queue_id
RETURNING r.queue_id, q.type, q.data::text, r.priority, r.attempts,
          coalesce(q.origin || ':' || q.seq, ''),
          (extract(epoch FROM q.date_inserted) * 1000000)::bigint,
          CASE WHEN jsonb_typeof(q.data->'expires') = 'number'
               THEN (q.data->>'expires')::numeric::bigint END,
          -- Whether its origin cancelled anything since: then (alone) is
          -- it worth a look (ended_by). A few rows (migration 020's index).
          EXISTS (SELECT 1 FROM relay_event_log l WHERE l.kind = 9 AND l.origin = q.origin
                  AND l.stored_at >= q.date_inserted - interval '1 hour')
)sql";

constexpr const char* kDeadLetter = R"sql(
INSERT INTO runner_dead_letters (grp, queue_id, type, data, priority, date_inserted, attempts,
                                 last_error)
SELECT r.grp, q.id, q.type, q.data, q.priority, q.date_inserted, r.attempts, $3
FROM message_queue q JOIN runner_rows r ON r.queue_id = q.id AND r.grp = $1
WHERE q.id = $2
ON CONFLICT DO NOTHING
)sql";

constexpr const char* kBacklog = R"sql(
SELECT count(*), coalesce((extract(epoch FROM now() - min(q.date_inserted)) * 1000)::bigint, 0)
FROM message_queue q
WHERE q.type = ANY ($2::text[]) AND NOT EXISTS (
  SELECT 1 FROM runner_rows r
  WHERE r.grp = $1 AND r.queue_id = q.id AND (r.done_at IS NOT NULL OR r.dead))
)sql";

constexpr const char* kNextDue = R"sql(
SELECT ceil(extract(epoch FROM min(least(
         CASE WHEN available_at > now() THEN available_at END,
         CASE WHEN lease_until > now() THEN lease_until END)) - now()) * 1000)::bigint
FROM runner_rows
WHERE grp = $1 AND done_at IS NULL AND NOT dead AND (available_at > now() OR lease_until > now())
)sql";

constexpr const char* kAlarms = R"sql(
SELECT r.grp, r.queue_id, coalesce(q.origin || ':' || q.seq, ''), r.attempts, r.last_error
FROM runner_rows r JOIN message_queue q ON q.id = r.queue_id
WHERE r.alarm AND ($1 = '' OR r.grp = $1)
ORDER BY r.queue_id LIMIT 100
)sql";

void lock_queue_row(pqxx::work& tx, std::int64_t queue_id) {
  tx.exec_params("SELECT 1 FROM message_queue WHERE id = $1 FOR NO KEY UPDATE", queue_id);
}

std::vector<Alarm> read_alarms(pqxx::transaction_base& tx, const std::string& group) {
  std::vector<Alarm> out;
  for (const auto& row : tx.exec_params(kAlarms, group)) {
    out.push_back({row[0].as<std::string>(), row[1].as<std::int64_t>(), row[2].as<std::string>(),
                   row[3].as<int>(), row[4].as<std::string>()});
  }
  return out;
}

}  // namespace

void prepare_session(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec("SET synchronous_commit = off");
  tx.exec("SET application_name = 'relay-runner'");
}

std::optional<std::string> register_group(pqxx::connection_base& conn, const Consumer& who) {
  pqxx::work tx(conn, "register group");
  const auto types = store::text_array(who.types);
  auto old = tx.exec_params(
      "SELECT array_to_string(types, ', '), types = $2::text[] FROM runner_groups WHERE name = $1",
      who.group, types);
  tx.exec_params(
      "INSERT INTO runner_groups (name, types) VALUES ($1, $2::text[]) "
      "ON CONFLICT (name) DO UPDATE SET types = EXCLUDED.types",
      who.group, types);
  tx.commit();
  if (old.empty() || old[0][1].as<bool>()) return std::nullopt;
  return old[0][0].as<std::string>();
}

std::size_t release_leases(pqxx::connection_base& conn, const Consumer& who) {
  pqxx::work tx(conn, "release leases");
  auto r = tx.exec_params(
      "UPDATE runner_rows SET lease_until = NULL WHERE grp = $1 AND leased_by = $2 "
      "AND lease_until IS NOT NULL AND done_at IS NULL AND NOT dead",
      who.group, who.name);
  tx.commit();
  return r.affected_rows();
}

std::size_t ingest(pqxx::connection_base& conn, const Consumer& who) {
  pqxx::work tx(conn, "ingest");
  // Runners of one group take turns here (for the length of this short
  // transaction), so their inserts never wait on each other's keys.
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('relay-runner'), hashtext($1))", who.group);
  auto r = tx.exec_params(kIngest, who.group, store::text_array(who.types));
  tx.commit();
  return r.affected_rows();
}

std::vector<Row> claim(pqxx::connection_base& conn, const Consumer& who, std::size_t batch,
                       std::chrono::milliseconds lease, int min_priority) {
  // One statement, committed on its own: one round trip.
  pqxx::nontransaction tx(conn, "claim");
  auto result = tx.exec_params(kClaim, who.group, who.name, static_cast<std::int64_t>(batch),
                               static_cast<std::int64_t>(lease.count()), min_priority);
  std::vector<Row> rows;
  for (const auto& r : result) {
    rows.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>(),
                    r[3].as<int>(), r[4].as<int>(), r[5].as<std::string>(),
                    std::chrono::microseconds(r[6].as<std::int64_t>()), std::nullopt});
    if (!r[7].is_null()) rows.back().expires = std::chrono::milliseconds(r[7].as<std::int64_t>());
    rows.back().origin_cancelled = r[8].as<bool>();
  }
  // RETURNING has no order: restore the claim's.
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.queue_id < b.queue_id;
  });
  return rows;
}

std::optional<std::string> ended_by(pqxx::connection_base& conn, const Row& row) {
  // The relay's own rows are never ended.
  if (row.event_id.empty()) return std::nullopt;
  const std::string origin = row.event_id.substr(0, row.event_id.rfind(':'));
  // All-clears and cancels are few (migration 020 indexes them by origin); an
  // hour before the row covers one stored here just before its alarm (a
  // redelivery). Only alarms are cleared (relayctl all-clear is for duress
  // and emergencies); any event may be cancelled, by its origin alone
  // (wire::well_formed), hence the origin's own.
  const bool alarm = row.priority >= kEmergencyPriority;
  // A bulk flood pays nothing more than its claim: the claim said whether
  // the origin cancelled anything lately.
  if (!alarm && !row.origin_cancelled) return std::nullopt;
  const std::string kinds = alarm ? "kind IN (3, 9)" : "kind = 9";
  pqxx::read_transaction tx(conn, "ended");
  const auto clears = tx.exec_params(
      "SELECT origin || ':' || seq, signed, kind FROM relay_event_log WHERE " + kinds +
          " AND origin = $2 AND stored_at >= to_timestamp($1::bigint / 1e6) - interval '1 hour'",
      static_cast<std::int64_t>(row.inserted_at.count()), origin);
  for (const auto& clear : clears) {
    relaymesh::v1::SignedEvent signed_event;
    relaymesh::v1::Event e;
    if (!signed_event.ParseFromString(pqxx::binarystring(clear[1]).str()) ||
        !e.ParseFromString(signed_event.event()))
      continue;
    for (const auto& ref : e.references()) {
      if (ref.origin() + ":" + std::to_string(ref.seq()) == row.event_id) {
        const bool cancel = clear[2].as<int>() == relaymesh::v1::KIND_CANCEL;
        return (cancel ? "cancelled by " : "cleared by ") + clear[0].as<std::string>();
      }
    }
  }
  return std::nullopt;
}

void complete(pqxx::connection_base& conn, const Consumer& who, std::int64_t queue_id) {
  // One query string of three statements: PostgreSQL runs them as one
  // transaction, each with its own snapshot, in one round trip instead of five.
  pqxx::nontransaction tx(conn, "complete");
  const auto id = std::to_string(queue_id);
  tx.exec("SELECT 1 FROM message_queue WHERE id = " + id + " FOR NO KEY UPDATE; " +
          "UPDATE runner_rows SET done_at = now(), lease_until = NULL, alarm = false WHERE grp = " +
          tx.quote(who.group) + " AND queue_id = " + id + "; " + delete_if_all_done(queue_id));
}

bool complete_acknowledging(pqxx::connection_base& conn, const Consumer& who, const Row& row,
                            const std::string& state) {
  // The relay's own rows (relay.ack, relay.drill ...) answer or report, and
  // an update or a cancel revises an alert: only an alert that is an
  // exercise is acknowledged.
  if (row.event_id.empty() || row.type.starts_with("relay.")) return false;
  pqxx::work tx(conn, "acknowledge");
  lock_queue_row(tx, row.queue_id);
  const auto acked = tx.exec_params(
      "INSERT INTO outbox (kind, refs, sender, ack) SELECT 'ack', ARRAY[$2], $3, $4 "
      "FROM message_queue WHERE id = $1 AND jsonb_typeof(data) = 'object' "
      "AND data->'exercise' = 'true'::jsonb AND data->>'kind' IN ('notification', 'duress', "
      "'test') RETURNING 1",
      row.queue_id, row.event_id, who.name, state);
  if (acked.empty()) return false;  // the work rolls back: nothing was done
  tx.exec_params(
      "UPDATE runner_rows SET done_at = now(), lease_until = NULL, alarm = false "
      "WHERE grp = $1 AND queue_id = $2",
      who.group, row.queue_id);
  tx.exec(delete_if_all_done(row.queue_id));
  // relayd claims it at once (its poll would find it within a second).
  tx.exec("NOTIFY outbox");
  tx.commit();
  return true;
}

void fail(pqxx::connection_base& conn, const Consumer& who, std::int64_t queue_id,
          const std::string& error, const RetryDecision& decision) {
  pqxx::work tx(conn, "fail");
  if (decision.action == RetryDecision::Action::retry) {
    tx.exec_params(
        "UPDATE runner_rows SET lease_until = NULL, last_error = $3, alarm = $4, "
        "available_at = now() + $5::bigint * interval '1 millisecond' "
        "WHERE grp = $1 AND queue_id = $2",
        who.group, queue_id, error, decision.alarm,
        static_cast<std::int64_t>(decision.delay.count()));
  } else {
    lock_queue_row(tx, queue_id);
    tx.exec_params(kDeadLetter, who.group, queue_id, error);
    tx.exec_params(
        "UPDATE runner_rows SET dead = true, lease_until = NULL, last_error = $3 "
        "WHERE grp = $1 AND queue_id = $2",
        who.group, queue_id, error);
    tx.exec(delete_if_all_done(queue_id));
  }
  tx.commit();
}

std::optional<std::chrono::milliseconds> next_due(pqxx::connection_base& conn,
                                                  const Consumer& who) {
  pqxx::read_transaction tx(conn, "next due");
  auto r = tx.exec_params1(kNextDue, who.group);
  if (r[0].is_null()) return std::nullopt;
  return std::chrono::milliseconds(std::max<std::int64_t>(r[0].as<std::int64_t>(), 0));
}

GroupBacklog backlog(pqxx::connection_base& conn, const Consumer& who) {
  pqxx::read_transaction tx(conn, "backlog");
  GroupBacklog b;
  auto r = tx.exec_params1(kBacklog, who.group, store::text_array(who.types));
  b.pending = r[0].as<std::int64_t>();
  b.lag = std::chrono::milliseconds(r[1].as<std::int64_t>());
  b.dead_letters =
      tx.exec_params1("SELECT count(*) FROM runner_dead_letters WHERE grp = $1", who.group)[0]
          .as<std::int64_t>();
  b.alarms = read_alarms(tx, who.group);
  return b;
}

std::vector<Alarm> alarms(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn, "alarms");
  return read_alarms(tx, "");
}

Retirement retire_group(pqxx::connection_base& conn, const std::string& name) {
  pqxx::work tx(conn, "retire group");
  Retirement out;
  // Waits out an ingest of the group (which would insert rows for it), and
  // holds the group row against a runner registering it again meanwhile.
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('relay-runner'), hashtext($1))", name);
  if (tx.exec_params("SELECT 1 FROM runner_groups WHERE name = $1 FOR UPDATE", name).empty()) {
    out.outcome = Retirement::Outcome::no_such_group;
    for (const auto& row : tx.exec("SELECT name FROM runner_groups ORDER BY name"))
      out.groups.push_back(row[0].as<std::string>());
    return out;
  }
  for (const auto& row : tx.exec_params(
           "SELECT unnest(types) FROM runner_groups WHERE name = $1 ORDER BY 1", name))
    out.types.push_back(row[0].as<std::string>());
  const auto types = store::text_array(out.types);
  // As complete() does, the queue rows are locked in a statement before the
  // one that deletes them: a group finishing one of them meanwhile has
  // committed by then, and the delete's fresh snapshot sees it done. They
  // are locked first, as complete() locks them, so the two cannot deadlock.
  tx.exec_params("SELECT 1 FROM message_queue WHERE type = ANY ($1::text[]) ORDER BY id "
                 "FOR NO KEY UPDATE",
                 types);
  // Its rows locked: a claim skips them from here on (SKIP LOCKED), so no
  // lease is granted after this look at the leases.
  tx.exec_params("SELECT 1 FROM runner_rows WHERE grp = $1 FOR UPDATE", name);
  for (const auto& row : tx.exec_params(
           "SELECT leased_by, queue_id, ceil(extract(epoch FROM lease_until - now()) * 1000)::bigint "
           "FROM runner_rows WHERE grp = $1 AND lease_until > now() AND done_at IS NULL "
           "AND NOT dead ORDER BY queue_id LIMIT 5",
           name)) {
    out.leases.push_back({row[0].is_null() ? "" : row[0].as<std::string>(),
                          row[1].as<std::int64_t>(),
                          std::chrono::milliseconds(row[2].as<std::int64_t>())});
  }
  if (!out.leases.empty()) {
    out.outcome = Retirement::Outcome::leased;
    return out;  // rolled back: nothing changed
  }
  tx.exec_params("DELETE FROM runner_groups WHERE name = $1", name);
  // A type no group consumes any more keeps its rows: nobody handled them,
  // and a plain consumer or a new group may yet.
  out.removed = tx.exec_params(std::string("DELETE FROM message_queue q WHERE q.type = ANY "
                                           "($1::text[]) AND EXISTS (SELECT 1 FROM "
                                           "runner_groups g WHERE q.type = ANY (g.types)) AND ") +
                                   kAllGroupsDone,
                               types)
                    .affected_rows();
  for (const auto& row : tx.exec_params(
           "SELECT t, (SELECT count(*) FROM message_queue WHERE type = t) "
           "FROM unnest($1::text[]) t WHERE NOT EXISTS ("
           "SELECT 1 FROM runner_groups g WHERE t = ANY (g.types)) ORDER BY t",
           types)) {
    out.unconsumed.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
  }
  out.dead_letters =
      tx.exec_params1("SELECT count(*) FROM runner_dead_letters WHERE grp = $1", name)[0]
          .as<std::int64_t>();
  tx.commit();
  return out;
}

}  // namespace relay::runner

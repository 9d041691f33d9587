#include "relay/store/write_batch.h"

#include <pqxx/dbtransaction>
#include <pqxx/result>
#include <pqxx/transaction_base>

#include <set>
#include <tuple>
#include <utility>

#include "relay/store/copy_batch.h"
#include "relay/store/rows.h"

namespace relay::store {
namespace {

// One statement: log rows that are new, their message_queue rows where this
// node is a target and delivers them, the receipts owed for every event it
// is a target of, with what it did, and for own events (origin $15) the mark
// that some peer may still lack them (relay_unreplicated). Dedupe rests on
// the log's primary key, on the pruned prefix and on relay_late: an event
// stored here before inserts nothing anywhere. A seq settled without ever
// being stored here (relay_settled) is new: stored, and remembered in
// relay_late.
constexpr const char* kInsertEvents = R"sql(
WITH ins AS (
  INSERT INTO relay_event_log (origin, seq, priority, kind, signed, outbox_id)
  SELECT o, s, p, k, decode(h, 'hex'), nullif(b, 0)
  FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::smallint[], $5::text[], $14::bigint[])
       AS t(o, s, p, k, h, b)
  -- Pruned from the log is still held: never deliver it a second time.
  WHERE (NOT EXISTS (SELECT 1 FROM relay_watermarks w WHERE w.origin = t.o AND t.s <= w.pruned_through)
         OR EXISTS (SELECT 1 FROM relay_settled r WHERE r.origin = t.o AND t.s BETWEEN r.first AND r.last))
    AND NOT EXISTS (SELECT 1 FROM relay_late l WHERE l.origin = t.o AND l.seq = t.s)
  ON CONFLICT DO NOTHING
  RETURNING origin, seq),
late AS (
  INSERT INTO relay_late (origin, seq)
  SELECT origin, seq FROM ins
  WHERE EXISTS (SELECT 1 FROM relay_settled r WHERE r.origin = ins.origin AND ins.seq BETWEEN r.first AND r.last)
  ON CONFLICT DO NOTHING),
mq AS (
  INSERT INTO message_queue (type, data, origin, seq, priority)
  SELECT d.type, d.data::jsonb, d.origin, d.seq, d.priority
  FROM unnest($6::text[], $7::text[], $8::text[], $9::bigint[], $10::smallint[])
       AS d(type, data, origin, seq, priority)
  JOIN ins USING (origin, seq)
  ORDER BY d.priority DESC, d.origin, d.seq
  RETURNING origin, seq),
owed AS (
  INSERT INTO relay_receipts_owed (origin, seq, delivered_at, outcome)
  SELECT o.origin, o.seq, now(), o.outcome
  FROM unnest($11::text[], $12::bigint[], $13::smallint[]) AS o(origin, seq, outcome)
  JOIN ins USING (origin, seq)
  ON CONFLICT DO NOTHING),
unreplicated AS (
  INSERT INTO relay_unreplicated (origin, seq)
  SELECT origin, seq FROM ins WHERE origin = $15
  ON CONFLICT DO NOTHING)
SELECT (SELECT count(*) FROM mq), (SELECT count(*) FROM ins)
)sql";

// Settled ranges, then every range that continues its origin's settled
// prefix folded into it (relay_watermarks.pruned_through), so that the
// prefix and pruning move on past them.
constexpr const char* kInsertSettled = R"sql(
INSERT INTO relay_settled (origin, first, last)
SELECT o, f, max(l) FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS s(o, f, l)
-- Batches written together may carry a range twice (two digests said it):
-- one row per start, or the upsert refuses the whole write.
GROUP BY o, f
ON CONFLICT (origin, first) DO UPDATE SET last = greatest(relay_settled.last, excluded.last)
)sql";

// A settled range may cover an event stored meanwhile (the digest that
// settled it was read before that event was written): it stays a duplicate.
constexpr const char* kLateInSettled = R"sql(
INSERT INTO relay_late (origin, seq)
SELECT l.origin, l.seq
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS s(o, f, t)
JOIN relay_event_log l ON l.origin = s.o AND l.seq BETWEEN s.f AND s.t
ON CONFLICT DO NOTHING
)sql";

// The ranges stay in relay_settled once folded: they say what was never
// stored here (kInsertEvents).
constexpr const char* kFoldSettled = R"sql(
WITH next AS (
  SELECT s.origin, max(s.last) AS last FROM relay_settled s
  LEFT JOIN relay_watermarks w USING (origin)
  WHERE s.first <= coalesce(w.pruned_through, 0) + 1 AND s.last > coalesce(w.pruned_through, 0)
  GROUP BY s.origin)
INSERT INTO relay_watermarks (origin, pruned_through) SELECT origin, last FROM next
ON CONFLICT (origin) DO UPDATE SET pruned_through = excluded.pruned_through
WHERE relay_watermarks.pruned_through < excluded.pruned_through
RETURNING 1
)sql";

// The events of a batch that is not all new, by kInsertEvents: returns
// how many message_queue rows it inserted and how many events were new.
std::pair<std::size_t, std::size_t> insert_events(pqxx::transaction_base& tx,
                                                  const std::string& self, const Writes& writes) {
  std::vector<std::string> origins, hex, q_type, q_data, q_origin, o_origin;
  std::vector<std::int64_t> seqs, priorities, kinds, outbox_ids, q_seq, q_priority, o_seq, o_outcome;
  for (const auto* write : writes) {
    const mesh::Event& e = *write->event;
    v1::Event parsed;
    parsed.ParseFromString(e.signed_event.event());
    origins.push_back(e.key.origin);
    seqs.push_back(static_cast<std::int64_t>(e.key.seq));
    priorities.push_back(e.priority);
    kinds.push_back(parsed.kind());
    outbox_ids.push_back(write->outbox_id);
    hex.push_back(to_hex(e.signed_event.SerializeAsString()));
    if (owes_receipt(*write, self)) {
      o_origin.push_back(e.key.origin);
      o_seq.push_back(static_cast<std::int64_t>(e.key.seq));
      o_outcome.push_back(write->outcome);
    }
    if (!write->queued()) continue;
    q_type.push_back(queue_row_type(*write, parsed));
    q_data.push_back(queue_data(*write, parsed));
    q_origin.push_back(e.key.origin);
    q_seq.push_back(static_cast<std::int64_t>(e.key.seq));
    q_priority.push_back(e.priority);
  }
  const auto counts =
      tx.exec_params1(kInsertEvents, text_array(origins), int_array(seqs), int_array(priorities),
                      int_array(kinds), text_array(hex), text_array(q_type), text_array(q_data),
                      text_array(q_origin), int_array(q_seq), int_array(q_priority),
                      text_array(o_origin), int_array(o_seq), int_array(o_outcome),
                      int_array(outbox_ids), self);
  return {counts[0].as<std::size_t>(), counts[1].as<std::size_t>()};
}

}  // namespace

void fold_settled(pqxx::transaction_base& tx) {
  // Each pass moves every prefix over one more range; ranges are few.
  for (int pass = 0; pass < 64 && !tx.exec(kFoldSettled).empty(); ++pass) {
  }
}

std::size_t write_batch(pqxx::transaction_base& tx, const std::string& self,
                        const std::vector<mesh::StoreBatch>& batches, Written* written) {
  Writes writes;
  std::vector<std::string> r_origin, r_target, c_origin, a_peer, a_state, a_reason, a_note, s_origin;
  std::vector<std::int64_t> r_seq, r_ms, r_outcome, c_seq, replicated, a_ms, s_first, s_last;
  std::vector<std::string> h_peer;
  std::vector<std::int64_t> h_through;
  std::set<mesh::EventKey> seen;
  for (const auto& batch : batches) {
    for (const auto& write : batch.events) {
      const mesh::Event& e = *write.event;
      if (seen.insert(e.key).second) writes.push_back(&write);
    }
    for (const auto& r : batch.receipts) {
      r_origin.push_back(r.event.origin);
      r_seq.push_back(static_cast<std::int64_t>(r.event.seq));
      r_target.push_back(r.target);
      r_ms.push_back(r.delivered_unix_ms);
      r_outcome.push_back(r.outcome);
    }
    for (const auto& r : batch.receipts_confirmed) {
      c_origin.push_back(r.event.origin);
      c_seq.push_back(static_cast<std::int64_t>(r.event.seq));
    }
    for (const auto& key : batch.replicated)
      replicated.push_back(static_cast<std::int64_t>(key.seq));
    for (const auto& [peer, through] : batch.peer_held) {
      h_peer.push_back(peer);
      h_through.push_back(static_cast<std::int64_t>(through));
    }
    for (const auto& alarm : batch.alarms) {
      a_peer.push_back(alarm.peer);
      a_state.push_back(alarm.raised ? "raised" : "cleared");
      a_reason.push_back(alarm.reason);
      a_note.push_back(alarm.note);
      a_ms.push_back(alarm.silent_since_ms);
    }
    for (const auto& settle : batch.settled) {
      s_origin.push_back(settle.origin);
      s_first.push_back(static_cast<std::int64_t>(settle.range.first));
      s_last.push_back(static_cast<std::int64_t>(settle.range.last));
    }
  }

  std::size_t delivered = 0;
  Written done;
  // COPY when every event is new here, the common case; else (or in a
  // transaction without savepoints) the statement that dedupes row by row.
  auto* db = dynamic_cast<pqxx::dbtransaction*>(&tx);
  const auto copied =
      writes.empty() || db == nullptr ? std::nullopt : copy_new_events(*db, self, writes);
  if (copied) {
    delivered = *copied;
    done = {writes.size(), true};
  } else if (!writes.empty()) {
    std::tie(delivered, done.logged) = insert_events(tx, self, writes);
  }
  if (written != nullptr) *written = done;
  if (!r_origin.empty()) {
    tx.exec_params(
        "INSERT INTO relay_receipts (origin, seq, target, delivered_at, outcome) "
        "SELECT o, s, t, to_timestamp(ms / 1000.0), oc "
        "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::smallint[]) "
        "AS r(o, s, t, ms, oc) "
        "ON CONFLICT DO NOTHING",
        text_array(r_origin), int_array(r_seq), text_array(r_target), int_array(r_ms),
        int_array(r_outcome));
  }
  if (!c_origin.empty()) {
    tx.exec_params(
        "DELETE FROM relay_receipts_owed r USING unnest($1::text[], $2::bigint[]) AS c(o, s) "
        "WHERE r.origin = c.o AND r.seq = c.s",
        text_array(c_origin), int_array(c_seq));
  }
  if (!replicated.empty()) {
    tx.exec_params(
        "DELETE FROM relay_unreplicated WHERE origin = $1 AND seq = ANY($2::bigint[])", self,
        int_array(replicated));
  }
  if (!h_peer.empty()) {
    tx.exec_params(
        "INSERT INTO relay_peer_held (peer, own_through) "
        "SELECT DISTINCT ON (p) p, t FROM unnest($1::text[], $2::bigint[]) "
        "WITH ORDINALITY AS h(p, t, n) ORDER BY p, n DESC "
        "ON CONFLICT (peer) DO UPDATE SET own_through = excluded.own_through",
        text_array(h_peer), int_array(h_through));
  }
  for (std::size_t i = 0; i < a_peer.size(); ++i) {
    // The alarm's state changes with its row, in this transaction: a raise
    // of an open alarm or a clear of a closed one writes nothing, so a
    // retried commit or a restart never doubles a row.
    const bool raised = a_state[i] == "raised";
    const auto changed =
        raised ? tx.exec_params("INSERT INTO relay_alarms (peer, reason) VALUES ($1, $2) "
                                "ON CONFLICT DO NOTHING RETURNING 1",
                                a_peer[i], a_reason[i])
               : tx.exec_params("DELETE FROM relay_alarms WHERE peer = $1 AND reason = $2 "
                                "RETURNING 1",
                                a_peer[i], a_reason[i]);
    if (changed.empty()) continue;
    tx.exec_params(
        "INSERT INTO message_queue (type, data, priority) VALUES ('relay.supervision', "
        "jsonb_strip_nulls(jsonb_build_object('peer', $1::text, 'state', $2::text, 'reason', "
        "$3::text, 'silent_ms', $4::bigint, 'note', NULLIF($5::text, ''))), 4)",
        a_peer[i], a_state[i], a_reason[i], a_ms[i], a_note[i]);
    ++delivered;
  }
  if (!s_origin.empty()) {
    tx.exec_params(kInsertSettled, text_array(s_origin), int_array(s_first), int_array(s_last));
    tx.exec_params(kLateInSettled, text_array(s_origin), int_array(s_first), int_array(s_last));
    fold_settled(tx);
  }
  // One NOTIFY per transaction wakes consumers; it is delivered at commit.
  if (delivered > 0) tx.exec("SELECT pg_notify('message_queue', '')");
  return delivered;
}

}  // namespace relay::store

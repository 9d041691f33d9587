#include "relay/store/outbox.h"

#include <spdlog/spdlog.h>
#include <pqxx/result>
#include <pqxx/subtransaction>
#include <pqxx/transaction>

#include <charconv>

#include "common/log.h"

#include "relay/mesh/response.h"
#include "relay/store/answer.h"
#include "relay/store/pg_store.h"
#include "relay/store/rows.h"
#include "relay/wire/bundle.h"
#include "relay/wire/datagram.h"
#include "relay/wire/signing.h"

namespace relay::store {
namespace {

// The unit separator cannot appear in a valid target or reference, so
// splitting on it never turns one bad value into two good ones.
constexpr char kSeparator = '\x1f';

// Rows are looked at in two steps, so that no value a producer can store
// makes the claim itself fail and block every row behind it. First the
// candidates are locked and judged with expressions that cannot fail and do
// not fetch large values (octet_length reads a stored value's size, not the
// value): a row that cannot become an event goes to outbox_rejected with
// the reason and a bounded description. Then the rest are fetched.
constexpr const char* kCandidates = R"sql(
SELECT id, CASE
  WHEN NOT isfinite(date_inserted) OR (expires_at IS NOT NULL AND NOT isfinite(expires_at))
    THEN 'a timestamp is infinite'
  WHEN extract(year FROM date_inserted) NOT BETWEEN 1970 AND 9999
       OR extract(year FROM coalesce(expires_at, date_inserted)) NOT BETWEEN 1970 AND 9999
    THEN 'a timestamp is outside the years 1970 to 9999'
  WHEN coalesce(octet_length(title), 0) + coalesce(octet_length(body), 0)
       + coalesce(octet_length(location), 0) + coalesce(octet_length(sender), 0)
       + coalesce(octet_length(type), 0) + coalesce(pg_column_size(data), 0)
       + coalesce(pg_column_size(targets), 0) + coalesce(pg_column_size(refs), 0) > 16384
    THEN 'too large: ' || (coalesce(octet_length(title), 0) + coalesce(octet_length(body), 0)
       + coalesce(octet_length(location), 0) + coalesce(octet_length(sender), 0)
       + coalesce(octet_length(type), 0) + coalesce(pg_column_size(data), 0)) ||
       ' bytes of text and data; an event holds at most 1000'
  WHEN octet_length(data::text) > 16384 THEN 'too large: data is over 16384 bytes'
  WHEN cardinality(targets) > 0 AND array_ndims(targets) <> 1
    THEN 'targets is not a one-dimensional array'
  WHEN cardinality(refs) > 0 AND array_ndims(refs) <> 1 THEN 'refs is not a one-dimensional array'
  WHEN array_position(targets, NULL) IS NOT NULL OR array_position(refs, NULL) IS NOT NULL
    THEN 'targets or refs holds a NULL'
  WHEN translate(left(type, 6), 'RELAY', 'relay') = 'relay.' THEN 'type "' || left(type, 64) || '" is reserved to the relay'
  WHEN kind <> 'duress' AND expires_at <= now() THEN 'expired before it was sent'
  END
FROM outbox WHERE rank >= $2 ORDER BY rank DESC, id LIMIT $1 FOR UPDATE SKIP LOCKED
)sql";

// A bounded description of a rejected row: its small columns, and the
// sizes of the large ones, never a 200 MB value.
constexpr const char* kReject = R"sql(
WITH r AS (
  DELETE FROM outbox o USING unnest($1::bigint[], $2::text[]) AS x(id, reason)
  WHERE o.id = x.id RETURNING o.*, x.reason)
INSERT INTO outbox_rejected (id, reason, row_data)
SELECT id, reason, jsonb_build_object(
  'kind', kind, 'priority', priority, 'title', left(title, 200), 'location', left(location, 200),
  'sender', left(sender, 200), 'type', left(type, 200),
  'targets', left(targets::text, 500), 'refs', left(refs::text, 500),
  'bytes', coalesce(octet_length(title), 0) + coalesce(octet_length(body), 0)
           + coalesce(pg_column_size(data), 0),
  'date_inserted', CASE WHEN isfinite(date_inserted) THEN date_inserted::text END,
  'expires_at', expires_at::text)
FROM r
)sql";

constexpr const char* kFetch = R"sql(
WITH c AS (DELETE FROM outbox WHERE id = ANY($1::bigint[]) RETURNING *)
SELECT id, kind, rank, array_to_string(targets, E'\x1f'), title, body, location, sender, type,
       data::text, coalesce((extract(epoch from expires_at) * 1000)::bigint, 0),
       array_to_string(refs, E'\x1f'), exercise, (extract(epoch from date_inserted) * 1000)::bigint,
       to_jsonb(c)::text, coalesce(ack, 'responding')
FROM c ORDER BY rank DESC, id
)sql";

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  while (true) {
    const auto at = text.find(kSeparator, start);
    out.push_back(text.substr(start, at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

v1::Kind kind_of(const std::string& name) {
  if (name == "duress") return v1::KIND_DURESS;
  if (name == "all-clear") return v1::KIND_ALL_CLEAR;
  if (name == "test") return v1::KIND_TEST;
  if (name == "ack") return v1::KIND_ACK;
  if (name == "update") return v1::KIND_UPDATE;
  if (name == "cancel") return v1::KIND_CANCEL;
  return v1::KIND_NOTIFICATION;
}

/// Builds the event of one claimed row, or says why it cannot be one.
std::string build(const pqxx::row& row, const Config& config, v1::Event& e) {
  e.set_origin(config.node.id);
  e.set_kind(kind_of(row[1].as<std::string>()));
  e.set_priority(static_cast<v1::Priority>(row[2].as<int>()));
  // The rank already says so (migration 011); this keeps it true for any
  // path that builds an event from a row.
  if (e.kind() == v1::KIND_DURESS) e.set_priority(v1::PRIORITY_DURESS);
  for (const auto& t : split(row[3].as<std::string>())) e.add_targets(t);
  e.set_title(row[4].as<std::string>());
  e.set_body(row[5].as<std::string>());
  e.set_location(row[6].as<std::string>());
  e.set_sender(row[7].as<std::string>());
  e.set_type(row[8].as<std::string>());
  const std::string data = row[9].as<std::string>();
  if (data != "{}") e.set_data(data);
  e.set_expires_unix_ms(row[10].as<std::int64_t>());
  for (const auto& ref : split(row[11].as<std::string>())) {
    const auto colon = ref.rfind(':');
    std::uint64_t seq = 0;
    const char* end = ref.data() + ref.size();
    if (colon == std::string::npos || !valid_node_id(std::string_view(ref).substr(0, colon)) ||
        std::from_chars(ref.data() + colon + 1, end, seq).ptr != end || seq == 0) {
      return "reference \"" + ref + "\" is not \"origin:seq\"";
    }
    auto* r = e.add_references();
    r->set_origin(ref.substr(0, colon));
    r->set_seq(seq);
  }
  // A drill is an exercise however it was inserted, as relayctl makes it.
  e.set_exercise(row[12].as<bool>() || e.kind() == v1::KIND_TEST);
  e.set_created_unix_ms(row[13].as<std::int64_t>());
  if (e.kind() == v1::KIND_ACK) e.set_ack(mesh::ack_state_of(row[15].as<std::string>()));
  resolve_targets(e, config);
  return check_event(e, config);
}

/// An all-clear travels at the priority of what it clears (a duress's
/// all-clear must not wait behind bulk), as far as this node's log knows it.
void raise_all_clears(pqxx::work& tx, std::vector<v1::Event>& events) {
  for (auto& e : events) {
    if (e.kind() != v1::KIND_ALL_CLEAR || e.references().empty()) continue;
    std::vector<std::string> origins;
    std::vector<std::int64_t> seqs;
    for (const auto& r : e.references()) {
      origins.push_back(r.origin());
      seqs.push_back(static_cast<std::int64_t>(r.seq()));
    }
    const auto row = tx.exec_params1(
        "SELECT coalesce(max(priority), 0) FROM relay_event_log l "
        "JOIN unnest($1::text[], $2::bigint[]) AS r(o, s) ON l.origin = r.o AND l.seq = r.s",
        text_array(origins), int_array(seqs));
    const int cleared = row[0].as<int>();
    if (cleared > e.priority()) e.set_priority(static_cast<v1::Priority>(cleared));
  }
}

/// Signs claimed events, in bundles where the proof still fits a datagram
/// (one Ed25519 check per bundle at every receiver), singly otherwise.
std::vector<v1::SignedEvent> sign(const std::vector<v1::Event>& events,
                                  const crypto::SigningKey& key) {
  std::vector<v1::SignedEvent> out(events.size());
  std::vector<std::size_t> small;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].ByteSizeLong() + wire::kBundleProofBytes <= wire::kMaxEventBytes) {
      small.push_back(i);
    } else {
      out[i] = wire::sign_event(events[i], key);
    }
  }
  for (std::size_t at = 0; at < small.size(); at += wire::kMaxBundle) {
    std::vector<v1::Event> part;
    for (std::size_t k = at; k < std::min(at + wire::kMaxBundle, small.size()); ++k)
      part.push_back(events[small[k]]);
    auto signed_part = wire::sign_bundle(part, key);
    for (std::size_t k = 0; k < signed_part.size(); ++k)
      out[small[at + k]] = std::move(signed_part[k]);
  }
  return out;
}

/// One line per rejected row, at most ten a minute: a program inserting bad
/// rows in a loop must not drown the incidents (every row is kept in
/// outbox_rejected with its reason, and counted on the status page).
void log_rejected(std::int64_t id, const std::string& why) {
  thread_local RateLimit limit(std::chrono::minutes(1), 10);
  if (!limit.allow()) return;
  const auto held_back = limit.suppressed();
  log_incident(
      spdlog::level::err,
      fmt::format(
          "outbox row {} rejected: {} (kept in outbox_rejected){}", id, why,
          held_back > 0 ? fmt::format("; {} more rejected rows not logged", held_back) : ""),
      {{"incident", "row_rejected"}, {"row", std::to_string(id)}, {"reason", why}});
}

}  // namespace

std::string clear_refusal(const Config& config, const std::string& by, const std::string& origin,
                          std::uint64_t seq) {
  if (!config.policy.clear_rule(by, config.groups_of(by), origin, config.groups_of(origin)).empty())
    return "";
  return mesh::clear_refusal(by, origin + ":" + std::to_string(seq), origin);
}

std::string send_refusal(const Config& config, const v1::Event& event) {
  auto sending = mesh::sending_of(event);
  if (sending.origin.empty()) sending.origin = config.node.id;  // a draft
  return config.policy.send_refusal(
      sending, [&config](const std::string& id) { return config.groups_of(id); });
}

void resolve_targets(v1::Event& event, const Config& config) {
  event.clear_resolved();
  const std::vector<std::string> targets(event.targets().begin(), event.targets().end());
  // "all" means every node wherever it is read; only narrower targets are
  // resolved, so that the event stays small in a large mesh.
  if (std::find(targets.begin(), targets.end(), "all") != targets.end()) return;
  if (mesh::targets_node(targets, config.node.id, config.node.groups))
    event.add_resolved(config.node.id);
  for (const auto& p : config.peers) {
    if (mesh::targets_node(targets, p.id, p.groups)) event.add_resolved(p.id);
  }
}

std::string check_event(const v1::Event& event, const Config& config) {
  if (event.targets().empty()) return "no targets";
  for (const auto& t : event.targets()) {
    if (auto why = config.check_target(t); !why.empty()) return why;
  }
  if (event.kind() == v1::KIND_ALL_CLEAR && event.references_size() == 0) {
    return "an all-clear must reference the event it clears";
  }
  if (event.kind() == v1::KIND_ALL_CLEAR) {
    // Refused here as every receiver would refuse it (the mesh policy).
    for (const auto& r : event.references()) {
      if (auto why = clear_refusal(config, config.node.id, r.origin(), r.seq()); !why.empty())
        return why;
    }
  }
  // The [[send]] rules, as every receiver applies them. Never for a duress:
  // it goes out all the same, flagged at every target (mesh::Node::decide).
  if (event.kind() != v1::KIND_DURESS && event.priority() != v1::PRIORITY_DURESS) {
    if (auto why = send_refusal(config, event); !why.empty()) return why;
  }
  if (event.kind() == v1::KIND_ACK && event.references_size() != 1) {
    return "an acknowledgement must reference exactly the one event it answers";
  }
  if (event.kind() == v1::KIND_UPDATE || event.kind() == v1::KIND_CANCEL) {
    const std::string verb = event.kind() == v1::KIND_UPDATE ? "update" : "cancel";
    if (event.references_size() != 1)
      return "an " + verb + " must reference exactly the one event it revises";
    const auto& r = event.references(0);
    if (r.origin() != config.node.id) {
      return "only its origin, " + r.origin() + ", may " + verb + " " + r.origin() + ":" +
             std::to_string(r.seq());
    }
  }
  if (wire::reserved_type(event.type())) {
    return "type \"" + event.type() + "\" is reserved to the relay";
  }
  v1::Event sized = event;
  resolve_targets(sized, config);
  sized.set_origin(config.node.id);
  sized.set_seq(INT64_MAX);
  // A draft may leave the priority to the claim (by kind): any is storable.
  if (sized.priority() == v1::PRIORITY_UNSPECIFIED) sized.set_priority(v1::PRIORITY_NORMAL);
  if (!wire::well_formed(sized)) {
    return "a field holds what not every site can store (a NUL, or \\u0000 in data)";
  }
  sized.set_seq(UINT64_MAX);  // the largest a seq can encode to
  if (sized.ByteSizeLong() > wire::kMaxEventBytes) {
    return "the event would be " + std::to_string(sized.ByteSizeLong()) + " bytes; at most " +
           std::to_string(wire::kMaxEventBytes) +
           " fit a datagram (shorten the body or data, or name fewer targets)";
  }
  return "";
}

namespace {

// Values of a row that PostgreSQL refuses to convert in the fetch itself
// (a data exception, or a program limit): that row alone is at fault.
bool row_fault(const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  return state.starts_with("22") || state.starts_with("54");
}

/// Rows set aside by a claim: their ids and why, and for rows already
/// fetched (and so deleted from the outbox) their contents as JSON.
struct Rejects {
  std::vector<std::int64_t> ids;
  std::vector<std::string> reasons;
  std::vector<std::string> rows;
  void add(std::int64_t id, std::string reason, std::string row = "") {
    log_rejected(id, reason);
    ids.push_back(id);
    reasons.push_back(std::move(reason));
    rows.push_back(std::move(row));
  }
};

/// Locks up to `limit` candidates, most urgent first; returns the ids that
/// look claimable and adds the others to `unfetched`.
std::vector<std::int64_t> candidates(pqxx::work& tx, std::size_t limit, int min_rank,
                                     Rejects& unfetched, bool& full) {
  std::vector<std::int64_t> ok;
  const pqxx::result rows = tx.exec_params(kCandidates, limit, min_rank);
  full = rows.size() == limit;
  for (const auto& row : rows) {
    if (row[1].is_null()) {
      ok.push_back(row[0].as<std::int64_t>());
    } else {
      unfetched.add(row[0].as<std::int64_t>(), row[1].as<std::string>());
    }
  }
  return ok;
}

/// Fetches (and deletes) the rows; with `one_by_one`, each in a
/// subtransaction of its own, and a row whose fetch fails stays for
/// `unfetched` with the database's error.
std::vector<pqxx::row> fetch(pqxx::work& tx, const std::vector<std::int64_t>& ids, bool one_by_one,
                             Rejects& unfetched) {
  std::vector<pqxx::row> rows;  // each keeps its result alive
  if (!one_by_one) {
    for (const auto& row : tx.exec_params(kFetch, int_array(ids))) rows.push_back(row);
    return rows;
  }
  for (std::int64_t id : ids) {
    try {
      pqxx::subtransaction sub(tx, "row");
      const auto result = sub.exec_params(kFetch, int_array({id}));
      sub.commit();
      for (const auto& row : result) rows.push_back(row);
    } catch (const pqxx::sql_error& e) {
      if (!row_fault(e)) throw;
      unfetched.add(id, std::string("the database could not read it: ") + one_line(e.what()));
    }
  }
  return rows;
}

ClaimResult claim(pqxx::connection_base& conn, const Config& config, const crypto::SigningKey& key,
                  std::size_t limit, bool urgent_only, NumberingState* numbering, bool one_by_one) {
  ClaimResult result;
  pqxx::work tx(conn, "claim");
  const int min_rank = urgent_only ? 3 : 1;  // the outbox's ranks: emergency 3, duress 4
  Rejects unfetched, fetched;
  const auto ids = candidates(tx, limit, min_rank, unfetched, result.full);
  const auto rows = ids.empty() ? std::vector<pqxx::row>{} : fetch(tx, ids, one_by_one, unfetched);
  std::vector<v1::Event> events;
  std::vector<std::int64_t> outbox_ids;
  for (const auto& row : rows) {
    v1::Event e;
    auto why = build(row, config, e);
    // Its targets and priority come from the event it answers, as held here.
    if (why.empty() && e.kind() == v1::KIND_ACK) why = answer_from_log(tx, config, e);
    if (why.empty() && (e.kind() == v1::KIND_UPDATE || e.kind() == v1::KIND_CANCEL))
      why = revise_from_log(tx, config, e);
    if (!why.empty()) {
      fetched.add(row[0].as<std::int64_t>(), std::move(why), row[14].as<std::string>());
      continue;
    }
    events.push_back(std::move(e));
    outbox_ids.push_back(row[0].as<std::int64_t>());
  }
  if (!unfetched.ids.empty()) {
    tx.exec_params(kReject, int_array(unfetched.ids), text_array(unfetched.reasons));
  }
  if (!fetched.ids.empty()) {
    tx.exec_params(
        "INSERT INTO outbox_rejected (id, reason, row_data) "
        "SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[])",
        int_array(fetched.ids), text_array(fetched.reasons), text_array(fetched.rows));
  }
  result.rejected = unfetched.ids.size() + fetched.ids.size();

  if (!events.empty()) {
    raise_all_clears(tx, events);
    result.delivered =
        number_and_log(tx, config, key, numbering, events, true, result.events, outbox_ids);
  }
  tx.commit();
  return result;
}

}  // namespace

bool number_and_log(pqxx::transaction_base& tx, const Config& config, const crypto::SigningKey& key,
                    NumberingState* numbering, std::vector<v1::Event>& events, bool deliver_here,
                    std::vector<mesh::EventPtr>& out, const std::vector<std::int64_t>& outbox_ids) {
  // The row lock on this node's sequence orders concurrent claimers; an
  // aborted claim rolls its increment back, so seqs have no gaps, unless
  // the numbering must jump (relay/store/numbering.h).
  const auto n = static_cast<std::uint64_t>(events.size());
  tx.exec_params("INSERT INTO relay_node (origin) VALUES ($1) ON CONFLICT DO NOTHING",
                 config.node.id);
  const auto db_next =
      tx.exec_params1("SELECT next_seq FROM relay_node WHERE origin = $1 FOR UPDATE",
                      config.node.id)[0]
          .as<std::uint64_t>();
  const auto now_ms =
      tx.exec1("SELECT (extract(epoch from now()) * 1000)::bigint")[0].as<std::int64_t>();
  // Durable outside the database before the claim commits: whatever
  // happens to the database, these seqs are never numbered again.
  std::uint64_t next = numbering ? numbering->allocate(db_next, n) : db_next;
  tx.exec_params("UPDATE relay_node SET next_seq = $2 WHERE origin = $1", config.node.id, next + n);
  const std::uint64_t first = next;
  for (auto& e : events) e.set_seq(next++);
  const auto signed_events = sign(events, key);
  mesh::StoreBatch batch;
  for (std::size_t i = 0; i < events.size(); ++i) {
    auto event = mesh::make_event(signed_events[i], events[i]);
    const bool here =
        deliver_here && mesh::targets_node(*event, config.node.id, config.node.groups);
    if (here) batch.receipts.push_back({event->key, config.node.id, now_ms});
    batch.events.push_back({event, here});
    if (i < outbox_ids.size()) batch.events.back().outbox_id = outbox_ids[i];
    out.push_back(std::move(event));
  }
  Written written;
  const bool delivered = write_batch(tx, config.node.id, {batch}, &written) > 0;
  const std::size_t logged = written.logged;
  if (logged != events.size()) {
    // A seq already in the log (or settled): never send an event that is
    // not in the log; the transaction rolls back, and claimed rows stay in
    // the outbox.
    throw std::runtime_error(std::to_string(events.size() - logged) + " of " +
                             std::to_string(events.size()) + " new events were not logged (seq " +
                             std::to_string(first) + " already taken?); the outbox rows stay");
  }
  return delivered;
}

ClaimResult heal_conflict(pqxx::connection_base& conn, const Config& config,
                          const crypto::SigningKey& key, NumberingState& numbering,
                          const mesh::EventPtr& own, const mesh::EventPtr& mesh_version) {
  pqxx::work tx(conn, "heal");
  ClaimResult result;
  const auto seq = static_cast<std::int64_t>(own->key.seq);
  if (tx.exec_params("INSERT INTO relay_healed (seq) VALUES ($1) ON CONFLICT DO NOTHING "
                     "RETURNING 1",
                     seq)
          .empty()) {
    return result;  // healed before: once only
  }
  // The mesh holds its version under this seq: so does this log from now on,
  // served and acked as that one, and delivered here where this node is a
  // target (an alarm of the life the rewind erased), flagged as possibly
  // delivered before.
  tx.exec_params("DELETE FROM relay_event_log WHERE origin = $1 AND seq = $2", config.node.id, seq);
  mesh::StoreBatch mesh_batch;
  const bool here = mesh::targets_node(*mesh_version, config.node.id, config.node.groups);
  mesh_batch.events.push_back({mesh_version, here});
  mesh_batch.events.back().redelivered = true;
  result.delivered = write_batch(tx, config.node.id, {mesh_batch}) > 0;
  // Ours goes out again under a fresh seq, above everything the mesh holds
  // (already delivered here once: not again).
  numbering.rewound();
  v1::Event event;
  if (!event.ParseFromString(own->signed_event.event())) {
    throw std::runtime_error("heal: own event " + config.node.id + ":" +
                             std::to_string(own->key.seq) + " does not parse");
  }
  // To every target but this node, where it was delivered already. A
  // receipt under the seq cannot tell which content a target delivered, and
  // an alarm twice is better than none: the copy names the seq it had
  // (references), so that consumers can tell.
  const std::vector<std::string> targets(event.targets().begin(), event.targets().end());
  event.clear_resolved();
  for (const auto& p : config.peers) {
    if (mesh::targets_node(targets, p.id, p.groups)) event.add_resolved(p.id);
  }
  auto* ref = event.add_references();
  ref->set_origin(config.node.id);
  ref->set_seq(own->key.seq);
  if (event.resolved_size() > 0) {
    std::vector<v1::Event> events{event};
    number_and_log(tx, config, key, &numbering, events, false, result.events);
    tx.exec_params("UPDATE relay_healed SET reissued_as = $2 WHERE seq = $1", seq,
                   static_cast<std::int64_t>(result.events.front()->key.seq));
  }
  tx.commit();
  result.replaced.push_back(mesh_version);
  return result;
}

ClaimResult claim_outbox(pqxx::connection_base& conn, const Config& config,
                         const crypto::SigningKey& key, std::size_t limit, bool urgent_only,
                         NumberingState* numbering) {
  try {
    return claim(conn, config, key, limit, urgent_only, numbering, false);
  } catch (const pqxx::sql_error& e) {
    if (!row_fault(e)) throw;
    // A value slipped past the checks and failed the fetch: again, one row
    // at a time, so that only that row is rejected.
    spdlog::warn("outbox claim: {}; claiming row by row to find the row at fault",
                 one_line(e.what()));
    return claim(conn, config, key, limit, urgent_only, numbering, true);
  }
}

}  // namespace relay::store

#include "relay/store/outbox.h"

#include <spdlog/spdlog.h>
#include <pqxx/result>
#include <pqxx/transaction>

#include <charconv>

#include "common/log.h"

#include "relay/store/pg_store.h"
#include "relay/store/rows.h"
#include "relay/wire/bundle.h"
#include "relay/wire/datagram.h"

namespace relay::store {
namespace {

// The unit separator cannot appear in a valid target or reference, so
// splitting on it never turns one bad value into two good ones.
constexpr char kSeparator = '\x1f';

constexpr const char* kClaim = R"sql(
WITH c AS (
  DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE rank >= $2 ORDER BY rank DESC, id LIMIT $1 FOR UPDATE SKIP LOCKED)
  RETURNING *)
SELECT id, kind, rank, array_to_string(targets, E'\x1f'), title, body, location, sender, type,
       data::text, coalesce((extract(epoch from expires_at) * 1000)::bigint, 0),
       array_to_string(refs, E'\x1f'), exercise, (extract(epoch from date_inserted) * 1000)::bigint,
       to_jsonb(c)::text
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
  return v1::KIND_NOTIFICATION;
}

/// Builds the event of one claimed row, or says why it cannot be one.
std::string build(const pqxx::row& row, const Config& config, v1::Event& e) {
  e.set_origin(config.node.id);
  e.set_kind(kind_of(row[1].as<std::string>()));
  e.set_priority(static_cast<v1::Priority>(row[2].as<int>()));
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
  e.set_exercise(row[12].as<bool>());
  e.set_created_unix_ms(row[13].as<std::int64_t>());
  return check_event(e, config);
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

std::string check_event(const v1::Event& event, const Config& config) {
  if (event.targets().empty()) return "no targets";
  for (const auto& t : event.targets()) {
    if (auto why = config.check_target(t); !why.empty()) return why;
  }
  if (event.kind() == v1::KIND_ALL_CLEAR && event.references_size() == 0) {
    return "an all-clear must reference the event it clears";
  }
  v1::Event sized = event;
  sized.set_origin(config.node.id);
  sized.set_seq(UINT64_MAX);  // the largest a seq can encode to
  if (sized.ByteSizeLong() > wire::kMaxEventBytes) {
    return "the event would be " + std::to_string(sized.ByteSizeLong()) + " bytes; at most " +
           std::to_string(wire::kMaxEventBytes) + " fit a datagram (shorten the body or data)";
  }
  return "";
}

ClaimResult claim_outbox(pqxx::connection_base& conn, const Config& config,
                         const crypto::SigningKey& key, std::size_t limit, bool urgent_only) {
  ClaimResult result;
  pqxx::work tx(conn, "claim");
  const int min_rank = urgent_only ? 3 : 1;  // the outbox's ranks: emergency 3, duress 4
  const pqxx::result rows = tx.exec_params(kClaim, limit, min_rank);
  result.full = rows.size() == limit;
  if (rows.empty()) return result;

  std::vector<v1::Event> events;
  std::vector<std::int64_t> outbox_ids;
  std::vector<std::int64_t> rejected_ids;
  std::vector<std::string> reasons, rejected_rows;
  for (const auto& row : rows) {
    v1::Event e;
    if (auto why = build(row, config, e); !why.empty()) {
      log_rejected(row[0].as<std::int64_t>(), why);
      rejected_ids.push_back(row[0].as<std::int64_t>());
      reasons.push_back(std::move(why));
      rejected_rows.push_back(row[14].as<std::string>());
      continue;
    }
    events.push_back(std::move(e));
    outbox_ids.push_back(row[0].as<std::int64_t>());
  }
  if (!rejected_ids.empty()) {
    tx.exec_params(
        "INSERT INTO outbox_rejected (id, reason, row_data) "
        "SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[])",
        int_array(rejected_ids), text_array(reasons), text_array(rejected_rows));
    result.rejected = rejected_ids.size();
  }
  if (!events.empty()) {
    // The row lock on this node's sequence orders concurrent claimers; an
    // aborted claim rolls its increment back, so seqs have no gaps.
    const auto n = static_cast<std::int64_t>(events.size());
    tx.exec_params("INSERT INTO relay_node (origin) VALUES ($1) ON CONFLICT DO NOTHING",
                   config.node.id);
    auto next = tx.exec_params1(
                      "UPDATE relay_node SET next_seq = next_seq + $2 WHERE origin = $1 "
                      "RETURNING next_seq - $2",
                      config.node.id, n)[0]
                    .as<std::uint64_t>();
    const auto now_ms =
        tx.exec1("SELECT (extract(epoch from now()) * 1000)::bigint")[0].as<std::int64_t>();
    for (auto& e : events) e.set_seq(next++);
    const auto signed_events = sign(events, key);
    mesh::StoreBatch batch;
    for (std::size_t i = 0; i < events.size(); ++i) {
      const v1::Event& e = events[i];
      auto event = mesh::make_event(signed_events[i], e);
      const bool here = mesh::targets_node(event->targets, config.node.id, config.node.groups);
      if (here) batch.receipts.push_back({event->key, config.node.id, now_ms});
      batch.events.push_back({event, here});
      result.events.push_back(std::move(event));
    }
    result.delivered = write_batch(tx, config.node.id, {batch}) > 0;
    std::vector<std::int64_t> seqs;
    for (const auto& e : result.events) seqs.push_back(static_cast<std::int64_t>(e->key.seq));
    tx.exec_params(
        "UPDATE relay_event_log l SET outbox_id = u.id "
        "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq) WHERE l.origin = $3 AND l.seq = "
        "u.seq",
        int_array(outbox_ids), int_array(seqs), config.node.id);
  }
  tx.commit();
  return result;
}

}  // namespace relay::store

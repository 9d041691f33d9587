#include "relay/store/answer.h"

#include <pqxx/binarystring>
#include <pqxx/result>

#include <algorithm>
#include <map>
#include <set>

#include "relay/mesh/response.h"
#include "relay/store/outbox.h"
#include "relay/store/rows.h"

namespace relay::store {

namespace v1 = relaymesh::v1;

namespace {

/// False for an all-clear beyond its maker's rights under the mesh policy:
/// every receiver refuses it, and it ends nothing.
bool within_policy(const Config& config, const v1::Event& e) {
  if (e.kind() != v1::KIND_ALL_CLEAR) return true;
  return std::all_of(e.references().begin(), e.references().end(), [&](const v1::EventId& r) {
    return clear_refusal(config, e.origin(), r.origin(), r.seq()).empty();
  });
}

/// The event in a log row's `signed` column; false if it does not parse.
bool parse_logged(const pqxx::field& signed_column, v1::Event& e) {
  const pqxx::binarystring bytes(signed_column);
  v1::SignedEvent signed_event;
  return signed_event.ParseFromString(bytes.str()) && e.ParseFromString(signed_event.event());
}

}  // namespace

std::vector<mesh::PeerInfo> mesh_members(const Config& config) {
  std::vector<mesh::PeerInfo> out{{config.node.id, config.node.groups}};
  for (const auto& p : config.peers) out.push_back({p.id, p.groups});
  return out;
}

std::optional<v1::Event> logged_event(pqxx::transaction_base& tx, const std::string& origin,
                                      std::int64_t seq) {
  const auto rows = tx.exec_params(
      "SELECT signed FROM relay_event_log WHERE origin = $1 AND seq = $2", origin, seq);
  v1::Event e;
  if (rows.empty() || !parse_logged(rows[0][0], e)) return std::nullopt;
  return e;
}

std::string answer(const Config& config, v1::Event& ack, const v1::Event& referenced) {
  if (auto why = mesh::make_ack(ack, referenced, config.node.id, mesh_members(config));
      !why.empty()) {
    return why;
  }
  resolve_targets(ack, config);
  return check_event(ack, config);
}

std::string answer_from_log(pqxx::transaction_base& tx, const Config& config, v1::Event& ack) {
  if (ack.references_size() != 1) {
    return "an acknowledgement must reference exactly the one event it answers";
  }
  const auto& r = ack.references(0);
  const std::string id = r.origin() + ":" + std::to_string(r.seq());
  if (r.seq() > static_cast<std::uint64_t>(INT64_MAX))
    return "reference \"" + id + "\" is out of range";
  const auto referenced = logged_event(tx, r.origin(), static_cast<std::int64_t>(r.seq()));
  if (!referenced) {
    // A site answers only what it holds: else it could neither say who the
    // answer is for nor at which priority it travels.
    return "acknowledges " + id + ", which " + config.node.id +
           " has not received (or has pruned): a site can acknowledge only an event it holds";
  }
  return answer(config, ack, *referenced);
}

std::map<std::string, std::vector<v1::Event>> steps_in_log(pqxx::transaction_base& tx,
                                                            const Config& config) {
  std::map<std::string, std::vector<v1::Event>> out;
  // Few rows, however long the log (migration 018 indexes them); beyond the
  // bound, the newest.
  for (const auto& row :
       tx.exec("SELECT signed FROM relay_event_log WHERE kind IN (3, 7, 8, 9, 10) AND stored_at > "
               "now() - interval '8 days' ORDER BY stored_at DESC, origin, seq DESC LIMIT 10000")) {
    v1::Event e;
    if (!parse_logged(row[0], e) || !within_policy(config, e)) continue;
    for (const auto& r : e.references())
      out[r.origin() + ":" + std::to_string(r.seq())].push_back(e);
  }
  for (auto& [id, steps] : out) std::reverse(steps.begin(), steps.end());  // oldest first
  return out;
}

std::string revise_from_log(pqxx::transaction_base& tx, const Config& config, v1::Event& revision) {
  const std::string verb = revision.kind() == v1::KIND_UPDATE ? "update" : "cancel";
  if (revision.references_size() != 1) {
    return "an " + verb + " must reference exactly the one event it revises";
  }
  const auto& r = revision.references(0);
  const std::string id = r.origin() + ":" + std::to_string(r.seq());
  if (r.origin() != config.node.id)
    return "only its origin, " + r.origin() + ", may " + verb + " " + id;
  if (r.seq() > static_cast<std::uint64_t>(INT64_MAX))
    return "reference \"" + id + "\" is out of range";
  const auto referenced = logged_event(tx, r.origin(), static_cast<std::int64_t>(r.seq()));
  if (!referenced) {
    return verb + "s " + id + ", which is not in " + config.node.id +
           "'s log (never raised, or pruned)";
  }
  // What ended it came after it: the all-clears and cancels stored since.
  for (const auto& row :
       tx.exec_params("SELECT signed FROM relay_event_log WHERE kind IN (3, 9) AND stored_at >= "
                      "(SELECT stored_at FROM relay_event_log WHERE origin = $1 AND seq = $2)",
                      r.origin(), static_cast<std::int64_t>(r.seq()))) {
    v1::Event step;
    // An all-clear beyond its maker's rights ended nothing (every receiver
    // refused it): the origin may still revise its alert.
    if (!parse_logged(row[0], step) || !within_policy(config, step)) continue;
    for (const auto& ended : step.references()) {
      if (ended.origin() != r.origin() || ended.seq() != r.seq()) continue;
      return id + " was " + (step.kind() == v1::KIND_CANCEL ? "cancelled" : "cleared") +
             " already (by " + step.origin() + ":" + std::to_string(step.seq()) + ")";
    }
  }
  if (auto why = mesh::make_revision(revision, revision.kind(), *referenced, config.node.id,
                                     mesh_members(config));
      !why.empty()) {
    return why;
  }
  resolve_targets(revision, config);
  return check_event(revision, config);
}

std::vector<Acknowledgement> acks_of(pqxx::transaction_base& tx, const std::string& origin,
                                     std::int64_t seq) {
  std::vector<Acknowledgement> out;
  // Few rows (relay_event_log_acks holds acknowledgements alone); the
  // reference is inside the signed event.
  const auto rows =
      tx.exec("SELECT signed FROM relay_event_log WHERE kind = " + std::to_string(v1::KIND_ACK) +
              " ORDER BY stored_at, origin, seq");
  for (const auto& row : rows) {
    v1::Event e;
    if (!parse_logged(row[0], e) || e.references_size() != 1 ||
        e.references(0).origin() != origin ||
        e.references(0).seq() != static_cast<std::uint64_t>(seq)) {
      continue;
    }
    out.push_back({e.origin() + ":" + std::to_string(e.seq()), e.origin(), e.sender(),
                   mesh::ack_state_name(e.ack()), e.body(), e.created_unix_ms()});
  }
  return out;
}

namespace {

/// The events of `kind` stored in the last `hours`, parsed; few (answers).
std::vector<v1::Event> logged_of_kind(pqxx::transaction_base& tx, v1::Kind kind, int hours) {
  std::vector<v1::Event> out;
  for (const auto& row :
       tx.exec_params("SELECT signed FROM relay_event_log WHERE kind = $1 AND stored_at > now() - "
                      "make_interval(hours => $2) ORDER BY stored_at DESC LIMIT 10000",
                      static_cast<int>(kind), hours)) {
    v1::Event e;
    if (parse_logged(row[0], e)) out.push_back(std::move(e));
  }
  return out;
}

std::string id_of(const v1::EventId& r) {
  return r.origin() + ":" + std::to_string(r.seq());
}

v1::Priority priority_of(const std::string& name) {
  if (name == "duress") return v1::PRIORITY_DURESS;
  if (name == "emergency") return v1::PRIORITY_EMERGENCY;
  if (name == "normal") return v1::PRIORITY_NORMAL;
  return v1::PRIORITY_BULK;
}

}  // namespace

const EscalationRule* escalation_rule(const Config& config, const v1::Event& event) {
  for (const auto& rule : config.escalations) {
    if (!rule.kind.empty() ? rule.kind == kind_name(event.kind())
                           : rule.priority == priority_name(event.priority())) {
      return &rule;
    }
  }
  return nullptr;
}

std::vector<Unanswered> unanswered(pqxx::transaction_base& tx, const Config& config) {
  std::vector<Unanswered> out;
  if (config.escalations.empty()) return out;
  // An answer may come a while after its event: look a day further back.
  std::set<std::string> answered;
  for (const auto kind : {v1::KIND_ACK, v1::KIND_ALL_CLEAR, v1::KIND_CANCEL}) {
    for (const auto& e : logged_of_kind(tx, kind, 48)) {
      if (!within_policy(config, e)) continue;
      for (const auto& r : e.references()) answered.insert(id_of(r));
    }
  }
  std::map<std::string, std::pair<std::uint32_t, std::int64_t>> rounds;  // id -> round, made at
  for (const auto& e : logged_of_kind(tx, v1::KIND_ESCALATION, 48)) {
    if (e.origin() != config.node.id || e.references_size() != 1) continue;
    auto& [round, at] = rounds[id_of(e.references(0))];
    if (e.escalation_round() > round) {
      round = e.escalation_round();
      at = e.created_unix_ms();
    }
  }
  // The least priority a rule names (a duress is always of duress priority):
  // when it is emergency or above, the small index over urgent rows
  // (migration 017) serves the read, however large a flood of bulk rows.
  int least = v1::PRIORITY_DURESS;
  for (const auto& rule : config.escalations) {
    if (rule.kind == "duress") continue;
    least = std::min(least, rule.kind.empty() ? static_cast<int>(priority_of(rule.priority))
                                              : static_cast<int>(v1::PRIORITY_BULK));
  }
  for (const auto& row : tx.exec_params(
           "SELECT signed FROM relay_event_log WHERE priority >= " + std::to_string(least) +
               " AND stored_at > now() - interval '24 hours' AND origin = $1 AND kind IN ($2, $3, "
               "$4) ORDER BY stored_at DESC LIMIT 1000",
           config.node.id, static_cast<int>(v1::KIND_NOTIFICATION),
           static_cast<int>(v1::KIND_DURESS), static_cast<int>(v1::KIND_TEST))) {
    Unanswered u;
    if (!parse_logged(row[0], u.event)) continue;
    const std::string id = u.event.origin() + ":" + std::to_string(u.event.seq());
    if (answered.contains(id) || escalation_rule(config, u.event) == nullptr) continue;
    if (auto it = rounds.find(id); it != rounds.end()) {
      u.rounds = it->second.first;
      u.last_round_unix_ms = it->second.second;
    }
    out.push_back(std::move(u));
    if (out.size() == 100) break;
  }
  return out;
}

std::map<std::string, std::uint32_t> escalation_rounds(pqxx::transaction_base& tx,
                                                       const std::string& origin) {
  std::map<std::string, std::uint32_t> out;
  for (const auto& e : logged_of_kind(tx, v1::KIND_ESCALATION, 48)) {
    if (e.origin() != origin || e.references_size() != 1) continue;
    auto& most = out[id_of(e.references(0))];
    most = std::max(most, e.escalation_round());
  }
  return out;
}

}  // namespace relay::store

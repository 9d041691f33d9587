#include "relay/store/console.h"

#include <pqxx/binarystring>
#include <pqxx/result>

#include <set>
#include <sstream>

#include "proto/relaymesh.pb.h"
#include "relay/mesh/response.h"
#include "relay/mesh/types.h"
#include "relay/store/answer.h"
#include "relay/store/outbox.h"
#include "relay/store/rows.h"

namespace relay::store {
namespace {

namespace v1 = relaymesh::v1;

// Own events whose receipts are counted as pending: the recent ones; older
// ones are settled or long reported.
constexpr int kReceiptWindow = 1000;

std::string id_of(const std::string& origin, std::uint64_t seq) {
  return origin + ":" + std::to_string(seq);
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(std::move(w));
  return out;
}

std::optional<ConsoleView::QueueRow> queue_row(const pqxx::result& r) {
  if (r.empty()) return std::nullopt;
  ConsoleView::QueueRow row;
  row.id = r[0][0].as<std::int64_t>();
  row.type = r[0][1].as<std::string>();
  row.age_ms = r[0][2].as<std::int64_t>();
  row.priority = r[0][3].as<int>();
  if (!r[0][4].is_null())
    row.event_id = r[0][4].as<std::string>() + ":" + r[0][5].as<std::string>();
  row.groups_pending = words(r[0][6].as<std::string>());
  row.groups_done = words(r[0][7].as<std::string>());
  return row;
}

// The groups consuming the row's type (migration 010), split by whether
// they have finished it, as relay/runner/queue.cc decides it; group names
// are a-z0-9- (relay-runner's configuration), so a space separates them.
constexpr const char* kQueueRow = R"sql(
SELECT id, type, greatest(0, (extract(epoch from now() - date_inserted) * 1000)::bigint),
       priority, origin, seq,
       coalesce((SELECT string_agg(g.name, ' ' ORDER BY g.name) FROM runner_groups g
                 WHERE q.type = ANY (g.types) AND NOT EXISTS (
                   SELECT 1 FROM runner_rows r WHERE r.grp = g.name AND r.queue_id = q.id
                   AND (r.done_at IS NOT NULL OR r.dead))), ''),
       coalesce((SELECT string_agg(g.name, ' ' ORDER BY g.name) FROM runner_groups g
                 WHERE q.type = ANY (g.types) AND EXISTS (
                   SELECT 1 FROM runner_rows r WHERE r.grp = g.name AND r.queue_id = q.id
                   AND (r.done_at IS NOT NULL OR r.dead))), '')
FROM message_queue q
)sql";

/// The life of event `e` as `steps` (the events referencing it) tell it.
void add_life(ConsoleView::Event& v, const v1::Event& e, const std::vector<v1::Event>& steps,
              std::int64_t now_unix_ms) {
  v.state = mesh::alert_state(e, steps, now_unix_ms);
  for (const auto& s : steps) {
    ConsoleView::Event::Step step{id_of(s.origin(), s.seq()),
                                  kind_name(s.kind()),
                                  s.origin(),
                                  s.sender(),
                                  s.body(),
                                  mesh::ack_state_name(s.ack()),
                                  s.escalation_round(),
                                  s.created_unix_ms()};
    if (s.kind() == v1::KIND_ALL_CLEAR && v.cleared_by.empty()) v.cleared_by = step.id;
    if (s.kind() == v1::KIND_ACK)
      v.acks.push_back({step.by, step.site, step.ack, step.created_unix_ms});
    v.history.push_back(std::move(step));
  }
}

/// Parses log rows (signed, stored ms), each with its life from `steps`
/// (steps_in_log); skips what does not parse.
std::vector<ConsoleView::Event> events_of(
    const pqxx::result& rows, const Config& config,
    const std::map<std::string, std::vector<v1::Event>>& steps = {},
    std::int64_t now_unix_ms = 0) {
  std::vector<ConsoleView::Event> out;
  for (const auto& row : rows) {
    const pqxx::binarystring bytes(row[0]);
    v1::SignedEvent signed_event;
    v1::Event e;
    if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()))
      continue;
    ConsoleView::Event v;
    v.id = id_of(e.origin(), e.seq());
    v.origin = e.origin();
    v.seq = e.seq();
    v.kind = kind_name(e.kind());
    v.priority = priority_name(e.priority());
    v.title = e.title();
    v.location = e.location();
    v.sender = e.sender();
    v.exercise = e.exercise();
    v.created_unix_ms = e.created_unix_ms();
    v.stored_unix_ms = row[1].as<std::int64_t>();
    v.targets.assign(e.targets().begin(), e.targets().end());
    v.outside_policy = send_refusal(config, e);
    const auto life = steps.find(v.id);
    add_life(v, e, life == steps.end() ? std::vector<v1::Event>{} : life->second, now_unix_ms);
    out.push_back(std::move(v));
  }
  return out;
}

constexpr const char* kEventColumns =
    "SELECT signed, (extract(epoch from stored_at) * 1000)::bigint FROM relay_event_log ";

/// Adds each target's receipt to own events.
void add_receipts(pqxx::transaction_base& tx, const Config& config,
                  std::vector<ConsoleView::Event>& events) {
  for (auto& e : events) {
    if (e.origin != config.node.id) continue;
    e.own = true;
    const auto delivered = receipts_of(tx, e.origin, static_cast<std::int64_t>(e.seq));
    for (const auto& node : target_nodes(config, e.targets)) {
      auto it = delivered.find(node);
      e.receipts.emplace_back(node, it == delivered.end() ? 0 : it->second.at);
    }
  }
}

}  // namespace

std::map<std::string, TargetReceipt> receipts_of(pqxx::transaction_base& tx,
                                                 const std::string& origin, std::int64_t seq) {
  std::map<std::string, TargetReceipt> delivered;
  for (const auto& r :
       tx.exec_params("SELECT target, (extract(epoch from delivered_at) * 1000)::bigint, outcome "
                      "FROM relay_receipts WHERE origin = $1 AND seq = $2",
                      origin, seq)) {
    delivered[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<int>()};
  }
  return delivered;
}

std::string outcome_text(int outcome) {
  switch (outcome) {
    case v1::OUTCOME_DELIVERED:
      return "delivered";
    case v1::OUTCOME_DELIVERED_LATE:
      return "delivered late";
    case v1::OUTCOME_EXPIRED:
      return "not delivered: expired before it arrived";
    case v1::OUTCOME_TOO_OLD:
      return "not delivered: older than [delivery] max_age there";
    case v1::OUTCOME_CLEARED:
      return "not delivered: its all-clear was there first";
    case v1::OUTCOME_CANCELLED:
      return "not delivered: its origin's cancel was there first";
    case v1::OUTCOME_REFUSED:
      return "refused: beyond its sender's rights under the mesh policy there";
    default:
      return "outcome " + std::to_string(outcome);
  }
}

std::vector<std::string> target_nodes(const Config& config,
                                      const std::vector<std::string>& targets) {
  std::vector<std::string> nodes;
  if (mesh::targets_node(targets, config.node.id, config.node.groups))
    nodes.push_back(config.node.id);
  for (const auto& p : config.peers) {
    if (mesh::targets_node(targets, p.id, p.groups)) nodes.push_back(p.id);
  }
  return nodes;
}

ConsoleView read_console(pqxx::transaction_base& tx, const Config& config, std::size_t recent) {
  ConsoleView v;
  const auto now = tx.exec1(
      "SELECT (extract(epoch from now()) * 1000)::bigint, current_setting('fsync'), "
      "current_setting('full_page_writes'), current_setting('synchronous_commit')");
  v.database_now_unix_ms = now[0].as<std::int64_t>();
  v.fsync = now[1].as<std::string>() == "on";
  v.full_page_writes = now[2].as<std::string>() == "on";
  v.synchronous_commit = now[3].as<std::string>();

  const auto outbox = tx.exec1(
      "SELECT count(*), (extract(epoch from now() - min(date_inserted)) * 1000)::bigint FROM "
      "outbox");
  v.outbox.backlog = outbox[0].as<std::int64_t>();
  if (!outbox[1].is_null())
    v.outbox.oldest_age_ms = std::max<std::int64_t>(0, outbox[1].as<std::int64_t>());
  const auto rejected = tx.exec1(
      "SELECT count(*), count(*) FILTER (WHERE rejected_at > now() - interval '1 hour') FROM "
      "outbox_rejected");
  v.outbox.rejected_total = rejected[0].as<std::int64_t>();
  v.outbox.rejected_last_hour = rejected[1].as<std::int64_t>();
  for (const auto& r :
       tx.exec("SELECT id, (extract(epoch from rejected_at) * 1000)::bigint, reason FROM "
               "outbox_rejected ORDER BY rejected_at DESC, id DESC LIMIT 5")) {
    v.outbox.recent_rejected.push_back(
        {r[0].as<std::int64_t>(), r[1].as<std::int64_t>(), r[2].as<std::string>()});
  }

  v.queue.rows = tx.exec1("SELECT count(*) FROM message_queue")[0].as<std::int64_t>();
  v.queue.oldest = queue_row(tx.exec(std::string(kQueueRow) + "ORDER BY id LIMIT 1"));
  v.queue.oldest_duress = queue_row(
      tx.exec_params(std::string(kQueueRow) +
                         "WHERE priority = $1 AND type NOT LIKE 'relay.%' ORDER BY id LIMIT 1",
                     static_cast<int>(v1::PRIORITY_DURESS)));

  const auto steps = steps_in_log(tx, config);
  v.recent = events_of(tx.exec_params(std::string(kEventColumns) +
                                          "ORDER BY stored_at DESC, origin, seq DESC LIMIT $1",
                                      static_cast<std::int64_t>(recent)),
                       config, steps, v.database_now_unix_ms);
  v.open_duress =
      events_of(tx.exec_params(std::string(kEventColumns) +
                                   "WHERE kind = $1 AND stored_at > now() - interval '24 hours' "
                                   "ORDER BY stored_at DESC, origin, seq DESC LIMIT 100",
                               static_cast<int>(v1::KIND_DURESS)),
                config, steps, v.database_now_unix_ms);
  std::erase_if(v.open_duress, [](const ConsoleView::Event& e) {
    return e.state == "cleared" || e.state == "cancelled";
  });
  add_receipts(tx, config, v.recent);
  add_receipts(tx, config, v.open_duress);
  const auto escalated = config.escalations.empty() ? std::map<std::string, std::uint32_t>{}
                                                    : escalation_rounds(tx, config.node.id);
  for (auto& e : v.open_duress) {
    if (auto it = escalated.find(e.id); it != escalated.end()) e.escalations = it->second;
    v1::Event as_kind;  // the rule that concerns it, as escalation_rule reads events
    as_kind.set_kind(v1::KIND_DURESS);
    as_kind.set_priority(v1::PRIORITY_DURESS);
    if (const auto* rule = escalation_rule(config, as_kind); rule != nullptr && e.own)
      e.escalation_max = rule->max;
  }

  // Only an all-clear, a notification or a test can be refused: a target
  // that says so of anything else (a duress) is not believed (it would hold
  // this verdict at ALARM).
  for (const auto& r : tx.exec_params(
           "SELECT r.origin || ':' || r.seq, r.target, (extract(epoch from r.delivered_at) * "
           "1000)::bigint, count(*) OVER () FROM relay_receipts r JOIN relay_event_log l "
           "USING (origin, seq) WHERE r.outcome = $1 AND l.kind IN ($2, $3, $4) AND "
           "r.delivered_at > now() - interval '24 hours' ORDER BY r.delivered_at DESC LIMIT 5",
           static_cast<int>(v1::OUTCOME_REFUSED), static_cast<int>(v1::KIND_ALL_CLEAR),
           static_cast<int>(v1::KIND_NOTIFICATION), static_cast<int>(v1::KIND_TEST))) {
    v.refused.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::int64_t>()});
    v.refused_last_day = r[3].as<std::int64_t>();
  }

  // Receipts owed to this node, per target, over its recent events.
  std::map<std::uint64_t, std::set<std::string>> confirmed;
  for (const auto& r :
       tx.exec_params("SELECT seq, target FROM relay_receipts WHERE origin = $1 AND seq > "
                      "(SELECT coalesce(max(seq), 0) FROM relay_event_log WHERE origin = $1) - $2",
                      config.node.id, kReceiptWindow)) {
    confirmed[r[0].as<std::uint64_t>()].insert(r[1].as<std::string>());
  }
  for (const auto& e : events_of(tx.exec_params(
           std::string(kEventColumns) + "WHERE origin = $1 ORDER BY seq DESC LIMIT $2",
           config.node.id, kReceiptWindow),
                                 config)) {
    const auto& done = confirmed[e.seq];
    for (const auto& node : target_nodes(config, e.targets)) {
      if (!done.contains(node)) ++v.receipts_pending[node];
    }
  }
  return v;
}

}  // namespace relay::store

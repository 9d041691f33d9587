#include "relay/store/answer.h"

#include <pqxx/binarystring>
#include <pqxx/result>

#include "relay/mesh/response.h"
#include "relay/store/outbox.h"

namespace relay::store {

namespace v1 = relaymesh::v1;

std::vector<mesh::PeerInfo> mesh_members(const Config& config) {
  std::vector<mesh::PeerInfo> out{{config.node.id, config.node.groups}};
  for (const auto& p : config.peers) out.push_back({p.id, p.groups});
  return out;
}

std::optional<v1::Event> logged_event(pqxx::transaction_base& tx, const std::string& origin,
                                      std::int64_t seq) {
  const auto rows = tx.exec_params(
      "SELECT signed FROM relay_event_log WHERE origin = $1 AND seq = $2", origin, seq);
  if (rows.empty()) return std::nullopt;
  const pqxx::binarystring bytes(rows[0][0]);
  v1::SignedEvent signed_event;
  v1::Event e;
  if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()))
    return std::nullopt;
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
  if (r.seq() > static_cast<std::uint64_t>(INT64_MAX)) return "reference \"" + id + "\" is out of range";
  const auto referenced = logged_event(tx, r.origin(), static_cast<std::int64_t>(r.seq()));
  if (!referenced) {
    // A site answers only what it holds: else it could neither say who the
    // answer is for nor at which priority it travels.
    return "acknowledges " + id + ", which " + config.node.id +
           " has not received (or has pruned): a site can acknowledge only an event it holds";
  }
  return answer(config, ack, *referenced);
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
    const pqxx::binarystring bytes(row[0]);
    v1::SignedEvent signed_event;
    v1::Event e;
    if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()) ||
        e.references_size() != 1 || e.references(0).origin() != origin ||
        e.references(0).seq() != static_cast<std::uint64_t>(seq)) {
      continue;
    }
    out.push_back({e.origin() + ":" + std::to_string(e.seq()), e.origin(), e.sender(),
                   mesh::ack_state_name(e.ack()), e.body(), e.created_unix_ms()});
  }
  return out;
}

}  // namespace relay::store

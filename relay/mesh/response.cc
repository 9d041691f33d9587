#include "relay/mesh/response.h"

#include <algorithm>

namespace relay::mesh {

std::vector<std::string> response_targets(const v1::Event& referenced, const std::string& self,
                                          const std::vector<PeerInfo>& mesh) {
  auto member = [&](const std::string& id) {
    return std::any_of(mesh.begin(), mesh.end(), [&](const PeerInfo& m) { return m.id == id; });
  };
  std::vector<std::string> out;
  auto add = [&](const std::string& id) {
    // A node this site does not know cannot be sent to anyway.
    if (id == self || !member(id) || std::find(out.begin(), out.end(), id) != out.end()) return;
    out.push_back(id);
  };
  add(referenced.origin());
  if (referenced.resolved_size() > 0) {
    // As its origin meant it: every site then tells the same nodes.
    for (const auto& id : referenced.resolved()) add(id);
  } else {
    const std::vector<std::string> targets(referenced.targets().begin(),
                                           referenced.targets().end());
    for (const auto& m : mesh) {
      if (targets_node(targets, m.id, m.groups)) add(m.id);
    }
  }
  return out;
}

std::string make_ack(v1::Event& ack, const v1::Event& referenced, const std::string& self,
                     const std::vector<PeerInfo>& mesh) {
  const std::string id = referenced.origin() + ":" + std::to_string(referenced.seq());
  if (referenced.kind() == v1::KIND_ACK) {
    return "event " + id + " is an acknowledgement itself; acknowledge the alert it answers";
  }
  if (ack.ack() != v1::ACK_RESPONDING && ack.ack() != v1::ACK_RESOLVED) {
    return "an acknowledgement says responding or resolved";
  }
  const auto targets = response_targets(referenced, self, mesh);
  if (targets.empty()) {
    return "event " + id +
           " was for this node alone: there is nobody to tell of its acknowledgement";
  }
  ack.set_kind(v1::KIND_ACK);
  // At the alarm's priority: a duress's answer never waits behind bulk.
  ack.set_priority(referenced.priority());
  // The answer to a drill is a drill: "help is coming" labelled an exercise.
  ack.set_exercise(referenced.exercise());
  ack.clear_references();
  auto* r = ack.add_references();
  r->set_origin(referenced.origin());
  r->set_seq(referenced.seq());
  ack.clear_targets();
  ack.clear_resolved();
  for (const auto& t : targets) {
    ack.add_targets(t);
    ack.add_resolved(t);
  }
  return "";
}

void make_escalation(v1::Event& escalation, const v1::Event& referenced, std::uint32_t round,
                     std::uint32_t max) {
  escalation.set_kind(v1::KIND_ESCALATION);
  // At the alarm's priority: the escalation of a duress is a duress.
  escalation.set_priority(referenced.priority());
  escalation.clear_references();
  auto* r = escalation.add_references();
  r->set_origin(referenced.origin());
  r->set_seq(referenced.seq());
  escalation.set_escalation_round(round);
  escalation.set_escalation_max(max);
  escalation.set_title(referenced.title());
  escalation.set_body(referenced.body());
  escalation.set_location(referenced.location());
  escalation.set_sender(referenced.sender());
  escalation.set_exercise(referenced.exercise());
}

std::string ack_state_name(v1::AckState state) {
  switch (state) {
    case v1::ACK_RESPONDING:
      return "responding";
    case v1::ACK_RESOLVED:
      return "resolved";
    default:
      return "";
  }
}

v1::AckState ack_state_of(const std::string& name) {
  if (name == "responding") return v1::ACK_RESPONDING;
  if (name == "resolved") return v1::ACK_RESOLVED;
  return v1::ACK_UNSPECIFIED;
}

}  // namespace relay::mesh

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

namespace {

/// Makes `e` a `kind` about `referenced` for `targets`; returns why it
/// cannot be, `what` naming it ("its acknowledgement").
std::string aim(v1::Event& e, v1::Kind kind, const v1::Event& referenced,
                const std::vector<std::string>& targets, const std::string& what) {
  if (targets.empty()) {
    return "event " + referenced.origin() + ":" + std::to_string(referenced.seq()) +
           " was for this node alone: there is nobody to tell of " + what;
  }
  e.set_kind(kind);
  // At the alarm's priority: a duress's answer never waits behind bulk.
  e.set_priority(referenced.priority());
  // The answer to a drill is a drill: "help is coming" labelled an exercise.
  e.set_exercise(referenced.exercise());
  e.clear_references();
  auto* r = e.add_references();
  r->set_origin(referenced.origin());
  r->set_seq(referenced.seq());
  e.clear_targets();
  e.clear_resolved();
  for (const auto& t : targets) {
    e.add_targets(t);
    e.add_resolved(t);
  }
  return "";
}

/// An alert a person raised, as against what the relay or a site says about one.
bool alert(v1::Kind kind) {
  return kind == v1::KIND_NOTIFICATION || kind == v1::KIND_DURESS || kind == v1::KIND_TEST;
}

}  // namespace

std::string make_ack(v1::Event& ack, const v1::Event& referenced, const std::string& self,
                     const std::vector<PeerInfo>& mesh) {
  const std::string id = referenced.origin() + ":" + std::to_string(referenced.seq());
  if (referenced.kind() == v1::KIND_ACK) {
    return "event " + id + " is an acknowledgement itself; acknowledge the alert it answers";
  }
  if (ack.ack() != v1::ACK_RESPONDING && ack.ack() != v1::ACK_RESOLVED) {
    return "an acknowledgement says responding or resolved";
  }
  return aim(ack, v1::KIND_ACK, referenced, response_targets(referenced, self, mesh),
             "its acknowledgement");
}

std::string make_revision(v1::Event& revision, v1::Kind kind, const v1::Event& referenced,
                          const std::string& self, const std::vector<PeerInfo>& mesh) {
  const std::string id = referenced.origin() + ":" + std::to_string(referenced.seq());
  const std::string verb = kind == v1::KIND_UPDATE ? "update" : "cancel";
  if (referenced.origin() != self) {
    return "only its origin, " + referenced.origin() + ", may " + verb + " " + id;
  }
  if (!alert(referenced.kind())) {
    return "event " + id + " is not an alert (it says something about another event); " + verb +
           " the alert itself";
  }
  // The alert's targets, this node too when it was one: its own consumers
  // hold the alert and must hear it changed or withdrawn.
  auto targets = response_targets(referenced, self, mesh);
  const auto me =
      std::find_if(mesh.begin(), mesh.end(), [&](const PeerInfo& m) { return m.id == self; });
  const bool for_self =
      referenced.resolved_size() > 0
          ? std::find(referenced.resolved().begin(), referenced.resolved().end(), self) !=
                referenced.resolved().end()
          : me != mesh.end() && targets_node(std::vector<std::string>(referenced.targets().begin(),
                                                                      referenced.targets().end()),
                                             self, me->groups);
  if (for_self) targets.insert(targets.begin(), self);
  if (auto why = aim(revision, kind, referenced, targets, "its " + verb); !why.empty()) return why;
  // An update says what changed; what it leaves out stays as it was.
  if (revision.title().empty()) revision.set_title(referenced.title());
  if (revision.location().empty()) revision.set_location(referenced.location());
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

std::string alert_state(const v1::Event& event, const std::vector<v1::Event>& steps,
                        std::int64_t now_unix_ms) {
  if (!alert(event.kind())) return "";
  // By precedence, not by arrival: every site holding the same events shows
  // the same state, whatever order they reached it in.
  bool cancelled = false, cleared = false, resolved = false, acknowledged = false;
  for (const auto& s : steps) {
    cancelled |= s.kind() == v1::KIND_CANCEL;
    cleared |= s.kind() == v1::KIND_ALL_CLEAR;
    resolved |= s.kind() == v1::KIND_ACK && s.ack() == v1::ACK_RESOLVED;
    acknowledged |= s.kind() == v1::KIND_ACK;
  }
  if (cancelled) return "cancelled";
  if (cleared) return "cleared";
  if (resolved) return "resolved";
  if (acknowledged) return "acknowledged";
  // A duress never expires (relay/mesh/lifecycle.cc delivers it whatever).
  const bool duress = event.kind() == v1::KIND_DURESS || event.priority() == v1::PRIORITY_DURESS;
  if (!duress && event.expires_unix_ms() != 0 && now_unix_ms >= event.expires_unix_ms())
    return "expired";
  return "open";
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

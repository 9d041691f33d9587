#include "relay/mesh/response.h"

#include <doctest/doctest.h>

using namespace relay::mesh;
namespace v1 = relaymesh::v1;

namespace {

/// hq (group hq), clinic-north and clinic-south (group clinics), clinic-east
/// (groups clinics and east).
const std::vector<PeerInfo> kMesh{{"hq", {"hq"}},
                                  {"clinic-north", {"clinics"}},
                                  {"clinic-south", {"clinics"}},
                                  {"clinic-east", {"clinics", "east"}}};

v1::Event duress(std::vector<std::string> targets, std::vector<std::string> resolved = {}) {
  v1::Event e;
  e.set_origin("clinic-north");
  e.set_seq(5);
  e.set_kind(v1::KIND_DURESS);
  e.set_priority(v1::PRIORITY_DURESS);
  for (const auto& t : targets) e.add_targets(t);
  for (const auto& r : resolved) e.add_resolved(r);
  return e;
}

using Ids = std::vector<std::string>;

}  // namespace

TEST_CASE("an answer goes to the origin and the nodes the event was for, never to its maker") {
  // As its origin resolved it: the answering site's own reading of the
  // groups does not matter.
  CHECK(response_targets(duress({"group:east", "hq"}, {"hq", "clinic-east"}), "hq", kMesh) ==
        Ids{"clinic-north", "clinic-east"});
  // A version 1 event (no resolved): its targets as this site reads them.
  CHECK(response_targets(duress({"group:clinics"}), "hq", kMesh) ==
        Ids{"clinic-north", "clinic-south", "clinic-east"});
  CHECK(response_targets(duress({"all"}), "clinic-south", kMesh) ==
        Ids{"clinic-north", "hq", "clinic-east"});
  // The origin answering its own alarm tells the others, not itself.
  CHECK(response_targets(duress({"hq", "clinic-north"}, {"hq", "clinic-north"}), "clinic-north",
                         kMesh) == Ids{"hq"});
  // A node this site does not know is left out: it could not be sent to.
  CHECK(response_targets(duress({"hq", "clinic-west"}, {"hq", "clinic-west"}), "hq", kMesh) ==
        Ids{"clinic-north"});
}

TEST_CASE("an acknowledgement travels at the priority of what it answers") {
  v1::Event ack;
  ack.set_ack(v1::ACK_RESPONDING);
  ack.set_sender("guard 3");
  ack.add_targets("all");  // whatever the row said: replaced
  CHECK(make_ack(ack, duress({"hq"}, {"hq"}), "hq", kMesh) == "");
  CHECK(ack.kind() == v1::KIND_ACK);
  CHECK(ack.priority() == v1::PRIORITY_DURESS);
  REQUIRE(ack.references_size() == 1);
  CHECK(ack.references(0).origin() == "clinic-north");
  CHECK(ack.references(0).seq() == 5);
  CHECK(Ids(ack.targets().begin(), ack.targets().end()) == Ids{"clinic-north"});
  CHECK(Ids(ack.resolved().begin(), ack.resolved().end()) == Ids{"clinic-north"});
  CHECK(ack.sender() == "guard 3");

  auto bulk = duress({"all"});
  bulk.set_kind(v1::KIND_NOTIFICATION);
  bulk.set_priority(v1::PRIORITY_BULK);
  v1::Event low;
  low.set_ack(v1::ACK_RESOLVED);
  CHECK(make_ack(low, bulk, "hq", kMesh) == "");
  CHECK(low.priority() == v1::PRIORITY_BULK);
}

TEST_CASE("what cannot be an acknowledgement says why") {
  v1::Event ack;
  ack.set_ack(v1::ACK_RESPONDING);
  // Only for the node that would answer it: nobody to tell.
  CHECK(make_ack(ack, duress({"clinic-north"}, {"clinic-north"}), "clinic-north", kMesh)
            .find("nobody to tell") != std::string::npos);
  // An answer to an answer.
  auto answered = duress({"hq"}, {"hq"});
  answered.set_kind(v1::KIND_ACK);
  CHECK(make_ack(ack, answered, "hq", kMesh).find("acknowledgement itself") != std::string::npos);
  // No state.
  v1::Event none;
  CHECK(make_ack(none, duress({"hq"}, {"hq"}), "hq", kMesh) != "");
  CHECK(ack_state_of("resolved") == v1::ACK_RESOLVED);
  CHECK(ack_state_of("done") == v1::ACK_UNSPECIFIED);
  CHECK(ack_state_name(v1::ACK_RESPONDING) == "responding");
}

TEST_CASE("an escalation carries its round, the alarm's priority and enough to act on alone") {
  auto alarm = duress({"clinic-north", "hq"});
  alarm.set_title("Duress");
  alarm.set_location("Psych ward, room 12");
  alarm.set_sender("nurse station 3");
  alarm.set_exercise(true);
  v1::Event e;
  e.set_origin("clinic-north");
  e.add_targets("group:hq");
  make_escalation(e, alarm, 2, 5);
  CHECK(e.kind() == v1::KIND_ESCALATION);
  CHECK(e.priority() == v1::PRIORITY_DURESS);
  REQUIRE(e.references_size() == 1);
  CHECK(e.references(0).origin() == "clinic-north");
  CHECK(e.references(0).seq() == 5);
  CHECK(e.escalation_round() == 2);
  CHECK(e.escalation_max() == 5);
  CHECK(e.title() == "Duress");
  CHECK(e.location() == "Psych ward, room 12");
  CHECK(e.sender() == "nurse station 3");
  CHECK(e.exercise());
  // Its targets are the rule's, not the alarm's.
  CHECK(std::vector<std::string>(e.targets().begin(), e.targets().end()) ==
        std::vector<std::string>{"group:hq"});
}

TEST_CASE("only the origin revises its alert, to the nodes it was for, at its priority") {
  const auto alarm = duress({"hq", "clinic-south"}, {"hq", "clinic-south"});
  v1::Event update;
  update.set_body("suspect moved to the car park");
  CHECK(make_revision(update, v1::KIND_UPDATE, alarm, "clinic-north", kMesh) == "");
  CHECK(update.kind() == v1::KIND_UPDATE);
  CHECK(update.priority() == v1::PRIORITY_DURESS);
  CHECK(Ids(update.targets().begin(), update.targets().end()) == Ids{"hq", "clinic-south"});
  REQUIRE(update.references_size() == 1);
  CHECK(update.references(0).seq() == 5);
  CHECK(update.body() == "suspect moved to the car park");

  v1::Event cancel;
  CHECK(make_revision(cancel, v1::KIND_CANCEL, alarm, "hq", kMesh).find("only its origin") == 0);
  auto ack = alarm;
  ack.set_kind(v1::KIND_ACK);
  CHECK(make_revision(cancel, v1::KIND_CANCEL, ack, "clinic-north", kMesh).find("not an alert") !=
        std::string::npos);
}

TEST_CASE("an alert's state comes from what references it, whatever their order") {
  auto alarm = duress({"hq"});
  auto step = [](v1::Kind kind, v1::AckState ack = v1::ACK_UNSPECIFIED) {
    v1::Event e;
    e.set_kind(kind);
    e.set_ack(ack);
    return e;
  };
  const auto responding = step(v1::KIND_ACK, v1::ACK_RESPONDING);
  const auto resolved = step(v1::KIND_ACK, v1::ACK_RESOLVED);
  const auto update = step(v1::KIND_UPDATE);
  const auto cancel = step(v1::KIND_CANCEL);
  const auto clear = step(v1::KIND_ALL_CLEAR);
  CHECK(alert_state(alarm, {}, 0) == "open");
  CHECK(alert_state(alarm, {update}, 0) == "open");
  CHECK(alert_state(alarm, {responding}, 0) == "acknowledged");
  CHECK(alert_state(alarm, {resolved, responding}, 0) == "resolved");
  CHECK(alert_state(alarm, {responding, resolved}, 0) == "resolved");
  CHECK(alert_state(alarm, {clear, resolved}, 0) == "cleared");
  CHECK(alert_state(alarm, {cancel, clear}, 0) == "cancelled");
  CHECK(alert_state(alarm, {clear, cancel}, 0) == "cancelled");
  // Past its expiry: a notice expires, a duress never does.
  alarm.set_expires_unix_ms(1000);
  CHECK(alert_state(alarm, {}, 2000) == "open");
  auto notice = alarm;
  notice.set_kind(v1::KIND_NOTIFICATION);
  notice.set_priority(v1::PRIORITY_NORMAL);
  CHECK(alert_state(notice, {}, 999) == "open");
  CHECK(alert_state(notice, {}, 2000) == "expired");
  CHECK(alert_state(notice, {responding}, 2000) == "acknowledged");
  // What is not an alert has no state.
  CHECK(alert_state(responding, {}, 0) == "");
}

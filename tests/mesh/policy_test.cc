#include "relay/mesh/policy.h"

#include <doctest/doctest.h>

#include <map>

#include "relay/mesh/types.h"

using namespace relay::mesh;

namespace {

const std::map<std::string, std::vector<std::string>> kGroups = {
    {"hq", {"hq"}}, {"clinic-north", {"clinics"}}, {"clinic-south", {"clinics"}}};

std::vector<std::string> groups_of(const std::string& id) {
  auto it = kGroups.find(id);
  return it == kGroups.end() ? std::vector<std::string>{} : it->second;
}

Sending sending(std::string origin, std::string kind, std::vector<std::string> targets,
                std::string type = "", std::string priority = "normal") {
  if (type.empty()) type = kind;
  return {std::move(origin), std::move(kind), std::move(priority), std::move(type),
          std::move(targets)};
}

/// docs/config.md's example: HQ may send a lockdown and nobody else may; a
/// clinic may send a duress to itself and HQ.
Policy example() {
  Policy p;
  p.send.push_back({"hq-lockdown", {"hq"}, {}, {"lockdown"}, {}, {"all"}, true});
  p.send.push_back({"no-lockdown", {"all"}, {}, {"lockdown"}, {}, {}, false});
  p.send.push_back({"clinic-duress", {"group:clinics"}, {"duress"}, {}, {}, {"origin", "hq"}, true});
  return p;
}

}  // namespace

TEST_CASE("policy: no [[send]] rules: any site sends anything to anyone") {
  const Policy none;
  CHECK(none.send_refusal(sending("clinic-north", "notification", {"all"}, "lockdown"), groups_of) == "");
  CHECK(none.send_refusal(sending("clinic-north", "duress", {"all"}), groups_of) == "");
}

TEST_CASE("policy: the first [[send]] rule that matches decides") {
  const Policy p = example();
  CHECK(p.send_refusal(sending("hq", "notification", {"all"}, "lockdown"), groups_of) == "");
  CHECK(p.send_refusal(sending("clinic-north", "notification", {"hq"}, "lockdown"), groups_of) ==
        "clinic-north may not send a notification of type \"lockdown\" at priority normal: [[send]] "
        "rule \"no-lockdown\" of the mesh policy refuses it");
  // Nothing matches a clinic's plain notification: allowed, as without rules.
  CHECK(p.send_refusal(sending("clinic-north", "notification", {"all"}), groups_of) == "");
  // A clinic's duress: to itself and hq, by name or through a group hq alone is in.
  CHECK(p.send_refusal(sending("clinic-north", "duress", {"clinic-north", "hq"}), groups_of) == "");
  CHECK(p.send_refusal(sending("clinic-north", "duress", {"group:hq"}), groups_of) ==
        "clinic-north may send a duress at priority normal only to origin, hq ([[send]] rule "
        "\"clinic-duress\" of the mesh policy), not to group:hq");
  CHECK(p.send_refusal(sending("clinic-north", "duress", {"hq", "clinic-south"}), groups_of)
            .ends_with("not to clinic-south"));
  CHECK(p.send_refusal(sending("clinic-north", "duress", {"all"}), groups_of).ends_with("not to all"));
  CHECK(p.send_refusal(sending("clinic-north", "duress", {"group:clinics"}), groups_of)
            .ends_with("not to group:clinics"));
  // hq's duress matches no rule.
  CHECK(p.send_refusal(sending("hq", "duress", {"all"}), groups_of) == "");
}

TEST_CASE("policy: [[send]] rules judge kinds, priorities and what they reach") {
  Policy p;
  p.send.push_back({"bulk-to-hq", {"all"}, {"notification"}, {}, {"bulk"}, {"hq"}, true});
  p.send.push_back({"clinics-within", {"group:clinics"}, {}, {}, {}, {"group:clinics", "hq"}, true});
  CHECK(p.send_refusal(sending("hq", "notification", {"hq"}, "", "bulk"), groups_of) == "");
  CHECK(p.send_refusal(sending("hq", "notification", {"clinic-north"}, "", "bulk"), groups_of) != "");
  // Not bulk: the second rule, which hq is not in; nothing else matches.
  CHECK(p.send_refusal(sending("hq", "notification", {"clinic-north"}), groups_of) == "");
  // A node is within a group that holds it.
  CHECK(p.send_refusal(sending("clinic-north", "test", {"clinic-south", "hq"}), groups_of) == "");
  CHECK(p.send_refusal(sending("clinic-north", "test", {"group:clinics"}), groups_of) == "");
  CHECK(p.send_refusal(sending("clinic-north", "test", {"all"}), groups_of) != "");
  // Acknowledgements, updates, cancels and clears are not [[send]]'s to judge.
  for (const char* kind : {"ack", "update", "cancel", "all-clear"})
    CHECK(p.send_refusal(sending("clinic-north", kind, {"all"}), groups_of) == "");
}

TEST_CASE("policy: an event is judged as it travels (a duress's priority, a missing type)") {
  relaymesh::v1::Event e;
  e.set_origin("clinic-north");
  e.set_kind(relaymesh::v1::KIND_DURESS);
  e.set_priority(relaymesh::v1::PRIORITY_NORMAL);  // a duress is a duress whatever it says
  e.add_targets("hq");
  const Sending s = sending_of(e);
  CHECK(s.priority == "duress");
  CHECK(s.type == "duress");
  CHECK(s.targets == std::vector<std::string>{"hq"});
  e.set_type("lockdown");
  CHECK(sending_of(e).type == "lockdown");
}

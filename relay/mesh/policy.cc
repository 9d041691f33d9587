#include "relay/mesh/policy.h"

#include <algorithm>

#include "relay/mesh/types.h"

namespace relay::mesh {

std::string Policy::clear_rule(const std::string& by, const std::vector<std::string>& by_groups,
                               const std::string& origin,
                               const std::vector<std::string>& origin_groups) const {
  if (by == origin) return "origin";
  for (const auto& rule : clear) {
    if (targets_node(rule.by, by, by_groups) && targets_node(rule.of, origin, origin_groups))
      return rule.name;
  }
  return "";
}

namespace {

bool matches(const std::vector<std::string>& allowed, const std::string& value) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

std::string joined(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

/// True if `target` (as written) reaches no node beyond `to`: "all" only
/// within "all", a group within itself or "all", a node within any target
/// that names it, and the origin within "origin" too.
bool within(const std::vector<std::string>& to, const std::string& target,
            const std::string& origin, const GroupsOf& groups_of) {
  if (contains(to, "all") || contains(to, target)) return true;
  if (target == "all" || target.starts_with("group:")) return false;
  if (target == origin && contains(to, "origin")) return true;
  return targets_node(to, target, groups_of(target));
}

}  // namespace

Sending sending_of(const v1::Event& event) {
  const std::string kind = kind_name(event.kind());
  // A duress is a duress whatever priority its origin gave it (make_event).
  const auto priority =
      event.kind() == v1::KIND_DURESS ? v1::PRIORITY_DURESS : event.priority();
  return {event.origin(), kind, priority_name(priority),
          event.type().empty() ? kind : event.type(),
          {event.targets().begin(), event.targets().end()}};
}

Sending sending_of(const Event& event) {
  const std::string kind = kind_name(event.kind);
  return {event.key.origin, kind, priority_name(event.priority),
          event.type.empty() ? kind : event.type, event.targets};
}

std::string Policy::send_refusal(const Sending& event, const GroupsOf& groups_of) const {
  if (event.kind != "notification" && event.kind != "duress" && event.kind != "test") return "";
  const auto origin_groups = groups_of(event.origin);
  for (const auto& rule : send) {
    if (!targets_node(rule.by, event.origin, origin_groups) || !matches(rule.kinds, event.kind) ||
        !matches(rule.types, event.type) || !matches(rule.priorities, event.priority)) {
      continue;
    }
    const std::string what = event.kind +
                             (event.type != event.kind ? " of type \"" + event.type + "\"" : "") +
                             " at priority " + event.priority;
    const std::string named = "[[send]] rule \"" + rule.name + "\" of the mesh policy";
    if (!rule.allow) return event.origin + " may not send a " + what + ": " + named + " refuses it";
    std::vector<std::string> beyond;
    for (const auto& t : event.targets)
      if (!within(rule.to, t, event.origin, groups_of)) beyond.push_back(t);
    if (beyond.empty()) return "";
    return event.origin + " may send a " + what + " only to " + joined(rule.to) + " (" + named +
           "), not to " + joined(beyond);
  }
  return "";
}

std::string clear_refusal(const std::string& by, const std::string& event_id,
                          const std::string& origin) {
  return by + " may not clear " + event_id + ": only its origin, " + origin +
         ", or a site a [[clear]] rule of the mesh policy names may";
}

}  // namespace relay::mesh

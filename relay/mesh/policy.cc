#include "relay/mesh/policy.h"

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

std::string clear_refusal(const std::string& by, const std::string& event_id,
                          const std::string& origin) {
  return by + " may not clear " + event_id + ": only its origin, " + origin +
         ", or a site a [[clear]] rule of the mesh policy names may";
}

}  // namespace relay::mesh

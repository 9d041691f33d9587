#include "common/escalation_config.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace relay {
namespace {

// All-clears, acknowledgements and escalations answer an alert; escalating
// them would escalate the answer, not the alarm.
constexpr std::array<std::string_view, 3> kKinds{"duress", "notification", "test"};
constexpr std::array<std::string_view, 4> kPriorities{"duress", "emergency", "normal", "bulk"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

void read_escalations(TomlSection& top, Config& config) {
  const toml::array* rules = top.tables("escalation");
  if (rules == nullptr) return;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    TomlSection section(*rules->get(i)->as_table(), top.file(),
                        "escalation[" + std::to_string(i + 1) + "]", top.issues(),
                        {"kind", "priority", "after", "to", "repeat", "max"});
    EscalationRule rule;
    if (auto kind = section.string("kind", false)) {
      if (one_of(kKinds, *kind)) {
        rule.kind = *kind;
      } else {
        section.error("kind", "\"" + *kind + "\": expected duress, notification or test");
      }
    }
    if (auto priority = section.string("priority", false)) {
      if (one_of(kPriorities, *priority)) {
        rule.priority = *priority;
      } else {
        section.error("priority",
                      "\"" + *priority + "\": expected duress, emergency, normal or bulk");
      }
    }
    // One way to match, so that which events a rule concerns is never in doubt.
    if (section.has("kind") == section.has("priority")) {
      section.error("kind", "expected either kind or priority (which events the rule escalates)");
    }
    // A second is the shortest a person could answer in; a day the longest an
    // alarm stays on the page (the open duress panel's window).
    if (auto d = section.duration("after", 1s, std::chrono::hours(24))) rule.after = *d;
    if (auto d = section.duration("repeat", 1s, std::chrono::hours(24))) rule.repeat = *d;
    if (auto max = section.integer("max", false, 1, 100)) rule.max = static_cast<std::uint32_t>(*max);
    rule.to = read_targets(section, "to", config, "the targets to escalate to",
                           "[\"group:hq-security\"]");
    config.escalations.push_back(std::move(rule));
  }
}

}  // namespace relay

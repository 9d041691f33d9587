#pragma once

// The mesh policy (docs/config.md, "Policy"): what a site may do to events
// it did not raise. One file, the same at every site; enforced where an act
// is made and again at every receiver. Pure data and rules, no I/O.

#include <string>
#include <vector>

namespace relay::mesh {

/// A `[[clear]]` rule: the sites `by` may clear (all-clear) the events of
/// the sites `of`. Both lists as targets are written: "all", node ids,
/// "group:NAME".
struct ClearRule {
  std::string name;
  std::vector<std::string> by;
  std::vector<std::string> of;
};

struct Policy {
  std::vector<ClearRule> clear;

  /// What lets `by` (in `by_groups`) clear an event raised by `origin` (in
  /// `origin_groups`): "origin" when it is the origin itself, else the name
  /// of the first [[clear]] rule that does; "" when nothing does.
  std::string clear_rule(const std::string& by, const std::vector<std::string>& by_groups,
                         const std::string& origin,
                         const std::vector<std::string>& origin_groups) const;
};

/// Why `by` may not clear `event_id` (an event of `origin`), for errors,
/// logs and receipts: one sentence naming the rule that would be needed.
std::string clear_refusal(const std::string& by, const std::string& event_id,
                          const std::string& origin);

}  // namespace relay::mesh

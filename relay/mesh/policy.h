#pragma once

// The mesh policy (docs/config.md, "Policy"): what a site may do to events
// it did not raise. One file, the same at every site; enforced where an act
// is made and again at every receiver. Pure data and rules, no I/O.

#include <functional>
#include <string>
#include <vector>

namespace relaymesh::v1 {
class Event;
}

namespace relay::mesh {

struct Event;

/// A `[[clear]]` rule: the sites `by` may clear (all-clear) the events of
/// the sites `of`. Both lists as targets are written: "all", node ids,
/// "group:NAME".
struct ClearRule {
  std::string name;
  std::vector<std::string> by;
  std::vector<std::string> of;
};

/// A `[[send]]` rule: which events the sites `by` may raise, and to whom.
/// An empty list of kinds, types or priorities matches any.
struct SendRule {
  std::string name;
  std::vector<std::string> by;          // targets as written
  std::vector<std::string> kinds;       // "notification", "duress", "test"
  std::vector<std::string> types;       // event types, e.g. "lockdown"
  std::vector<std::string> priorities;  // "bulk", "normal", "emergency", "duress"
  /// What an allowing rule lets them target: targets as written, and
  /// "origin" for the sending site itself. Unused when !allow.
  std::vector<std::string> to;
  bool allow = true;
};

/// An event as a [[send]] rule judges it: who raised it and what it is.
struct Sending {
  std::string origin;
  std::string kind;
  std::string priority;
  std::string type;  // its kind when it has no type of its own
  std::vector<std::string> targets;  // as written
};

/// An event as its [[send]] rules see it, from the wire or as the core holds it.
Sending sending_of(const relaymesh::v1::Event& event);
Sending sending_of(const Event& event);

/// The groups a node belongs to, as configured here.
using GroupsOf = std::function<std::vector<std::string>(const std::string& id)>;

struct Policy {
  std::vector<ClearRule> clear;
  std::vector<SendRule> send;

  /// Why the [[send]] rules refuse `event`, "" when they allow it. The first
  /// rule that matches its origin, kind, type and priority decides: a
  /// refusing rule refuses it, an allowing one allows it when every target
  /// is within the rule's `to`. No matching rule: allowed (the default is
  /// that any site may send anything to anyone). Only notifications,
  /// duresses and tests are judged: clears have [[clear]], and
  /// acknowledgements, updates and cancels follow the event they answer.
  std::string send_refusal(const Sending& event, const GroupsOf& groups_of) const;

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

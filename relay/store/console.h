#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "common/config.h"

namespace relay::store {

/// What the status page shows of this node's tables, read in one short
/// read-only transaction. Every figure is bounded work (small tables, LIMITs).
struct ConsoleView {
  struct Rejected {
    std::int64_t id = 0;
    std::int64_t at_unix_ms = 0;
    std::string reason;
  };
  /// Rows local software inserted that relayd has not claimed yet.
  struct Outbox {
    std::int64_t backlog = 0;
    std::optional<std::int64_t> oldest_age_ms;
    std::int64_t rejected_total = 0;
    std::int64_t rejected_last_hour = 0;
    std::vector<Rejected> recent_rejected;  // newest first, a few
  } outbox;

  /// A message_queue row no consumer has taken yet.
  struct QueueRow {
    std::int64_t id = 0;
    std::string type;
    std::int64_t age_ms = 0;
    int priority = 0;
    std::string event_id;  // "origin:seq", empty for supervision rows
    /// The relay-runner groups consuming its type that have not finished it
    /// (handled or dead-lettered), and those that have; both empty when no
    /// group consumes it (a plain consumer's type).
    std::vector<std::string> groups_pending{};
    std::vector<std::string> groups_done{};
  };
  struct Queue {
    std::int64_t rows = 0;
    std::optional<QueueRow> oldest;
    std::optional<QueueRow> oldest_duress;
  } queue;

  /// An event in the log, with each target's receipt where this node is its origin.
  struct Event {
    std::string id;
    std::string origin;
    std::uint64_t seq = 0;
    std::string kind, priority, title, location, sender;
    bool exercise = false;
    std::int64_t created_unix_ms = 0;
    std::int64_t stored_unix_ms = 0;
    std::vector<std::string> targets;  // as written: all, ids, group:NAME
    std::string cleared_by;            // the all-clear that cleared it, if any
    /// Why the mesh policy's [[send]] rules refuse it ("" within them): a
    /// duress is delivered all the same, and flagged with this.
    std::string outside_policy;
    /// An alert's state as the events referencing it make it (open,
    /// acknowledged, resolved, cleared, cancelled, expired:
    /// mesh::alert_state); "" for what is not an alert.
    std::string state;
    /// Those events, in the order stored here: each step of its life.
    struct Step {
      std::string id;    // the step's own event, "site:seq"
      std::string kind;  // "ack", "update", "cancel", "all-clear", "escalation"
      std::string site;  // where it was made (its origin)
      std::string by;    // who, as they gave it
      std::string text;  // an update's new text, an acknowledgement's or cancel's note
      std::string ack;   // an acknowledgement's "responding" or "resolved"
      std::uint32_t round = 0;  // an escalation's
      std::int64_t created_unix_ms = 0;  // on its site's clock
    };
    std::vector<Step> history;
    /// Own events only: per target node, delivered at (Unix ms) or 0 while pending.
    bool own = false;
    std::vector<std::pair<std::string, std::int64_t>> receipts;
    /// Who acknowledged it, where, how and when (Unix ms on the
    /// acknowledging site's clock), oldest first: the history's acknowledgements.
    struct Ack {
      std::string by, site, state;
      std::int64_t created_unix_ms = 0;
    };
    std::vector<Ack> acks;
    /// Open own duress alarms only: how many times this node escalated it
    /// ([[escalation]]), and the most its rule sends.
    std::uint32_t escalations = 0;
    std::uint32_t escalation_max = 0;
  };
  std::vector<Event> recent;       // newest first
  std::vector<Event> open_duress;  // not cleared or cancelled, stored within the last 24 h; newest first
  /// Own events a target refused under the mesh policy in the last 24 h
  /// (its receipt says OUTCOME_REFUSED), newest first, a few; and how many.
  struct Refused {
    std::string id, target;
    std::int64_t at_unix_ms = 0;
  };
  std::vector<Refused> refused;
  std::int64_t refused_last_day = 0;
  /// Own events (of the last 1,000) whose target has not confirmed, per target.
  std::map<std::string, std::int64_t> receipts_pending;
  std::int64_t database_now_unix_ms = 0;
  /// The server's durability settings (relay/store/durability.h).
  bool fsync = true;
  bool full_page_writes = true;
  std::string synchronous_commit = "on";
};

/// Reads the view. `recent` events are listed; open duress alarms are
/// those of the last 24 hours that no all-clear or cancel references.
ConsoleView read_console(pqxx::transaction_base& tx, const Config& config, std::size_t recent = 20);

/// A target's receipt: when it answered (Unix ms) and what it did
/// (relaymesh.v1.Outcome: delivered, late, or withheld and why).
struct TargetReceipt {
  std::int64_t at = 0;
  int outcome = 0;
};

/// Receipts recorded at the origin for one of its events, per target.
/// Targets without one are still pending.
std::map<std::string, TargetReceipt> receipts_of(pqxx::transaction_base& tx,
                                                 const std::string& origin, std::int64_t seq);

/// How a receipt's outcome reads: "delivered", "not delivered: expired"...
std::string outcome_text(int outcome);

/// The node ids of the mesh (this node and its peers) that `targets` name.
std::vector<std::string> target_nodes(const Config& config,
                                      const std::vector<std::string>& targets);

}  // namespace relay::store

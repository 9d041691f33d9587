#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "relay/mesh/seq_set.h"
#include "relay/mesh/types.h"

namespace relay::mesh {

/// One batch of durable writes the core asks for. The store applies the
/// whole batch in one transaction, each part idempotently, and then calls
/// Node::on_stored with the ticket. Until then the core acknowledges none of
/// it: durable before ack.
struct StoreBatch {
  std::uint64_t ticket = 0;
  /// Highest priority among the contents; the store commits duress first.
  v1::Priority priority = v1::PRIORITY_BULK;
  /// Replicated events to log. At a target each also gets one pending
  /// receipt with its outcome, and a delivered one a message_queue row, in
  /// the same transaction.
  struct Write {
    EventPtr event;
    bool target = false;  // this node is one of its targets
    v1::Outcome outcome = v1::OUTCOME_DELIVERED;
    /// This node may have delivered it before its database was restored.
    bool redelivered = false;
    /// The outbox row an own event was claimed from (0: none), logged with it.
    std::int64_t outbox_id = 0;
    /// OUTCOME_REFUSED: why, for the relay.policy row delivered instead.
    std::string refusal = {};
    /// A duress beyond its origin's [[send]] rights, delivered all the same: why.
    std::string outside_policy = {};
    bool delivers() const {
      return target && (outcome == v1::OUTCOME_DELIVERED || outcome == v1::OUTCOME_DELIVERED_LATE);
    }
    /// It gets a message_queue row: its own, or a relay.policy row saying
    /// it was refused.
    bool queued() const { return delivers() || (target && outcome == v1::OUTCOME_REFUSED); }
  };
  std::vector<Write> events;
  /// At an origin: receipts from targets, to record.
  std::vector<Receipt> receipts;
  /// At a target: receipts the origin has recorded, to forget.
  std::vector<Receipt> receipts_confirmed;
  /// At an origin: own events that every peer now holds; no resend at restart.
  std::vector<EventKey> replicated;
  /// Per peer, how far it has stored this node's own events: every own seq
  /// up to this one is held there or was never issued (relay_peer_held).
  /// Retention prunes an own event only once every configured peer has it.
  std::vector<std::pair<std::string, std::uint64_t>> peer_held;
  /// Supervision alarms and clears, as message_queue rows of type relay.supervision.
  std::vector<Alarm> alarms;
  /// Seqs settled per origin, none of them held here (pruned elsewhere, or
  /// skipped by their origin): held from now on, never delivered. The core
  /// counts them as held once this batch is durable (SeqSet::settle_range).
  struct Settle {
    std::string origin;
    SeqRange range;
  };
  std::vector<Settle> settled;

  bool empty() const {
    return events.empty() && receipts.empty() && receipts_confirmed.empty() && replicated.empty() &&
           peer_held.empty() && alarms.empty() && settled.empty();
  }
};

/// What the store completed, as reported back to the core.
struct StoreDone {
  std::uint64_t ticket = 0;
  /// Commit time of the transaction: when its deliveries happened.
  std::int64_t commit_unix_ms = 0;
  /// message_queue rows were inserted: time to wake the local consumers.
  bool delivered = false;
  /// The database refused the batch itself (not an outage): nothing of it
  /// is stored or acked; senders retry, the core retries its alarm changes,
  /// and each refusal is logged.
  bool failed = false;
};

/// A request for stored events, to answer a peer's pull or digest.
struct LoadRequest {
  std::uint64_t ticket = 0;
  std::vector<EventKey> keys;
};

/// What a node's store holds at start: enough for the core to resume.
struct Snapshot {
  /// Per origin, the seqs in the event log (and those settled: pruned below
  /// it, or skipped by their origin).
  std::map<std::string, SeqSet> stored;
  /// The all-clears and cancels in the log: what they end (as the policy
  /// lets them) is never delivered here.
  std::vector<EventPtr> endings;
  /// The highest own seq that may exist anywhere, as far as this node knows
  /// (its state directory's high-water mark): own seqs up to it that the
  /// database lacks are pulled back from peers, or settled if none has them.
  std::uint64_t own_high_water = 0;
  /// The database was restored or rebuilt: what is delivered again here
  /// while catching up is flagged as possibly delivered before.
  bool restored = false;
  /// Own events not yet known to be held by every peer: resent at start.
  std::vector<EventPtr> unreplicated;
  /// Receipts this node owes origins that have not confirmed them.
  std::vector<Receipt> receipts_owed;
  /// Alarms raised and not yet cleared (peer, reason).
  std::vector<std::pair<std::string, std::string>> open_alarms;
};

/// The store boundary. Calls return at once; completions come back later
/// through Node::on_stored and Node::on_loaded, on the core's thread.
class Store {
 public:
  virtual ~Store() = default;
  /// Persist a batch durably, then report StoreDone.
  virtual void persist(StoreBatch batch) = 0;
  /// Load these events (those still in the log), then report them.
  virtual void load(LoadRequest request) = 0;
};

}  // namespace relay::mesh

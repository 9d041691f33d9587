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
  /// Replicated events to log. Those with deliver set also get one
  /// message_queue row and one pending receipt, in the same transaction.
  struct Write {
    EventPtr event;
    bool deliver = false;
  };
  std::vector<Write> events;
  /// At an origin: receipts from targets, to record.
  std::vector<Receipt> receipts;
  /// At a target: receipts the origin has recorded, to forget.
  std::vector<Receipt> receipts_confirmed;
  /// At an origin: own events that every peer now holds; no resend at restart.
  std::vector<EventKey> replicated;
  /// Supervision alarms and clears, as message_queue rows of type relay.supervision.
  std::vector<Alarm> alarms;

  bool empty() const {
    return events.empty() && receipts.empty() && receipts_confirmed.empty() && replicated.empty() &&
           alarms.empty();
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
  /// is stored or acked; senders retry, and each refusal is logged.
  bool failed = false;
};

/// A request for stored events, to answer a peer's pull or digest.
struct LoadRequest {
  std::uint64_t ticket = 0;
  std::vector<EventKey> keys;
};

/// What a node's store holds at start: enough for the core to resume.
struct Snapshot {
  /// Per origin, the seqs in the event log (and those pruned below it).
  std::map<std::string, SeqSet> stored;
  /// Own events not yet known to be held by every peer: resent at start.
  std::vector<EventPtr> unreplicated;
  /// Receipts this node owes origins that have not confirmed them.
  std::vector<Receipt> receipts_owed;
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

#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "common/config.h"
#include "common/crypto.h"
#include "proto/relaymesh.pb.h"
#include "relay/mesh/types.h"
#include "relay/store/numbering.h"

namespace relay::store {

struct ClaimResult {
  /// The new events, durable and signed, most urgent first.
  std::vector<mesh::EventPtr> events;
  /// Rows moved to outbox_rejected, each logged with its reason.
  std::size_t rejected = 0;
  /// As many rows as asked for: there may be more, claim again at once.
  bool full = false;
  /// Some were delivered into this node's own message_queue.
  bool delivered = false;
  /// Own events the mesh holds under a seq this node numbered twice: they
  /// replaced this node's own there (heal_conflict; Node::replace_own).
  std::vector<mesh::EventPtr> replaced;
};

/// Why `event` (origin and seq not yet set) cannot be sent from this node:
/// an unknown target, an all-clear without a reference, an event the mesh
/// policy refuses (not a duress), a reserved relay.*
/// type, a value some site could not store, too large for a datagram (with
/// its targets resolved). Empty if it can.
std::string check_event(const relaymesh::v1::Event& event, const Config& config);

/// Fills the event's `resolved` with the node ids its targets name in this
/// node's configuration, so that every site agrees on who it is for; left
/// empty for "all".
void resolve_targets(relaymesh::v1::Event& event, const Config& config);

/// Why `by` may not clear event `origin`:`seq` under the mesh policy
/// (relay/mesh/policy.h); "" when it may.
std::string clear_refusal(const Config& config, const std::string& by, const std::string& origin,
                          std::uint64_t seq);

/// Why the mesh policy's [[send]] rules refuse `event` (a draft without an
/// origin is this node's); "" when they allow it. A duress is never refused
/// for it: it goes out flagged instead.
std::string send_refusal(const Config& config, const relaymesh::v1::Event& event);

/// Claims up to `limit` outbox rows, most urgent first, in one transaction:
/// `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take a row twice;
/// seqs from this node's sequence row, whose lock orders concurrent
/// claimers, above `numbering`'s high-water mark (raised and fsynced before
/// the commit); each event signed and logged (and delivered here if this
/// node is a target). A row that cannot become an event (unknown target,
/// too large, bad reference, reserved type, already expired, a value the
/// database cannot convert) moves to outbox_rejected with the reason, and
/// the others are claimed all the same. `urgent_only` claims only duress and
/// emergency rows: what the relay still takes under back-pressure, or while
/// its numbering is still learning from peers.
/// Numbers `events` (NumberingState, else the database's sequence), signs
/// and logs them in `tx` (each with its outbox row id, if `outbox_ids` is
/// given), delivered here too where this node is a target and
/// `deliver_here`; appends them to `out`; true if any was delivered here.
/// Throws if a seq was in the log already: an event is never sent that is
/// not in the log.
bool number_and_log(pqxx::transaction_base& tx, const Config& config,
                    const crypto::SigningKey& key, NumberingState* numbering,
                    std::vector<relaymesh::v1::Event>& events, bool deliver_here,
                    std::vector<mesh::EventPtr>& out,
                    const std::vector<std::int64_t>& outbox_ids = {});

/// An own seq was numbered twice (docs/wire.md, "Numbering"): the mesh holds
/// `mesh_version` under own->key. Once per seq (relay_healed; an empty
/// result after): the log takes it under that seq, and `own` is numbered
/// afresh (numbering jumps), for every target but this node, referencing
/// the seq it had, signed and logged: the result's event, to send (none if
/// this node is its only target); `replaced` holds `mesh_version`.
ClaimResult heal_conflict(pqxx::connection_base& conn, const Config& config,
                          const crypto::SigningKey& key, NumberingState& numbering,
                          const mesh::EventPtr& own, const mesh::EventPtr& mesh_version);

ClaimResult claim_outbox(pqxx::connection_base& conn, const Config& config,
                         const crypto::SigningKey& key, std::size_t limit, bool urgent_only = false,
                         NumberingState* numbering = nullptr);

}  // namespace relay::store

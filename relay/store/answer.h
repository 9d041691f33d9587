#pragma once

// Acknowledgements made at this site: the one rule of docs/wire-v3.md
// (what a site says about an event is an event of that site) applied to
// the event as this site holds it.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "common/config.h"
#include "proto/relaymesh.pb.h"
#include "relay/mesh/node_io.h"

namespace relay::store {

/// Every node this site's configuration knows, itself first, with its groups.
std::vector<mesh::PeerInfo> mesh_members(const Config& config);

/// The event `id` ("origin:seq") as this node's log holds it; nullopt if
/// it does not (never received, or pruned).
std::optional<relaymesh::v1::Event> logged_event(pqxx::transaction_base& tx,
                                                 const std::string& origin, std::int64_t seq);

/// Makes `ack` (a KIND_ACK with its state, by and note; origin this node)
/// the acknowledgement of the event it references, as this node's log
/// holds that event: its priority, its origin and targets (relay/mesh/
/// response.h), resolved here. Returns why it cannot be, naming the event
/// ("... has not received it"), or "".
std::string answer_from_log(pqxx::transaction_base& tx, const Config& config,
                            relaymesh::v1::Event& ack);

/// The same for an event held elsewhere (relayd's memory, with the
/// database down): `referenced` as this node holds it.
std::string answer(const Config& config, relaymesh::v1::Event& ack,
                   const relaymesh::v1::Event& referenced);

/// What this node's log holds of alerts' lives (all-clears,
/// acknowledgements, updates, cancels, escalations of the last 8 days), by
/// the id ("origin:seq") of the event each references, in the order stored.
/// An all-clear beyond its maker's rights (the mesh policy) is left out: it
/// ends nothing.
std::map<std::string, std::vector<relaymesh::v1::Event>> steps_in_log(pqxx::transaction_base& tx,
                                                                      const Config& config);

/// Makes `revision` (a KIND_UPDATE or KIND_CANCEL with its text; origin this
/// node) the update or cancel of the own alert it references, as this node's
/// log holds it (relay/mesh/response.h). Returns why it cannot be, naming the
/// event ("... was cancelled already"), or "".
std::string revise_from_log(pqxx::transaction_base& tx, const Config& config,
                            relaymesh::v1::Event& revision);

/// A person's acknowledgement of an event, as this node's log holds it.
struct Acknowledgement {
  std::string id;     // the acknowledgement's own, "site:seq"
  std::string site;   // where it was made (its origin)
  std::string by;     // who, as they gave it
  std::string state;  // "responding" or "resolved"
  std::string note;
  std::int64_t created_unix_ms = 0;  // on its site's clock
};
/// The acknowledgements of event (origin, seq) in this node's log, oldest first.
std::vector<Acknowledgement> acks_of(pqxx::transaction_base& tx, const std::string& origin,
                                     std::int64_t seq);

/// The first [[escalation]] rule that concerns `event` (by its kind or its
/// priority), or nullptr.
const EscalationRule* escalation_rule(const Config& config, const relaymesh::v1::Event& event);

/// An own event of the last 24 hours that an [[escalation]] rule concerns,
/// no person acknowledged (a KIND_ACK of any site references it), no
/// all-clear cleared and its origin did not cancel, as this node's log holds it: the escalation timers
/// live here, so that a kill -9 neither loses nor repeats a round.
struct Unanswered {
  relaymesh::v1::Event event;
  std::uint32_t rounds = 0;               // the highest round of its escalations in the log
  std::int64_t last_round_unix_ms = 0;    // when that round was made; 0 before the first
};
/// Those events, newest first (at most 100).
std::vector<Unanswered> unanswered(pqxx::transaction_base& tx, const Config& config);

/// How many times each event of `origin` was escalated (the highest round
/// of its escalations in this node's log), by event id "origin:seq".
std::map<std::string, std::uint32_t> escalation_rounds(pqxx::transaction_base& tx,
                                                       const std::string& origin);

}  // namespace relay::store

#pragma once

// Acknowledgements made at this site: the one rule of docs/wire-v3.md
// (what a site says about an event is an event of that site) applied to
// the event as this site holds it.

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

}  // namespace relay::store

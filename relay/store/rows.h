#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/relaymesh.pb.h"
#include "relay/mesh/types.h"

namespace relay::store {

namespace v1 = relaymesh::v1;

/// A PostgreSQL array literal of text: every element quoted and escaped,
/// for parameters such as $1::text[] (libpqxx 6.4 has no array parameters).
std::string text_array(const std::vector<std::string>& values);
/// A PostgreSQL array literal of integers.
std::string int_array(const std::vector<std::int64_t>& values);
/// Lower-case hex of bytes, for decode($n, 'hex').
std::string to_hex(std::string_view bytes);

using mesh::kind_name;
using mesh::priority_name;
/// The message_queue type of an event: its local type, else its kind;
/// "relay.ack" for an acknowledgement, "relay.escalation" for an escalation.
std::string queue_type(const v1::Event& event);
/// How an event reached this node's message_queue.
struct Arrival {
  /// It arrived long after it was raised (relaymesh.v1.OUTCOME_DELIVERED_LATE).
  bool late = false;
  /// This node may have delivered it before its database was restored.
  bool redelivered = false;
  /// A duress beyond its origin's [[send]] rights: why (data "outside_policy").
  std::string outside_policy = {};
};

/// True if `text` is JSON that PostgreSQL's jsonb takes as it is (strict
/// JSON, no \u0000, numbers within numeric's range, nesting of at most 100):
/// event data that may travel and be queued verbatim, its numbers exact.
bool jsonb_safe(const std::string& text);

/// The message_queue data of an event: a JSON object with id ("origin:seq"),
/// origin, seq, kind, priority, title, body, location, sender, targets,
/// created and expires (Unix ms), references, exercise, late, redelivered,
/// and data (the event's own JSON, or null if what arrived is not JSON).
/// An acknowledgement's row instead: id, references (the acknowledged
/// event's id), state (responding, resolved), by, site (the acknowledging
/// origin), note, created_at (Unix ms on its site's clock) and priority.
/// An escalation's row: id, references, round, max, title, location,
/// sender (the escalated event's), origin, created_at, priority, exercise.
/// Built with protobuf's JSON printer, which does the escaping.
std::string queue_json(const v1::Event& event, Arrival arrival = {});
/// A relay.policy row: the event a site sent beyond its rights under the
/// mesh policy (`refused`, its kind, who sent it, what it referenced) and why.
std::string refusal_json(const v1::Event& event, const std::string& why);

}  // namespace relay::store

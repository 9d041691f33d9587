#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto/relaymesh.pb.h"

namespace relay::mesh {

namespace v1 = relaymesh::v1;

using Time = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;
using std::chrono::milliseconds;

/// An event's identity: (origin, seq), never reused.
struct EventKey {
  std::string origin;
  std::uint64_t seq = 0;
  auto operator<=>(const EventKey&) const = default;
};

/// An event as the core holds it: the signed bytes that travel and are
/// stored, and the fields the core decides with. Shared, never modified.
struct Event {
  EventKey key;
  v1::Priority priority = v1::PRIORITY_NORMAL;
  v1::Kind kind = v1::KIND_NOTIFICATION;
  std::string type;                   // as its origin wrote it; "" for none
  std::vector<std::string> targets;   // as written: "all", ids, "group:NAME"
  std::vector<std::string> resolved;  // node ids the origin resolved them to (v2)
  std::int64_t created_unix_ms = 0;   // on the origin's clock
  std::int64_t expires_unix_ms = 0;   // on the origin's clock; 0: never
  std::vector<EventKey> references;   // what an all-clear clears
  v1::SignedEvent signed_event;
  /// Serialized size of signed_event, for packing datagrams.
  std::size_t wire_size = 0;
};
using EventPtr = std::shared_ptr<const Event>;

/// "notification", "duress", ... as in the outbox, in message_queue and in
/// the mesh policy.
std::string kind_name(v1::Kind kind);
/// "duress", "emergency", "normal", "bulk".
std::string priority_name(v1::Priority priority);

/// True if `targets` ("all", node ids, "group:NAME") include the node `id`
/// that belongs to `groups`.
bool targets_node(const std::vector<std::string>& targets, const std::string& id,
                  const std::vector<std::string>& groups);
/// True if `event` is for node `id`: by the ids its origin resolved the
/// targets to when it carries them, else by `groups` as configured here.
bool targets_node(const Event& event, const std::string& id,
                  const std::vector<std::string>& groups);

/// What an event of `kind` does to the events it references wherever it is
/// held first: an all-clear withholds them as cleared, a cancel as
/// cancelled; OUTCOME_DELIVERED for every other kind (it withholds nothing).
inline v1::Outcome withholds_as(v1::Kind kind) {
  if (kind == v1::KIND_ALL_CLEAR) return v1::OUTCOME_CLEARED;
  if (kind == v1::KIND_CANCEL) return v1::OUTCOME_CANCELLED;
  return v1::OUTCOME_DELIVERED;
}

/// The relaymesh.v1.Feature bits a peer must have announced before it is
/// sent an event of `kind` (an older build refuses an unknown kind, and the
/// whole datagram with it).
inline std::uint64_t features_needed(v1::Kind kind) {
  if (kind == v1::KIND_ACK || kind == v1::KIND_ESCALATION) return v1::FEATURE_RESPONSE_LOOP;
  if (kind == v1::KIND_UPDATE || kind == v1::KIND_CANCEL) return v1::FEATURE_UPDATE_CANCEL;
  return 0;
}
/// The bits a peer must have announced before it is sent `event`: those of
/// its kind, and for an all-clear of another site's event the policy's (a
/// build before it would let that all-clear withhold what it names,
/// whatever the mesh policy says).
inline std::uint64_t features_needed(const Event& event) {
  std::uint64_t needed = features_needed(event.kind);
  if (event.kind == v1::KIND_ALL_CLEAR) {
    for (const auto& r : event.references)
      if (r.origin != event.key.origin) needed |= v1::FEATURE_POLICY;
  }
  return needed;
}
/// True if a node that announced `features` takes `event`.
inline bool takes(std::uint64_t features, const Event& event) {
  const std::uint64_t needed = features_needed(event);
  return (features & needed) == needed;
}

/// Builds the core's view of a signed event whose bytes parsed to `parsed`.
EventPtr make_event(const v1::SignedEvent& signed_event, const v1::Event& parsed);

/// A target's confirmation that it delivered an event into its message_queue.
struct Receipt {
  EventKey event;
  std::string target;
  std::int64_t delivered_unix_ms = 0;
  /// Delivered, or logged and withheld (expired, too old, cleared).
  v1::Outcome outcome = v1::OUTCOME_DELIVERED;
  auto operator<=>(const Receipt&) const = default;
};

/// A supervision alarm about a peer: raised when it has been unreachable for
/// supervision_timeout, cleared when it is heard again.
/// The reasons of alarms about peers (relay_alarms.reason).
inline constexpr const char* kUnreachable = "unreachable";
inline constexpr const char* kDatabaseDown = "database down";

struct Alarm {
  std::string peer;
  bool raised = true;
  std::int64_t silent_since_ms = 0;  // steady-clock age, for the message
  /// What is wrong with the peer: "unreachable" (supervision), or
  /// "database down" (it answers, and says its store is away).
  std::string reason = kUnreachable;
  /// Said with the row when there is more to it ("no longer configured").
  std::string note{};
};

}  // namespace relay::mesh

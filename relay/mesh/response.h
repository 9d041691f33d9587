#pragma once

// What a site says about an event is an event of that site
// (docs/wire-v3.md): an acknowledgement references the event it answers,
// travels at its priority, and goes to its origin and the nodes it was for.
// Pure: every site that makes one computes the same from the same event.

#include <string>
#include <vector>

#include "relay/mesh/node_io.h"

namespace relay::mesh {

/// Who hears what `self` says about `referenced`: its origin, then the nodes
/// it was for (those its origin resolved, else its targets as `mesh` reads
/// them), each once, none but members of `mesh`, and never `self`. `mesh`
/// lists every node this site knows, itself included.
std::vector<std::string> response_targets(const v1::Event& referenced, const std::string& self,
                                          const std::vector<PeerInfo>& mesh);

/// Makes `ack` (its state, by and note already set) the acknowledgement of
/// `referenced` by `self`: kind, reference, priority, targets and resolved.
/// Returns why it cannot be one, or "".
std::string make_ack(v1::Event& ack, const v1::Event& referenced, const std::string& self,
                     const std::vector<PeerInfo>& mesh);

/// Makes `revision` (its text, sender and note already set) the update or
/// cancel (`kind`) of `referenced` by `self`, which must be its origin: kind,
/// reference, priority, targets and resolved; an update without a title or
/// location keeps the alert's. Returns why it cannot be one, or "".
std::string make_revision(v1::Event& revision, v1::Kind kind, const v1::Event& referenced,
                          const std::string& self, const std::vector<PeerInfo>& mesh);

/// Makes `escalation` (its origin, seq, created time and targets set by the
/// caller) round `round` of `max` of the escalation of `referenced`: kind,
/// the one reference, its priority, and its title, body, location, sender
/// and exercise flag, so that a consumer can act on the escalation alone.
void make_escalation(v1::Event& escalation, const v1::Event& referenced, std::uint32_t round,
                     std::uint32_t max);

/// The state of `event`, an alert, derived from `steps`, the events that
/// reference it (docs/wire-v3.md: never sent as state): "cancelled" by its
/// origin, else "cleared" by an all-clear, else "resolved" or
/// "acknowledged" by a person's acknowledgement, else "expired" past its
/// expiry on the clock `now_unix_ms` (never a duress), else "open". "" for
/// what is not an alert (an acknowledgement, an update...).
std::string alert_state(const v1::Event& event, const std::vector<v1::Event>& steps,
                        std::int64_t now_unix_ms);

/// "responding" or "resolved" (as in message_queue rows and the outbox);
/// "" for anything else.
std::string ack_state_name(v1::AckState state);
/// The state a name gives; ACK_UNSPECIFIED for an unknown name.
v1::AckState ack_state_of(const std::string& name);

}  // namespace relay::mesh

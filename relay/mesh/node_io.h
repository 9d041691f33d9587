#pragma once

// What the protocol core exchanges with its users besides the Node class
// itself: where its datagrams go, the peers and tuning it is made with, and
// the counters and peer states it reports.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/mesh/pacer.h"
#include "relay/mesh/types.h"

namespace relay::mesh {

/// Paths to a peer (its configured addresses): bit i stands for path i.
using PathSet = std::uint32_t;
/// Addresses a peer may have (fibre, LTE, ...).
inline constexpr std::size_t kMaxPaths = 8;

/// Where the core's datagrams go. The runtime seals and sends them; the
/// simulator puts them on simulated links. Must not call back into the Node.
class Transport {
 public:
  virtual ~Transport() = default;
  /// Sends `body` to `peer` on each path in `paths`: the same sealed
  /// datagram on each. Returns its wire counter (rising per sender), or 0
  /// when nothing left now (it waits for a session with the peer).
  virtual std::uint64_t send(const std::string& peer, const v1::Datagram& body, PathSet paths) = 0;
};

/// How a datagram arrived, for the transport feedback.
struct Arrival {
  std::uint64_t counter = 0;  // its wire counter; 0: unknown, no feedback owed
  std::size_t bytes = 0;      // its size on the wire
};

/// A peer from the configuration.
struct PeerInfo {
  std::string id;
  std::vector<std::string> groups;
  /// Its addresses, in order of preference (1 to kMaxPaths).
  std::size_t paths = 1;
  /// The relaymesh.v1.Feature bits it announced (the runtime learns them
  /// from its hellos: Node::set_peer_features); 0 until then.
  std::uint64_t features = 0;
};

/// Tuning of the protocol. Defaults suit a WAN of tens of sites.
struct Tuning {
  /// Largest datagram body the core builds (the wire layer adds its header and tag).
  std::size_t max_body = 1100;
  /// What the wire layer adds to a body (header, sender id, tag), for pacing.
  std::size_t wire_overhead = 61;
  /// Pacing and congestion control per peer (relay/mesh/pacer.h).
  PacerTuning pacing;
  /// A peer that answers probes but has not acked events outstanding this
  /// long, and sends no report of its store, is degraded (its database is
  /// down, its disk full): back-pressure stops waiting for it.
  Duration degraded_after = std::chrono::seconds(20);
  /// Retransmission timeout bounds: a duress event retries sooner, and
  /// backs off to once a second at most, so that one lost on a path that
  /// carries a flood (or came back) never waits out a long backoff.
  Duration rto_floor = milliseconds(200);
  Duration rto_floor_duress = milliseconds(50);
  Duration rto_cap = std::chrono::seconds(10);
  Duration rto_cap_duress = std::chrono::seconds(1);
  /// Events in flight (sent, unacked) per peer; the rest wait in priority order.
  /// Duress is never held back by it. `window` bounds a peer sent to
  /// unpaced (it sends no feedback); a paced peer's pacer keeps the queue
  /// at the bottleneck short, and `paced_window` only bounds memory and
  /// retries (a lossy 10 Mbit/s path keeps a few thousand in flight).
  std::size_t window = 512;
  std::size_t paced_window = 8192;
  /// Events waiting per peer. Own events beyond this stop the outbox claim
  /// (back-pressure); forwarded ones are left to anti-entropy.
  std::size_t max_queue = 20'000;
  /// After this many unanswered sends to a peer, also ask another live peer
  /// to deliver the event (path diversity), and again every as many more.
  int relay_after = 3;
  /// Anti-entropy: one exchange with a random live peer per interval, moving
  /// at most `entropy_budget` events each way.
  Duration entropy_interval = milliseconds(1000);
  std::size_t entropy_budget = 64;
  /// Events served for one Pull: large, so that a node back from an outage
  /// catches up in a few exchanges.
  std::size_t pull_budget = 1024;
  /// Liveness: each peer is probed every probe_interval, but the node sends
  /// at most max_probe_rate probes a second, so large meshes probe each peer
  /// less often. Unanswered direct probes go indirect through other peers.
  Duration probe_interval = std::chrono::seconds(2);
  double max_probe_rate = 50;
  Duration probe_timeout = milliseconds(500);
  std::size_t indirect_probes = 2;
  /// A peer not confirmed alive for this many probe periods is suspect;
  /// delivery to it then also goes through relays.
  int suspect_periods = 3;
  /// A peer silent this long is treated as down: its queues are dropped
  /// (the events are durable; anti-entropy catches it up on return).
  Duration down_after = std::chrono::seconds(60);
  /// A peer unreachable this long raises a supervision alarm.
  Duration supervision_timeout = std::chrono::seconds(90);
  /// Receipts per Receipts datagram, and how many are kept in memory per
  /// origin (the rest stay durable in the store and come back at restart).
  std::size_t max_receipts_owed = 50'000;
  /// Recent events kept in memory to serve retries and pulls without the store.
  std::size_t cache_limit = 20'000;
  /// Events older than this on their origin's clock are logged but not
  /// delivered (duress excepted); older than late_after, delivered as late.
  Duration max_age = std::chrono::hours(24);
  Duration late_after = std::chrono::seconds(60);
  /// After every start this node asks each peer what it holds of its own
  /// events. Normal numbering waits for every answer at most this long (then
  /// goes on in a block of its own until all have answered); own seqs nobody
  /// claimed are then settled, and those claimed but still not pulled back
  /// after resolve_after are settled too.
  Duration learn_timeout = std::chrono::seconds(2);
  Duration resolve_after = std::chrono::seconds(60);
};

/// Counters for status pages and the simulator's figures.
struct NodeStats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t events_sent = 0;
  std::uint64_t retransmissions = 0;
  std::uint64_t relays_requested = 0;
  std::uint64_t events_stored = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t entropy_rounds = 0;
  std::uint64_t events_pulled = 0;
  std::uint64_t receipts_recorded = 0;
  std::uint64_t alarms_raised = 0;
  std::uint64_t withheld = 0;   // logged here, not delivered (expired, too old, cleared)
  std::uint64_t refused = 0;    // of those, beyond their sender's rights (the mesh policy)
  /// Events not sent to a peer whose build does not take their kind (yet).
  std::uint64_t withheld_for_features = 0;
  std::uint64_t conflicts = 0;  // an origin's signature on two contents for one seq
  std::uint64_t healed = 0;     // own seqs numbered twice, the event sent again
  std::uint64_t settled = 0;    // seqs settled on a peer's word or by this node's numbering
};

/// Where this node's own numbering stands (relay/store/numbering.h acts on it).
struct Numbering {
  /// Normal claims may go ahead; before, only duress and emergency are
  /// numbered (a short wait at start for peers to answer, so that an
  /// ordinary restart keeps its seqs contiguous).
  bool ready = true;
  /// The highest own seq known to exist anywhere: new events number above it.
  std::uint64_t floor = 0;
  /// Not every configured peer has said yet what it holds of this node:
  /// this life numbers in a random block of its own (mesh/numbering.h).
  bool jump = false;
};

/// An origin's signature on different content for a seq this node holds:
/// the origin reused a seq (its numbering state was lost), or its key leaked.
struct Conflict {
  EventKey key;
  std::string from;  // the peer that sent the second content
  EventPtr held;      // what this node holds under the key
  EventPtr incoming;  // what `from` sent under it, with the origin's signature
};

/// A peer as the status page shows it.
struct PeerStatus {
  std::string id;
  bool heard = false;  // any authenticated datagram from it since start
  bool suspect = false;
  bool down = false;
  bool alarmed = false;
  /// Alarm "database down": it says its store has been away for
  /// supervision_timeout or longer.
  bool store_alarmed = false;
  Duration srtt{};
  std::size_t in_flight = 0;
  std::size_t queued = 0;
  /// When it was last confirmed alive (meaningful once heard).
  Time last_heard{};
  /// Receipts this node owes it as the origin of events delivered here.
  std::size_t receipts_owed = 0;
  /// Answers probes but does not store: its own report says its store is
  /// down, or (with no report) events outstanding there got no ack for
  /// degraded_after.
  bool degraded = false;
  /// Its last report of its own store, from its probe answers.
  std::optional<v1::Health> health;
  /// How long the oldest event outstanding to it has waited for an ack (0: none).
  Duration unacked_for{};
  /// Pacing: the rate this node sends it at (0: unpaced), and the queueing
  /// delay last measured at the bottleneck on the way.
  Rate pacing_rate;
  Duration queue_delay{};
  /// Per configured path (address): answering probes lately.
  std::vector<bool> paths_up;
  /// The path normal traffic takes.
  std::size_t best_path = 0;
};

}  // namespace relay::mesh

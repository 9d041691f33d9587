#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "relay/mesh/rtt.h"
#include "relay/mesh/seq_set.h"
#include "relay/mesh/store.h"
#include "relay/mesh/types.h"

namespace relay::mesh {

/// Where the core's datagrams go. The runtime seals and sends them; the
/// simulator puts them on simulated links. Must not call back into the Node.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void send(const std::string& peer, const v1::Datagram& body) = 0;
};

/// A peer from the configuration.
struct PeerInfo {
  std::string id;
  std::vector<std::string> groups;
};

/// Tuning of the protocol. Defaults suit a WAN of tens of sites.
struct Tuning {
  /// Largest datagram body the core builds (the wire layer adds its header and tag).
  std::size_t max_body = 1100;
  /// Retransmission timeout bounds: a duress event retries sooner.
  Duration rto_floor = milliseconds(200);
  Duration rto_floor_duress = milliseconds(50);
  Duration rto_cap = std::chrono::seconds(10);
  /// Events in flight (sent, unacked) per peer; the rest wait in priority order.
  /// Duress is never held back by it.
  std::size_t window = 512;
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
  /// After a start that must learn what the mesh holds of this node's own
  /// events, normal numbering waits for every peer's digest, at most this
  /// long; own seqs nobody claimed are then settled, and those claimed but
  /// still not pulled back after resolve_after are settled too.
  Duration learn_timeout = std::chrono::seconds(10);
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
  std::uint64_t conflicts = 0;  // an origin's signature on two contents for one seq
  std::uint64_t settled = 0;    // seqs settled on a peer's word or by this node's numbering
};

/// Where this node's own numbering stands (relay/store/numbering.h acts on it).
struct Numbering {
  /// Normal claims may go ahead; before, only duress and emergency are numbered.
  bool ready = true;
  /// The highest own seq known to exist anywhere: new events number above it.
  std::uint64_t floor = 0;
  /// This node lost its state and has not heard what the mesh holds of it:
  /// new seqs jump to the wall clock (mesh/numbering.h).
  bool jump = false;
};

/// An origin's signature on different content for a seq this node holds:
/// the origin reused a seq (its numbering state was lost), or its key leaked.
struct Conflict {
  EventKey key;
  std::string from;  // the peer that sent the second content
};

/// A peer as the status page shows it.
struct PeerStatus {
  std::string id;
  bool heard = false;  // any authenticated datagram from it since start
  bool suspect = false;
  bool down = false;
  bool alarmed = false;
  Duration srtt{};
  std::size_t in_flight = 0;
  std::size_t queued = 0;
  /// When it was last confirmed alive (meaningful once heard).
  Time last_heard{};
  /// Receipts this node owes it as the origin of events delivered here.
  std::size_t receipts_owed = 0;
};

/// The protocol core of one relay: reliable delivery, dedupe, anti-entropy,
/// path diversity, liveness, receipts and supervision. No I/O, no threads,
/// no clock: every input carries `now`; outputs go to the Transport and the
/// Store; next_deadline() says when on_timer wants to run.
class Node {
 public:
  Node(std::string self, std::vector<std::string> self_groups, std::vector<PeerInfo> peers,
       Tuning tuning, Store& store, Transport& transport, std::uint64_t seed);

  /// Resumes from what the store holds. Call once, before anything else.
  void start(Time now, Snapshot snapshot);
  /// Starts before the store can be read (the database is down): probes
  /// are answered and own events (spooled alarms) are sent and retried, but
  /// nothing from peers is stored or acked and anti-entropy waits; writes
  /// (receipts, alarms) are held. attach_store() completes the start.
  void start_without_store(Time now);
  /// The store answered: what start() would have read, merged with what
  /// was sent meanwhile.
  void attach_store(Time now, Snapshot snapshot);
  bool has_store() const { return store_ready_; }

  /// A new event of this node, already durable (committed with its seq).
  void on_local_event(Time now, EventPtr event);
  /// Retention settled these origins' seqs up to the given ones (pruned here).
  void on_pruned(Time now, const std::map<std::string, std::uint64_t>& settled_through);
  /// The wall clock (Unix ms) that ages are judged against; the system's by default.
  void set_wall_clock(std::function<std::int64_t()> wall) { wall_ = std::move(wall); }
  /// False while own events wait at a bound: stop claiming from the outbox.
  bool accepting_local() const;

  /// An authenticated datagram from `from`, with its events parsed.
  void on_datagram(Time now, const std::string& from, const v1::Datagram& body,
                   const std::vector<v1::Event>& events);
  /// The store committed the batch with this ticket.
  void on_stored(Time now, const StoreDone& done);
  /// The store loaded these events for the load with this ticket.
  void on_loaded(Time now, std::uint64_t ticket, const std::vector<EventPtr>& events);
  /// Runs whatever is due.
  void on_timer(Time now);
  /// When on_timer next has work.
  Time next_deadline() const;

  const std::string& self() const { return self_; }
  const NodeStats& stats() const { return stats_; }
  Numbering numbering() const;
  /// Conflicts found since the last call (at most a few kept).
  std::vector<Conflict> take_conflicts() { return std::exchange(conflicts_, {}); }
  std::vector<PeerStatus> peer_status(Time now) const;
  /// What this node has stored, per origin.
  const std::map<std::string, SeqSet>& stored() const { return stored_; }

 private:
  struct Flight {
    EventPtr event;
    Time sent{};
    Time due{};
    int attempts = 0;
  };
  struct Queued {
    int priority;
    EventKey key;
    /// Most urgent first; oldest first within a priority.
    bool operator<(const Queued& o) const {
      return priority != o.priority ? priority > o.priority : key < o.key;
    }
  };
  struct Peer {
    PeerInfo info;
    RttEstimator rtt;
    std::map<EventKey, Flight> in_flight;
    std::set<std::pair<Time, EventKey>> retry_at;
    std::set<Queued> queue;
    std::map<EventKey, EventPtr> queued_events;
    std::map<std::string, std::vector<std::uint64_t>> acks_owed;
    Time last_confirmed{};
    Time next_probe{};
    std::optional<std::pair<std::uint64_t, Time>> probe;  // nonce, sent
    std::optional<std::int64_t> clock_offset_ms;          // its wall clock minus ours
    bool indirect_sent = false;
    bool alarmed = false;
    bool down = false;
    bool heard = false;
    // Receipts owed to this peer as an origin: seq -> (delivered at, outcome).
    std::map<std::uint64_t, std::pair<std::int64_t, v1::Outcome>> receipts_owed;
    Time receipts_due{};
    int receipt_attempts = 0;
  };
  // An indirect probe this node passes on: (requester, its nonce, target).
  using IndirectProbe = std::tuple<std::string, std::uint64_t, std::string>;
  struct Pending {
    std::vector<std::string> ack_to;      // senders to ack once durable
    std::vector<std::string> forward_to;  // peers to deliver to once durable
  };
  // A duplicate not in the cache: its content is compared with the log's
  // before it is acked.
  struct Verify {
    EventPtr incoming;
    std::string from;
  };
  struct Load {
    std::string serve_to;  // empty: a verification only
    std::vector<Verify> verify;
  };

  // delivery.cc
  void push(Peer& peer, const EventPtr& event);
  void send_queued(Time now, Peer& peer);
  void send_events(Peer& peer, const std::vector<EventPtr>& events,
                   const std::vector<std::string>& forward_to);
  void retransmit(Time now, Peer& peer);
  void acked(Time now, Peer& peer, const EventKey& key);
  void handle_events(Time now, Peer& from, const v1::Events& body,
                     const std::vector<v1::Event>& events);
  void handle_acks(Time now, Peer& from, const v1::Acks& acks);
  void flush_acks(Peer& peer);
  void store_event(const EventPtr& event, const std::string& ack_to,
                   const std::vector<std::string>& forward_to);
  void check_duplicate(Peer& from, const EventPtr& incoming);
  void commit_batch();
  void finish(Time now);
  Duration rto(const Peer& peer, const Event& event, int attempts);
  void check_replicated(const EventKey& key);
  void drop_queues(Peer& peer);

  // entropy.cc
  void entropy_round(Time now);
  void handle_digest(Time now, Peer& from, const v1::Digest& digest);
  void handle_pulls(Time now, Peer& from, const v1::Pulls& pulls);
  void serve(Peer& to, std::vector<EventKey> keys);
  void mark_hot(const std::string& origin);
  void add_summary(v1::Digest& digest, const std::string& origin, std::size_t& used,
                   std::set<std::string>& named);
  void send_digest(Peer& to, const std::vector<std::string>& origins, bool reply);
  void ack_held(Time now, Peer& from, const v1::OriginSummary& summary);

  // lifecycle.cc: settled history, learning own numbering, what is delivered
  void settle_from(Peer& from, const v1::OriginSummary& summary);
  void learn_from(Time now, Peer& from, const v1::OriginSummary& summary);
  void learn_round(Time now);
  void resolve_own(Time now, bool all);
  StoreBatch::Write decide(const EventPtr& event) const;
  std::int64_t origin_now_ms(const std::string& origin) const;
  void note_urgent(const Event& event);
  void note_conflict(const EventKey& key, const std::string& from);

  // liveness.cc
  void probe_round(Time now);
  void handle_probe(Time now, Peer& from, const v1::Probe& probe);
  void handle_probe_ack(Time now, Peer& from, const v1::ProbeAck& ack);
  void confirmed(Time now, Peer& peer);
  void supervise(Time now, Peer& peer);
  bool suspect(Time now, const Peer& peer) const;
  Duration probe_period() const;

  // receipts.cc
  void owe_receipt(Time now, const EventKey& key, std::int64_t delivered_unix_ms,
                   v1::Outcome outcome);
  void send_receipts(Time now, Peer& origin);
  void handle_receipts(Time now, Peer& from, const v1::Receipts& receipts);
  void handle_receipt_acks(Time now, Peer& from, const v1::ReceiptAcks& acks);

  // node.cc
  void begin(Time now);
  void load(Time now, Snapshot snapshot);
  Peer* find_peer(const std::string& id);
  Peer* random_live_peer(Time now, const std::string& except_a, const std::string& except_b);
  bool is_target(const Event& event) const;
  void send(Peer& peer, const v1::Datagram& body);
  void wake(const Peer& peer, Time when);
  void sweep(Time now);
  void cache(const EventPtr& event);
  std::size_t index_of(const Peer& peer) const {
    return static_cast<std::size_t>(&peer - peers_.data());
  }

  std::string self_;
  std::vector<std::string> self_groups_;
  Tuning tuning_;
  Store& store_;
  Transport& transport_;
  std::mt19937_64 rng_;

  std::vector<Peer> peers_;
  std::map<std::string, std::size_t> peer_index_;
  std::map<std::string, SeqSet> stored_;
  std::map<EventKey, EventPtr> cache_;  // recent events, bounded
  std::deque<EventKey> cache_order_;
  std::map<EventKey, Pending> storing_;  // in a batch not yet durable
  StoreBatch batch_;                     // being filled by the current input
  bool store_ready_ = true;
  std::vector<StoreBatch> held_;  // written once the store is attached
  std::map<std::uint64_t, StoreBatch> committing_;
  std::map<std::uint64_t, Load> loads_;  // by ticket
  std::uint64_t next_ticket_ = 1;
  // Own events: which peers still lack each (for the replicated marker).
  std::map<EventKey, std::set<std::string>> unreplicated_;
  std::set<std::size_t> dirty_;                 // peers with acks, sends or receipts to flush
  std::vector<std::string> batch_receipt_via_;  // parallel to batch_.receipts
  std::map<std::uint64_t, std::vector<std::string>> receipt_via_;  // by ticket
  std::optional<std::size_t> catch_up_;     // peer to exchange with again soon
  std::map<IndirectProbe, Time> indirect_;  // -> when it expires
  // Indirect answers signed this second (each costs an Ed25519 signature).
  Time signed_answers_at_{};
  int signed_answers_ = 0;
  std::uint64_t next_nonce_ = 1;
  Time next_entropy_{};
  std::size_t entropy_cursor_ = 0;
  // Origins with new events lately: named first in digests, so that in a
  // large mesh the origins that matter now are compared every round.
  std::deque<std::string> hot_;
  // Per origin, seqs of its latest duress and emergency events held here:
  // named in digests so that a node lacking them pulls them first.
  std::map<std::string, std::deque<std::uint64_t>> urgent_;
  // Events an all-clear held here refers to: never delivered here.
  std::set<EventKey> cleared_;
  std::function<std::int64_t()> wall_;
  // Own numbering after a start that lost track of it (lifecycle.cc).
  bool learning_ = false;
  std::set<std::string> learned_from_;
  Time learn_until_{};
  Time next_learn_{};
  std::optional<Time> resolve_at_;
  std::uint64_t own_high_water_ = 0;
  std::uint64_t mesh_highest_own_ = 0;
  RangeSet own_seen_;  // own seqs some peer said it holds
  bool restored_ = false;
  bool state_lost_ = false;
  std::int64_t started_wall_ms_ = 0;
  std::vector<Conflict> conflicts_;
  std::size_t probe_cursor_ = 0;
  Time next_probe_round_{};
  Time next_sweep_{};
  // Per-peer wake-ups (retries, receipts, probe timeouts): a min-heap of
  // (time, peer index). An entry whose work went away meanwhile is harmless.
  std::priority_queue<std::pair<Time, std::size_t>, std::vector<std::pair<Time, std::size_t>>,
                      std::greater<>>
      wakeups_;
  NodeStats stats_;
};

}  // namespace relay::mesh

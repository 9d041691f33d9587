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

#include "relay/mesh/node_io.h"
#include "relay/mesh/pacer.h"
#include "relay/mesh/policy.h"
#include "relay/mesh/rtt.h"
#include "relay/mesh/seq_set.h"
#include "relay/mesh/store.h"
#include "relay/mesh/types.h"

namespace relay::mesh {

/// How the core sends one datagram to a peer: on which paths (0: the best
/// one), and whether it waited for the pacer (and was the last that did).
struct SendAs {
  PathSet paths = 0;
  bool paced = false;
  bool app_limited = false;
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
  /// The mesh policy this node enforces on what it stores (docs/config.md,
  /// "Policy"); before any, only an event's origin may clear it.
  void set_policy(Policy policy) { policy_ = std::move(policy); }
  /// False while own events wait at a bound: stop claiming from the outbox.
  bool accepting_local() const;

  /// An authenticated datagram from `from`, with its events parsed;
  /// `arrival` feeds the transport feedback `from` paces with.
  void on_datagram(Time now, const std::string& from, const v1::Datagram& body,
                   const std::vector<v1::Event>& events, Arrival arrival = {});
  /// This node's own store, as reported to peers in probe answers (the
  /// database answers, or for how long not; the spool meanwhile).
  void set_health(const v1::Health& health) { health_ = health; }
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
  /// An own seq was numbered twice (a conflict with key.origin == self):
  /// the store now holds `mesh_version` under it, what the mesh holds (this
  /// node's own event goes again under a fresh seq, by on_local_event).
  /// Numbering learns anew where it stands.
  void replace_own(Time now, const EventPtr& mesh_version);
  std::vector<PeerStatus> peer_status(Time now) const;
  /// What this node has stored, per origin.
  const std::map<std::string, SeqSet>& stored() const { return stored_; }
  /// A peer's hello announced these relaymesh.v1.Feature bits. Events of a
  /// kind it does not take wait in the log (never pushed, served or relayed
  /// to it); once it takes them, an exchange with it soon catches it up.
  void set_peer_features(Time now, const std::string& peer, std::uint64_t features);
  /// An event held in memory (recent ones, bounded), or nullptr.
  EventPtr recent_event(const EventKey& key) const;

 private:
  struct Flight {
    EventPtr event;
    Time sent{};
    Time due{};
    int attempts = 0;
    Time first_sent{};
    bool hurried = false;  // the peer said it lacks it: goes at once (resend_soon)
  };
  // A retry timer of an event in flight. Ordered most urgent first, then
  // soonest: transmit finds the most urgent due retry without looking at
  // the others (a flood's thousands of due retries once cost every call a
  // sort of all of them, and the network thread fell behind for minutes).
  struct Due {
    int priority;
    Time at;
    EventKey key;
    bool operator<(const Due& o) const {
      if (priority != o.priority) return priority > o.priority;
      if (at != o.at) return at < o.at;
      return key < o.key;
    }
  };
  struct Queued {
    int priority;
    EventKey key;
    /// Most urgent first; oldest first within a priority.
    bool operator<(const Queued& o) const {
      return priority != o.priority ? priority > o.priority : key < o.key;
    }
  };
  // One of a peer's addresses, probed on its own.
  struct Path {
    Time last_confirmed{};
    RttEstimator rtt;
  };
  struct Peer {
    PeerInfo info;
    RttEstimator rtt;
    Pacer pacer;
    FeedbackTally tally;
    std::vector<Path> paths;
    std::size_t best_path = 0;
    bool urgent_acks = false;  // acks owed include a duress: on every live path
    std::map<EventKey, Flight> in_flight;
    std::set<Due> retry_at;
    std::set<Queued> queue;
    std::map<EventKey, EventPtr> queued_events;
    std::map<std::string, std::vector<std::uint64_t>> acks_owed;
    Time last_confirmed{};
    // The latest send of anything below emergency it acked (urgent events
    // are stored on a lane of their own): what was sent before and is
    // still unacked is presumed lost (its retry goes at its timer), what was
    // sent after may still wait in its store (presumed_lost()).
    Time acked_sent{};
    Time last_bulk_ack{};  // the last ack of an event below emergency
    Time next_probe{};
    std::optional<std::pair<std::uint64_t, Time>> probe;  // nonce, sent
    bool probe_answered = false;
    std::optional<std::int64_t> clock_offset_ms;          // its wall clock minus ours
    bool indirect_sent = false;
    bool alarmed = false;        // supervision: unreachable
    bool store_alarmed = false;  // it answers, but its database is down too long
    bool down = false;
    bool heard = false;
    // Its store: its own report (from its probe answers), and the last ack.
    std::optional<v1::Health> health;
    Time last_ack{};
    bool degraded = false;
    // Every own seq up to this one is stored there (or was never issued),
    // as its digests say; written for retention once a second when it moved.
    std::uint64_t own_held = 0;
    bool own_held_moved = false;
    // Own duress and emergency events it missed while down: first on its return.
    std::set<EventKey> owed_urgent;
    // Receipts owed to this peer as an origin: seq -> (delivered at, outcome).
    std::map<std::uint64_t, std::pair<std::int64_t, v1::Outcome>> receipts_owed;
    std::set<std::uint64_t> urgent_receipts;  // of duress: unpaced, every live path
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
  void send_events(Peer& peer, const std::vector<EventPtr>& events,
                   const std::vector<std::string>& forward_to, SendAs as = {});
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

  // pacing.cc: what leaves when, on which path
  void transmit(Time now, Peer& peer);
  void send_duress(Time now, Peer& peer, const std::vector<EventPtr>& events, bool first);
  EventPtr retry(Time now, Peer& peer, const EventKey& key);
  /// Puts `event` in flight to `peer` now, with its retry timer.
  void start_flight(Time now, Peer& peer, const EventPtr& event);
  /// Moves the retry timer of `flight` (of `key`) to `at`.
  void set_due(Peer& peer, const EventKey& key, Flight& flight, Time at);
  /// The most urgent retry due at `now` (the soonest among equals), if any.
  static const Due* first_due(const Peer& peer, Time now);
  /// Whether `flight`, whose timer ran out, goes again (pacing.cc).
  bool presumed_lost(Time now, const Peer& peer, const Flight& flight) const;
  void handle_feedback(Time now, Peer& from, const v1::Feedback& feedback);
  void flush_feedback(Time now, Peer& peer);
  PathSet live_paths(Time now, const Peer& peer) const;
  void choose_path(Time now, Peer& peer);
  void hurry_urgent(Time now, Peer& peer);
  void resend_soon(Time now, Peer& peer, const EventKey& key);

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
  bool sure() const;
  void resolve_own(Time now, bool all);
  StoreBatch::Write decide(const EventPtr& event) const;
  std::int64_t origin_now_ms(const std::string& origin) const;
  void note_urgent(const Event& event);
  void note_conflict(const EventKey& key, const std::string& from, const EventPtr& held,
                     const EventPtr& incoming);

  // liveness.cc
  void probe_round(Time now);
  void handle_probe(Time now, Peer& from, const v1::Probe& probe);
  void handle_probe_ack(Time now, Peer& from, const v1::ProbeAck& ack);
  void confirmed(Time now, Peer& peer);
  void judge_store(Time now, Peer& peer);
  void alarm_store(Peer& peer);
  void retry_alarms(Time now);
  void returned(Time now, Peer& peer);
  void supervise(Time now, Peer& peer);
  bool suspect(Time now, const Peer& peer) const;
  Duration probe_period() const;

  // receipts.cc
  void owe_receipt(Time now, const EventKey& key, std::int64_t delivered_unix_ms,
                   v1::Outcome outcome, bool urgent = false);
  void send_receipts(Time now, Peer& origin);
  void handle_receipts(Time now, Peer& from, const v1::Receipts& receipts);
  void handle_receipt_acks(Time now, Peer& from, const v1::ReceiptAcks& acks);

  // node.cc
  void begin(Time now);
  void load(Time now, Snapshot snapshot);
  Peer* find_peer(const std::string& id);
  Peer* random_live_peer(Time now, const std::string& except_a, const std::string& except_b);
  bool is_target(const Event& event) const;
  void send(Peer& peer, const v1::Datagram& body, SendAs as = {});
  void wake(const Peer& peer, Time when);
  void sweep(Time now);
  void cache(const EventPtr& event);
  std::size_t index_of(const Peer& peer) const {
    return static_cast<std::size_t>(&peer - peers_.data());
  }

  std::string self_;
  std::vector<std::string> self_groups_;
  // The time of the input being handled, for what send() tells the pacer.
  Time now_{};
  std::optional<v1::Health> health_;
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
  std::set<std::tuple<std::string, std::uint64_t, std::uint64_t>> settling_;  // likewise
  /// (peer, reason) of alarm changes the database refused: written again,
  /// as the state is then, at alarm_retry_at_ (liveness.cc).
  std::set<std::pair<std::string, std::string>> alarms_refused_;
  Time alarm_retry_at_{};
  Duration alarm_backoff_ = std::chrono::seconds(5);
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
  // Events an all-clear or a cancel held here refers to: never delivered
  // here, and the outcome their receipt gives (relay/mesh/types.h).
  std::map<EventKey, v1::Outcome> withheld_;
  Policy policy_;
  /// The groups of node `id` as configured here; none for a node unknown.
  const std::vector<std::string>& groups_of(const std::string& id) const;
  /// Why `by` may not end (clear) `key`; "" if it may (its origin always may).
  std::string refusal(v1::Kind kind, const std::string& by, const EventKey& key) const;
  /// An all-clear or cancel by `by` held here: what it ends is withheld
  /// from now on, if the policy lets it end all of it.
  void note_ending(v1::Kind kind, const std::string& by, const std::vector<EventKey>& keys);
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

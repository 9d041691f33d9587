#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "relay/mesh/node.h"
#include "relay/sim/sim_store.h"

namespace relay::sim {

/// Faults and capacity of a simulated link (one way).
struct LinkFaults {
  double loss = 0;                    // probability a datagram is dropped (before the queue)
  double duplicate = 0;               // probability it arrives twice
  Duration delay = milliseconds(10);  // propagation
  Duration jitter = milliseconds(5);  // uniform extra delay: reorders datagrams
  /// Capacity, like a tbf shaper: a datagram waits behind those queued
  /// ahead of it, takes size / rate to cross, then `delay`. Zero: unlimited.
  Rate rate;
  /// The shaper's queue: a datagram that finds this many bytes waiting is dropped.
  std::size_t queue_bytes = 16 * 1024;
};

struct SimConfig {
  std::size_t nodes = 3;
  /// Addresses (paths) every node has; each path is a link of its own.
  std::size_t paths = 1;
  std::uint64_t seed = 1;
  LinkFaults link;
  Tuning tuning;
  Duration commit_latency = milliseconds(2);
  Duration load_latency = milliseconds(1);
  /// Events a node's database stores per second (0: no limit): batches then
  /// commit one after another, as a receiving node's PostgreSQL does.
  double store_events_per_second = 0;
  /// The mesh policy every node enforces.
  Policy policy;
};

/// One event injected at an origin, with when it became durable there.
struct Injected {
  EventKey key;
  Time committed{};
  v1::Priority priority = v1::PRIORITY_NORMAL;
  std::vector<std::string> targets;
};

/// Figures of a run.
struct SimStats {
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;
  std::uint64_t queue_dropped = 0;  // of those, at a full link queue
};

/// A deterministic mesh of N cores on a virtual clock: simulated links with
/// loss, duplication, reordering, delay and partitions, in-memory stores
/// whose durable part survives crashes, everything drawn from one seed.
/// Node 0 is "hq" (group hq); the others are "clinic-1", ... (group clinics).
class Cluster {
 public:
  explicit Cluster(SimConfig config);
  ~Cluster();

  Time now() const { return now_; }
  std::size_t size() const { return slots_.size(); }
  const std::string& id(std::size_t i) const;
  std::size_t index(const std::string& id) const;

  /// Commits a new event at `origin` and hands it to its core.
  EventKey inject(std::size_t origin, v1::Priority priority = v1::PRIORITY_NORMAL,
                  std::vector<std::string> targets = {"all"});
  /// Commits an event built by the test (kind, times, references...).
  EventKey inject_event(std::size_t origin, v1::Event event);
  /// Milliseconds of the simulated wall clock now.
  std::int64_t wall_ms() const;
  /// Commits a new event at `origin` and crashes it before the core sees it.
  EventKey inject_then_crash(std::size_t origin, v1::Priority priority = v1::PRIORITY_NORMAL);

  /// Node `i`'s hellos announce these relaymesh.v1.Feature bits from now
  /// on (all by default; 0 acts as a build before them).
  void announce_features(std::size_t i, std::uint64_t features);
  void crash(std::size_t i);
  void restart(std::size_t i);
  bool up(std::size_t i) const;

  /// Lifecycle faults of a site (each leaves the node down; restart() it):
  /// its database dropped and recreated empty, its database replaced by an
  /// earlier backup(), its state directory lost with the server.
  void rebuild_database(std::size_t i);
  DurableState backup(std::size_t i) const { return durable(i); }
  void restore_database(std::size_t i, DurableState backup);
  void lose_state(std::size_t i);
  /// A VM snapshot of a whole site: its database and its state directory
  /// from one moment; revert() rolls both back to it (the node is left down).
  std::pair<DurableState, NodeState> snapshot_site(std::size_t i) const;
  void revert(std::size_t i, std::pair<DurableState, NodeState> snapshot);
  /// Node `i`'s database stops committing (its core runs on and answers
  /// probes); with `report`, the node says so in its probe answers.
  /// store_up commits what waited.
  void store_down(std::size_t i, bool report);
  /// Node `i`'s database refuses every write of an alarm change (a site's
  /// trigger on message_queue, say), or takes them again.
  void refuse_alarms(std::size_t i, bool refuse);
  /// Node i's own report of its store, as its probe answers carry it.
  void report_health(std::size_t i, const v1::Health& health);
  void store_up(std::size_t i);
  /// Node `i`'s wall clock runs `skew` off the true one (a bad RTC).
  void skew_clock(std::size_t i, Duration skew);
  /// Retention at node `i`: prunes every origin's log up to `keep` seqs
  /// below its watermark (own events once every peer holds them, unless
  /// `force`).
  void prune(std::size_t i, std::uint64_t keep, bool force = false);

  /// Drops every datagram from `from` to `to` until unblock.
  void block(std::size_t from, std::size_t to);
  void unblock(std::size_t from, std::size_t to);
  /// Cuts a node off from every other, both ways; heal undoes it.
  void isolate(std::size_t i);
  void heal(std::size_t i);
  void set_faults(LinkFaults faults) { config_.link = faults; }
  /// The link from `from` to `to` (every path) gets its own faults and capacity.
  void set_link(std::size_t from, std::size_t to, LinkFaults faults);
  /// Drops everything on one path from `from` to `to` until unblock_path.
  void block_path(std::size_t from, std::size_t to, std::size_t path);
  void unblock_path(std::size_t from, std::size_t to, std::size_t path);
  /// Wire bytes that arrived on the link from `from` to `to` (every path).
  std::uint64_t arrived_bytes(std::size_t from, std::size_t to) const;

  /// Runs the simulation for `d` of virtual time.
  void run_for(Duration d);
  /// Runs until every injected event is stored at every node and every
  /// receipt reached its origin, or until `limit`; returns whether it did.
  bool run_until_converged(Duration limit);

  /// The first violated property, or nullopt: every event stored at every
  /// node (or settled there: pruned before it could arrive), delivered
  /// exactly once at every target that did not withhold it (expired, too
  /// old, cleared) and nowhere else, every receipt at its origin, no ack
  /// before durability, no datagram too big, no seq of an origin used twice.
  std::optional<std::string> check() const;
  bool converged() const;

  /// When node `i` durably stored `key`, if it did.
  std::optional<Time> stored_at(const EventKey& key, std::size_t i) const;
  /// Time from commit at the origin to stored at the last node, per event
  /// that reached every node.
  std::vector<Duration> convergence_times() const;

  const std::vector<Injected>& injected() const { return injected_; }
  const DurableState& durable(std::size_t i) const;
  const Node* node(std::size_t i) const;
  const SimStats& stats() const { return stats_; }

 private:
  struct Slot;

  EventPtr commit(std::size_t origin, v1::Priority priority,
                  const std::vector<std::string>& targets);
  EventPtr commit_event(std::size_t origin, v1::Event event);
  void schedule(Time at, std::function<void()> fn);
  std::uint64_t route(std::size_t from, const std::string& to, const v1::Datagram& body,
                      PathSet paths);
  void deliver(std::size_t from, std::size_t to, const v1::Datagram& body, Arrival arrival);
  const LinkFaults& link(std::size_t from, std::size_t to) const;
  void settle(std::size_t i);
  void forget_receipts(std::size_t origin);
  void check_acks(std::size_t from, const v1::Datagram& body);
  bool step(Time limit);

  SimConfig config_;
  std::mt19937_64 rng_;
  Time now_{};
  std::uint64_t order_ = 0;
  struct Action {
    Time at;
    std::uint64_t order;
    std::function<void()> fn;
    bool operator>(const Action& o) const { return std::tie(at, order) > std::tie(o.at, o.order); }
  };
  std::priority_queue<Action, std::vector<Action>, std::greater<>> actions_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::map<std::string, std::size_t> index_;
  std::set<std::pair<std::size_t, std::size_t>> blocked_;
  std::set<std::tuple<std::size_t, std::size_t, std::size_t>> blocked_paths_;
  std::map<std::pair<std::size_t, std::size_t>, LinkFaults> links_;
  // When each link (from, to, path) finishes sending what is queued on it.
  std::map<std::tuple<std::size_t, std::size_t, std::size_t>, Time> busy_until_;
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> arrived_;
  std::vector<Injected> injected_;
  // Every content an origin signed per seq: a seq used twice is a violation.
  std::map<EventKey, std::string> contents_;
  // Own events whose receipts went with their origin's database.
  std::set<EventKey> receipts_lost_;
  std::map<EventKey, std::vector<std::optional<Time>>> stored_at_;
  std::vector<std::string> violations_;
  SimStats stats_;
};

}  // namespace relay::sim

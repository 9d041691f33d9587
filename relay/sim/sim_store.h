#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <random>

#include "relay/mesh/node.h"
#include "relay/mesh/numbering.h"
#include "relay/mesh/store.h"

namespace relay::sim {

using namespace relay::mesh;

/// What a node's database holds: it survives a crash of the node. Mirrors
/// the PostgreSQL schema: event log, message_queue, receipts, alarms.
struct DurableState {
  std::map<EventKey, EventPtr> log;
  /// The log's keys per origin, as the core's watermarks would load them.
  std::map<std::string, SeqSet> seqs;
  /// message_queue inserts per event: the exactly-once check counts them.
  std::map<EventKey, int> delivered;
  /// At an origin: (event, target) -> the target's receipt.
  std::map<std::pair<EventKey, std::string>, Receipt> receipts;
  /// At a target: receipts not yet confirmed by their origin.
  std::map<EventKey, Receipt> receipts_owed;
  /// At a target: what it did with each event it was a target of.
  std::map<EventKey, v1::Outcome> outcomes;
  /// message_queue rows flagged as possibly delivered before a restore.
  std::set<EventKey> redelivered;
  /// Own events every peer holds.
  std::set<EventKey> replicated;
  /// Alarm rows: (peer, raised, at ms of simulated time, reason, note).
  struct AlarmRow {
    std::string peer;
    bool raised;
    std::int64_t at_ms;
    std::string reason;
    std::string note;
  };
  std::vector<AlarmRow> alarms;
  /// Alarms open now (peer, reason), as relay_alarms holds them.
  std::set<std::pair<std::string, std::string>> open_alarms;
  /// Per peer, own seqs it holds all up to (relay_peer_held).
  std::map<std::string, std::uint64_t> peer_held;
  /// Next seq this node assigns to its own events.
  std::uint64_t next_seq = 1;
  /// Settled ranges written, repeats included.
  std::uint64_t settled_writes = 0;
};

/// What a node keeps outside its database (relayd's state directory).
struct NodeState {
  /// The numbering high-water mark.
  std::uint64_t high_water = 0;
  /// The state directory is gone (a rebuilt server); noticed at the next start.
  bool lost = false;
};

/// The in-memory store of one simulated node. persist() is durable only
/// when the simulated commit completes; a crash before that loses the batch,
/// as a crash before COMMIT would. Applying is idempotent, like the
/// INSERT ... ON CONFLICT DO NOTHING it stands for.
class SimStore final : public Store {
 public:
  /// `seed` stands for the kernel's entropy of this life (one per start).
  SimStore(std::string self, std::vector<std::string> groups, DurableState& durable,
           NodeState& state, std::uint64_t seed)
      : self_(std::move(self)),
        groups_(std::move(groups)),
        durable_(durable),
        state_(state),
        entropy_(seed) {}

  void persist(StoreBatch batch) override { pending_.push_back(std::move(batch)); }
  void load(LoadRequest request) override { loads_.push_back(std::move(request)); }

  /// Takes the writes and loads issued since the last call.
  std::vector<StoreBatch> take_pending() { return std::exchange(pending_, {}); }
  std::vector<LoadRequest> take_loads() { return std::exchange(loads_, {}); }

  /// Commits a batch: the moment it becomes durable.
  void apply(const StoreBatch& batch, std::int64_t now_ms);
  /// Answers a load from the log.
  std::vector<EventPtr> answer(const LoadRequest& request) const;
  /// An origin's local commit of a new event, numbered as relayd's claim
  /// numbers it (mesh/numbering.h): log row, seq, local delivery.
  EventPtr commit_local(v1::Event event, std::int64_t now_ms, const Numbering& numbering);
  /// What the core needs at start; like relayd's, it compares the database
  /// with the state's high-water mark to notice a rebuild or restore.
  Snapshot snapshot(const std::vector<std::string>& origins);
  /// Retention: drops every origin's log rows up to `keep` below its
  /// watermark and settles them, own events only once every one of `peers`
  /// holds them (unless `force`); returns what the core should settle.
  std::map<std::string, std::uint64_t> prune(std::uint64_t keep,
                                             const std::vector<std::string>& peers, bool force);

 private:
  std::string self_;
  std::vector<std::string> groups_;
  DurableState& durable_;
  NodeState& state_;
  LifeNumbering life_;
  std::mt19937_64 entropy_;
  std::vector<StoreBatch> pending_;
  std::vector<LoadRequest> loads_;
};

}  // namespace relay::sim

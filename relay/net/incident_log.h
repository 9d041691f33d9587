#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/log.h"
#include "relay/mesh/node.h"
#include "relay/mesh/store.h"

namespace relay::net {

/// One log line per incident, with fields journald keeps (common/log.h):
/// a peer's state change (first heard, suspect, down, back), a supervision
/// alarm raised or cleared, a duress sent from here, delivered here, and
/// confirmed by each target. It watches what the daemon already sees (peer
/// status, claims, store batches), so the protocol core needs no logging.
/// Lives on the network thread.
class IncidentLog {
 public:
  /// True when peer states should be compared again (twice a second at most).
  bool peers_due(mesh::Time now) const { return now >= next_peers_; }
  /// Compares with the last observation; logs each change.
  void observe_peers(mesh::Time now, const std::vector<mesh::PeerStatus>& peers);
  /// Own events just claimed: a line per duress. IN_MESSAGE_QUEUE says the
  /// claim also delivered it here (the outbox's claim does; the spool's
  /// append does not, its drain does, seen through persisting()).
  void claimed(const std::vector<mesh::EventPtr>& events, const Config& config,
               bool in_message_queue);
  /// A batch the core hands the store: what it will make true once committed.
  void persisting(const mesh::StoreBatch& batch);
  /// The batch committed (or was refused): logs what it made true.
  void stored(const mesh::StoreDone& done);

 private:
  struct Pending {
    /// Duress into message_queue, and why it was outside the mesh policy ("" within).
    std::vector<std::pair<mesh::EventKey, std::string>> delivered;
    std::vector<std::pair<mesh::EventKey, std::string>> confirmed;  // own duress, by target
    std::vector<std::pair<mesh::EventKey, std::string>> refused;    // under the policy, why
  };
  struct PeerSeen {
    std::string state;
    bool alarmed = false;
    bool store_alarmed = false;
    mesh::Time since{};
    std::vector<bool> paths_up;
  };

  mesh::Time next_peers_{};
  std::map<std::string, PeerSeen> peers_;
  std::map<std::uint64_t, Pending> pending_;  // by store ticket
  // Own duress events, to name their receipts; bounded, oldest forgotten.
  std::set<mesh::EventKey> own_duress_;
  std::deque<mesh::EventKey> own_duress_order_;
  // Which targets' confirmations of them were logged: a target sends its
  // receipt again until the receipt ack reaches it, and each copy is
  // recorded again (once, 125 lines for one duress).
  std::set<std::pair<mesh::EventKey, std::string>> confirmed_logged_;
  // A site sending beyond its rights in a loop must not drown the log
  // (each refusal also raises its relay.policy row).
  RateLimit refusals_{std::chrono::minutes(1), 10};
};

/// Hands every batch to the store, showing it to the incident log first.
class StoreTap final : public mesh::Store {
 public:
  StoreTap(mesh::Store& store, IncidentLog& log) : store_(store), log_(log) {}
  void persist(mesh::StoreBatch batch) override;
  void load(mesh::LoadRequest request) override;

 private:
  mesh::Store& store_;
  IncidentLog& log_;
};

/// "not heard yet", "alive", "degraded", "suspect" or "down": one word for
/// a peer's state, the same in the log, the page, the JSON and the metrics.
std::string peer_state(const mesh::PeerStatus& peer);
/// Why a degraded peer is: its own report, or what this node inferred.
std::string degraded_reason(const mesh::PeerStatus& peer);
/// Its paths, as "fibre up, path 2 down" would read: "1 up (best), 2 down".
std::string paths_text(const mesh::PeerStatus& peer);

}  // namespace relay::net

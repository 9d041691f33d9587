#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "common/config.h"
#include "relay/mesh/store.h"
#include "relay/store/write_batch.h"

namespace relay::store {

struct StoreOptions {
  std::string dsn;
  std::string self;
  /// Group commit: after the first batch arrives, wait this long for more
  /// to share its transaction (and its fsync)...
  std::chrono::microseconds commit_window{2000};
  /// ...or until this many events are waiting.
  std::size_t max_rows = 2000;
  /// Reconnect backoff, doubling from the first to the cap.
  std::chrono::milliseconds reconnect_first{100};
  std::chrono::milliseconds reconnect_cap{5000};
  /// [store] unsafe_durability: a server with fsync or full_page_writes off
  /// is used all the same (else every connection refuses it).
  bool unsafe_durability = false;
};

/// Called on a store thread; the runtime posts them to the network thread.
struct StoreCallbacks {
  std::function<void(const mesh::StoreDone&)> stored;
  std::function<void(std::uint64_t ticket, std::vector<mesh::EventPtr>)> loaded;
  /// A lane ("urgent" or "bulk") found the database unreachable (with why),
  /// or wrote to it: at its first success and after every outage.
  std::function<void(const std::string& lane, bool healthy, const std::string& why)> health;
};

/// The PostgreSQL store behind the core's boundary. Two lanes, each a thread
/// with its own connection: duress and emergency batches commit on one, the
/// rest (and loads) on the other, so an alarm never waits behind a large
/// bulk transaction. Each lane commits what arrived within the commit
/// window in one transaction. A batch that fails (database down or
/// restarting) stays queued and is retried after a reconnect with capped
/// backoff; every write is idempotent, so a retry after an unknown commit
/// outcome is safe. Nothing is reported stored before it committed.
class PgStore final : public mesh::Store {
 public:
  PgStore(StoreOptions options, StoreCallbacks callbacks);
  ~PgStore() override;

  void persist(mesh::StoreBatch batch) override;
  void load(mesh::LoadRequest request) override;

  /// Finishes what is queued (while the database answers), then stops.
  void stop();

 private:
  class Lane;
  std::unique_ptr<Lane> urgent_;
  std::unique_ptr<Lane> bulk_;
};

/// Reads the events with these keys from the log.
std::vector<mesh::EventPtr> read_events(pqxx::transaction_base& tx,
                                        const std::vector<mesh::EventKey>& keys);

/// This node's own events claimed from the outbox with a seq above `after`,
/// in order: what a claim committed although its connection broke before it
/// could say so. A duress drained from the spool has no outbox row and is
/// not one of them: relayd sent it when it was spooled.
std::vector<mesh::EventPtr> own_events_after(pqxx::transaction_base& tx, const std::string& self,
                                             std::uint64_t after);

/// Prepares a database for this node (migrations, its sequence row) and
/// reads what the core needs to resume: watermarks of every origin in the
/// log, own events not yet replicated (most urgent first, at most
/// `max_unreplicated`), receipts still owed.
mesh::Snapshot open_database(pqxx::connection_base& conn, const std::string& self,
                             std::size_t max_unreplicated);

/// What retention may prune.
struct PruneRules {
  /// Log rows stored longer ago than this.
  std::chrono::seconds retention{};
  /// The configured peers: an own event stays until every one has stored
  /// it (relay_peer_held), a peer down or never heard from included...
  std::vector<std::string> peers;
  /// ... unless it is older than [delivery] max_age (it would be withheld
  /// there as too old anyway; never a duress) ...
  std::chrono::seconds max_age{};
  /// ... or the operator forces it (relayctl prune --force).
  bool force = false;
};

/// The rules of `config`: its retention, peers and max_age, not forced.
PruneRules prune_rules(const Config& config);

/// Own events a peer lacks, which retention kept: seqs first..last.
struct Kept {
  std::string peer;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::size_t count = 0;
};

/// What retention did: rows removed, every origin's settled prefix after it
/// (for Node::on_pruned, which advertises it in digests), and what it kept
/// because a peer lacks it.
struct Pruned {
  std::size_t rows = 0;
  std::map<std::string, std::uint64_t> settled_through;
  std::vector<Kept> kept;
};

/// Retention: removes log rows as `rules` allow, and advances the
/// per-origin settled prefix so that dedupe outlives the rows. Receipts
/// older than the retention go too; message_queue is the consumers' and is
/// never touched.
Pruned prune_log(pqxx::connection_base& conn, const std::string& self, const PruneRules& rules);

/// Every origin's settled prefix, as retention leaves it.
std::map<std::string, std::uint64_t> settled_prefixes(pqxx::transaction_base& tx);

}  // namespace relay::store

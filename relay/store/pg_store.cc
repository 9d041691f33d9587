#include "relay/store/pg_store.h"

#include <spdlog/spdlog.h>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <array>
#include <limits>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <variant>

#include "common/log.h"
#include "relay/store/durability.h"
#include "relay/store/migrate.h"
#include "relay/store/rows.h"

namespace relay::store {
namespace {

using Job = std::variant<mesh::StoreBatch, mesh::LoadRequest>;

std::size_t rows_of(const Job& job) {
  const auto* batch = std::get_if<mesh::StoreBatch>(&job);
  return batch == nullptr ? 0 : batch->events.size() + batch->receipts.size() + 1;
}

/// Events from rows whose first column is a stored SignedEvent.
std::vector<mesh::EventPtr> parse_signed(const pqxx::result& rows) {
  std::vector<mesh::EventPtr> events;
  for (const auto& row : rows) {
    const pqxx::binarystring bytes(row[0]);
    v1::SignedEvent signed_event;
    v1::Event event;
    if (signed_event.ParseFromString(bytes.str()) && event.ParseFromString(signed_event.event())) {
      events.push_back(mesh::make_event(signed_event, event));
    }
  }
  return events;
}

}  // namespace

std::vector<mesh::EventPtr> read_events(pqxx::transaction_base& tx,
                                        const std::vector<mesh::EventKey>& keys) {
  std::vector<std::string> origins;
  std::vector<std::int64_t> seqs;
  for (const auto& key : keys) {
    origins.push_back(key.origin);
    seqs.push_back(static_cast<std::int64_t>(key.seq));
  }
  return parse_signed(
      tx.exec_params("SELECT l.signed FROM relay_event_log l "
                     "JOIN unnest($1::text[], $2::bigint[]) AS k(origin, seq) USING (origin, seq)",
                     text_array(origins), int_array(seqs)));
}

std::vector<mesh::EventPtr> own_events_after(pqxx::transaction_base& tx, const std::string& self,
                                             std::uint64_t after) {
  return parse_signed(tx.exec_params(
      "SELECT signed FROM relay_event_log WHERE origin = $1 AND seq > $2 "
      "AND outbox_id IS NOT NULL ORDER BY seq",
      self, after));
}

mesh::Snapshot open_database(pqxx::connection_base& conn, const std::string& self,
                             std::size_t max_unreplicated) {
  for (const auto& name : migrate(conn)) spdlog::info("database: applied migration {}", name);
  pqxx::work tx(conn, "open");
  tx.exec_params("INSERT INTO relay_node (origin) VALUES ($1) ON CONFLICT DO NOTHING", self);
  fold_settled(tx);
  mesh::Snapshot snapshot;
  // Runs of consecutive seqs per origin ("gaps and islands"), so a long log
  // loads as a few ranges rather than row by row.
  for (const auto& row : tx.exec(
           "SELECT origin, min(seq), max(seq) FROM ("
           " SELECT origin, seq, seq - row_number() OVER (PARTITION BY origin ORDER BY seq) AS grp"
           " FROM relay_event_log) t GROUP BY origin, grp ORDER BY origin, min(seq)")) {
    snapshot.stored[row[0].as<std::string>()].add_range(row[1].as<std::uint64_t>(),
                                                        row[2].as<std::uint64_t>());
  }
  // Settled seqs are never pulled or served: no row stands behind them.
  // Those never stored here are void (before the prefix covers them, so
  // that what the log holds is told apart), except the ones that came late.
  const auto settled = tx.exec("SELECT origin, first, last FROM relay_settled ORDER BY 1, 2");
  for (const auto& row : settled) {
    snapshot.stored[row[0].as<std::string>()].mark_void(row[1].as<std::uint64_t>(),
                                                        row[2].as<std::uint64_t>());
  }
  for (const auto& row : tx.exec("SELECT origin, pruned_through FROM relay_watermarks")) {
    snapshot.stored[row[0].as<std::string>()].settle_through(row[1].as<std::uint64_t>());
  }
  for (const auto& row : settled) {
    snapshot.stored[row[0].as<std::string>()].settle_range(row[1].as<std::uint64_t>(),
                                                           row[2].as<std::uint64_t>());
  }
  for (const auto& row : tx.exec("SELECT origin, seq FROM relay_late")) {
    snapshot.stored[row[0].as<std::string>()].add(row[1].as<std::uint64_t>());
  }
  snapshot.endings = parse_signed(tx.exec("SELECT signed FROM relay_event_log WHERE kind IN (" +
                                          std::to_string(v1::KIND_ALL_CLEAR) + ", " +
                                          std::to_string(v1::KIND_CANCEL) + ")"));
  for (const auto& row : tx.exec("SELECT peer, reason FROM relay_alarms")) {
    snapshot.open_alarms.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
  }
  snapshot.unreplicated = parse_signed(
      tx.exec_params("SELECT l.signed FROM relay_unreplicated u JOIN relay_event_log l "
                     "USING (origin, seq) WHERE u.origin = $1 "
                     "ORDER BY l.priority DESC, l.seq LIMIT $2",
                     self, max_unreplicated));
  for (const auto& row :
       tx.exec("SELECT origin, seq, (extract(epoch from delivered_at) * 1000)::bigint, outcome "
               "FROM relay_receipts_owed ORDER BY delivered_at")) {
    snapshot.receipts_owed.push_back({{row[0].as<std::string>(), row[1].as<std::uint64_t>()},
                                      self,
                                      row[2].as<std::int64_t>(),
                                      static_cast<v1::Outcome>(row[3].as<int>())});
  }
  tx.commit();
  return snapshot;
}

// Prunes, per origin, the run of log rows that continues the pruned prefix
// (so a hole is never claimed as held), up to the first row that must stay:
// younger than the retention, or an own event above $3 (what every
// configured peer holds) that is not forced ($4), not past max_age ($5) or
// of duress priority ($6).
constexpr const char* kPrune = R"sql(
WITH held AS (
  SELECT l.origin, l.seq, l.stored_at, l.priority,
         l.seq - coalesce(w.pruned_through, 0)
               - row_number() OVER (PARTITION BY l.origin ORDER BY l.seq) AS grp
  FROM relay_event_log l LEFT JOIN relay_watermarks w USING (origin)
  -- Rows below the prefix (events that came after their seq was settled,
  -- remembered in relay_late) are not part of the run, which starts right
  -- above it.
  WHERE l.seq > coalesce(w.pruned_through, 0)),
cut AS (
  SELECT origin,
         coalesce(min(seq) FILTER (WHERE stored_at > now() - $1::interval
                                   OR (origin = $2 AND seq > $3 AND NOT $4
                                       AND (priority = $6 OR stored_at > now() - $5::interval))) - 1,
                  max(seq)) AS through
  FROM held WHERE grp = 0 GROUP BY origin),
del AS (
  DELETE FROM relay_event_log l USING cut WHERE l.origin = cut.origin AND l.seq <= cut.through
  RETURNING 1),
-- A pruned own event is not resent (forced, or past max_age, some peer lacked it).
unreplicated AS (
  DELETE FROM relay_unreplicated u USING cut WHERE u.origin = cut.origin AND u.seq <= cut.through),
wm AS (
  INSERT INTO relay_watermarks (origin, pruned_through)
  SELECT origin, through FROM cut WHERE through > 0
  ON CONFLICT (origin) DO UPDATE
  SET pruned_through = greatest(relay_watermarks.pruned_through, excluded.pruned_through))
SELECT count(*) FROM del
)sql";

PruneRules prune_rules(const Config& config) {
  PruneRules rules;
  rules.retention = std::chrono::duration_cast<std::chrono::seconds>(config.store.retention);
  rules.max_age = std::chrono::duration_cast<std::chrono::seconds>(config.delivery.max_age);
  for (const auto& peer : config.peers) rules.peers.push_back(peer.id);
  return rules;
}

// Per configured peer, the own events old enough to prune that it lacks.
constexpr const char* kLacking = R"sql(
SELECT p.peer, min(l.seq), max(l.seq), count(*)
FROM unnest($1::text[]) AS p(peer) LEFT JOIN relay_peer_held h USING (peer)
JOIN relay_event_log l ON l.origin = $2 AND l.seq > coalesce(h.own_through, 0)
WHERE l.stored_at <= now() - $3::interval AND (l.priority = $5 OR l.stored_at > now() - $4::interval)
GROUP BY p.peer ORDER BY p.peer
)sql";

Pruned prune_log(pqxx::connection_base& conn, const std::string& self,
                 const PruneRules& rules) try {
  pqxx::work tx(conn, "prune");
  auto seconds = [](std::chrono::seconds s) { return std::to_string(s.count()) + " seconds"; };
  const std::string interval = seconds(rules.retention);
  // A duress, and an all-clear of one (it travels at its priority), stays
  // until every peer has it, however old.
  const int duress = v1::PRIORITY_DURESS;
  Pruned pruned;
  // Every own seq up to this one is stored at every configured peer.
  const auto everywhere =
      rules.peers.empty()
          ? std::numeric_limits<std::int64_t>::max()
          : tx.exec_params1("SELECT coalesce(min(coalesce(h.own_through, 0)), 0) "
                            "FROM unnest($1::text[]) AS p(peer) LEFT JOIN relay_peer_held h "
                            "USING (peer)",
                            text_array(rules.peers))[0]
                .as<std::int64_t>();
  if (!rules.force) {
    for (const auto& row : tx.exec_params(kLacking, text_array(rules.peers), self, interval,
                                          seconds(rules.max_age), duress)) {
      pruned.kept.push_back({row[0].as<std::string>(), row[1].as<std::uint64_t>(),
                             row[2].as<std::uint64_t>(), row[3].as<std::size_t>()});
    }
  }
  // Settled ranges next to the prefix first, so that the run to prune
  // continues past them; and again after, for the ones the pruning reached.
  fold_settled(tx);
  pruned.rows = tx.exec_params1(kPrune, interval, self, everywhere, rules.force,
                                seconds(rules.max_age), duress)[0]
                    .as<std::size_t>();
  fold_settled(tx);
  tx.exec_params("DELETE FROM relay_receipts WHERE delivered_at < now() - $1::interval", interval);
  pruned.settled_through = settled_prefixes(tx);
  // Tells a running relayd when another program (relayctl prune) pruned.
  tx.exec("NOTIFY relay_retention");
  tx.commit();
  return pruned;
} catch (const pqxx::sql_error&) {
  rethrow_explained(conn);  // a role that may not prune is told which one may
}

std::map<std::string, std::uint64_t> settled_prefixes(pqxx::transaction_base& tx) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& row : tx.exec("SELECT origin, pruned_through FROM relay_watermarks")) {
    out[row[0].as<std::string>()] = row[1].as<std::uint64_t>();
  }
  return out;
}

/// One thread, one connection, one queue: group commit with retries.
class PgStore::Lane {
 public:
  Lane(std::string name, const StoreOptions& options, const StoreCallbacks& callbacks)
      : name_(std::move(name)),
        options_(options),
        callbacks_(callbacks),
        thread_([this] { run(); }) {}

  ~Lane() { stop(); }

  void push(Job job) {
    {
      std::lock_guard lock(mutex_);
      rows_ += rows_of(job);
      queue_.push_back(std::move(job));
    }
    wake_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::vector<Job> take() {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return {};
    if (std::holds_alternative<mesh::StoreBatch>(queue_.front()) && rows_ < options_.max_rows &&
        !stopping_) {
      // Group commit: let what arrives meanwhile share this transaction.
      wake_.wait_for(lock, options_.commit_window,
                     [&] { return stopping_ || rows_ >= options_.max_rows; });
    }
    std::vector<Job> jobs;
    if (std::holds_alternative<mesh::LoadRequest>(queue_.front())) {
      jobs.push_back(std::move(queue_.front()));
      queue_.pop_front();
      return jobs;
    }
    std::size_t rows = 0;
    while (!queue_.empty() && std::holds_alternative<mesh::StoreBatch>(queue_.front()) &&
           rows < options_.max_rows && (isolate_ == 0 || jobs.empty())) {
      rows += rows_of(queue_.front());
      jobs.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (isolate_ > 0) --isolate_;
    rows_ -= rows;
    return jobs;
  }

  void give_back(std::vector<Job>& jobs) {
    std::lock_guard lock(mutex_);
    for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
      rows_ += rows_of(*it);
      queue_.push_front(std::move(*it));
    }
  }

  void process(pqxx::connection& conn, std::vector<Job>& jobs) {
    if (auto* load = std::get_if<mesh::LoadRequest>(&jobs.front())) {
      pqxx::read_transaction tx(conn);
      auto events = read_events(tx, load->keys);
      tx.commit();
      callbacks_.loaded(load->ticket, std::move(events));
      return;
    }
    // Copies (of shared pointers, mostly): on failure `jobs` is retried whole.
    std::vector<mesh::StoreBatch> batches;
    for (const auto& job : jobs) batches.push_back(std::get<mesh::StoreBatch>(job));
    pqxx::work tx(conn);
    const std::size_t delivered = write_batch(tx, options_.self, batches);
    const auto commit_ms =
        tx.exec1("SELECT (extract(epoch from now()) * 1000)::bigint")[0].as<std::int64_t>();
    // A commit whose outcome is unknown (the connection broke) is retried:
    // every write is idempotent, so repeating one that did commit is harmless.
    tx.commit();
    refused_lately_.clear();
    for (const auto& batch : batches) callbacks_.stored({batch.ticket, commit_ms, delivered > 0});
  }

  void run() {
    std::unique_ptr<pqxx::connection> conn;
    bool healthy = true;
    bool reported = false;  // the first success is reported too, once
    auto backoff = options_.reconnect_first;
    std::optional<std::chrono::steady_clock::time_point> give_up;
    while (true) {
      std::vector<Job> jobs = take();
      if (jobs.empty()) return;  // stopping, and nothing left
      try {
        if (!conn) {
          conn = std::make_unique<pqxx::connection>(options_.dsn);
          prepare_for_writes(*conn, options_.unsafe_durability);
        }
        process(*conn, jobs);
        if (!healthy || !reported) {
          if (!healthy) spdlog::info("database ({} lane): reachable again", name_);
          callbacks_.health(name_, true, "");
          healthy = true;
          reported = true;
        }
        backoff = options_.reconnect_first;
      } catch (const pqxx::sql_error& e) {
        if (refused(e)) {
          poisoned(jobs, e, healthy);
        } else if (!retry_later(e, jobs, conn, healthy, backoff, give_up)) {
          return;
        }
      } catch (const std::exception& e) {
        if (!retry_later(e, jobs, conn, healthy, backoff, give_up)) return;
      }
    }
  }

  // The database refused this write itself, not an outage: anything but a
  // broken connection (08), a read-only transaction (25: a standby), a login
  // or a database gone (28, 3D), a conflict to retry (40), a missing
  // privilege (42501), a table, column, function or schema gone (42P01,
  // 42703, 42883, 3F: the schema dropped under relayd), resources (53), an
  // object in use (55), a shutdown or a cancel (57), an I/O error (58), its
  // configuration (F0) or an internal error (XX). An outage keeps the work
  // and waits; a refused write retried as it is would block the lane for ever.
  static bool refused(const pqxx::sql_error& e) {
    static constexpr std::array<std::string_view, 16> kOutage = {
        "08",    "25",    "28", "3D", "3F", "40", "42501", "42P01",
        "42703", "42883", "53", "55", "57", "58", "F0",    "XX"};
    const std::string state = e.sqlstate();
    return state.size() == 5 &&
           std::ranges::none_of(kOutage, [&](std::string_view c) { return state.starts_with(c); });
  }

  // A refused batch must not block its lane: a group is retried one batch
  // at a time, and a single refused batch is reported failed (neither
  // stored nor acked: its senders retry, the core retries its alarms, and
  // it is logged each time). Different batches refused one after another
  // with no write between read as a database that takes nothing: the lane
  // says so. (One batch its sender keeps resending does not.)
  void poisoned(std::vector<Job>& jobs, const pqxx::sql_error& e, bool& healthy) {
    if (jobs.size() > 1) {
      spdlog::warn("database ({} lane): {} batches refused together ({}); trying them one by one",
                   name_, jobs.size(), one_line(e.what()));
      std::lock_guard lock(mutex_);
      isolate_ = jobs.size();
      for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
        rows_ += rows_of(*it);
        queue_.push_front(std::move(*it));
      }
      return;
    }
    if (auto* batch = std::get_if<mesh::StoreBatch>(&jobs.front())) {
      const std::string what = contents(*batch);
      spdlog::error("database ({} lane): refused a batch; not stored, not acked:{}: {}", name_,
                    what, one_line(e.what()));
      constexpr std::size_t kRefusalsInARow = 3;
      if (refused_lately_.size() < kRefusalsInARow) refused_lately_.insert(what);
      if (refused_lately_.size() >= kRefusalsInARow && healthy) {
        const std::string why = "every write refused lately: " + one_line(e.what());
        callbacks_.health(name_, false, why);
        healthy = false;
      }
      mesh::StoreDone done;
      done.ticket = batch->ticket;
      done.failed = true;
      callbacks_.stored(done);
    } else if (auto* load = std::get_if<mesh::LoadRequest>(&jobs.front())) {
      callbacks_.loaded(load->ticket, {});
    }
  }

  /// What a batch carries, for the log line that says it was refused.
  static std::string contents(const mesh::StoreBatch& batch) {
    std::string out;
    for (const auto& w : batch.events) {
      out += " " + w.event->key.origin + ":" + std::to_string(w.event->key.seq);
    }
    for (const auto& a : batch.alarms) {
      out += fmt::format(" alarm {} ({}, {})", a.peer, a.reason, a.raised ? "raised" : "cleared");
    }
    if (!batch.receipts.empty()) out += fmt::format(" {} receipts", batch.receipts.size());
    if (!batch.settled.empty()) out += fmt::format(" {} settled ranges", batch.settled.size());
    return out;
  }

  // Down, restarting or refusing connections: nothing is reported stored,
  // so nothing is acked; keep the work and try again. False when stopping
  // and the database stayed away too long.
  bool retry_later(const std::exception& e, std::vector<Job>& jobs,
                   std::unique_ptr<pqxx::connection>& conn, bool& healthy,
                   std::chrono::milliseconds& backoff,
                   std::optional<std::chrono::steady_clock::time_point>& give_up) {
    // Said once per outage, and again when its reason changes (a database
    // back up but now refused for its settings says so).
    const std::string why = one_line(e.what());
    if (healthy || why != last_error_) {
      spdlog::error("database ({} lane): {}; nothing is acknowledged until it answers", name_, why);
      callbacks_.health(name_, false, why);
      healthy = false;
      last_error_ = why;
    }
    conn.reset();
    give_back(jobs);
    std::unique_lock lock(mutex_);
    if (stopping_) {
      // At shutdown, wait for the database a little, not forever: what is
      // left was never acked and will be sent to us again.
      if (!give_up) give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      if (std::chrono::steady_clock::now() >= *give_up) {
        spdlog::warn("database ({} lane): stopping with {} batches unstored (not acked)", name_,
                     queue_.size());
        queue_.clear();
        return false;
      }
    }
    wake_.wait_for(lock, backoff);
    backoff = std::min(backoff * 2, options_.reconnect_cap);
    return true;
  }

  std::string name_;
  std::string last_error_;  // of the current outage
  StoreOptions options_;
  StoreCallbacks callbacks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::size_t rows_ = 0;
  std::size_t isolate_ = 0;   // batches still to take one at a time
  std::set<std::string> refused_lately_;  // what single batches held, since the last write
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

PgStore::PgStore(StoreOptions options, StoreCallbacks callbacks)
    : urgent_(std::make_unique<Lane>("urgent", options, callbacks)),
      bulk_(std::make_unique<Lane>("bulk", options, callbacks)) {}

PgStore::~PgStore() {
  stop();
}

void PgStore::persist(mesh::StoreBatch batch) {
  // Duress and emergency commit on their own lane and connection; so do
  // alarm changes, which must commit in the order they happen (a clear
  // overtaking its raise on the other lane would leave the alarm open).
  const bool urgent = batch.priority >= v1::PRIORITY_EMERGENCY || !batch.alarms.empty();
  Lane& lane = urgent ? *urgent_ : *bulk_;
  lane.push(std::move(batch));
}

void PgStore::load(mesh::LoadRequest request) {
  bulk_->push(std::move(request));
}

void PgStore::stop() {
  urgent_->stop();
  bulk_->stop();
}

}  // namespace relay::store

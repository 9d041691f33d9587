#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/common.h>

#include "common/clock.h"
#include "relay/runner/queue.h"
#include "relay/runner/retry.h"
#include "relay/wake/coalescer.h"

namespace relay::runner {

/// What a handler made of one row.
struct Outcome {
  Outcome() = default;
  Outcome(bool success, std::string why = {}) : ok(success), error(std::move(why)) {}
  bool ok = false;
  std::string error;  // why not, for the log, the status page and the dead letters
  /// What the handler said, bounded (a command's stdout and stderr, a
  /// webhook's answer): hostile text, for the runner's page only.
  std::string output;
  /// How long the handler ran (set by the loop).
  std::chrono::milliseconds took{0};
};

/// The integration itself: runs the action for one row. It knows nothing of
/// polling, kicks or the database.
class Handler {
 public:
  virtual ~Handler() = default;
  /// Handles `row`, giving up (and saying so) after `timeout`. Rows may come
  /// more than once (at least once): dedupe on row.queue_id.
  virtual Outcome handle(const Row& row, std::chrono::milliseconds timeout) = 0;
};

/// One handler per worker thread, so a handler needs no locks.
using HandlerFactory = std::function<std::unique_ptr<Handler>()>;

struct LoopOptions {
  std::string dsn;
  Consumer consumer;
  /// Rows leased per claim; rows of a claim wait for each other's handlers,
  /// so 1 keeps a duress that arrives mid-claim from waiting behind others.
  std::size_t batch = 1;
  /// Worker threads (handlers running at once), each with its own connection.
  std::size_t concurrency = 1;
  /// A handler still running after this is stopped and counts as failed.
  std::chrono::milliseconds timeout{30'000};
  RetryPolicy retry;
  /// "responding" or "resolved": exercises the handler handled are
  /// acknowledged in that state, by the runner's name; empty: never.
  std::string acknowledge;
  /// Told of each handler run once its result is saved, with what the loop
  /// decided (the runner's page lists recent runs); on a worker thread.
  std::function<void(const Row&, const Outcome&, const RetryDecision&)> on_saved;
};

/// Counters and state of a loop, copied out for the status page.
struct LoopStats {
  std::uint64_t handled = 0;
  std::uint64_t failed = 0;  // failed attempts, retried or dead-lettered
  std::uint64_t dead_lettered = 0;
  /// Rows completed without running the handler: past their expiry, or
  /// cleared by their origin's all-clear or cancelled by its cancel.
  std::uint64_t expired = 0;
  std::uint64_t cleared = 0;
  /// Exercises handled and acknowledged ([runner] acknowledge).
  std::uint64_t acknowledged = 0;
  std::uint64_t cycles = 0;
  std::string last_error;
  std::optional<Clock::WallTime> last_error_at;
  bool database_up = true;
  std::string database_error;
  /// Sum and count of (handler start - relayd's insert), for a mean.
  double start_latency_seconds = 0;
  std::uint64_t started = 0;
};

/// The consume loop: on each wake-up, takes the group's due rows (duress
/// first, then oldest first) by lease and runs the handler on them, then
/// sleeps until the next wake-up or the next retry falls due. Wake-ups come
/// from outside (relay/wake's KickListener, NotifyListener, PollTimer)
/// through wake(), and coalesce as relayd's outbox claims do
/// (wake::Coalescer).
class ConsumeLoop {
 public:
  ConsumeLoop(LoopOptions options, HandlerFactory factory, const Clock& clock);
  ~ConsumeLoop();

  /// Starts the worker threads; the first cycle runs at once.
  void start();
  /// Stops after the handlers running now return; idempotent.
  void stop();
  /// Asks for a cycle now; wake-ups during a cycle coalesce into one more.
  void wake();
  LoopStats stats() const;
  const LoopOptions& options() const { return options_; }

 private:
  /// A handled row whose result is not yet in the database.
  struct Finished {
    Row row;
    Outcome outcome;
    RetryDecision decision;
  };

  void worker();
  bool cycle(pqxx::connection& conn, Handler& handler, wake::Coalescer::Mark& seen,
             std::optional<Finished>& unsaved);
  void setup(pqxx::connection& conn);
  /// Completes a row past its expiry, cleared or cancelled, without running the
  /// handler; true if it did.
  bool lapsed_row(pqxx::connection& conn, const Row& row);
  Finished run_handler(Handler& handler, const Row& row);
  void save(pqxx::connection& conn, const Finished& done);
  /// An incident line (common/log.h) about a row: "group G: row N (ID, TYPE) WHAT: ERROR".
  void log_row(spdlog::level::level_enum level, const char* incident, const Row& row,
               const std::string& what, const std::string& error) const;
  /// The alarm_cleared line, if an alarm stood for `row` (a failing duress).
  void alarm_over(const Row& row, const std::string& how) const;
  void database_failed(const std::exception& e, std::chrono::milliseconds retry_in);
  void record_error(const std::string& error);

  LoopOptions options_;
  HandlerFactory factory_;
  const Clock& clock_;
  std::vector<std::thread> threads_;

  wake::Coalescer wakeups_;
  mutable std::mutex mutex_;
  bool setup_done_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  LoopStats stats_;
};

}  // namespace relay::runner

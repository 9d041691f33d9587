#include "relay/runner/consume_loop.h"

#include <spdlog/spdlog.h>
#include <pqxx/connection>
#include <pqxx/except>

#include "common/log.h"
#include "relay/store/migrate.h"

namespace relay::runner {

ConsumeLoop::ConsumeLoop(LoopOptions options, HandlerFactory factory, const Clock& clock)
    : options_(std::move(options)), factory_(std::move(factory)), clock_(clock) {}

ConsumeLoop::~ConsumeLoop() {
  stop();
}

void ConsumeLoop::start() {
  wakeups_.wake();  // the first cycle at once
  for (std::size_t i = 0; i < std::max<std::size_t>(options_.concurrency, 1); ++i) {
    threads_.emplace_back([this] { worker(); });
  }
}

void ConsumeLoop::stop() {
  wakeups_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void ConsumeLoop::wake() {
  wakeups_.wake();
}

LoopStats ConsumeLoop::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ConsumeLoop::worker() {
  std::unique_ptr<Handler> handler = factory_();
  std::unique_ptr<pqxx::connection> conn;
  // A result the database did not take (it went away): saved after the
  // reconnect, so the row is not handled again for want of it.
  std::optional<Finished> unsaved;
  wake::Coalescer::Mark seen = 0;
  std::optional<std::chrono::milliseconds> due;
  auto backoff = std::chrono::milliseconds(100);
  // A retry or someone's lease falls due (or the database is to be tried
  // again): a cycle then, whatever else.
  while (due ? wakeups_.wait(seen, *due) : wakeups_.wait(seen)) {
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(options_.dsn);
        prepare_session(*conn);
        setup(*conn);
      }
      if (unsaved) {
        save(*conn, *unsaved);
        unsaved.reset();
      }
      while (cycle(*conn, *handler, seen, unsaved)) {
      }
      due = next_due(*conn, options_.consumer);
      backoff = std::chrono::milliseconds(100);
      std::lock_guard lock(mutex_);
      if (!stats_.database_up) spdlog::info("database answers again; consuming");
      stats_.database_up = true;
      stats_.database_error.clear();
    } catch (const std::exception& e) {
      // Whatever was leased and not finished is leased no more once the
      // lease runs out (or at once when this runner restarts): handled again.
      conn.reset();
      database_failed(e, backoff);
      due = backoff;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
}

void ConsumeLoop::setup(pqxx::connection& conn) {
  // Once per process, before any claim: releasing leases later could take
  // a row from under a sibling worker that is handling it.
  std::lock_guard lock(mutex_);
  if (setup_done_) return;
  const auto& who = options_.consumer;
  // The runner's tables come with the store's migrations: a runner started
  // before relayd on a fresh database brings the schema itself.
  // A runner with a role of its own (no CREATE) leaves that to relayd.
  try {
    for (const auto& name : store::migrate(conn)) spdlog::info("migration {} applied", name);
  } catch (const pqxx::insufficient_privilege& e) {
    spdlog::info("migrations are relayd's to apply with this role: {}", e.what());
  }
  if (auto before = register_group(conn, who)) {
    spdlog::warn("group {} consumed [{}]; now it consumes the types of this runner's config",
                 who.group, *before);
  }
  if (auto n = release_leases(conn, who)) {
    spdlog::warn(
        "{} rows leased by an earlier run of runner {} (killed mid-handler?) are handled "
        "again",
        n, who.name);
  }
  setup_done_ = true;
}

bool ConsumeLoop::cycle(pqxx::connection& conn, Handler& handler, wake::Coalescer::Mark& seen,
                        std::optional<Finished>& unsaved) {
  seen = wakeups_.mark();
  {
    std::lock_guard lock(mutex_);
    ++stats_.cycles;
  }
  ingest(conn, options_.consumer);
  const auto lease = lease_for(options_.batch, options_.timeout);
  while (true) {
    auto rows = claim(conn, options_.consumer, options_.batch, lease);
    if (rows.empty()) return false;
    for (const auto& row : rows) {
      if (lapsed_row(conn, row)) continue;
      unsaved = run_handler(handler, row);
      save(conn, *unsaved);
      unsaved.reset();
    }
    if (wakeups_.stopped()) return false;
    // Woken meanwhile: new rows (perhaps a duress) wait to be ingested, and
    // the next claim must see them to put them first.
    if (wakeups_.woken_since(seen)) return true;
  }
}

bool ConsumeLoop::lapsed_row(pqxx::connection& conn, const Row& row) {
  // An alert past its expiry, an alarm its origin cleared, or an event its
  // origin cancelled, is not acted
  // on, however long it waited here (a handler that failed until after it,
  // a runner that was down): completed, never run.
  // A duress never expires: relayd delivers it whatever its expires says,
  // and it is retried for as long as it takes.
  std::string why;
  if (row.expires && row.priority < kDuressPriority &&
      clock_.wall_now().time_since_epoch() >= *row.expires) {
    why = "expired";
  } else if (auto ended = ended_by(conn, row)) {
    why = *ended;
  } else {
    return false;
  }
  complete(conn, options_.consumer, row.queue_id);
  spdlog::warn("group {}: row {} ({}) {} before it was handled: completed without running the "
               "handler",
               options_.consumer.group, row.queue_id,
               row.event_id.empty() ? row.type : row.event_id, why);
  alarm_over(row, why + " before it was handled");
  std::lock_guard lock(mutex_);
  ++(why == "expired" ? stats_.expired : stats_.cleared);
  return true;
}

ConsumeLoop::Finished ConsumeLoop::run_handler(Handler& handler, const Row& row) {
  const auto now = clock_.wall_now().time_since_epoch();
  {
    std::lock_guard lock(mutex_);
    stats_.start_latency_seconds += std::chrono::duration<double>(now - row.inserted_at).count();
    ++stats_.started;
  }
  Finished done{row, {}, {}};
  if (exhausted(options_.retry, row.attempts, row.priority)) {
    done.outcome = {false, "no result after " + std::to_string(row.attempts - 1) +
                               " attempts: the runner stopped while handling it each time"};
    done.decision.action = RetryDecision::Action::dead_letter;
    return done;
  }
  const auto started = std::chrono::steady_clock::now();
  try {
    done.outcome = handler.handle(row, options_.timeout);
  } catch (const std::exception& e) {
    done.outcome = {false, one_line(e.what())};
  }
  done.outcome.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (!done.outcome.ok) {
    std::lock_guard lock(mutex_);
    done.decision = decide(options_.retry, row.attempts, row.priority, rng_);
  }
  return done;
}

void ConsumeLoop::save(pqxx::connection& conn, const Finished& done) {
  const auto& who = options_.consumer;
  const Row& row = done.row;
  if (done.outcome.ok) {
    // An exercise a person would have answered: the configured runner
    // answers it, in the transaction that completes it. Never a real
    // alert: an alarm ends by a person's word, not a machine's.
    const bool acked = !options_.acknowledge.empty() &&
                       complete_acknowledging(conn, who, row, options_.acknowledge);
    if (!acked) complete(conn, who, row.queue_id);
    {
      std::lock_guard lock(mutex_);
      ++stats_.handled;
      if (acked) ++stats_.acknowledged;
    }
    log_row(spdlog::level::info, "handled", row,
            "handled in " + std::to_string(done.outcome.took.count()) + " ms" +
                (acked ? ", acknowledged (" + options_.acknowledge + ") as " + who.name : ""),
            "");
    alarm_over(row, "handled");
  } else {
    const auto& decision = done.decision;
    const auto& error = done.outcome.error;
    fail(conn, who, row.queue_id, error, decision);
    record_error("row " + std::to_string(row.queue_id) + ": " + error);
    {
      std::lock_guard lock(mutex_);
      ++stats_.failed;
      if (decision.action == RetryDecision::Action::dead_letter) ++stats_.dead_lettered;
    }
    const std::string tried = "failed " + std::to_string(row.attempts) + " times";
    const std::string retried = ", retried in " + std::to_string(decision.delay.count()) + " ms";
    if (decision.action == RetryDecision::Action::dead_letter) {
      log_row(spdlog::level::err, "dead_lettered", row, tried + ", moved to runner_dead_letters",
              error);
    } else if (decision.alarm) {
      // The alarm is raised by the failure that reaches duress_alarm_after;
      // each one after it says so again (the alarm stands).
      log_row(spdlog::level::critical,
              row.attempts == options_.retry.duress_alarm_after ? "alarm_raised" : "failed", row,
              tried + retried, error);
    } else {
      log_row(spdlog::level::warn, "failed", row,
              "failed (attempt " + std::to_string(row.attempts) + ")" + retried, error);
    }
  }
  if (options_.on_saved) options_.on_saved(row, done.outcome, done.decision);
}

void ConsumeLoop::log_row(spdlog::level::level_enum level, const char* incident, const Row& row,
                          const std::string& what, const std::string& error) const {
  const std::string named = row.event_id.empty() ? row.type : row.event_id + ", " + row.type;
  log_incident(level,
               "group " + options_.consumer.group +
                   (row.priority >= kDuressPriority ? ": DURESS row " : ": row ") +
                   std::to_string(row.queue_id) + " (" + named + ") " + what +
                   (error.empty() ? "" : ": " + error),
               {{"incident", incident},
                {"group", options_.consumer.group},
                {"queue_id", std::to_string(row.queue_id)},
                {"event_id", row.event_id},
                {"type", row.type},
                {"attempt", std::to_string(row.attempts)},
                {"reason", error}});
}

void ConsumeLoop::alarm_over(const Row& row, const std::string& how) const {
  // Its earlier failures reached duress_alarm_after: an alarm stood for it.
  if (row.priority >= kDuressPriority && row.attempts - 1 >= options_.retry.duress_alarm_after) {
    log_row(
        spdlog::level::warn, "alarm_cleared", row,
        how + " after " + std::to_string(row.attempts - 1) + " failed attempts: its alarm is over",
        "");
  }
}

void ConsumeLoop::database_failed(const std::exception& e, std::chrono::milliseconds retry_in) {
  std::lock_guard lock(mutex_);
  // Once per outage, not once per retry.
  if (stats_.database_up) {
    spdlog::error("database: {}; retrying every {} ms at most, rows wait in message_queue",
                  one_line(e.what()), retry_in.count());
  }
  stats_.database_up = false;
  stats_.database_error = one_line(e.what());
}

void ConsumeLoop::record_error(const std::string& error) {
  std::lock_guard lock(mutex_);
  stats_.last_error = error;
  stats_.last_error_at = clock_.wall_now();
}

}  // namespace relay::runner

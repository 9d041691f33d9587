#include "relay/status/database_watch.h"

#include <libpq-fe.h>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/transaction>

#include "common/log.h"
#include "relay/status/verdict.h"
#include "relay/store/durability.h"

namespace relay::status {
namespace {

/// Where the DSN points (either form libpq takes), with libpq's default
/// port when it names none: the reader's next step is to look there.
void where(const std::string& dsn, DatabaseState& state) {
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), nullptr);
  if (options == nullptr) return;
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    if (std::string_view(o->keyword) == "host") state.host = o->val;
    if (std::string_view(o->keyword) == "port") state.port = o->val;
  }
  PQconninfoFree(options);
}

/// The failure in plain words; the library's own words go in the detail.
/// libpqxx says "Could not obtain client encoding: not connected." for a
/// server that is not there, which tells an operator nothing.
std::string plain(const std::exception& e) {
  const std::string what = e.what();
  if (what.find("authentication failed") != std::string::npos ||
      what.find("does not exist") != std::string::npos ||
      what.find("pg_hba.conf") != std::string::npos) {
    return "the server refuses relayd's connection ([store] dsn)";
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return "database unreachable";
  if (what.find("statement timeout") != std::string::npos) return "does not answer within 5 s";
  return "check failed";
}

}  // namespace

DatabaseWatch::DatabaseWatch(Config config, net::Health& health, std::chrono::milliseconds interval)
    : config_(std::move(config)), health_(health), interval_(interval) {
  state_.down_since_unix_ms = net::unix_ms_now();
  where(config_.store.dsn, state_);
}

DatabaseWatch::~DatabaseWatch() {
  stop();
}

void DatabaseWatch::start() {
  thread_ = std::thread([this] { run(); });
}

void DatabaseWatch::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

DatabaseState DatabaseWatch::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void DatabaseWatch::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    check();
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return stop_; });
  }
}

void DatabaseWatch::check() {
  // A failing check can take seconds (connect_timeout, a server that
  // stopped mid-query): the database was seen failing when it began.
  const auto began = net::unix_ms_now();
  std::optional<store::ConsoleView> view;
  std::vector<runner::Alarm> runner_alarms;
  std::string error, detail;
  try {
    // One connection, kept: a check every few seconds must not cost a
    // backend start each time. A broken one throws and is made anew.
    if (!conn_ || !conn_->is_open()) {
      conn_.reset();
      conn_ = std::make_unique<pqxx::connection>(store::with_connect_timeout(config_.store.dsn, 5));
    }
    pqxx::read_transaction tx(*conn_);
    tx.exec("SET LOCAL statement_timeout = 5000");
    view = store::read_console(tx, config_);
    tx.commit();
    runner_alarms = runner::alarms(*conn_);
  } catch (const pqxx::undefined_table&) {
    // It answers, but relayd has not created its tables yet (it migrates at
    // start): reachable, with nothing to show yet.
    view.emplace();
    view->database_now_unix_ms = net::unix_ms_now();
  } catch (const std::exception& e) {
    error = plain(e);
    detail = one_line(e.what());
    conn_.reset();
  }
  const auto now = net::unix_ms_now();
  std::lock_guard lock(mutex_);
  const auto was = state_.state;
  state_.checked_unix_ms = now;
  if (view) state_.view_began_unix_ms = began;
  if (view) {
    if (was == DatabaseState::State::down) {
      log_incident(spdlog::level::info,
                   fmt::format("database reachable again after {}",
                               age_text(now - state_.down_since_unix_ms)),
                   {{"incident", "database_up"}, {"reason", "check succeeded"}});
    } else if (was == DatabaseState::State::never_reached) {
      spdlog::info("database reachable ({})", config_.store.dsn);
    }
    state_.state = DatabaseState::State::up;
    state_.error.clear();
    state_.detail.clear();
    state_.runner_alarms = std::move(runner_alarms);
    state_.last_ok_unix_ms = now;
    state_.down_since_unix_ms = 0;
    state_.view = std::move(view);
    health_.ok(net::Health::kDatabase);
    return;
  }
  if (was == DatabaseState::State::up) {
    state_.state = DatabaseState::State::down;
    state_.down_since_unix_ms = began;
    log_incident(spdlog::level::err,
                 "database unreachable: " + detail + "; nothing is acknowledged until it answers",
                 {{"incident", "database_down"}, {"reason", error}});
  } else if (was == DatabaseState::State::never_reached && state_.error.empty()) {
    log_incident(spdlog::level::err,
                 "database unreachable at start: " + detail + "; checking every " +
                     std::to_string(interval_.count()) + " ms",
                 {{"incident", "database_down"}, {"reason", error}});
  }
  state_.error = error;
  state_.detail = detail;
  health_.failing(net::Health::kDatabase, error + ": " + detail);
}

}  // namespace relay::status

// relayd: the relaymesh relay daemon. One per site, beside its PostgreSQL.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <pqxx/connection>
#include <pqxx/transaction>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <csignal>
#include <filesystem>
#include <future>
#include <iostream>
#include <set>
#include <thread>
#include <tuple>

#include <grp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bind_check.h"
#include "common/config.h"
#include "common/config_error.h"
#include "common/log.h"
#include "common/state_dir.h"
#include "relay/capture/output_capture.h"
#include "relay/net/daemon.h"
#include "relay/net/periodic.h"
#include "relay/net/systemd_notify.h"
#include "relay/spool/spool.h"
#include "relay/status/console.h"
#include "relay/status/database_watch.h"
#include "relay/status/status_server.h"
#include "relay/status/verdict.h"
#include "relay/store/durability.h"
#include "relay/store/numbering.h"
#include "relay/store/pg_store.h"

namespace {

using namespace relay;

struct Opened {
  mesh::Snapshot snapshot;
  std::uint64_t own_highest = 0;
};

/// Opens the database on a thread of its own, for as long as it takes (the
/// core meanwhile runs without it), saying why once per attempt, and hands
/// what it holds to `opened`.
class DatabaseOpener {
 public:
  DatabaseOpener(const Config& config, std::function<void(Opened)> opened,
                 std::function<void(const std::string&)> failed)
      : config_(config),
        opened_(std::move(opened)),
        failed_(std::move(failed)),
        thread_([this] { run(); }) {}
  ~DatabaseOpener() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    auto backoff = std::chrono::milliseconds(250);
    std::unique_lock lock(mutex_);
    while (!stop_) {
      lock.unlock();
      try {
        pqxx::connection conn(config_.store.dsn);
        check_durability(conn);
        Opened opened;
        opened.snapshot = store::open_database(conn, config_.node.id, mesh::Tuning{}.max_queue);
        opened.own_highest = store::own_highest(conn, config_.node.id);
        opened_(std::move(opened));
        return;
      } catch (const std::exception& e) {
        spdlog::error(
            "database ({}): {}; retrying in {} ms (duress alarms go out through the "
            "spool meanwhile)",
            config_.store.dsn, one_line(e.what()), backoff.count());
        failed_(one_line(e.what()));
      }
      lock.lock();
      cv_.wait_for(lock, backoff, [&] { return stop_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
  }

  /// Refuses a database that would lose acknowledged commits in a power cut,
  /// and says once that relayd's own sessions commit durably whatever the
  /// server's default is.
  void check_durability(pqxx::connection& conn) {
    const auto settings = store::read_durability(conn);
    if (auto why = store::durability_refusal(settings, config_.store.unsafe_durability);
        !why.empty()) {
      throw std::runtime_error(why);
    }
    if (!settings.fsync || !settings.full_page_writes) {
      spdlog::warn("database: fsync = {}, full_page_writes = {}, accepted by [store] "
                   "unsafe_durability: a power cut can lose what relayd acknowledged",
                   settings.fsync ? "on" : "off", settings.full_page_writes ? "on" : "off");
    }
    if (settings.synchronous_commit == "off" || settings.synchronous_commit == "local") {
      spdlog::info("database: the server's synchronous_commit is {}; relayd sets it on for its "
                   "own sessions",
                   settings.synchronous_commit);
    }
  }

  const Config& config_;
  std::function<void(Opened)> opened_;
  std::function<void(const std::string&)> failed_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

/// Prunes the event log once an hour, on its own thread and connection,
/// and tells the core what is settled now (it advertises it in digests);
/// refresh() only reads that, after another program pruned.
class Retention {
 public:
  Retention(const Config& config, std::function<void(store::Pruned)> done)
      : dsn_(config.store.dsn),
        self_(config.node.id),
        rules_(store::prune_rules(config)),
        done_(std::move(done)),
        thread_([this] { run(); }) {}
  ~Retention() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void refresh() {
    {
      std::lock_guard lock(mutex_);
      refresh_ = true;
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      const bool woken =
          cv_.wait_for(lock, std::chrono::hours(1), [&] { return stop_ || refresh_; });
      if (stop_) return;
      const bool prune = !woken;
      refresh_ = false;
      lock.unlock();
      try {
        pqxx::connection conn(dsn_);
        store::make_commits_durable(conn);
        store::Pruned pruned;
        if (prune) {
          pruned = store::prune_log(conn, self_, rules_);
          if (pruned.rows > 0) spdlog::info("retention: pruned {} log rows", pruned.rows);
          for (const auto& k : pruned.kept) {
            spdlog::info("retention: kept {} own events ({}:{}..{}) that {} has not stored yet",
                         k.count, self_, k.first, k.last, k.peer);
          }
        } else {
          pqxx::read_transaction tx(conn);
          pruned.settled_through = store::settled_prefixes(tx);
        }
        done_(std::move(pruned));
      } catch (const std::exception& e) {
        spdlog::warn("retention: {}", one_line(e.what()));
      }
      lock.lock();
    }
  }

  std::string dsn_;
  std::string self_;
  store::PruneRules rules_;
  std::function<void(store::Pruned)> done_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool refresh_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

/// The settings of `b` that differ from `a` beyond key material (keys and
/// peers' keys reload in place; everything else needs relayd to restart,
/// which it does in place on a reload: same PID, nothing lost).
std::vector<std::string> needs_restart(const Config& a, const Config& b) {
  std::vector<std::string> changed;
  auto check = [&](const char* name, auto x, auto y) {
    if (x != y) changed.emplace_back(name);
  };
  auto peers = [](const Config& c) {
    std::string s;
    for (const auto& p : c.peers) {
      s += "|" + p.id;
      for (const auto& path : p.paths()) s += "@" + path.to_string();
      for (const auto& g : p.groups) s += "," + g;
    }
    return s;
  };
  auto endpoints = [](const std::vector<Endpoint>& list) {
    std::string s;
    for (const auto& e : list) s += "|" + e.to_string();
    return s;
  };
  check("[node] id", a.node.id, b.node.id);
  check("[node] groups", a.node.groups, b.node.groups);
  check("[node] listen", a.node.listen.to_string(), b.node.listen.to_string());
  check("[node] state_dir", a.node.state_dir, b.node.state_dir);
  check("[mesh] supervision_timeout", a.mesh.supervision_timeout, b.mesh.supervision_timeout);
  check("[[peer]] ids, addresses or groups", peers(a), peers(b));
  check("[store] dsn", a.store.dsn, b.store.dsn);
  check("[store] poll_interval", a.store.poll_interval, b.store.poll_interval);
  check("[store] retention", a.store.retention, b.store.retention);
  check("[store] unsafe_durability", a.store.unsafe_durability, b.store.unsafe_durability);
  check("[kick] listen", a.kick.listen.to_string(), b.kick.listen.to_string());
  check("[delivery] kick", endpoints(a.delivery.kick), endpoints(b.delivery.kick));
  check("[delivery] max_age", a.delivery.max_age, b.delivery.max_age);
  check("[duress] targets", a.duress.targets, b.duress.targets);
  check("[status] listen", a.status.listen.to_string(), b.status.listen.to_string());
  check("[status] token", a.status.token, b.status.token);
  check("[control] socket", a.control.socket, b.control.socket);
  check("[control] group", a.control.group, b.control.group);
  auto escalations = [](const Config& c) {
    std::string s;
    for (const auto& r : c.escalations) {
      s += "|" + r.kind + "," + r.priority + "," + std::to_string(r.after.count()) + "," +
           std::to_string(r.repeat.count()) + "," + std::to_string(r.max);
      for (const auto& t : r.to) s += "," + t;
    }
    return s;
  };
  check("[[escalation]]", escalations(a), escalations(b));
  // The core enforces the policy it started with: a new one by a restart,
  // so that what it enforces and what its hellos announce never differ.
  check("[mesh] policy", a.policy_digest, b.policy_digest);
  return changed;
}

/// What a restart in place onto `fresh` would fail on at start, checked
/// before relayd commits to it: a changed listen address another program
/// holds, a new state directory another relayd holds, a control group this
/// machine lacks, a control socket whose folder is missing. Throws naming
/// them; the running configuration then stays.
void check_restart(const Config& running, const Config& fresh) {
  std::string problems;
  // Ports this relayd holds now are its own to take again after the exec.
  const std::set<std::uint16_t> udp{running.node.listen.port, running.kick.listen.port};
  const std::set<std::uint16_t> tcp{running.status.listen.port};
  for (const auto& [name, was, now, type] :
       {std::tuple{"[node] listen", running.node.listen, fresh.node.listen, SOCK_DGRAM},
        std::tuple{"[kick] listen", running.kick.listen, fresh.kick.listen, SOCK_DGRAM},
        std::tuple{"[status] listen", running.status.listen, fresh.status.listen, SOCK_STREAM}}) {
    const auto& own = type == SOCK_DGRAM ? udp : tcp;
    if (now.to_string() == was.to_string() || now.port == 0 || own.contains(now.port)) continue;
    if (const int err = try_bind(now, type); err != 0) {
      problems += fmt::format("\n{} {}: {}", name, now.to_string(), std::strerror(err));
    }
  }
  std::error_code ec;
  const auto same = [&](const std::filesystem::path& a, const std::filesystem::path& b) {
    return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
  };
  if (!same(fresh.node.state_dir, running.node.state_dir) &&
      std::filesystem::is_directory(fresh.node.state_dir, ec)) {
    try {
      StateDir(fresh.node.state_dir).lock();
    } catch (const std::exception& e) {
      problems += fmt::format("\n[node] state_dir: {}", e.what());
    }
  }
  if (!fresh.control.group.empty() && ::getgrnam(fresh.control.group.c_str()) == nullptr) {
    problems += fmt::format("\n[control] group: no such group \"{}\"", fresh.control.group);
  }
  const auto folder = fresh.control.socket.parent_path();
  if (!same(folder, fresh.node.state_dir) && !std::filesystem::is_directory(folder, ec)) {
    problems += fmt::format("\n[control] socket: {} is not a folder", folder.string());
  }
  if (!problems.empty()) {
    throw std::runtime_error("relayd would not start again on this configuration:" + problems);
  }
}

/// Says what the process is, for the status page.
status::ProcessInfo process_info(const Config& config, const std::string& config_file) {
  status::ProcessInfo p;
  p.node = config.node.id;
  p.version = RELAY_VERSION;
  std::error_code ignored;
  p.config_path = std::filesystem::absolute(config_file, ignored).string();
  p.pid = ::getpid();
  p.started_unix_ms = net::unix_ms_now();
  p.state_dir = std::filesystem::absolute(config.node.state_dir, ignored).string();
  p.policy_digest = config.policy_digest;
  p.policy_clear_rules = config.policy.clear.size();
  p.policy_send_rules = config.policy.send.size();
  return p;
}

/// Asks the network thread, which owns the core, for its status.
std::optional<net::DaemonStatus> daemon_status(asio::io_context& io, net::Daemon& daemon) {
  auto promise = std::make_shared<std::promise<net::DaemonStatus>>();
  auto future = promise->get_future();
  asio::post(io, [&daemon, promise] { promise->set_value(daemon.status()); });
  if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"relayd: the relaymesh relay daemon"};
  std::string config_file = "/etc/relaymesh/relayd.toml";
  std::string level = "info";
  app.add_option("--config", config_file, "configuration file")->capture_default_str();
  app.add_option("--log-level", level, "trace, debug, info, warn or error")->capture_default_str();
  app.set_version_flag("--version", "relayd " RELAY_VERSION);
  app.footer(
      "Exit codes: 0 stopped by SIGTERM or SIGINT; 1 a runtime failure (the status or mesh port "
      "taken, say); 2 a usage or configuration error.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  Config config;
  std::optional<NodeKeys> keys;
  std::optional<StateDir> state;
  try {
    init_logging(level);
    config = load_config(config_file);
    keys = load_node_keys(config);
    state.emplace(config.node.state_dir);
    state->lock();  // before anything else is written in the folder
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  // Before any thread starts (it forks): stdout and stderr to the journal
  // and to the files the status page shows.
  const auto capture = capture::start_output_capture(capture::log_dir(config.node.state_dir),
                                                     "relayd", state->lock_fd());
  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed pipe or socket is an error, not death
  if (!capture.active)
    spdlog::warn("output capture off, the page shows no log: {}", capture.why_not);

  // The status side comes up first and needs no database: a database that
  // is down at start shows on the page and on /healthz, not in silence.
  asio::io_context io;  // outlives the page, whose requests may still post to it
  // Under systemd (deploy/relayd.service, Type=notify): the watchdog's pings
  // come from the network thread, so a hung loop stops them and is restarted.
  net::SystemdNotifier systemd(io);
  systemd.start_watchdog();
  net::Health health;
  health.failing(net::Health::kCore, "waiting for the database");
  status::DatabaseWatch database(config, health);
  database.start();
  status::Console console(process_info(config, config_file), health, database, capture);
  status::StatusServer status_page(config.status, console);
  try {
    status_page.start();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  spdlog::info("status page on http://{}/", config.status.listen.to_string());
  // READY=1 once the database answered and the core runs with it, then the
  // verdict as systemd's status line whenever it changes. Off the network
  // thread: the snapshot asks that thread for the core's status.
  std::atomic<bool> attached = false;
  bool ready_sent = false;
  net::Periodic verdicts(std::chrono::seconds(1), [&] {
    const auto verdict = status::judge(console.snapshot(false));
    const auto line = net::status_line(status::level_name(verdict.level), verdict.reasons);
    if (attached && !ready_sent) {
      ready_sent = true;
      systemd.ready(line);
    } else {
      systemd.status(line);
    }
  });
  verdicts.start();
  spdlog::info("mesh policy: {} [[clear]] rules, {} [[send]] rules, digest {}",
               config.policy.clear.size(), config.policy.send.size(), config.policy_digest);

  // Numbering and the spool live in the state directory: both work while
  // the database is away.
  std::optional<store::NumberingState> numbering;
  std::optional<spool::Spool> spool;
  try {
    numbering.emplace(*state);
    spool.emplace(config.node.state_dir / "spool");
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 2;
  }

  bool restart = false;
  try {
    std::unique_ptr<Retention> retention;
    net::Daemon daemon(io, config, std::move(*keys), *numbering, *state, *spool, health,
                       [&retention] {
                         if (retention) retention->refresh();
                       });
    daemon.start();
    console.set_daemon([&io, &daemon] { return daemon_status(io, daemon); });
    // Whichever way this block is left, the page stops asking the core first.
    struct Detach {
      status::Console& console;
      ~Detach() { console.set_no_daemon("stopped"); }
    } detach{console};
    DatabaseOpener opener(
        config,
        [&](Opened opened) {
          numbering->on_database(opened.own_highest);
          numbering->describe(opened.snapshot);
          asio::post(io, [&, snapshot = std::move(opened.snapshot)]() mutable {
            daemon.attach(std::move(snapshot));
            attached = true;
            retention = std::make_unique<Retention>(config, [&](store::Pruned pruned) {
              asio::post(io, [&daemon, settled = std::move(pruned.settled_through)] {
                daemon.pruned(settled);
              });
            });
          });
        },
        [&](const std::string& why) {
          health.failing(net::Health::kCore, "waiting for the database: " + why);
        });

    // A reload (SIGHUP, or `relayctl reload` through the control socket,
    // which gets the answer): keys in place, anything else by restarting
    // in place. A file that does not load changes nothing, and says why.
    auto reload = [&]() -> std::pair<bool, std::string> {
      if (restart) return {true, "already restarting in place"};
      try {
        const Config fresh = load_config(config_file);
        NodeKeys fresh_keys = load_node_keys(fresh);
        const auto changed = needs_restart(config, fresh);
        if (changed.empty()) {
          daemon.reload(fresh, std::move(fresh_keys));
          daemon.note_reload("");
          return {true, "reloaded: keys taken in place"};
        }
        check_restart(config, fresh);
        std::string what;
        for (const auto& c : changed) what += (what.empty() ? "" : ", ") + c;
        spdlog::info("configuration changed ({}): restarting in place", what);
        restart = true;
        // Same PID after the exec: systemd hears READY=1 again once the
        // database answers the new process.
        systemd.reloading("restarting in place to take: " + what);
        // After the answer has gone out; nothing is lost: what was acked is
        // durable, the rest is sent again by its sender.
        auto later = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(200));
        later->async_wait([&, later](const asio::error_code&) {
          daemon.stop();
          io.stop();
        });
        return {true, "restarting in place to take: " + what};
      } catch (const std::exception& e) {
        spdlog::error("reload refused, keeping the running configuration:\n{}", e.what());
        daemon.note_reload(e.what());
        return {false, e.what()};
      }
    };
    daemon.set_reload([&] { return reload(); });
    asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec,
                                                                      int sig) {
      if (ec) return;
      signals.async_wait(on_signal);  // a SIGTERM during a restart still stops
      if (sig == SIGHUP) {
        reload();
        return;
      }
      restart = false;
      systemd.stopping();
      spdlog::info("stopping: no new claims, flushing the store");
      daemon.stop();
      io.stop();
    };
    signals.async_wait(on_signal);
    io.run();
    retention.reset();  // its thread posts to the daemon: gone before the daemon
    verdicts.stop();  // it asks the daemon too
    status_page.stop();
    database.stop();
    // A SIGTERM or SIGINT caught after the loop stopped is still waiting in
    // the signal set: it turns a pending restart into a stop.
    io.restart();
    io.poll();
    if (restart) {
      spdlog::info("re-executing {}", argv[0]);
      spdlog::shutdown();
      ::execv("/proc/self/exe", argv);
      std::perror("relayd: re-exec failed");
      return 1;
    }
    spdlog::info("stopped");
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

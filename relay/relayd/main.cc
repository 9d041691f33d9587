// relayd: the relaymesh relay daemon. One per site, beside its PostgreSQL.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <pqxx/connection>
#include <pqxx/transaction>

#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>

#include <unistd.h>

#include "common/config.h"
#include "common/config_error.h"
#include "common/log.h"
#include "common/state_dir.h"
#include "relay/capture/output_capture.h"
#include "relay/net/daemon.h"
#include "relay/spool/spool.h"
#include "relay/status/console.h"
#include "relay/status/database_watch.h"
#include "relay/status/status_server.h"
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
  DatabaseOpener(const Config& config, std::function<void(Opened)> opened)
      : config_(config), opened_(std::move(opened)), thread_([this] { run(); }) {}
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
        Opened opened;
        opened.snapshot = store::open_database(conn, config_.node.id, mesh::Tuning{}.max_queue);
        opened.own_highest = store::own_highest(conn, config_.node.id);
        opened_(std::move(opened));
        return;
      } catch (const std::exception& e) {
        spdlog::error(
            "database ({}): {}; retrying in {} ms (duress alarms go out through the "
            "spool meanwhile)",
            config_.store.dsn, e.what(), backoff.count());
      }
      lock.lock();
      cv_.wait_for(lock, backoff, [&] { return stop_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
  }

  const Config& config_;
  std::function<void(Opened)> opened_;
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
        retention_(std::chrono::duration_cast<std::chrono::seconds>(config.store.retention)),
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
        store::Pruned pruned;
        if (prune) {
          pruned = store::prune_log(conn, self_, retention_);
          if (pruned.rows > 0) spdlog::info("retention: pruned {} log rows", pruned.rows);
        } else {
          pqxx::read_transaction tx(conn);
          pruned.settled_through = store::settled_prefixes(tx);
        }
        done_(std::move(pruned));
      } catch (const std::exception& e) {
        spdlog::warn("retention: {}", e.what());
      }
      lock.lock();
    }
  }

  std::string dsn_;
  std::string self_;
  std::chrono::seconds retention_;
  std::function<void(store::Pruned)> done_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool refresh_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

/// True if `b` differs from `a` in nothing but key material, which a
/// running relayd can take on SIGHUP without a restart.
bool same_except_keys(const Config& a, const Config& b) {
  auto shape = [](const Config& c) {
    std::string s = c.node.id + c.node.listen.to_string() + c.kick.listen.to_string() +
                    c.status.listen.to_string() + c.store.dsn +
                    std::to_string(c.mesh.supervision_timeout.count()) +
                    std::to_string(c.store.poll_interval.count());
    for (const auto& g : c.node.groups) s += "|g" + g;
    for (const auto& p : c.peers) {
      s += "|p" + p.id + "@" + p.address.to_string();
      for (const auto& g : p.groups) s += "," + g;
    }
    for (const auto& k : c.delivery.kick) s += "|k" + k.to_string();
    return s;
  };
  return shape(a) == shape(b);
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
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  // Before any thread starts (it forks): stdout and stderr to the journal
  // and to the files the status page shows.
  const auto capture =
      capture::start_output_capture(capture::log_dir(config.node.state_dir), "relayd");
  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed pipe or socket is an error, not death
  if (!capture.active)
    spdlog::warn("output capture off, the page shows no log: {}", capture.why_not);

  // The status side comes up first and needs no database: a database that
  // is down at start shows on the page and on /healthz, not in silence.
  asio::io_context io;  // outlives the page, whose requests may still post to it
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
    DatabaseOpener opener(config, [&](Opened opened) {
      numbering->on_database(opened.own_highest);
      numbering->describe(opened.snapshot);
      asio::post(io, [&, snapshot = std::move(opened.snapshot)]() mutable {
        daemon.attach(std::move(snapshot));
        retention = std::make_unique<Retention>(config, [&](store::Pruned pruned) {
          asio::post(io, [&daemon, settled = std::move(pruned.settled_through)] {
            daemon.pruned(settled);
          });
        });
      });
    });

    asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec,
                                                                      int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        try {
          const Config fresh = load_config(config_file);
          NodeKeys fresh_keys = load_node_keys(fresh);
          if (same_except_keys(config, fresh)) {
            daemon.reload(fresh, std::move(fresh_keys));
          } else {
            // Peers, addresses or ports changed: restart in place (same
            // PID). Nothing is lost: what was acked is durable, the rest is
            // sent again by its sender.
            spdlog::info("configuration changed beyond keys: restarting in place");
            restart = true;
            daemon.stop();
            io.stop();
            return;
          }
        } catch (const std::exception& e) {
          spdlog::error("reload refused, keeping the running configuration:\n{}", e.what());
        }
        signals.async_wait(on_signal);
        return;
      }
      spdlog::info("stopping: no new claims, flushing the store");
      daemon.stop();
      io.stop();
    };
    signals.async_wait(on_signal);
    io.run();
    retention.reset();  // its thread posts to the daemon: gone before the daemon
    status_page.stop();
    database.stop();
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

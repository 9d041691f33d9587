#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <pqxx/connection>

#include "common/config.h"
#include "relay/net/health.h"
#include "relay/status/snapshot.h"

namespace relay::status {

/// Checks the local database periodically on a thread and connection of its
/// own, whether or not any event has to be stored: a database that went away
/// while the mesh is idle shows at once on /healthz, the page and /metrics.
/// Each check reads what the page shows of the tables (store/console.h). It
/// needs nothing else, so it runs before the relay core exists (a database
/// down at start is reported, not waited for in silence). Logs one line
/// when the database goes down and one when it is back.
class DatabaseWatch {
 public:
  DatabaseWatch(Config config, net::Health& health,
                std::chrono::milliseconds interval = std::chrono::seconds(2));
  ~DatabaseWatch();
  DatabaseWatch(const DatabaseWatch&) = delete;
  DatabaseWatch& operator=(const DatabaseWatch&) = delete;

  void start();
  void stop();
  /// The last result (safe from any thread).
  DatabaseState state() const;

 private:
  void run();
  void check();

  Config config_;
  net::Health& health_;
  std::chrono::milliseconds interval_;
  std::unique_ptr<pqxx::connection> conn_;  // the watch thread's only
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  DatabaseState state_;
  std::thread thread_;
};

}  // namespace relay::status

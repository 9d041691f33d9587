#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/config.h"
#include "relay/net/daemon.h"

namespace httplib {
class Server;
}

namespace relay::status {

/// The HTTP status surface (loopback by default): `/` a page for people,
/// `/api/status` and `/api/events` JSON, `/metrics` Prometheus text,
/// `/healthz` 200 or 503. Serves on its own thread; `fetch` must return the
/// daemon's status safely from there (relayd posts to its network thread).
class StatusServer {
 public:
  StatusServer(Endpoint listen, std::string dsn, std::function<net::DaemonStatus()> fetch);
  ~StatusServer();

  /// Binds (throws std::runtime_error naming the address) and serves.
  void start();
  void stop();

 private:
  Endpoint listen_;
  std::string dsn_;
  std::function<net::DaemonStatus()> fetch_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

/// Renderings, exposed for tests.
std::string status_json(const net::DaemonStatus& s);
std::string metrics_text(const net::DaemonStatus& s);
std::string status_html(const net::DaemonStatus& s);

}  // namespace relay::status

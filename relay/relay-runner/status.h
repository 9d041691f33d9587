#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/config.h"
#include "relay/runner/consume_loop.h"
#include "relay/runner/queue.h"

namespace httplib {
class Server;
}

namespace relay::runner {

/// What relay-runner knows at one moment; built by the server per request.
struct RunnerStatus {
  std::string group;
  std::string name;
  std::vector<std::string> types;
  std::string handler;  // the command or the URL
  LoopStats loop;
  /// Read from the database; nullopt while it does not answer.
  std::optional<GroupBacklog> backlog;
  std::uint64_t kicks = 0;
  std::uint64_t notifies = 0;
  bool listening = false;
  double uptime_seconds = 0;
};

/// Renderings, exposed for tests. JSON keys keep this order; counts are integers.
std::string runner_status_json(const RunnerStatus& s);
std::string runner_metrics_text(const RunnerStatus& s);
std::string runner_status_html(const RunnerStatus& s);
/// False while the database is down or a duress keeps failing (/healthz 503).
bool runner_healthy(const RunnerStatus& s);

/// relay-runner's HTTP surface (loopback): `/` a page, `/api/status` JSON,
/// `/metrics` Prometheus text, `/healthz` 200 or 503. Its own thread.
class RunnerStatusServer {
 public:
  RunnerStatusServer(Endpoint listen, std::function<RunnerStatus()> fetch);
  ~RunnerStatusServer();
  /// Binds (throws std::runtime_error naming the address) and serves.
  void start();
  void stop();

 private:
  Endpoint listen_;
  std::function<RunnerStatus()> fetch_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace relay::runner

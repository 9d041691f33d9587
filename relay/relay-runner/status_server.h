#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "common/config.h"
#include "relay/net/http_server.h"
#include "relay/relay-runner/status.h"

namespace relay::runner {

/// Builds the status; `with_logs` reads the captured log and the runs too
/// (the page and /api/status, not /metrics or /healthz).
using StatusSource = std::function<RunnerStatus(bool with_logs)>;

/// The answer to one request: `/` the page, `/api/status` JSON, `/metrics`
/// Prometheus text, `/healthz` 200 or 503, 404 otherwise. Exposed for tests.
net::HttpResponse runner_route(const net::HttpRequest& request, const StatusSource& fetch);

/// relay-runner's HTTP surface (loopback), served by relayd's hardened
/// server (relay/net/http_server.h: GET and HEAD only, no request bodies, a
/// connection cap, timeouts, no SO_REUSEPORT). Its own threads.
class RunnerStatusServer {
 public:
  RunnerStatusServer(Endpoint listen, StatusSource fetch, net::HttpLimits limits = {});
  ~RunnerStatusServer();
  /// Binds (throws std::runtime_error naming the address and why) and serves.
  void start();
  void stop();
  /// The bound port (the OS's pick for port 0).
  std::uint16_t port() const;

 private:
  StatusSource fetch_;
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace relay::runner

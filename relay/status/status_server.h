#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "relay/net/http_server.h"
#include "relay/status/console.h"

namespace relay::status {

/// The HTTP status surface (docs/status.md): `/` the page, `/api/status`,
/// `/api/events`, `/api/alarms`, `/api/logs` JSON, `/metrics` Prometheus
/// text, `/healthz` 200 or 503 with the reasons. With a token configured,
/// every request must carry it (Authorization: Bearer, or ?token=).
class StatusServer {
 public:
  StatusServer(Config::Status config, const Console& console, net::HttpLimits limits = {});
  ~StatusServer();

  /// Binds (throws std::runtime_error naming the address and why) and serves.
  void start();
  void stop();
  std::uint16_t port() const;

 private:
  net::HttpResponse respond(const net::HttpRequest& request) const;

  Config::Status config_;
  const Console& console_;
  std::unique_ptr<net::HttpServer> server_;
};

/// The answer to one request, given the snapshot source and the token
/// (empty: none required). Exposed for tests.
net::HttpResponse route(const net::HttpRequest& request, const Console& console,
                        const std::string& token);

}  // namespace relay::status

#pragma once

#include <memory>
#include <string>

#include "relay/relay-runner/config.h"
#include "relay/runner/consume_loop.h"

namespace httplib {
class Client;
}

namespace relay::runner {

/// POSTs each row's JSON to a local gateway (popup, SMS): the variables of
/// handler_environment() become headers (X-Relay-Queue-Id, X-Relay-Event-Id,
/// X-Relay-Type, X-Relay-Priority, X-Relay-Attempt, X-Relay-Inserted-At);
/// any 2xx answer means handled. The connection is kept open between rows.
class HttpHandler final : public Handler {
 public:
  explicit HttpHandler(HttpUrl url);
  ~HttpHandler() override;
  Outcome handle(const Row& row, std::chrono::milliseconds timeout) override;

 private:
  HttpUrl url_;
  std::unique_ptr<httplib::Client> client_;
};

/// "RELAY_QUEUE_ID" -> "X-Relay-Queue-Id".
std::string header_name(const std::string& variable);

}  // namespace relay::runner

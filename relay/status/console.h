#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "relay/capture/output_capture.h"
#include "relay/net/health.h"
#include "relay/status/database_watch.h"
#include "relay/status/snapshot.h"

namespace relay::status {

/// Gathers a Snapshot from the parts that know each piece: the health board,
/// the database watch, the core (once it runs) and the captured output.
/// Every part is read safely from the HTTP threads.
class Console {
 public:
  /// Asks the core for its status; nullopt if its thread did not answer.
  using DaemonFetch = std::function<std::optional<net::DaemonStatus>()>;

  Console(ProcessInfo process, net::Health& health, const DatabaseWatch& database,
          capture::CaptureState capture);

  /// Where the core's status comes from, from now on (an empty function: no core).
  void set_daemon(DaemonFetch fetch, std::string missing_reason = "not running");
  /// Says why there is no core (before one runs, or after it stopped).
  void set_no_daemon(std::string reason);

  /// Everything but the log lines (cheap), or with them.
  Snapshot snapshot(bool with_logs) const;

 private:
  ProcessInfo process_;
  net::Health& health_;
  const DatabaseWatch& database_;
  capture::CaptureState capture_;
  mutable std::mutex mutex_;
  DaemonFetch fetch_;
  std::string missing_ = "not running yet: waiting for the database";
};

}  // namespace relay::status

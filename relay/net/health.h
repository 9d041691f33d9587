#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace relay::net {

/// One part of this node's own job, as last reported.
struct ComponentHealth {
  enum class State { unknown, ok, failing };
  std::string name;
  State state = State::unknown;
  /// Why it is failing (empty otherwise).
  std::string error;
  /// When it last worked, and since when it has been failing (Unix ms; 0: never).
  std::int64_t last_ok_unix_ms = 0;
  std::int64_t failing_since_unix_ms = 0;
};

/// What this node needs to do its own job, each part reported by whoever
/// runs it (the database check, the store lanes, the outbox claim and its
/// LISTEN, the core), from any thread. /healthz answers 503 while any part
/// is failing; the status page shows each. Peers are not parts of it: their
/// trouble shows in the verdict, not in /healthz.
class Health {
 public:
  /// The parts relayd reports, in the order the page lists them.
  static constexpr std::string_view kDatabase = "database";
  static constexpr std::string_view kCore = "relay core";
  static constexpr std::string_view kUrgentLane = "store lane urgent";
  static constexpr std::string_view kBulkLane = "store lane bulk";
  static constexpr std::string_view kOutboxClaim = "outbox claim";
  static constexpr std::string_view kOutboxListen = "outbox LISTEN";

  Health();

  void ok(std::string_view name);
  void failing(std::string_view name, std::string error);
  /// A copy of every part.
  std::vector<ComponentHealth> parts() const;
  /// The part called `name` (a default one if unknown).
  ComponentHealth part(std::string_view name) const;

 private:
  ComponentHealth& find(std::string_view name);

  mutable std::mutex mutex_;
  std::vector<ComponentHealth> parts_;
};

/// Unix time in ms, for reports.
std::int64_t unix_ms_now();

}  // namespace relay::net

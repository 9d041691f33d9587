#pragma once

#include <asio.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace relay::net {

/// What systemd knows of a daemon run by a Type=notify unit (sd_notify(3)):
/// readiness, a status line, a reload, and the watchdog's pings. Outside
/// such a unit (NOTIFY_SOCKET unset) every call does nothing. Any thread
/// may call ready(), status(), reloading() and stopping().
class SystemdNotifier {
 public:
  /// The watchdog pings run on `io`: when its loop hangs they stop, and
  /// systemd restarts the service after WatchdogSec.
  explicit SystemdNotifier(asio::io_context& io);

  /// READY=1 with the status line (sent again after a restart in place).
  void ready(const std::string& status);
  /// STATUS=, when it differs from the last one sent.
  void status(const std::string& status);
  /// RELOADING=1: a restart in place begins; ready() ends it.
  void reloading(const std::string& status);
  /// STOPPING=1.
  void stopping();
  /// Starts sending WATCHDOG=1 every half of WatchdogSec (WATCHDOG_USEC);
  /// nothing when the unit sets no watchdog.
  void start_watchdog();
  /// Stops the pings (cancels the timer).
  void stop_watchdog();
  /// Half of WatchdogSec, or zero when the unit sets none.
  std::chrono::microseconds watchdog_interval() const { return interval_; }

 private:
  asio::awaitable<void> ping();
  void send(const std::string& message);

  asio::steady_timer timer_;
  std::chrono::microseconds interval_{0};
  bool pinging_ = false;
  std::mutex mutex_;
  std::string last_status_;
};

/// "OK", or "DEGRADED: why; why", cut to what a status line should carry.
std::string status_line(const std::string& level, const std::vector<std::string>& reasons);

}  // namespace relay::net

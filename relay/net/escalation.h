#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <pqxx/connection>

#include "common/config.h"
#include "relay/net/periodic.h"
#include "relay/store/answer.h"

namespace relay::net {

/// Reads the escalation timers from the database (store::unanswered) on a
/// thread and connection of its own, once a second, and hands what it read
/// to `found`: the own events an [[escalation]] rule concerns that nobody
/// answered, or nullopt while the database does not answer (relayd then
/// escalates what its spool holds). Deciding which round is due is the
/// network thread's (Daemon::escalate), which also knows the spool.
class EscalationWatch {
 public:
  using Found = std::function<void(std::optional<std::vector<store::Unanswered>>)>;
  EscalationWatch(Config config, Found found,
                  std::chrono::milliseconds interval = std::chrono::seconds(1));
  EscalationWatch(const EscalationWatch&) = delete;
  EscalationWatch& operator=(const EscalationWatch&) = delete;

  /// Starts the thread; nothing happens when no rule is configured.
  void start();
  void stop();

 private:
  void check();

  Config config_;
  Found found_;
  std::unique_ptr<pqxx::connection> conn_;  // the watch thread's only
  Periodic thread_;                         // last: stopped before the members its pass uses
};

}  // namespace relay::net

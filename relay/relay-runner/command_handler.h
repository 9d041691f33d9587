#pragma once

#include <string>
#include <vector>

#include "relay/runner/consume_loop.h"

namespace relay::runner {

/// The variables a handler gets besides its own environment: RELAY_QUEUE_ID
/// (message_queue.id, the id to dedupe on), RELAY_EVENT_ID ("origin:seq",
/// empty for relayd's own alarms), RELAY_TYPE, RELAY_PRIORITY ("duress" ...
/// "bulk"), RELAY_ATTEMPT (1 on the first try) and RELAY_INSERTED_AT (when
/// relayd inserted the row, Unix seconds with microseconds).
std::vector<std::pair<std::string, std::string>> handler_environment(const Row& row);

/// The program a command handler runs for argv[0] `name`: a name with a
/// slash as it is, else the first executable NAME in PATH's folders (as
/// execvp looks); `name` itself when there is none (exec fails then).
std::string find_program(const std::string& name);

/// The largest row a command handler is given: a larger one fails with a
/// reason (and is dead-lettered after its retries), never cut short.
inline constexpr std::size_t kMaxRowBytes = 1 << 20;

/// Runs a program per row: the row's JSON on stdin, whole, and
/// handler_environment() added to the environment; exit status 0 means
/// handled. The program runs in a process group of its own, killed whole at
/// the timeout, and dies with the runner (PR_SET_PDEATHSIG) so a killed
/// runner leaves no handler running behind the lease; it inherits no
/// descriptor but stdin, stdout and stderr. A program that exits without
/// reading its stdin raises no SIGPIPE in the runner (held off while it is
/// fed).
class CommandHandler final : public Handler {
 public:
  explicit CommandHandler(std::vector<std::string> argv);
  Outcome handle(const Row& row, std::chrono::milliseconds timeout) override;

 private:
  std::vector<std::string> argv_;
  std::string program_;  // argv_[0] resolved against PATH once
};

}  // namespace relay::runner

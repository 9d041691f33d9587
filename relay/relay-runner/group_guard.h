#pragma once

// A handler's process group must not outlive relay-runner, even when the
// runner is killed with SIGKILL and can do nothing about it. PR_SET_PDEATHSIG
// reaches only the handler itself; what it started in the background would
// keep running (a second pager message, a port held). So a small process,
// forked at start, holds the read end of a pipe: the runner writes each
// handler's group to it as the handler starts and ends, and when the pipe
// closes because the runner is gone, the guard kills the groups still open.

#include <sys/types.h>

namespace relay::runner {

/// Forks the guard. Call once, early in main, before any thread starts (the
/// guard then runs ordinary code safely). Returns false if it could not.
bool start_group_guard();

/// A handler's process group started, or ended (no-ops without a guard).
void guard_group(pid_t group);
void release_group(pid_t group);

}  // namespace relay::runner

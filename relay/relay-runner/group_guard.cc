#include "relay/relay-runner/group_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <set>

namespace relay::runner {
namespace {

int guard_fd = -1;  // the write end; -1 without a guard

/// One record: +group as it starts, -group as it ends. 8 bytes, under
/// PIPE_BUF, so the writes of several handler threads never interleave.
void announce(std::int64_t record) {
  if (guard_fd < 0) return;
  // A guard that died leaves EPIPE (SIGPIPE is ignored in main): the
  // handlers still run, only this safety net is gone.
  while (::write(guard_fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

bool read_record(int fd, std::int64_t& record) {
  auto* bytes = reinterpret_cast<char*>(&record);
  std::size_t got = 0;
  while (got < sizeof record) {
    const ssize_t n = ::read(fd, bytes + got, sizeof record - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;  // end of file: the runner is gone
    }
  }
  return true;
}

[[noreturn]] void guard(int fd) {
  // Its own session: a terminal's Ctrl-C or a signal to the runner's group
  // must not take the guard first. It holds nothing of the runner's.
  ::setsid();
  if (fd > 0) ::close_range(0, static_cast<unsigned>(fd) - 1, 0);
  ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
  std::set<std::int64_t> open;
  std::int64_t record = 0;
  while (read_record(fd, record)) {
    if (record > 0) open.insert(record);
    if (record < 0) open.erase(-record);
  }
  for (const auto group : open) ::kill(static_cast<pid_t>(-group), SIGKILL);
  ::_exit(0);
}

}  // namespace

bool start_group_guard() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[1]);
    guard(fds[0]);
  }
  ::close(fds[0]);
  guard_fd = fds[1];
  return true;
}

void guard_group(pid_t group) { announce(group); }
void release_group(pid_t group) { announce(-static_cast<std::int64_t>(group)); }

}  // namespace relay::runner

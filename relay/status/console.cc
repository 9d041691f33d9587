#include "relay/status/console.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "relay/capture/log_files.h"

namespace relay::status {
namespace {

StateDisk state_disk(const std::string& dir) {
  StateDisk disk;
  if (dir.empty()) return disk;
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) {
    disk.error = std::strerror(errno);
    return disk;
  }
  disk.known = true;
  // f_bavail, not f_bfree: what an unprivileged relayd may still use.
  disk.free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  disk.size_bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  return disk;
}

}  // namespace

Console::Console(ProcessInfo process, net::Health& health, const DatabaseWatch& database,
                 capture::CaptureState capture)
    : process_(std::move(process)),
      health_(health),
      database_(database),
      capture_(std::move(capture)) {}

void Console::set_daemon(DaemonFetch fetch, std::string missing_reason) {
  std::lock_guard lock(mutex_);
  fetch_ = std::move(fetch);
  missing_ = std::move(missing_reason);
}

void Console::set_no_daemon(std::string reason) {
  set_daemon({}, std::move(reason));
}

Snapshot Console::snapshot(bool with_logs) const {
  Snapshot s;
  s.process = process_;
  DaemonFetch fetch;
  {
    std::lock_guard lock(mutex_);
    fetch = fetch_;
    s.daemon_missing = missing_;
  }
  if (fetch) {
    s.daemon = fetch();
    if (!s.daemon) s.daemon_missing = "the network thread did not answer within 2 s";
  }
  s.health = health_.parts();
  s.database = database_.state();
  s.state_disk = state_disk(process_.state_dir);
  s.logs.captured = capture_.active;
  s.logs.why_not = capture_.why_not;
  s.logs.dir = capture_.dir.string();
  if (with_logs && capture_.active) {
    s.logs.stdout_lines = capture::read_tail(capture_.dir, capture::Stream::out);
    s.logs.stderr_lines = capture::read_tail(capture_.dir, capture::Stream::err);
  }
  s.now_unix_ms = net::unix_ms_now();
  return s;
}

}  // namespace relay::status

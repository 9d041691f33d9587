#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace relay::capture {

/// Where a node's captured output lives: `<state_dir>/log`.
std::filesystem::path log_dir(const std::filesystem::path& state_dir);

/// How the capture of this process's output stands, for the status page.
struct CaptureState {
  bool active = false;
  std::filesystem::path dir;
  /// Why there is no capture, if there is none.
  std::string why_not;
};

/// Captures this process's own stdout and stderr (file descriptors 1 and 2,
/// so library messages are included): both become pipes to a forked tee
/// ("relayd-log") that passes every byte on to where they pointed before
/// (the journal under systemd, as native entries with incident fields; the
/// terminal or a file otherwise) and appends each line to files in `dir`
/// (relay/capture/log_files.h).
///
/// Never blocks the daemon: the pipes are non-blocking with 1 MiB of room;
/// should the tee fall that far behind, a write fails (the line is lost)
/// instead of stalling the network thread. Survives a crash: the tee
/// outlives relayd, reads the last bytes it wrote and exits at end of file,
/// and the files keep the previous runs' lines for the page after a restart.
/// The tee ignores SIGINT, SIGTERM and SIGHUP so that it records relayd's
/// last words; it stays across relayd's re-exec (one tee per process).
///
/// Call while the process still has one thread (fork). Never throws: when
/// the folder cannot be written, output goes where it went and the returned
/// state says why. `close_in_tee`, if not -1, is a descriptor the tee
/// closes at once (relayd's state directory lock, which must not outlive
/// relayd).
CaptureState start_output_capture(const std::filesystem::path& dir, std::string_view identifier,
                                  int close_in_tee = -1);

}  // namespace relay::capture

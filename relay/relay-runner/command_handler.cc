#include "relay/relay-runner/command_handler.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "relay/relay-runner/group_guard.h"
#include "relay/store/rows.h"

extern char** environ;

namespace relay::runner {
namespace {

// What a handler said last is kept for the runner's page (each recent run)
// and its last line for the error message; more than this is a log file's
// job, not a status page's.
constexpr std::size_t kOutputTail = 4096;

/// SIGPIPE held off for this thread while it feeds a handler's stdin (a
/// handler that exits without reading makes the write fail with EPIPE and
/// raise it), whatever the program's main does with SIGPIPE; a pending one
/// is taken back before the mask is restored.
class PipeSignalHeld {
 public:
  PipeSignalHeld() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &before_);
  }
  ~PipeSignalHeld() {
    const timespec now{0, 0};
    while (::sigtimedwait(&pipe_, nullptr, &now) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &before_, nullptr);
  }
  PipeSignalHeld(const PipeSignalHeld&) = delete;
  PipeSignalHeld& operator=(const PipeSignalHeld&) = delete;

 private:
  sigset_t pipe_{}, before_{};
};

std::string seconds_text(std::chrono::microseconds t) {
  const auto us = t.count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(us / 1'000'000),
                static_cast<long long>(us % 1'000'000));
  return buf;
}

/// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

/// `outcome` with the last kOutputTail bytes of what the handler said.
Outcome said(Outcome outcome, const std::string& output) {
  // At kOutputTail or more, the reading loop may have cut the start already.
  outcome.output = output.size() >= kOutputTail
                       ? "[...]" + output.substr(output.size() - kOutputTail)
                       : output;
  return outcome;
}

std::string last_line(std::string output) {
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  const auto nl = output.rfind('\n');
  return nl == std::string::npos ? output : output.substr(nl + 1);
}

}  // namespace

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const auto candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;  // exec fails, and the error says which program
}

std::vector<std::pair<std::string, std::string>> handler_environment(const Row& row) {
  return {
      {"RELAY_QUEUE_ID", std::to_string(row.queue_id)},
      {"RELAY_EVENT_ID", row.event_id},
      {"RELAY_TYPE", row.type},
      {"RELAY_PRIORITY", store::priority_name(static_cast<store::v1::Priority>(row.priority))},
      {"RELAY_ATTEMPT", std::to_string(row.attempts)},
      {"RELAY_INSERTED_AT", seconds_text(row.inserted_at)},
  };
}

CommandHandler::CommandHandler(std::vector<std::string> argv)
    : argv_(std::move(argv)), program_(find_program(argv_.at(0))) {}

Outcome CommandHandler::handle(const Row& row, std::chrono::milliseconds timeout) {
  if (row.data.size() > kMaxRowBytes) {
    // Retried, then dead-lettered with this reason: never cut short and
    // handed over (a lenient handler would act on half a JSON document).
    return {false, "row " + std::to_string(row.queue_id) + " is " +
                       std::to_string(row.data.size()) + " bytes; a command handler takes at most " +
                       std::to_string(kMaxRowBytes) + " (docs/runner.md)"};
  }
  // Everything the child needs is built before fork: between fork and exec
  // a multi-threaded program may only make async-signal-safe calls.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "RELAY_", 6) != 0) env_storage.emplace_back(*e);
  }
  for (const auto& [k, v] : handler_environment(row)) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv_) argv.push_back(s.data());
  argv.push_back(nullptr);

  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return {false, std::string("pipe: ") + std::strerror(errno)};
  Fd in_read{in[0]}, in_write{in[1]};
  if (::pipe2(out, O_CLOEXEC) != 0) return {false, std::string("pipe: ") + std::strerror(errno)};
  Fd out_read{out[0]}, out_write{out[1]};
  const pid_t parent = ::getpid();
  // Read before the fork: sysconf is not async-signal-safe.
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  const pid_t pid = ::fork();
  if (pid < 0) return {false, std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the runner died before prctl
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    // The handler gets stdin, stdout and stderr, nothing else of the
    // runner's: a child it leaves behind (a notifier forked into the
    // background) would otherwise hold the kick port, the status port or a
    // database socket past a kill -9 of the runner, and the restarted
    // runner could not bind its port (the next duress never handled).
    if (::close_range(3, ~0U, 0) != 0) {
      for (long fd = 3; fd < open_max; ++fd) ::close(static_cast<int>(fd));
    }
    ::execve(program_.c_str(), argv.data(), envp.data());
    static constexpr char kMsg[] = "relay-runner: cannot execute the handler command\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  // Its group dies with the runner, even by SIGKILL (group_guard.h).
  guard_group(pid);
  struct Released {
    pid_t group;
    ~Released() { release_group(group); }
  } released{pid};
  in_read.reset();
  out_write.reset();
  // The row goes in whole, as the handler reads it, beside its output (a
  // row beyond the pipe's 64 KiB would otherwise be cut short, or the two
  // would wait on each other).
  PipeSignalHeld held;
  ::fcntl(in_write.fd, F_SETFL, O_NONBLOCK);
  ::fcntl(out_read.fd, F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  auto feed = [&] {
    while (in_write.fd >= 0 && written < row.data.size()) {
      const ssize_t put = ::write(in_write.fd, row.data.data() + written, row.data.size() - written);
      if (put > 0) {
        written += static_cast<std::size_t>(put);
      } else if (put < 0 && errno == EAGAIN) {
        return;
      } else {
        in_write.reset();  // EPIPE: it stopped reading; what it says of it is its outcome
      }
    }
    in_write.reset();  // all of it: the handler sees the end of its stdin
  };
  feed();

  Fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool exited = false, timed_out = false;
  while (!exited) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    // A closed descriptor (-1) is skipped by poll.
    pollfd fds[3] = {
        {pidfd.fd, POLLIN, 0}, {out_read.fd, POLLIN, 0}, {in_write.fd, POLLOUT, 0}};
    // Without a pidfd (an old kernel), poll the child every 10 ms.
    const int wait_ms = pidfd.fd >= 0 ? static_cast<int>(left.count())
                                      : static_cast<int>(std::min<long>(left.count(), 10));
    if (::poll(fds, 3, wait_ms) < 0 && errno != EINTR) break;
    feed();
    if (out_read.fd >= 0) {
      char buf[4096];
      ssize_t got;
      while ((got = ::read(out_read.fd, buf, sizeof buf)) > 0) {
        output.append(buf, static_cast<std::size_t>(got));
        if (output.size() > 2 * kOutputTail) output.erase(0, output.size() - kOutputTail);
      }
      if (got == 0) out_read.reset();
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return said({true}, output);
      const std::string last = last_line(output);
      std::string why = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                          : "killed by signal " + std::to_string(WTERMSIG(status));
      return said({false, argv_[0] + ": " + why + (last.empty() ? "" : ": " + last)}, output);
    }
  }
  // Hung (or poll failed): the whole process group goes, then the child is reaped.
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (timed_out) {
    return said({false, argv_[0] + ": timed out after " + std::to_string(timeout.count()) +
                            " ms and was killed"},
                output);
  }
  return {false, argv_[0] + ": poll: " + std::strerror(errno)};
}

}  // namespace relay::runner

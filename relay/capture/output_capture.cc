#include "relay/capture/output_capture.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <stdexcept>

#include "relay/capture/journal.h"
#include "relay/capture/log_files.h"

namespace relay::capture {
namespace {

// Set in the environment once a tee runs, so that relayd's re-exec (SIGHUP
// with a changed peer list) keeps the one it has instead of nesting another.
constexpr const char* kActiveVariable = "RELAY_OUTPUT_CAPTURE";

// Room in each pipe: what the tee may fall behind before a write is lost
// rather than blocking (the Linux default for unprivileged processes).
constexpr int kPipeBytes = 1 << 20;

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader is gone: nothing better to do with it
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// One captured stream inside the tee.
struct Source {
  int in = -1;   // read end of the pipe
  int out = -1;  // where the bytes went before
  Stream stream;
  int default_priority;
  bool journal = false;
  std::optional<LogWriter> files;
  std::string partial;
};

void line_done(Source& s, std::string_view line, Journal& journal, std::string_view identifier,
               pid_t pid) {
  if (s.journal) {
    std::string with_newline(line);
    if (!journal.send(journal_entry(line, s.default_priority, identifier, pid))) {
      with_newline += '\n';
      write_all(s.out, with_newline);
    }
  }
  if (s.files) {
    try {
      s.files->append(line);
    } catch (const std::exception&) {
      s.files.reset();  // disk full or removed: keep passing output on
    }
  }
}

void take(Source& s, std::string_view bytes, Journal& journal, std::string_view identifier,
          pid_t pid) {
  if (!s.journal) write_all(s.out, bytes);  // passed on as it came, at once
  s.partial.append(bytes);
  std::size_t start = 0;
  for (auto nl = s.partial.find('\n'); nl != std::string::npos; nl = s.partial.find('\n', start)) {
    line_done(s, std::string_view(s.partial).substr(start, nl - start), journal, identifier, pid);
    start = nl + 1;
  }
  s.partial.erase(0, start);
  if (s.partial.size() > kMaxLineBytes) {
    line_done(s, s.partial, journal, identifier, pid);
    s.partial.clear();
  }
}

std::string run_marker(std::string_view identifier, pid_t pid) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  return "---- " + std::string(text.data()) + " " + std::string(identifier) + " started (pid " +
         std::to_string(pid) + ") ----";
}

/// Creates `dir` and any missing parent (the state directory itself, on a
/// first start) with mode 0700: the lines name who raised a duress and where.
void make_private_dirs(const std::filesystem::path& dir) {
  std::filesystem::path at;
  for (const auto& part : dir) {
    at /= part;
    if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create " + at.string() + ": " + std::strerror(errno));
  }
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
}

[[noreturn]] void run_tee(std::array<Source, 2> sources, const std::filesystem::path& dir,
                          std::string identifier, pid_t pid) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) std::signal(sig, SIG_IGN);
  // "relayd-log", "relay-runner-lo": the kernel keeps 15 bytes of it.
  const std::string name = identifier + "-log";
  ::prctl(PR_SET_NAME, name.c_str());
  Journal journal;
  for (auto& s : sources) {
    s.journal = is_journal_stream(s.out);
    try {
      s.files.emplace(dir, s.stream);
      s.files->append(run_marker(identifier, pid));
    } catch (const std::exception&) {
      s.files.reset();
    }
  }
  std::array<char, 65536> buffer{};
  int open = 2;
  while (open > 0) {
    std::array<pollfd, 2> fds{};
    for (std::size_t i = 0; i < 2; ++i) fds[i] = {sources[i].in, POLLIN, 0};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (std::size_t i = 0; i < 2; ++i) {
      Source& s = sources[i];
      if (s.in < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(s.in, buffer.data(), buffer.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // every writer is gone: relayd exited or crashed
        if (!s.partial.empty()) line_done(s, s.partial, journal, identifier, pid);
        ::close(s.in);
        s.in = -1;
        --open;
        continue;
      }
      take(s, std::string_view(buffer.data(), static_cast<std::size_t>(n)), journal, identifier,
           pid);
    }
  }
  std::_Exit(0);
}

}  // namespace

std::filesystem::path log_dir(const std::filesystem::path& state_dir) {
  return state_dir / "log";
}

CaptureState start_output_capture(const std::filesystem::path& dir, std::string_view identifier,
                                  int close_in_tee) {
  CaptureState state;
  state.dir = dir;
  if (std::getenv(kActiveVariable) != nullptr) {
    state.active = true;  // inherited across relayd's re-exec: the tee still runs
    return state;
  }
  try {
    make_private_dirs(dir);
    LogWriter probe(dir, Stream::err);  // fails here, not silently in the tee
  } catch (const std::exception& e) {
    state.why_not = e.what();
    return state;
  }
  std::array<int, 2> out{}, err{};
  if (::pipe2(out.data(), O_CLOEXEC) != 0) {
    state.why_not = std::string("pipe: ") + std::strerror(errno);
    return state;
  }
  if (::pipe2(err.data(), O_CLOEXEC) != 0) {
    state.why_not = std::string("pipe: ") + std::strerror(errno);
    ::close(out[0]);
    ::close(out[1]);
    return state;
  }
  ::fcntl(out[1], F_SETPIPE_SZ, kPipeBytes);
  ::fcntl(err[1], F_SETPIPE_SZ, kPipeBytes);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  const pid_t tee = ::fork();
  if (tee < 0) {
    state.why_not = std::string("fork: ") + std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return state;
  }
  if (tee == 0) {
    ::close(out[1]);
    ::close(err[1]);
    if (close_in_tee >= 0) ::close(close_in_tee);
    std::array<Source, 2> sources;
    sources[0].in = out[0];
    sources[0].out = STDOUT_FILENO;
    sources[0].stream = Stream::out;
    sources[0].default_priority = 6;  // info
    sources[1].in = err[0];
    sources[1].out = STDERR_FILENO;
    sources[1].stream = Stream::err;
    sources[1].default_priority = 4;  // warning: a library's complaint, most likely
    run_tee(std::move(sources), dir, std::string(identifier), parent);
  }
  ::close(out[0]);
  ::close(err[0]);
  ::dup2(out[1], STDOUT_FILENO);
  ::dup2(err[1], STDERR_FILENO);
  ::close(out[1]);
  ::close(err[1]);
  for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // A pipe makes stdout fully buffered; a daemon's lines should leave at once.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::setenv(kActiveVariable, std::to_string(tee).c_str(), 1);
  state.active = true;
  return state;
}

}  // namespace relay::capture

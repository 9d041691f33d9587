#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/log.h"
#include "relay/capture/journal.h"
#include "relay/capture/log_files.h"
#include "relay/capture/output_capture.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using relay::test::TempDir;

namespace {

bool contains(const std::vector<std::string>& lines, std::string_view needle) {
  for (const auto& l : lines)
    if (l.find(needle) != std::string::npos) return true;
  return false;
}

/// Runs `body` in a child whose stdout and stderr are the file `out`, with
/// its output captured into `dir`; waits for it.
template <typename Body>
int run_captured(const std::filesystem::path& dir, const std::filesystem::path& out, Body body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
    const auto state = capture::start_output_capture(dir, "relayd-test");
    if (!state.active) std::_Exit(90);
    body();
    std::_Exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

/// The tee outlives the child: wait for it to write what it read.
std::vector<std::string> wait_for_line(const std::filesystem::path& dir, capture::Stream stream,
                                       std::string_view needle) {
  for (int i = 0; i < 200; ++i) {
    auto lines = capture::read_tail(dir, stream);
    if (contains(lines, needle)) return lines;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return capture::read_tail(dir, stream);
}

}  // namespace

TEST_CASE("the log files keep the last 1,000 lines across rotations, oldest first") {
  TempDir dir;
  {
    capture::LogWriter writer(dir.path(), capture::Stream::err);
    for (int i = 1; i <= 2500; ++i) writer.append("line " + std::to_string(i));
  }
  auto lines = capture::read_tail(dir.path(), capture::Stream::err);
  REQUIRE(lines.size() == 1000);
  CHECK(lines.front() == "line 1501");
  CHECK(lines.back() == "line 2500");
  // A new writer (a restart) continues the same files.
  capture::LogWriter again(dir.path(), capture::Stream::err);
  again.append("after restart");
  lines = capture::read_tail(dir.path(), capture::Stream::err);
  CHECK(lines.back() == "after restart");
  CHECK(lines.front() == "line 1502");
  CHECK(std::filesystem::file_size(dir.path() / "stderr.log") < 1000 * 16);
}

TEST_CASE("output of the process's own descriptors is captured and passed on, crash included") {
  TempDir dir;
  const auto out = dir.path() / "console.out";
  const int status = run_captured(dir.path() / "log", out, [] {
    std::printf("a line on stdout\n");
    std::fflush(stdout);
    // What a library does: straight to descriptor 2, no logger involved.
    const char library[] = "libexample: a complaint on stderr\n";
    (void)!::write(2, library, sizeof library - 1);
    std::fprintf(stderr, "an unfinished line");
    std::abort();  // a crash: nothing is flushed by the process itself
  });
  CHECK(WIFSIGNALED(status));
  const auto err = wait_for_line(dir.path() / "log", capture::Stream::err, "unfinished");
  CHECK(contains(err, "libexample: a complaint on stderr"));
  CHECK(contains(err, "an unfinished line"));
  CHECK(contains(err, "relayd-test started (pid"));  // named after its identifier
  CHECK(contains(capture::read_tail(dir.path() / "log", capture::Stream::out), "a line on stdout"));
  // Passed on to where the output went before (the journal or a file).
  std::ifstream passed(out);
  const std::string text((std::istreambuf_iterator<char>(passed)), {});
  CHECK(text.find("libexample: a complaint on stderr") != std::string::npos);

  // The next run shows the previous run's lines too.
  run_captured(dir.path() / "log", out, [] { std::fprintf(stderr, "second run\n"); });
  const auto both = wait_for_line(dir.path() / "log", capture::Stream::err, "second run");
  CHECK(contains(both, "libexample: a complaint on stderr"));
}

TEST_CASE("under journald, lines become native entries with the incident's fields") {
  TempDir dir;
  const auto socket_path = dir.path() / "journal.socket";
  const int sock = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un at{};
  at.sun_family = AF_UNIX;
  std::strcpy(at.sun_path, socket_path.c_str());
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
  const auto out = dir.path() / "journal.stream";
  { std::ofstream touch(out); }
  struct stat st {};
  REQUIRE(::stat(out.c_str(), &st) == 0);
  // What systemd sets when stdout and stderr are its journal stream.
  ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(),
           1);
  ::setenv("RELAY_JOURNAL_SOCKET", socket_path.c_str(), 1);
  run_captured(dir.path() / "log", out, [] {
    relay::init_logging("info");
    relay::log_incident(spdlog::level::warn, "peer clinic-north is down",
                        {{"incident", "peer_down"}, {"peer", "clinic-north"}});
  });
  ::unsetenv("JOURNAL_STREAM");
  ::unsetenv("RELAY_JOURNAL_SOCKET");
  std::string entry;
  for (int i = 0; i < 200 && entry.find("PEER=") == std::string::npos; ++i) {
    char buffer[4096];
    const ssize_t n = ::recv(sock, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      entry.assign(buffer, static_cast<std::size_t>(n));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ::close(sock);
  CHECK(entry.find("MESSAGE=peer clinic-north is down | incident=peer_down peer=clinic-north\n") !=
        std::string::npos);
  CHECK(entry.find("PRIORITY=4\n") != std::string::npos);
  CHECK(entry.find("PEER=clinic-north\n") != std::string::npos);
  CHECK(entry.find("INCIDENT=peer_down\n") != std::string::npos);
  CHECK(entry.find("SYSLOG_IDENTIFIER=relayd-test\n") != std::string::npos);
  // Still in the captured log for the page.
  CHECK(contains(wait_for_line(dir.path() / "log", capture::Stream::err, "clinic-north is down"),
                 "peer clinic-north is down"));
}

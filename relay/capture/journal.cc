#include "relay/capture/journal.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace relay::capture {
namespace {

/// syslog(3) priorities of spdlog's level words, as relayd's lines carry
/// them after the timestamp ("2025-01-01T03:00:00.000 warning ...").
int priority_of(std::string_view word, int fallback) {
  if (word == "critical") return 2;
  if (word == "error") return 3;
  if (word == "warning") return 4;
  if (word == "info") return 6;
  if (word == "debug" || word == "trace") return 7;
  return fallback;
}

void add(std::string& entry, std::string_view name, std::string_view value) {
  entry += name;
  entry += '=';
  entry += value;
  entry += '\n';
}

}  // namespace

bool is_journal_stream(int fd) {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) == stream;
}

std::string journal_entry(std::string_view line, int default_priority, std::string_view identifier,
                          pid_t pid) {
  int priority = default_priority;
  std::string_view message = line;
  // relayd's own lines: "<timestamp> <level> <text>"; journald keeps its own
  // timestamp, so MESSAGE is the text.
  if (const auto first = line.find(' ');
      first != std::string_view::npos && first >= 19 && line[4] == '-' && line[10] == 'T') {
    const auto second = line.find(' ', first + 1);
    if (second != std::string_view::npos) {
      const int p = priority_of(line.substr(first + 1, second - first - 1), -1);
      if (p >= 0) {
        priority = p;
        message = line.substr(second + 1);
      }
    }
  }
  std::string entry;
  // A newline inside a value would need the binary form; lines have none.
  add(entry, "MESSAGE", message);
  add(entry, "PRIORITY", std::to_string(priority));
  add(entry, "SYSLOG_IDENTIFIER", identifier);
  add(entry, "SYSLOG_PID", std::to_string(pid));
  if (auto fields = parse_fields(message)) {
    for (const auto& [name, value] : *fields) add(entry, name, value);
  }
  return entry;
}

Journal::Journal() {
  const char* path = std::getenv("RELAY_JOURNAL_SOCKET");
  path_ = path != nullptr ? path : "/run/systemd/journal/socket";
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

bool Journal::send(const std::string& entry) {
  if (fd_ < 0) return false;
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  if (path_.size() >= sizeof to.sun_path) return false;
  std::memcpy(to.sun_path, path_.c_str(), path_.size() + 1);
  return ::sendto(fd_, entry.data(), entry.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&to),
                  sizeof to) == static_cast<ssize_t>(entry.size());
}

}  // namespace relay::capture

#include "common/state_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/crypto.h"

namespace relay {
namespace {

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw std::runtime_error(file.string() + ": " + what + ": " + std::strerror(errno));
}

// "value checksum\n": the checksum (8 hex digits of SHA-256 over the decimal
// value) tells a real counter from a truncated or foreign file.
std::string checksum(std::string_view value) {
  const auto digest = crypto::sha256({crypto::as_bytes(value)});
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 4; ++i) {
    out += hex[digest[static_cast<std::size_t>(i)] >> 4];
    out += hex[digest[static_cast<std::size_t>(i)] & 15];
  }
  return out;
}

}  // namespace

StateDir::StateDir(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir_, ec);
  if (ec) {
    throw std::runtime_error(dir_.string() + ": cannot create the state directory: " +
                             ec.message() + " ([node] state_dir)");
  }
  if (::access(dir_.c_str(), W_OK | X_OK) != 0) {
    fail(dir_, "the state directory is not writable ([node] state_dir)");
  }
  // A folder that exists keeps its mode: relayd's control socket may have
  // opened it to [control] group.
  if (created) ::chmod(dir_.c_str(), 0700);
}

StateDir::~StateDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void StateDir::lock() {
  const auto file = dir_ / "lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) fail(file, "cannot open");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      errno = error;
      fail(file, "cannot lock");
    }
    std::string pid(holder, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw std::runtime_error(dir_.string() + ": the state directory is in use by another relayd" +
                             (pid.empty() ? "" : " (pid " + pid + ")") +
                             "; each node needs its own ([node] state_dir)");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    ::close(fd);
    fail(file, "cannot write");
  }
  lock_fd_ = fd;
}

std::optional<std::uint64_t> StateDir::read_counter(std::string_view name) const {
  const auto file = dir_ / name;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    fail(file, "cannot read");
  }
  char buffer[64];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  const std::string_view text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  const auto space = text.find(' ');
  std::uint64_t value = 0;
  if (space != std::string_view::npos && text.ends_with('\n')) {
    const std::string_view digits = text.substr(0, space);
    const std::string_view sum = text.substr(space + 1, text.size() - space - 2);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec == std::errc{} && ptr == digits.data() + digits.size() && sum == checksum(digits)) {
      return value;
    }
  }
  throw std::runtime_error(file.string() +
                           ": not a relaymesh counter (damaged?); move it away only if you know "
                           "why, see OPERATOR.md, \"Rebuilding a site\"");
}

void StateDir::write_counter(std::string_view name, std::uint64_t value) const {
  const auto file = dir_ / name;
  const auto temporary = dir_ / (std::string(name) + ".new");
  const std::string digits = std::to_string(value);
  const std::string text = digits + " " + checksum(digits) + "\n";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail(temporary, "cannot create");
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0) {
    ::close(fd);
    fail(temporary, "cannot write");
  }
  ::close(fd);
  if (::rename(temporary.c_str(), file.c_str()) != 0) fail(file, "cannot replace");
  sync();
}

std::uint64_t StateDir::bump_counter(std::string_view name) const {
  const std::uint64_t next = read_counter(name).value_or(0) + 1;
  write_counter(name, next);
  return next;
}

void StateDir::sync() const {
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir_, "cannot open");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(dir_, "cannot fsync");
}

}  // namespace relay

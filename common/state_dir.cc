#include "common/state_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
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

namespace {

// A counter file is two slots of kSlot bytes, written alternately in place:
// "g=<generation> v=<value> s=<checksum>", padded, one line each. Rewriting
// blocks the file already has needs no free space, so a seq can still be
// numbered, and a duress sent, on a full disk. A write goes to the slot
// that does not hold the newest value, so a torn write leaves that value
// standing. Files of the first format ("value checksum\n", replaced by
// rename) are read, and converted by writing their second slot beside the
// old text, which stays readable until the first slot is written over.
constexpr std::size_t kSlot = 64;
constexpr std::size_t kDigits = 20;  // a uint64 in decimal, zero-padded

struct Stored {
  std::optional<std::uint64_t> value;
  std::uint64_t generation = 0;
  int slot = -1;  // -1: nothing in the slot format (absent, first format, damaged)
  bool damaged = false;
};

std::string slot_text(std::uint64_t generation, std::uint64_t value) {
  char body[2 + kDigits + 3 + kDigits + 1];
  std::snprintf(body, sizeof body, "g=%020" PRIu64 " v=%020" PRIu64, generation, value);
  std::string line = std::string(body) + " s=" + checksum(body);
  line.resize(kSlot - 1, ' ');
  return line + "\n";
}

bool parse_digits(std::string_view text, std::uint64_t& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size();
}

// Generation and value of one slot, if it is whole.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_slot(std::string_view slot) {
  const std::size_t body_size = 2 + kDigits + 3 + kDigits;
  if (slot.size() != kSlot || !slot.starts_with("g=") || slot.substr(2 + kDigits, 3) != " v=" ||
      slot.substr(body_size, 3) != " s=" || slot.back() != '\n') {
    return std::nullopt;
  }
  const auto body = slot.substr(0, body_size);
  std::uint64_t generation = 0, value = 0;
  if (!parse_digits(body.substr(2, kDigits), generation) ||
      !parse_digits(body.substr(2 + kDigits + 3, kDigits), value) ||
      slot.substr(body_size + 3, 8) != checksum(body)) {
    return std::nullopt;
  }
  return std::pair{generation, value};
}

// "value checksum\n", the first format.
std::optional<std::uint64_t> parse_first_format(std::string_view text) {
  const auto line_end = text.find('\n');
  if (line_end == std::string_view::npos) return std::nullopt;
  const auto line = text.substr(0, line_end);
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto digits = line.substr(0, space);
  std::uint64_t value = 0;
  if (!parse_digits(digits, value) || line.substr(space + 1) != checksum(digits)) {
    return std::nullopt;
  }
  return value;
}

Stored load(int fd) {
  char buffer[2 * kSlot + 1];
  std::size_t n = 0;
  while (n < sizeof buffer) {
    const ssize_t got = ::pread(fd, buffer + n, sizeof buffer - n, static_cast<off_t>(n));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    n += static_cast<std::size_t>(got);
  }
  const std::string_view text(buffer, n);
  Stored stored;
  if (n == 2 * kSlot) {
    for (int i = 0; i < 2; ++i) {
      const auto slot = parse_slot(text.substr(static_cast<std::size_t>(i) * kSlot, kSlot));
      if (slot && (stored.slot < 0 || slot->first > stored.generation)) {
        stored = {slot->second, slot->first, i, false};
      }
    }
    if (stored.slot >= 0) return stored;
  }
  // A file of the first format, or one whose conversion was torn (the old
  // text is still whole in the first slot).
  if (n <= 2 * kSlot) {
    if (auto value = parse_first_format(text.substr(0, std::min(n, kSlot)))) {
      stored.value = value;
      return stored;
    }
  }
  stored.damaged = true;
  return stored;
}

}  // namespace

std::optional<std::uint64_t> StateDir::read_counter(std::string_view name) const {
  const auto file = dir_ / name;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    fail(file, "cannot read");
  }
  const Stored stored = load(fd);
  ::close(fd);
  if (!stored.damaged) return stored.value;
  throw std::runtime_error(file.string() +
                           ": not a relaymesh counter (damaged?); move it away only if you know "
                           "why, see OPERATOR.md, \"Rebuilding a site\"");
}

void StateDir::write_counter(std::string_view name, std::uint64_t value) const {
  const auto file = dir_ / name;
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) fail(file, "cannot open");
    create_counter(name, value);
    return;
  }
  // A damaged file is written over, as a rename would have replaced it:
  // read_counter refused it at start, so this is the value that counts now.
  const Stored stored = load(fd);
  const int target = stored.slot < 0 ? 1 : 1 - stored.slot;
  const std::string text = slot_text(stored.generation + 1, value);
  const auto offset = static_cast<off_t>(static_cast<std::size_t>(target) * kSlot);
  if (::pwrite(fd, text.data(), text.size(), offset) != static_cast<ssize_t>(text.size()) ||
      ::fdatasync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    fail(file, "cannot write");
  }
  ::close(fd);
}

void StateDir::create_counter(std::string_view name, std::uint64_t value) const {
  // The only write that needs new blocks: once per counter, replaced
  // atomically so that a crash leaves no empty file that would read as damaged.
  const auto file = dir_ / name;
  const auto temporary = dir_ / (std::string(name) + ".new");
  std::string text = slot_text(1, value);
  text += std::string(kSlot - 1, ' ') + "\n";  // the second slot, empty
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail(temporary, "cannot create");
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    ::unlink(temporary.c_str());
    errno = error;
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

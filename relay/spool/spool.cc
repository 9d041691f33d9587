#include "relay/spool/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/crypto.h"

namespace relay::spool {
namespace {

// Slot layout: magic, payload length, record number, SHA-256 over the
// length, the number and the payload; then the payload. A free slot has
// no magic. The checksum tells a whole record from a torn or stale one.
constexpr char kMagic[4] = {'R', 'M', 'S', '1'};

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw std::runtime_error(file.string() + ": " + what + ": " + std::strerror(errno));
}

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_be(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

crypto::Digest checksum(std::string_view length_and_number, std::string_view payload) {
  return crypto::sha256({crypto::as_bytes(length_and_number), crypto::as_bytes(payload)});
}

void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "cannot open");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(dir, "cannot fsync");
}

}  // namespace

Spool::Spool(std::filesystem::path file, std::size_t slots)
    : file_(std::move(file)), slots_(slots) {
  const bool existed = std::filesystem::exists(file_);
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail(file_, "cannot open the spool");
  const auto size = static_cast<off_t>(slots_ * kSlotSize);
  // Preallocated: an append never needs a block the disk no longer has.
  if (const int rc = ::posix_fallocate(fd_, 0, size); rc != 0) {
    errno = rc;
    fail(file_, "cannot preallocate the spool");
  }
  if (!existed) {
    if (::fsync(fd_) != 0) fail(file_, "cannot fsync the spool");
    sync_directory(file_.parent_path());
  }
  std::string slot(kSlotSize, '\0');
  for (std::size_t i = 0; i < slots_; ++i) {
    const auto at = static_cast<off_t>(i * kSlotSize);
    if (::pread(fd_, slot.data(), kSlotSize, at) != static_cast<ssize_t>(kSlotSize)) {
      fail(file_, "cannot read the spool");
    }
    if (std::memcmp(slot.data(), kMagic, 4) != 0) {
      // Free, or a write torn before its magic landed: either way empty.
      if (std::any_of(slot.begin(), slot.begin() + kHeaderSize, [](char c) { return c != 0; }))
        ++torn_;
      free_.push_back(i);
      continue;
    }
    const std::uint64_t length = get_be(slot.data() + 4, 4);
    const std::uint64_t number = get_be(slot.data() + 8, 8);
    const bool fits = length <= kMaxPayload;
    const std::string_view payload(slot.data() + kHeaderSize, fits ? length : 0);
    const auto sum = checksum(std::string_view(slot.data() + 4, 12), payload);
    if (!fits || std::memcmp(sum.data(), slot.data() + 16, sum.size()) != 0 ||
        records_.contains(number)) {
      ++torn_;  // torn or damaged: dropped, the others kept
      free_.push_back(i);
      continue;
    }
    records_.emplace(number, std::string(payload));
    slot_of_.emplace(number, i);
    next_number_ = std::max(next_number_, number + 1);
  }
  std::reverse(free_.begin(), free_.end());  // lowest slot first off the back
}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
}

void Spool::write_slot(std::size_t slot, const std::string& bytes) {
  const auto at = static_cast<off_t>(slot * kSlotSize);
  if (::pwrite(fd_, bytes.data(), bytes.size(), at) != static_cast<ssize_t>(bytes.size())) {
    fail(file_, "cannot write the spool");
  }
  if (::fdatasync(fd_) != 0) fail(file_, "cannot fdatasync the spool");
}

std::optional<std::uint64_t> Spool::append(std::string_view payload) {
  if (payload.size() > kMaxPayload) {
    throw std::runtime_error(file_.string() + ": a record of " + std::to_string(payload.size()) +
                             " bytes does not fit a spool slot (at most " +
                             std::to_string(kMaxPayload) + ")");
  }
  if (free_.empty()) return std::nullopt;
  const std::size_t slot = free_.back();
  const std::uint64_t number = next_number_;
  std::string header(kMagic, 4);
  std::string length_and_number;
  put_be(length_and_number, payload.size(), 4);
  put_be(length_and_number, number, 8);
  header += length_and_number;
  const auto sum = checksum(length_and_number, payload);
  header.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  write_slot(slot, header + std::string(payload));
  free_.pop_back();
  ++next_number_;
  records_.emplace(number, std::string(payload));
  slot_of_.emplace(number, slot);
  return number;
}

void Spool::release(std::uint64_t number) {
  auto it = slot_of_.find(number);
  if (it == slot_of_.end()) return;
  // Clearing the header frees the slot; a crash before this lands leaves
  // the record in place, and releasing it again later is harmless.
  write_slot(it->second, std::string(kHeaderSize, '\0'));
  free_.push_back(it->second);
  slot_of_.erase(it);
  records_.erase(number);
}

}  // namespace relay::spool

#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay::spool {

/// A durable, bounded local spool: the duress alarms relayd accepted while
/// (or before) the site's PostgreSQL could take them. One preallocated file
/// of fixed-size slots in the node's state directory; a record is written
/// whole into a free slot and fdatasynced before append() returns, so an
/// accepted alarm survives a crash, a kill -9 and a power cut. Each slot
/// carries a checksum over its header and payload: a torn write (a crash in
/// the middle of an append) is detected at open and the slot dropped,
/// while every complete record is kept. A record leaves the spool only when
/// released (it is in the database). Not thread-safe: one owner thread.
class Spool {
 public:
  /// 256 records of up to 2000 bytes (a signed event is at most 1200):
  /// alarms pressed while the database is down, not a backlog of bulk.
  static constexpr std::size_t kSlots = 256;
  static constexpr std::size_t kSlotSize = 2048;
  static constexpr std::size_t kHeaderSize = 4 + 4 + 8 + 32;
  static constexpr std::size_t kMaxPayload = kSlotSize - kHeaderSize;

  /// Opens (or creates, preallocated, with its directory fsynced) `file`
  /// and recovers its records. Throws std::runtime_error naming the file.
  explicit Spool(std::filesystem::path file, std::size_t slots = kSlots);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  /// Appends durably; returns the record's number, or nullopt if the spool
  /// is full. Throws std::runtime_error (naming the file) on an I/O error
  /// or a payload over kMaxPayload: nothing is accepted then.
  std::optional<std::uint64_t> append(std::string_view payload);
  /// Frees a record (it is durable elsewhere now). Idempotent; durable.
  void release(std::uint64_t number);

  /// Records held, by number (append order).
  const std::map<std::uint64_t, std::string>& records() const { return records_; }
  std::size_t capacity() const { return slots_; }
  std::size_t depth() const { return records_.size(); }
  /// Slots found torn or damaged at open (each logged by the caller).
  std::size_t torn_at_open() const { return torn_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  void write_slot(std::size_t slot, const std::string& bytes);

  std::filesystem::path file_;
  std::size_t slots_;
  int fd_ = -1;
  std::map<std::uint64_t, std::string> records_;
  std::map<std::uint64_t, std::size_t> slot_of_;
  std::vector<std::size_t> free_;
  std::uint64_t next_number_ = 1;
  std::size_t torn_ = 0;
};

}  // namespace relay::spool

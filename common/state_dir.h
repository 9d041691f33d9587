#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace relay {

/// The node's state directory ([node] state_dir): small files that must
/// survive what the database does not (a rebuild, a restore from backup).
/// Each counter is one file, created once (written to a temporary file,
/// fsynced, renamed, the directory fsynced) and from then on rewritten in
/// place, in the older of its two checksummed slots: a write needs no free
/// space (a seq is numbered on a full disk), and a crash leaves the old value
/// or the new one, never a torn mix.
class StateDir {
 public:
  /// Creates the folder (mode 0700) if missing; one that exists keeps its
  /// mode. Throws std::runtime_error naming the folder if it cannot be
  /// created or written.
  explicit StateDir(std::filesystem::path dir);
  ~StateDir();
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;

  /// Takes the folder for this process alone: an flock on `<dir>/lock`,
  /// released when the process ends or execs. Throws, naming the folder and
  /// the pid that holds it, when another relayd runs on it (two would number
  /// events from one mark and share one spool).
  void lock();
  /// The lock's descriptor (-1 before lock()), for a child process that
  /// must close it so as not to hold the lock past this process.
  int lock_fd() const { return lock_fd_; }

  const std::filesystem::path& path() const { return dir_; }

  /// The counter stored under `name`, or nullopt if there is none. A file
  /// that exists but does not hold a checksummed counter throws (naming it):
  /// silently starting again from zero is what this folder exists to prevent.
  std::optional<std::uint64_t> read_counter(std::string_view name) const;
  /// Stores `value` under `name` durably (pwrite and fdatasync) before
  /// returning; only the first write of a counter allocates its file. Throws
  /// std::runtime_error naming the file on any failure.
  void write_counter(std::string_view name, std::uint64_t value) const;

  /// Adds one to the counter under `name` (0 if absent), durably, and
  /// returns it: the session boot counter, written before the session is used.
  std::uint64_t bump_counter(std::string_view name) const;

  /// fsyncs the directory itself (after creating or renaming a file in it).
  void sync() const;

 private:
  /// The first write of a counter: both slots, in a new file.
  void create_counter(std::string_view name, std::uint64_t value) const;

  std::filesystem::path dir_;
  int lock_fd_ = -1;
};

}  // namespace relay

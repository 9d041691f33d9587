#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace relay::capture {

/// Lines of each stream the status page shows.
inline constexpr std::size_t kKeptLines = 1000;
/// Longer lines are cut here (in the files only; the journal gets them whole).
inline constexpr std::size_t kMaxLineBytes = 4096;

/// The two captured streams.
enum class Stream { out, err };
/// "stdout" or "stderr".
const char* stream_name(Stream stream);

/// Appends lines to `<dir>/<name>.log`. When that file holds `keep` lines
/// it becomes `<name>.log.1` (replacing the older one) and a new file starts,
/// so the two always hold at least the last `keep` lines and the disk use
/// stays bounded. Each line is written through at once: a crash of the
/// writer (relayd's tee, relay-runner) loses nothing written. Not thread-safe.
class LogWriter {
 public:
  /// Opens (creates) the file; counts the lines already in it, so a restart
  /// continues where the previous run stopped. Throws std::runtime_error.
  LogWriter(const std::filesystem::path& dir, std::string_view name, std::size_t keep = kKeptLines,
            std::size_t max_line_bytes = kMaxLineBytes);
  /// A captured stream's file: `<dir>/stdout.log` or `<dir>/stderr.log`.
  LogWriter(const std::filesystem::path& dir, Stream stream);

  /// One line, without its newline; cut at max_line_bytes.
  void append(std::string_view line);

 private:
  void open();

  std::filesystem::path current_;
  std::filesystem::path previous_;
  std::size_t keep_;
  std::size_t max_line_bytes_;
  std::ofstream file_;
  std::size_t lines_ = 0;
};

/// The last `n` lines of `<dir>/<name>.log` and the file before it, oldest
/// first: those of the previous runs too.
std::vector<std::string> read_tail(const std::filesystem::path& dir, std::string_view name,
                                   std::size_t n);
/// The same for a captured stream.
std::vector<std::string> read_tail(const std::filesystem::path& dir, Stream stream,
                                   std::size_t n = kKeptLines);

}  // namespace relay::capture

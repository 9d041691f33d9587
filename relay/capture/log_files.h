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

/// Appends the lines of one stream to `<dir>/<stream>.log`. When that file
/// holds kKeptLines lines it becomes `<stream>.log.1` (replacing the older
/// one) and a new file starts, so the two always hold at least the last
/// kKeptLines lines and the disk use stays bounded. Each line is written
/// through at once: a crash of relayd (or of the tee) loses nothing written.
class LogWriter {
 public:
  /// Opens (creates) the file; counts the lines already in it, so a restart
  /// continues where the previous run stopped. Throws std::runtime_error.
  LogWriter(std::filesystem::path dir, Stream stream);

  /// One line, without its newline.
  void append(std::string_view line);

 private:
  void open();

  std::filesystem::path current_;
  std::filesystem::path previous_;
  std::ofstream file_;
  std::size_t lines_ = 0;
};

/// The last `n` lines of a stream in `dir`, oldest first: those of the
/// previous runs too (they are in the same files).
std::vector<std::string> read_tail(const std::filesystem::path& dir, Stream stream,
                                   std::size_t n = kKeptLines);

}  // namespace relay::capture

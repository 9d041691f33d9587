#include "relay/capture/log_files.h"

#include <deque>
#include <stdexcept>
#include <system_error>

namespace relay::capture {
namespace {

std::filesystem::path file_of(const std::filesystem::path& dir, std::string_view name) {
  return dir / (std::string(name) + ".log");
}

std::filesystem::path previous_of(const std::filesystem::path& dir, std::string_view name) {
  return dir / (std::string(name) + ".log.1");
}

void read_lines(const std::filesystem::path& file, std::deque<std::string>& out, std::size_t n) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(std::move(line));
    if (out.size() > n) out.pop_front();
  }
}

}  // namespace

const char* stream_name(Stream stream) {
  return stream == Stream::out ? "stdout" : "stderr";
}

LogWriter::LogWriter(const std::filesystem::path& dir, std::string_view name, std::size_t keep,
                     std::size_t max_line_bytes)
    : current_(file_of(dir, name)),
      previous_(previous_of(dir, name)),
      keep_(keep),
      max_line_bytes_(max_line_bytes) {
  std::ifstream in(current_);
  std::string line;
  while (std::getline(in, line)) ++lines_;
  open();
}

LogWriter::LogWriter(const std::filesystem::path& dir, Stream stream)
    : LogWriter(dir, stream_name(stream)) {}

void LogWriter::open() {
  file_.close();
  file_.clear();
  file_.open(current_, std::ios::app);
  if (!file_) throw std::runtime_error("cannot write " + current_.string());
}

void LogWriter::append(std::string_view line) {
  // A write refused (the disk full) leaves the stream failed for good:
  // opened again, the lines come back once there is space.
  if (!file_) open();
  if (lines_ >= keep_) {
    std::error_code ignored;
    file_.close();
    std::filesystem::rename(current_, previous_, ignored);
    lines_ = 0;
    open();
  }
  file_.write(line.data(), static_cast<std::streamsize>(std::min(line.size(), max_line_bytes_)));
  file_.put('\n');
  file_.flush();  // to the kernel: survives the death of either process
  ++lines_;
}

std::vector<std::string> read_tail(const std::filesystem::path& dir, std::string_view name,
                                   std::size_t n) {
  std::deque<std::string> lines;
  read_lines(previous_of(dir, name), lines, n);
  read_lines(file_of(dir, name), lines, n);
  return {lines.begin(), lines.end()};
}

std::vector<std::string> read_tail(const std::filesystem::path& dir, Stream stream, std::size_t n) {
  return read_tail(dir, stream_name(stream), n);
}

}  // namespace relay::capture

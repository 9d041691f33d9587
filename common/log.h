#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay {

/// Makes the default spdlog logger write lines to stderr (plus `extra`
/// sinks, for tests). `level` is one of trace, debug, info, warn, error;
/// throws std::invalid_argument otherwise. What reaches stderr is what the
/// status page shows and the journal keeps (relay/capture).
void init_logging(std::string_view level, std::vector<spdlog::sink_ptr> extra = {});

/// `text` on one line, for a log line or a status page: libpq's messages end
/// in a newline and put their hints on lines of their own.
std::string one_line(std::string_view text);

/// A field of a log line that journald keeps on its own (`journalctl PEER=hq`):
/// `name` is lower case ([a-z_]), the journal field its upper-case form.
struct LogField {
  std::string_view name;
  std::string value;
};

/// "message | peer=hq event_id=\"hq:3\" ...": the line as people read it, and
/// fields the output capture hands to the journal (relay/capture/journal.h).
/// Values with spaces, quotes or '=' are quoted with backslash escapes.
std::string with_fields(std::string_view message, std::initializer_list<LogField> fields);

/// The fields of a line made by with_fields, with names upper-cased for the
/// journal; nullopt for a line without them (a library's, say).
std::optional<std::vector<std::pair<std::string, std::string>>> parse_fields(std::string_view line);

/// Logs an incident (a peer's state, an alarm, a duress, the database) with
/// its fields; relayd's journal entries carry them.
void log_incident(spdlog::level::level_enum level, std::string_view message,
                  std::initializer_list<LogField> fields);

/// "2026-01-01 03:00:00" in local time, for people.
std::string local_time(std::int64_t unix_ms);

/// At most `burst` lines per `window`; counts what it held back, so that the
/// next line allowed can say how many were not logged (a flood of bad input
/// never floods the log, and is never silent either).
class RateLimit {
 public:
  RateLimit(std::chrono::steady_clock::duration window, int burst)
      : window_(window), burst_(burst) {}

  /// True if a line may be logged now; the caller then reports suppressed().
  bool allow(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    if (now - start_ >= window_) {
      start_ = now;
      used_ = 0;
    }
    if (used_ < burst_) {
      ++used_;
      return true;
    }
    ++held_back_;
    return false;
  }
  /// Lines held back since the last call; resets the count.
  std::uint64_t suppressed() { return std::exchange(held_back_, 0); }

 private:
  std::chrono::steady_clock::duration window_;
  int burst_;
  std::chrono::steady_clock::time_point start_{};
  int used_ = 0;
  std::uint64_t held_back_ = 0;
};

}  // namespace relay

#pragma once

#include <string>
#include <string_view>

#include <sys/types.h>

namespace relay::capture {

/// True if `fd` is the stream systemd connected to the journal, as its
/// $JOURNAL_STREAM ("DEVICE:INODE") says: then lines are better sent as
/// native journal entries, which keep their fields.
bool is_journal_stream(int fd);

/// One journal entry in the native protocol (systemd's journal-native(7)
/// format: "NAME=value\n" per field) for a line of relayd's output:
/// MESSAGE, PRIORITY (from the line's level word, else `default_priority`),
/// SYSLOG_IDENTIFIER, SYSLOG_PID, and the fields of an incident line
/// (common/log.h: with_fields), e.g. PEER, EVENT_ID, REASON.
std::string journal_entry(std::string_view line, int default_priority, std::string_view identifier,
                          pid_t pid);

/// A datagram socket to journald. The path is /run/systemd/journal/socket,
/// or $RELAY_JOURNAL_SOCKET (the tests point it at a socket of their own).
class Journal {
 public:
  Journal();
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Sends one entry; false if journald did not take it (the caller then
  /// writes the line to the stream instead: never lost silently).
  bool send(const std::string& entry);

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace relay::capture

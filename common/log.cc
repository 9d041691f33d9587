#include "common/log.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cctype>
#include <ctime>
#include <stdexcept>
#include <string>

namespace relay {
namespace {

// Protobuf logs parse complaints (invalid UTF-8 in a string field) at ERROR
// on stderr. Those come from authenticated but malformed datagrams, which
// are already counted by reason; at debug level they cannot flood the log.
void protobuf_to_debug(google::protobuf::LogLevel, const char* file, int line,
                       const std::string& message) {
  spdlog::debug("protobuf {}:{}: {}", file, line, message);
}

constexpr std::string_view kFieldMark = " | ";

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || c == '|' ||
        static_cast<unsigned char>(c) < 0x20)
      return true;
  }
  return false;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_suffix(
    std::string_view rest) {
  std::vector<std::pair<std::string, std::string>> fields;
  while (!rest.empty()) {
    const auto eq = rest.find('=');
    if (eq == 0 || eq == std::string_view::npos) return std::nullopt;
    std::string name;
    for (char c : rest.substr(0, eq)) {
      if (!(std::islower(static_cast<unsigned char>(c)) || c == '_')) return std::nullopt;
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      std::size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i];
      }
      if (i >= rest.size()) return std::nullopt;  // unterminated
      rest.remove_prefix(i + 1);
    } else {
      const auto end = rest.find(' ');
      value = rest.substr(0, end);
      if (value.find_first_of("\"|") != std::string::npos) return std::nullopt;
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
    if (!rest.empty()) {
      if (rest.front() != ' ') return std::nullopt;
      rest.remove_prefix(1);
    }
    fields.emplace_back(std::move(name), std::move(value));
  }
  if (fields.empty()) return std::nullopt;
  return fields;
}

}  // namespace

void init_logging(std::string_view level, std::vector<spdlog::sink_ptr> extra) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps anything unknown to "off"; a typo must not silence the log.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("log level \"" + std::string(level) +
                                "\": expected trace, debug, info, warn or error");
  }
  // Plain stderr, no colours: under systemd and in the captured log the
  // bytes are read by the journal and the status page, not a terminal.
  extra.insert(extra.begin(), std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("relay", extra.begin(), extra.end());
  logger->set_level(parsed);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  // Incidents must reach the journal at once, not when a buffer fills.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  google::protobuf::SetLogHandler(protobuf_to_debug);
}

std::string with_fields(std::string_view message, std::initializer_list<LogField> fields) {
  std::string line(message);
  line += kFieldMark;
  bool first = true;
  for (const auto& f : fields) {
    if (!first) line += ' ';
    first = false;
    line += f.name;
    line += '=';
    if (!needs_quotes(f.value)) {
      line += f.value;
      continue;
    }
    line += '"';
    for (char c : f.value) {
      if (c == '"' || c == '\\') line += '\\';
      line += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    }
    line += '"';
  }
  return line;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_fields(
    std::string_view line) {
  // The message itself may contain the mark: the fields are the first
  // suffix that parses whole.
  for (auto mark = line.find(kFieldMark); mark != std::string_view::npos;
       mark = line.find(kFieldMark, mark + 1)) {
    if (auto fields = parse_suffix(line.substr(mark + kFieldMark.size()))) return fields;
  }
  return std::nullopt;
}

std::string local_time(std::int64_t unix_ms) {
  const std::time_t t = unix_ms / 1000;
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

void log_incident(spdlog::level::level_enum level, std::string_view message,
                  std::initializer_list<LogField> fields) {
  spdlog::log(level, "{}", with_fields(message, fields));
}

std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    const bool space = c == '\n' || c == '\t' || c == '\r' || c == ' ';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace relay

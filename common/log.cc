#include "common/log.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/stdout_color_sinks.h>

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

}  // namespace

std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> init_logging(std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps anything unknown to "off"; a typo must not silence the log.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("log level \"" + std::string(level) +
                                "\": expected trace, debug, info, warn or error");
  }
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kLogRingLines);
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("relay", spdlog::sinks_init_list{console, ring});
  logger->set_level(parsed);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  google::protobuf::SetLogHandler(protobuf_to_debug);
  return ring;
}

}  // namespace relay

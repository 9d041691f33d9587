#pragma once

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace relay {

/// Lines of recent log kept in memory for the status page.
inline constexpr std::size_t kLogRingLines = 200;

/// Makes the default spdlog logger write to stderr and to a ring buffer of
/// the last kLogRingLines lines, which it returns. `level` is one of trace,
/// debug, info, warn, error; throws std::invalid_argument otherwise.
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> init_logging(std::string_view level);

}  // namespace relay

#include "relay/net/systemd_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <asio/experimental/as_tuple.hpp>

#include <cstring>
#include <ctime>

namespace relay::net {
namespace {

// `systemctl status` shows one line; a verdict with many reasons would
// otherwise fill the journal's view of every change.
constexpr std::size_t kStatusMax = 400;

std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (text.size() > kStatusMax) {
    std::size_t cut = kStatusMax - 3;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
    text = text.substr(0, cut) + "...";
  }
  return text;
}

}  // namespace

SystemdNotifier::SystemdNotifier(asio::io_context& io) : timer_(io) {
  std::uint64_t usec = 0;
  // 0: unset environment stays, so that the process re-executed by a
  // restart in place (same PID) still finds NOTIFY_SOCKET and WATCHDOG_USEC.
  if (sd_watchdog_enabled(0, &usec) > 0) interval_ = std::chrono::microseconds(usec / 2);
}

void SystemdNotifier::send(const std::string& message) {
  const int r = sd_notify(0, message.c_str());
  if (r < 0) spdlog::warn("systemd notification failed: {}", std::strerror(-r));
}

void SystemdNotifier::ready(const std::string& status) {
  std::lock_guard lock(mutex_);
  last_status_ = one_line(status);
  send("READY=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::status(const std::string& status) {
  std::lock_guard lock(mutex_);
  const auto line = one_line(status);
  if (line == last_status_) return;
  last_status_ = line;
  send("STATUS=" + line);
}

void SystemdNotifier::reloading(const std::string& status) {
  std::lock_guard lock(mutex_);
  last_status_ = one_line(status);
  // MONOTONIC_USEC: systemd 253 and later match the reload to this time.
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
                    static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + last_status_);
}

void SystemdNotifier::stopping() {
  send("STOPPING=1");
}

void SystemdNotifier::start_watchdog() {
  if (interval_.count() == 0 || pinging_) return;
  pinging_ = true;
  asio::co_spawn(timer_.get_executor(), ping(), asio::detached);
}

void SystemdNotifier::stop_watchdog() {
  pinging_ = false;
  timer_.cancel();
}

asio::awaitable<void> SystemdNotifier::ping() {
  constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
  while (pinging_) {
    send("WATCHDOG=1");
    timer_.expires_after(interval_);
    auto [ec] = co_await timer_.async_wait(use_tuple);
    if (ec) co_return;
  }
}

std::string status_line(const std::string& level, const std::vector<std::string>& reasons) {
  std::string line = level;
  for (std::size_t i = 0; i < reasons.size(); ++i) line += (i == 0 ? ": " : "; ") + reasons[i];
  return one_line(line);
}

}  // namespace relay::net

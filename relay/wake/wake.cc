#include "relay/wake/wake.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <pqxx/connection>

#include <asio/experimental/as_tuple.hpp>

#include <list>

#include "common/log.h"
#include "relay/store/notify.h"

namespace relay::wake {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace

KickListener::KickListener(asio::io_context& io, Endpoint listen, Wake wake)
    : listen_(std::move(listen)), wake_(std::move(wake)), socket_(io) {}

void KickListener::start() {
  const asio::ip::udp::endpoint at(asio::ip::make_address(listen_.host), listen_.port);
  socket_.open(at.protocol());
  // Kicks are hints, but a burst of them should not overflow the kernel's
  // default buffer (208 KiB lost kicks from 300 senders at 100/s each,
  // scripts/bench-seed); the kernel caps it at net.core.rmem_max.
  socket_.set_option(asio::socket_base::receive_buffer_size(1 << 20));
  try {
    socket_.bind(at);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "kick listener " + listen_.to_string());
  }
  asio::co_spawn(socket_.get_executor(), receive(), asio::detached);
}

void KickListener::stop() {
  stopped_ = true;
  asio::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<void> KickListener::receive() {
  std::array<char, 512> buffer{};
  asio::ip::udp::endpoint from;
  while (!stopped_) {
    auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(buffer), from, use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    // Many kicks while the consumer works coalesce into one more pass.
    ++kicks_;
    wake_();
  }
}

NotifyListener::NotifyListener(asio::io_context& io, std::string dsn, std::string channel,
                               Wake wake)
    : io_(io),
      dsn_(std::move(dsn)),
      channel_(std::move(channel)),
      wake_(std::move(wake)),
      retry_timer_(io) {}

NotifyListener::~NotifyListener() {
  stop();
}

void NotifyListener::also_listen(std::string channel, Wake hit) {
  others_.emplace_back(std::move(channel), std::move(hit));
}

void NotifyListener::report_to(Wake up, Failed failed) {
  up_ = std::move(up);
  failed_ = std::move(failed);
}

void NotifyListener::start() {
  asio::co_spawn(io_, run(), asio::detached);
}

void NotifyListener::stop() {
  if (stopped_) return;
  stopped_ = true;
  retry_timer_.cancel();
  asio::error_code ignored;
  if (fd_) fd_->close(ignored);
  connector_.stop();
  connector_.join();
}

asio::awaitable<void> NotifyListener::run() {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopped_) {
    try {
      auto connection = co_await asio::co_spawn(connector_, connect(dsn_), asio::use_awaitable);
      if (stopped_) co_return;
      pqxx::connection& conn = *connection;
      store::NotifyReceiver receiver(conn, channel_, [this] {
        ++notifies_;
        wake_();
      });
      std::list<store::NotifyReceiver> others;
      for (const auto& [channel, hit] : others_) others.emplace_back(conn, channel, hit);
      // A dup of libpq's socket for Asio to wait on, so that closing ours
      // never closes libpq's.
      fd_ = std::make_unique<asio::posix::stream_descriptor>(io_, ::dup(conn.sock()));
      backoff = std::chrono::milliseconds(100);
      listening_ = true;
      if (outage_logged_) spdlog::info("LISTEN {}: connected again", channel_);
      outage_logged_ = false;
      if (up_) up_();
      wake_();
      while (!stopped_) {
        auto [ec] = co_await fd_->async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
        if (ec == asio::error::operation_aborted || stopped_) co_return;
        conn.get_notifs();  // throws if the connection broke
        if (!conn.is_open()) throw pqxx::broken_connection("LISTEN connection closed");
      }
    } catch (const std::exception& e) {
      // Once per outage, not once per retry; the poll goes on meanwhile.
      if (!outage_logged_) {
        spdlog::warn("LISTEN {}: {}; the poll goes on meanwhile, reconnecting", channel_,
                     one_line(e.what()));
      }
      outage_logged_ = true;
      if (failed_ && !stopped_) failed_(one_line(e.what()));
    }
    listening_ = false;
    if (fd_) {
      asio::error_code ignored;
      fd_->close(ignored);
      fd_.reset();
    }
    retry_timer_.expires_after(backoff);
    auto [ec] = co_await retry_timer_.async_wait(use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

asio::awaitable<std::unique_ptr<pqxx::connection>> NotifyListener::connect(std::string dsn) {
  co_return std::make_unique<pqxx::connection>(dsn);
}

PollTimer::PollTimer(asio::io_context& io, std::chrono::milliseconds interval, Wake wake)
    : interval_(interval), wake_(std::move(wake)), timer_(io) {}

void PollTimer::start() {
  asio::co_spawn(timer_.get_executor(), run(), asio::detached);
}

void PollTimer::stop() {
  stopped_ = true;
  timer_.cancel();
}

asio::awaitable<void> PollTimer::run() {
  while (!stopped_) {
    const double spread = std::uniform_real_distribution<>(0.75, 1.25)(rng_);
    timer_.expires_after(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval_ * spread));
    auto [ec] = co_await timer_.async_wait(use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    wake_();
  }
}

}  // namespace relay::wake

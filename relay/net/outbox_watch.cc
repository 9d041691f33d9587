#include "relay/net/outbox_watch.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include <asio/experimental/as_tuple.hpp>

#include "common/log.h"
#include "relay/store/durability.h"
#include "relay/store/notify.h"
#include "relay/store/pg_store.h"

namespace relay::net {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace

OutboxWatch::OutboxWatch(asio::io_context& io, OutboxOptions options, const Config& config,
                         crypto::SigningKey key, Claimed claimed)
    : io_(io),
      options_(std::move(options)),
      config_(config),
      key_(std::move(key)),
      on_claimed_(std::move(claimed)),
      kick_socket_(io),
      poll_timer_(io),
      listen_timer_(io) {}

OutboxWatch::~OutboxWatch() {
  stop();
}

void OutboxWatch::start() {
  const asio::ip::udp::endpoint at(asio::ip::make_address(options_.kick.host), options_.kick.port);
  kick_socket_.open(at.protocol());
  // Kicks are hints, but a burst of them should not overflow the kernel's
  // default buffer (208 KiB lost kicks from 300 senders at 100/s each,
  // scripts/bench-seed); the kernel caps it at net.core.rmem_max.
  kick_socket_.set_option(asio::socket_base::receive_buffer_size(1 << 20));
  try {
    kick_socket_.bind(at);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "kick listener " + options_.kick.to_string());
  }
  thread_ = std::thread([this] { worker(); });
  asio::co_spawn(io_, receive_kicks(), asio::detached);
  asio::co_spawn(io_, poll(), asio::detached);
  if (options_.listen) asio::co_spawn(io_, listen(), asio::detached);
  wake();  // a full claim at start: rows may have waited while we were down
}

void OutboxWatch::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ignored;
  kick_socket_.close(ignored);
  poll_timer_.cancel();
  listen_timer_.cancel();
  if (listen_fd_) listen_fd_->close(ignored);
  connector_.stop();
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OutboxWatch::wake() {
  if (stopped_) return;
  {
    std::lock_guard lock(mutex_);
    requested_ = true;
  }
  cv_.notify_one();
}

void OutboxWatch::set_key(crypto::SigningKey key) {
  std::lock_guard lock(mutex_);
  key_ = std::move(key);
}

void OutboxWatch::heal(mesh::EventPtr own, mesh::EventPtr mesh_version) {
  {
    std::lock_guard lock(mutex_);
    heals_.emplace_back(std::move(own), std::move(mesh_version));
    requested_ = true;
  }
  cv_.notify_one();
}

void OutboxWatch::set_paused(bool paused) {
  paused_ = paused;
  if (!paused) wake();
}

asio::awaitable<void> OutboxWatch::receive_kicks() {
  std::array<char, 512> buffer{};
  asio::ip::udp::endpoint from;
  while (!stopped_) {
    auto [ec, n] = co_await kick_socket_.async_receive_from(asio::buffer(buffer), from, use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    // Any datagram is a hint; what it says does not matter. Many kicks
    // while a claim runs coalesce into one more claim.
    ++kicks_;
    wake();
  }
}

asio::awaitable<void> OutboxWatch::poll() {
  while (!stopped_) {
    // Jitter, so that many relays restarted together do not poll in step.
    const double spread = std::uniform_real_distribution<>(0.75, 1.25)(rng_);
    poll_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        options_.poll_interval * spread));
    auto [ec] = co_await poll_timer_.async_wait(use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    wake();
  }
}

asio::awaitable<void> OutboxWatch::listen() {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopped_) {
    try {
      // LISTEN needs a connection of its own: libpqxx delivers nothing
      // while a transaction is open on the connection.
      auto connection =
          co_await asio::co_spawn(connector_, connect(options_.dsn), asio::use_awaitable);
      if (stopped_) co_return;
      pqxx::connection& conn = *connection;
      store::NotifyReceiver receiver(conn, "outbox", [this] {
        ++notifies_;
        wake();
      });
      // relayctl prune ran: the core must learn the new settled prefixes.
      store::NotifyReceiver retention(conn, "relay_retention", [this] {
        if (options_.retention_changed) options_.retention_changed();
      });
      // A dup of the socket for Asio to wait on, so that closing ours never
      // closes libpq's.
      listen_fd_ = std::make_unique<asio::posix::stream_descriptor>(io_, ::dup(conn.sock()));
      backoff = std::chrono::milliseconds(100);
      if (options_.health != nullptr) options_.health->ok(Health::kOutboxListen);
      wake();  // a full claim after every (re)connect: NOTIFYs were missed meanwhile
      while (!stopped_) {
        auto [ec] =
            co_await listen_fd_->async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
        if (ec == asio::error::operation_aborted || stopped_) co_return;
        conn.get_notifs();  // throws if the connection broke
        if (!conn.is_open()) throw pqxx::broken_connection("LISTEN connection closed");
      }
    } catch (const std::exception& e) {
      spdlog::warn("outbox LISTEN connection: {}; polling every {} ms meanwhile", one_line(e.what()),
                   options_.poll_interval.count());
      if (options_.health != nullptr) options_.health->failing(Health::kOutboxListen, one_line(e.what()));
    }
    if (listen_fd_) {
      asio::error_code ignored;
      listen_fd_->close(ignored);
      listen_fd_.reset();
    }
    listen_timer_.expires_after(backoff);
    auto [ec] = co_await listen_timer_.async_wait(use_tuple);
    if (ec == asio::error::operation_aborted || stopped_) co_return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

asio::awaitable<std::unique_ptr<pqxx::connection>> OutboxWatch::connect(std::string dsn) {
  co_return std::make_unique<pqxx::connection>(dsn);
}

void OutboxWatch::worker() {
  std::unique_ptr<pqxx::connection> conn;
  auto backoff = std::chrono::milliseconds(100);
  // The highest own seq handed to the core. After a failed claim, whatever
  // lies above it in the log was committed by a claim whose connection broke
  // before it could say so; it is handed over before the next claim.
  std::optional<std::uint64_t> handed;
  bool resync = false;
  auto hand_over = [&](store::ClaimResult result) {
    for (const auto& e : result.events) handed = std::max(handed.value_or(0), e->key.seq);
    if (!result.events.empty() || result.rejected > 0 || !result.replaced.empty()) {
      asio::post(io_, [this, r = std::move(result)]() mutable { claimed(std::move(r)); });
    }
  };
  while (true) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return quit_ || requested_; });
      if (quit_) return;
      requested_ = false;
    }
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(options_.dsn);
        // A claim acks an outbox row by deleting it: durably, or not at all.
        store::prepare_for_writes(*conn, options_.unsafe_durability);
      }
      if (!handed || resync) {
        pqxx::read_transaction tx(*conn);
        if (!handed) {
          handed =
              tx.exec_params1("SELECT coalesce(max(seq), 0) FROM relay_event_log WHERE origin = $1",
                              config_.node.id)[0]
                  .as<std::uint64_t>();
        } else {
          store::ClaimResult committed;
          committed.events = store::own_events_after(tx, config_.node.id, *handed);
          if (!committed.events.empty()) {
            spdlog::warn(
                "outbox claim: {} events committed by a claim that lost its connection; sending "
                "them",
                committed.events.size());
          }
          hand_over(std::move(committed));
        }
        tx.commit();
        resync = false;
      }
      const crypto::SigningKey key = [&] {
        std::lock_guard lock(mutex_);
        return key_;
      }();
      // A seq numbered twice first: the event it took from the mesh goes again.
      while (options_.numbering != nullptr) {
        std::pair<mesh::EventPtr, mesh::EventPtr> heal;
        {
          std::lock_guard lock(mutex_);
          if (heals_.empty()) break;
          heal = heals_.front();
        }
        try {
          hand_over(store::heal_conflict(*conn, config_, key, *options_.numbering, heal.first,
                                         heal.second));
        } catch (const pqxx::broken_connection&) {
          throw;  // tried again once the database answers
        } catch (const std::exception& e) {
          // Never ahead of the outbox for ever: the conflict stays an alarm.
          spdlog::error("heal of own seq {}: {}; the conflict stays (CONFLICT alarm)",
                        heal.first->key.seq, one_line(e.what()));
        }
        std::lock_guard lock(mutex_);
        heals_.erase(heals_.begin());
      }
      // Back-pressure, or numbering still learning from peers: urgent rows only.
      const bool urgent_only =
          paused_ || (options_.numbering != nullptr && !options_.numbering->ready());
      auto result =
          store::claim_outbox(*conn, config_, key, options_.batch, urgent_only, options_.numbering);
      backoff = std::chrono::milliseconds(100);
      if (options_.health != nullptr) options_.health->ok(Health::kOutboxClaim);
      if (result.full) {
        std::lock_guard lock(mutex_);
        requested_ = true;  // there may be more: claim again at once
      }
      hand_over(std::move(result));
    } catch (const std::exception& e) {
      // The rows stay in the outbox (or the claim did commit: see resync);
      // try again after a pause, until the database answers.
      spdlog::error("outbox claim: {}; rows stay in the outbox, retrying in {} ms", one_line(e.what()),
                    backoff.count());
      if (options_.health != nullptr) options_.health->failing(Health::kOutboxClaim, one_line(e.what()));
      conn.reset();
      resync = handed.has_value();
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, backoff, [&] { return quit_; });
      requested_ = true;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
}

void OutboxWatch::claimed(store::ClaimResult result) {
  if (!stopped_) on_claimed_(std::move(result));
}

}  // namespace relay::net

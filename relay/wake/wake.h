#pragma once

#include <asio.hpp>
#include <pqxx/connection>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"

namespace relay::wake {

/// What a wake-up source calls; cheap and safe from the io_context's thread.
using Wake = std::function<void()>;

/// Kickstart by datagram: any datagram on a (loopback) UDP port is a hint
/// to look at the queue now. Its content does not matter.
class KickListener {
 public:
  KickListener(asio::io_context& io, Endpoint listen, Wake wake);
  /// Binds (throws std::system_error naming the address) and listens.
  void start();
  void stop();
  /// The bound port (the OS's pick for port 0).
  std::uint16_t port() const { return socket_.local_endpoint().port(); }
  std::uint64_t kicks() const { return kicks_; }

 private:
  asio::awaitable<void> receive();

  Endpoint listen_;
  Wake wake_;
  asio::ip::udp::socket socket_;
  std::atomic<std::uint64_t> kicks_{0};
  bool stopped_ = false;
};

/// Kickstart by NOTIFY: LISTEN on a connection of its own (libpqxx
/// delivers nothing while a transaction is open on a connection), waited on
/// with Asio; wakes on every notification and after every (re)connect,
/// since notifications sent meanwhile are lost. Reconnects with a backoff
/// of 100 ms doubling to 5 s while the database is away.
class NotifyListener {
 public:
  /// Told why the LISTEN connection failed (one line).
  using Failed = std::function<void(const std::string& error)>;

  NotifyListener(asio::io_context& io, std::string dsn, std::string channel, Wake wake);
  ~NotifyListener();
  /// Also LISTENs on `channel` on the same connection, calling `hit` for
  /// each NOTIFY there: not a wake-up, and not counted. Before start().
  void also_listen(std::string channel, Wake hit);
  /// Calls `up` each time the LISTEN connection is up (before the wake-up
  /// that follows), and `failed` each time it fails or cannot be made.
  /// Before start(); both on the io_context's thread.
  void report_to(Wake up, Failed failed);
  void start();
  /// Stops listening; no callback runs after it returns.
  void stop();
  std::uint64_t notifies() const { return notifies_; }
  /// True while the LISTEN connection is up.
  bool listening() const { return listening_; }

 private:
  asio::awaitable<void> run();
  static asio::awaitable<std::unique_ptr<pqxx::connection>> connect(std::string dsn);

  asio::io_context& io_;
  std::string dsn_;
  std::string channel_;
  Wake wake_;
  std::vector<std::pair<std::string, Wake>> others_;
  Wake up_;
  Failed failed_;
  asio::steady_timer retry_timer_;
  std::unique_ptr<asio::posix::stream_descriptor> fd_;
  // Connecting blocks for as long as the network makes it: not on the
  // io_context's thread, which in relayd also carries the mesh.
  asio::thread_pool connector_{1};
  std::atomic<std::uint64_t> notifies_{0};
  std::atomic<bool> listening_{false};
  bool outage_logged_ = false;
  bool stopped_ = false;
};

/// The poll: wakes every `interval`, jittered by a quarter either way so
/// that daemons restarted together do not poll in step.
class PollTimer {
 public:
  PollTimer(asio::io_context& io, std::chrono::milliseconds interval, Wake wake);
  void start();
  void stop();

 private:
  asio::awaitable<void> run();

  std::chrono::milliseconds interval_;
  Wake wake_;
  asio::steady_timer timer_;
  std::mt19937_64 rng_{std::random_device{}()};
  bool stopped_ = false;
};

}  // namespace relay::wake

#pragma once

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/crypto.h"
#include "relay/net/health.h"
#include "relay/store/outbox.h"

namespace relay::net {

struct OutboxOptions {
  std::string dsn;
  /// UDP address of the kick listener (loopback in any sane config).
  Endpoint kick;
  /// The fallback poll, jittered by up to a quarter either way.
  std::chrono::milliseconds poll_interval{1000};
  /// Rows per claim; a full claim is followed by another at once. A duress
  /// inserted during a flood waits for the claim under way: 64 rows take
  /// about 12 ms here, 256 about 45 ms (docs/benchmarks.md).
  std::size_t batch = 64;
  /// LISTEN on channel "outbox" (tests turn it off to prove the poll alone).
  bool listen = true;
  /// Where own numbering stands; claims number above its high-water mark
  /// and take only urgent rows while it is not ready. Null: the database's
  /// sequence alone (tests).
  store::NumberingState* numbering = nullptr;
  /// Called (on the io_context's thread) on a NOTIFY relay_retention: the
  /// log was pruned by someone else (relayctl prune).
  std::function<void()> retention_changed;
  /// Where the claim and the LISTEN connection report how they fare (optional).
  Health* health = nullptr;
  /// [store] unsafe_durability (store::prepare_for_writes).
  bool unsafe_durability = false;
};

/// Finds new outbox rows and claims them, off the network thread. Wake-ups
/// are hints: a datagram on the kick port, a NOTIFY on channel "outbox", a
/// poll timer; all coalesce into one claim at a time. A full claim is
/// followed by another at once; a claim runs at start and after every
/// reconnect of the LISTEN connection. Claimed events are handed to
/// `claimed` on the io_context's thread.
class OutboxWatch {
 public:
  using Claimed = std::function<void(store::ClaimResult)>;

  OutboxWatch(asio::io_context& io, OutboxOptions options, const Config& config,
              crypto::SigningKey key, Claimed claimed);
  ~OutboxWatch();

  /// Binds the kick port (throws std::system_error naming the address if it
  /// cannot) and starts watching.
  void start();
  /// Stops everything; no callback runs after it returns.
  void stop();
  /// Asks for a claim now (coalesced with any other request).
  void wake();
  /// A new identity key to sign claims with (SIGHUP after a rotation).
  void set_key(crypto::SigningKey key);
  /// An own seq was numbered twice: the mesh holds `mesh_version` under it.
  /// Has the store take that one and number `own` afresh (store::
  /// heal_conflict), before the next claim; the result comes to `claimed`.
  void heal(mesh::EventPtr own, mesh::EventPtr mesh_version);
  /// Back-pressure: while paused only duress and emergency rows are claimed
  /// (a flood never holds an alarm back); resuming claims the rest at once.
  void set_paused(bool paused);

  /// The bound kick port (the configured one, or the OS's pick for port 0).
  std::uint16_t kick_port() const { return kick_socket_.local_endpoint().port(); }
  /// Kicks received so far (for tests and the status page).
  std::uint64_t kicks() const { return kicks_; }
  std::uint64_t notifies() const { return notifies_; }

 private:
  asio::awaitable<void> receive_kicks();
  asio::awaitable<void> poll();
  asio::awaitable<void> listen();
  static asio::awaitable<std::unique_ptr<pqxx::connection>> connect(std::string dsn);
  void worker();
  void claimed(store::ClaimResult result);

  asio::io_context& io_;
  OutboxOptions options_;
  const Config& config_;
  crypto::SigningKey key_;
  Claimed on_claimed_;
  asio::ip::udp::socket kick_socket_;
  asio::steady_timer poll_timer_;
  asio::steady_timer listen_timer_;
  std::unique_ptr<asio::posix::stream_descriptor> listen_fd_;
  // Connecting blocks (for as long as the network makes it): never on the
  // io_context's thread, which also carries the mesh.
  asio::thread_pool connector_{1};
  std::mt19937_64 rng_{std::random_device{}()};
  std::uint64_t kicks_ = 0;
  std::uint64_t notifies_ = 0;
  std::atomic<bool> paused_{false};
  bool stopped_ = false;

  // The claim worker: its own thread and connection.
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  std::vector<std::pair<mesh::EventPtr, mesh::EventPtr>> heals_;  // own, the mesh's
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace relay::net

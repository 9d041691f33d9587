#pragma once

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/crypto.h"
#include "relay/net/health.h"
#include "relay/store/outbox.h"
#include "relay/wake/coalescer.h"
#include "relay/wake/wake.h"

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
/// are hints from relay/wake's roles, the ones relay-runner uses too: a
/// datagram on the kick port, a NOTIFY on channel "outbox", a poll timer;
/// all coalesce into one claim at a time. A full claim is followed by
/// another at once; a claim runs at start and after every reconnect of the
/// LISTEN connection. Claimed events are handed to `claimed` on the
/// io_context's thread.
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
  std::uint16_t kick_port() const { return kick_.port(); }
  /// Kicks received so far (for tests and the status page).
  std::uint64_t kicks() const { return kick_.kicks(); }
  std::uint64_t notifies() const { return notify_ ? notify_->notifies() : 0; }

 private:
  void worker();
  void claimed(store::ClaimResult result);

  asio::io_context& io_;
  OutboxOptions options_;
  const Config& config_;
  crypto::SigningKey key_;
  Claimed on_claimed_;
  wake::KickListener kick_;
  wake::PollTimer poll_;
  std::optional<wake::NotifyListener> notify_;  // none with options_.listen off
  std::atomic<bool> paused_{false};
  bool stopped_ = false;

  // The claim worker: its own thread and connection.
  wake::Coalescer wakeups_;
  std::mutex mutex_;
  std::vector<std::pair<mesh::EventPtr, mesh::EventPtr>> heals_;  // own, the mesh's
  std::thread thread_;
};

}  // namespace relay::net

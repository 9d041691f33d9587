#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "relay/mesh/node.h"
#include "relay/net/consumer_kicks.h"
#include "relay/net/outbox_watch.h"
#include "relay/store/pg_store.h"
#include "relay/wire/datagram.h"

namespace relay::net {

namespace v1 = relaymesh::v1;

/// What the status page shows; built on the network thread.
struct DaemonStatus {
  std::string node;
  bool database_up = true;
  std::string database_error;
  std::vector<mesh::PeerStatus> peers;
  mesh::NodeStats stats;
  std::uint64_t accepted = 0;
  std::map<std::string, std::uint64_t> rejected;  // by reason
  std::uint64_t kicks = 0;
  std::uint64_t notifies = 0;
  double uptime_seconds = 0;
  /// Duress rows that a relay-runner group keeps failing to handle, one line
  /// each; filled in by the status server from the database, not here.
  std::vector<std::string> runner_alarms;
};

/// relayd's runtime: one io_context thread owns the UDP mesh socket, the
/// wire codec, the protocol core and its timer; the store and the outbox
/// claims run on their own threads and post results back. Everything the
/// core asks for goes out through here (mesh::Transport).
class Daemon final : public mesh::Transport {
 public:
  /// `snapshot` is what the database held at start (store::open_database).
  Daemon(asio::io_context& io, Config config, NodeKeys keys, mesh::Snapshot snapshot);
  ~Daemon() override;

  /// Binds the mesh socket and the kick port (throws std::system_error
  /// naming the address), and starts everything.
  void start();
  /// Stops claiming, flushes the store, closes sockets. Idempotent.
  void stop();
  /// New key ring and peers' keys (SIGHUP); events in flight are kept. The
  /// peer list itself is fixed: relayd restarts in place when it changes.
  void reload(const Config& config, NodeKeys keys);

  DaemonStatus status() const;
  /// The bound mesh port (the OS's pick when the config says port 0).
  std::uint16_t mesh_port() const;

  // mesh::Transport
  void send(const std::string& peer, const v1::Datagram& body) override;

 private:
  asio::awaitable<void> receive();
  asio::awaitable<void> tick();
  void after_input();
  void rejected(wire::Reject reason, const asio::ip::udp::endpoint& from,
                std::span<const std::uint8_t> datagram);
  static std::map<std::string, crypto::VerifyKey> peer_keys(const Config& config);

  asio::io_context& io_;
  Config config_;
  NodeKeys keys_;
  asio::ip::udp::socket socket_;
  asio::steady_timer timer_;
  std::map<std::string, asio::ip::udp::endpoint> addresses_;
  std::unique_ptr<wire::Codec> codec_;
  std::unique_ptr<store::PgStore> store_;
  std::unique_ptr<mesh::Node> node_;
  std::unique_ptr<OutboxWatch> outbox_;
  ConsumerKicks consumer_kicks_;
  wire::Opened opened_;
  bool database_up_ = true;
  std::string database_error_;
  bool paused_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Rate limit of rejection warnings: one line per reason per minute.
  std::array<std::chrono::steady_clock::time_point, wire::kRejectReasons> last_warned_{};
};

}  // namespace relay::net

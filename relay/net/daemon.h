#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/state_dir.h"
#include "relay/mesh/node.h"
#include "relay/net/consumer_kicks.h"
#include "relay/net/health.h"
#include "relay/net/incident_log.h"
#include "relay/net/outbox_watch.h"
#include "relay/net/paths.h"
#include "relay/store/numbering.h"
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
  /// Back-pressure: claims of normal and bulk rows are held.
  bool claims_paused = false;
  /// When this was taken (steady clock, as the peers' last_heard).
  std::chrono::steady_clock::time_point taken_at{};
  /// Per peer: its session and the ring key it seals with, or lacks.
  std::map<std::string, wire::PeerWireState> wire;
  /// Where this node's own numbering stands.
  mesh::Numbering numbering;
};

/// relayd's runtime: one io_context thread owns the UDP mesh socket, the
/// wire codec, the protocol core and its timer; the store and the outbox
/// claims run on their own threads and post results back. Everything the
/// core asks for goes out through here (mesh::Transport).
class Daemon final : public mesh::Transport {
 public:
  /// `snapshot` is what the database held at start (store::open_database);
  /// `numbering` where own numbering stands (shared with the claims);
  /// `state` is the node's state directory (the session boot counter); the
  /// store lanes and the outbox report how they fare to `health`;
  /// `retention_changed` is called when another program pruned the log.
  Daemon(asio::io_context& io, Config config, NodeKeys keys, mesh::Snapshot snapshot,
         store::NumberingState& numbering, StateDir& state, Health& health,
         std::function<void()> retention_changed);
  ~Daemon() override;

  /// Binds the mesh socket and the kick port (throws std::system_error
  /// naming the address), and starts everything.
  void start();
  /// Stops claiming, flushes the store, closes sockets. Idempotent.
  void stop();
  /// New key ring, identity key and peers' keys (SIGHUP); events in flight
  /// are kept. A new identity key starts a new session with every peer. The
  /// peer list itself is fixed: relayd restarts in place when it changes.
  void reload(const Config& config, NodeKeys keys);
  /// Retention pruned the log: these origins' seqs up to these are settled.
  void pruned(const std::map<std::string, std::uint64_t>& settled_through);

  DaemonStatus status() const;
  /// The bound mesh port (the OS's pick when the config says port 0).
  std::uint16_t mesh_port() const;

  // mesh::Transport
  std::uint64_t send(const std::string& peer, const v1::Datagram& body,
                     mesh::PathSet paths) override;

 private:
  asio::awaitable<void> receive();
  asio::awaitable<void> tick();
  void after_input();
  /// A store lane's health, for the board (called on the lane's thread).
  void report_lane(const std::string& lane, bool healthy, const std::string& why);
  void rejected(wire::Reject reason, const asio::ip::udp::endpoint& from,
                std::span<const std::uint8_t> datagram);
  void send_raw(const std::string& peer, const std::string& datagram, mesh::PathSet paths = 0);
  /// Tells the core how this node's store fares, for its probe answers.
  void report_health();
  static std::map<std::string, wire::IdentityKeys> peer_keys(const Config& config);
  static wire::IdentityKeys own_keys(const Config& config, const crypto::SigningKey& identity);

  asio::io_context& io_;
  Config config_;
  NodeKeys keys_;
  asio::ip::udp::socket socket_;
  asio::steady_timer timer_;
  PeerPaths paths_;
  std::unique_ptr<wire::Codec> codec_;
  std::unique_ptr<store::PgStore> store_;
  Health& health_;
  IncidentLog incidents_;
  std::unique_ptr<StoreTap> tap_;  // the core's store: incidents_ sees each batch
  std::unique_ptr<mesh::Node> node_;
  std::unique_ptr<OutboxWatch> outbox_;
  ConsumerKicks consumer_kicks_;
  store::NumberingState& numbering_;
  StateDir& state_;
  bool numbering_ready_ = false;
  wire::Opened opened_;
  bool database_up_ = true;
  std::chrono::steady_clock::time_point database_down_since_{};
  std::string database_error_;
  bool paused_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Rate limit of rejection warnings: one line per reason per minute.
  std::array<std::chrono::steady_clock::time_point, wire::kRejectReasons> last_warned_{};
  std::map<std::string, std::chrono::steady_clock::time_point> key_warned_;  // by peer
};

}  // namespace relay::net

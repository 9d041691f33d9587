#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/config.h"
#include "common/state_dir.h"
#include "relay/mesh/node.h"
#include "relay/net/consumer_kicks.h"
#include "relay/net/control.h"
#include "relay/net/drill.h"
#include "relay/net/escalation.h"
#include "relay/net/health.h"
#include "relay/net/incident_log.h"
#include "relay/net/outbox_watch.h"
#include "relay/net/paths.h"
#include "relay/spool/spool.h"
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
  /// Why the last reload was refused; empty if it was taken (or none came).
  std::string reload_refused;
  /// The core has its store (the database answered since start).
  bool store_attached = false;
  /// Duress alarms accepted through the control socket and not yet in the
  /// database, and the age of the oldest.
  std::size_t spool_depth = 0;
  std::size_t spool_capacity = 0;
  std::int64_t spool_oldest_ms = 0;
  /// The spooled alarms themselves: open duress alarms (who, where) that the
  /// status page must show while the database that would list them is down.
  std::vector<v1::Event> spooled;
  /// Alarms drained from the spool in the last half minute, and when: the
  /// page's view of the database may have been read before that commit,
  /// and an alarm must not vanish from it meanwhile.
  struct Drained {
    v1::Event event;
    std::int64_t unix_ms = 0;
  };
  std::vector<Drained> drained;
  /// [[drill]] schedules: each drilled site's last drill and its answer.
  DrillView drills;
};

/// Store tickets from here up are the spool's drains, not the core's.
inline constexpr std::uint64_t kSpoolTickets = std::uint64_t{1} << 62;
/// How long a spooled alarm the database refused waits before it is
/// written again (the spool keeps it meanwhile, and the mesh has it):
/// doubling from the first to the cap while it keeps being refused.
inline constexpr std::chrono::seconds kDrainRetry{5};
inline constexpr std::chrono::seconds kDrainRetryCap{300};
/// Drained alarms status() still hands over, and for how long: far longer
/// than the page's database check takes, far more than drain at once.
inline constexpr std::size_t kDrainedKept = 256;
inline constexpr std::int64_t kDrainedShownMs = 30'000;

/// relayd's runtime: one io_context thread owns the UDP mesh socket, the
/// wire codec, the protocol core and its timer; the store and the outbox
/// claims run on their own threads and post results back. Everything the
/// core asks for goes out through here (mesh::Transport).
class Daemon final : public mesh::Transport {
 public:
  /// `numbering` where own numbering stands (shared with the claims);
  /// `state` is the node's state directory (the session boot counter);
  /// `spool` holds the duress alarms accepted but not yet in the database;
  /// the store lanes and the outbox report how they fare to `health`;
  /// `retention_changed` is called when another program pruned the log.
  Daemon(asio::io_context& io, Config config, NodeKeys keys, store::NumberingState& numbering,
         StateDir& state, spool::Spool& spool, Health& health,
         std::function<void()> retention_changed);
  ~Daemon() override;

  /// Binds the mesh socket and the control socket (throws naming the
  /// address) and starts the core without its store: probes are answered
  /// and spooled alarms go out while the database is still away.
  void start();
  /// The database answered: `snapshot` is what it holds
  /// (store::open_database). The core gets its store, claims begin and the
  /// spool drains into the log.
  void attach(mesh::Snapshot snapshot);
  /// Stops claiming, flushes the store, closes sockets. Idempotent.
  void stop();
  /// New key ring, identity key and peers' keys (SIGHUP); events in flight
  /// are kept. A new identity key starts a new session with every peer. The
  /// peer list itself is fixed: relayd restarts in place when it changes.
  void reload(const Config& config, NodeKeys keys);
  /// What a reload does (relayd's main): ok and a message, or refused and why.
  using Reload = std::function<std::pair<bool, std::string>()>;
  /// The control socket's "reload" verb calls it (relayctl reload).
  void set_reload(Reload reload) { reload_ = std::move(reload); }
  /// The outcome of the last reload: "" if it was taken, else why it was
  /// refused (shown until a reload is taken).
  void note_reload(std::string refused) { reload_refused_ = std::move(refused); }
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
  // raise.cc: the local raise path through the control socket and the spool.
  std::string on_control(const std::string& request, const Caller& caller);
  std::string raise_duress(const std::string& request, const Caller& caller);
  /// The "ack" verb: a person's acknowledgement of an event relayd holds in
  /// memory, spooled and sent like a duress (works with the database down).
  std::string raise_ack(const std::string& request, const Caller& caller);
  /// Numbers, signs and spools an own event (fsynced), then sends it; the
  /// control socket's answer. `via` names who handed it over, for the log.
  std::string spool_and_send(v1::Event e, const std::string& via);
  // escalation.cc: makes the rounds that are due, from what the database
  // holds (nullopt: it does not answer) and what the spool holds.
  void escalate(std::optional<std::vector<store::Unanswered>> found);
  void start_escalation();
  // drill.cc: runs the [[drill]] schedules on a thread of their own.
  void start_drills();
  void send_spooled();
  void drain_spool();
  bool drained(const mesh::StoreDone& done);
  std::int64_t spool_oldest_ms() const;
  static std::map<std::string, wire::IdentityKeys> peer_keys(const Config& config);
  static wire::IdentityKeys own_keys(const Config& config, const crypto::SigningKey& identity);
  static std::map<std::string, v1::PairView> views_of(const Config& config,
                                                      const crypto::SigningKey& identity);
  void log_drift(const std::string& peer);

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
  spool::Spool& spool_;
  Reload reload_;
  std::string reload_refused_;
  std::unique_ptr<ControlSocket> control_;
  std::unique_ptr<EscalationWatch> escalation_;
  std::unique_ptr<DrillWatch> drills_;
  // Escalation rounds made this boot, by event id: round and when (Unix ms).
  std::map<std::string, std::pair<std::uint32_t, std::int64_t>> escalated_;
  std::vector<store::Unanswered> last_found_;  // the database's last list
  bool escalations_held_ = false;              // by a half-full spool (logged once)
  Confirmations confirmations_{config_.node.id};  // the control socket's receipts verb
  // Spool records on their way into the log, by the ticket of their write.
  std::map<std::uint64_t, std::uint64_t> draining_;
  std::deque<DaemonStatus::Drained> drained_;  // the last few, for status()
  std::uint64_t next_drain_ticket_ = kSpoolTickets;
  // When a record the database refused is tried again.
  std::optional<mesh::Time> drain_retry_;
  std::chrono::seconds drain_backoff_ = kDrainRetry;
  bool numbering_unsure_ = true;
  // Conflicts logged (and, of own events, healed) already.
  std::set<mesh::EventKey> conflicts_seen_;
  bool numbering_ready_ = false;
  wire::Opened opened_;
  bool database_up_ = true;
  std::map<std::string, std::string> failing_lanes_;  // store lane -> why
  std::chrono::steady_clock::time_point database_down_since_{};
  std::string database_error_;
  bool paused_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Rate limit of rejection warnings: one line per reason per minute.
  std::array<std::chrono::steady_clock::time_point, wire::kRejectReasons> last_warned_{};
  std::map<std::string, std::chrono::steady_clock::time_point> key_warned_;  // by peer
  std::map<std::string, std::vector<std::string>> logged_drift_;            // by peer
};

}  // namespace relay::net

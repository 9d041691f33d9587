#include "relay/net/daemon.h"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>

namespace relay::net {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// Big enough to ride out a burst of a few thousand datagrams while the
// network thread is busy; the kernel caps it at net.core.rmem_max.
constexpr int kSocketBuffer = 4 << 20;

mesh::Time now() {
  return std::chrono::steady_clock::now();
}

asio::ip::udp::endpoint resolve(asio::io_context& io, const Endpoint& ep) {
  asio::ip::udp::resolver resolver(io);
  return *resolver.resolve(ep.host, std::to_string(ep.port)).begin();
}

mesh::Tuning tuning_of(const Config& config) {
  mesh::Tuning t;
  t.supervision_timeout = config.mesh.supervision_timeout;
  // The wire layer adds its header (with this node's id) and the tag.
  t.max_body = wire::kMaxDatagram - wire::kFixedHeader - config.node.id.size() - crypto::kTagSize;
  return t;
}

std::vector<mesh::PeerInfo> peer_infos(const Config& config) {
  std::vector<mesh::PeerInfo> peers;
  for (const auto& p : config.peers) peers.push_back({p.id, p.groups});
  return peers;
}

}  // namespace

std::map<std::string, crypto::VerifyKey> Daemon::peer_keys(const Config& config) {
  std::map<std::string, crypto::VerifyKey> keys;
  for (const auto& p : config.peers) {
    auto key = crypto::VerifyKey::from_bytes(p.public_key);
    if (!key) throw std::runtime_error("peer " + p.id + ": public_key is not a valid Ed25519 key");
    keys.emplace(p.id, *key);
  }
  return keys;
}

Daemon::Daemon(asio::io_context& io, Config config, NodeKeys keys, mesh::Snapshot snapshot,
               Health& health)
    : io_(io),
      config_(std::move(config)),
      keys_(std::move(keys)),
      socket_(io),
      timer_(io),
      health_(health),
      consumer_kicks_(io, config_.delivery.kick) {
  for (const auto& p : config_.peers) addresses_[p.id] = resolve(io_, p.address);
  static const SystemClock clock;
  codec_ = std::make_unique<wire::Codec>(config_.node.id, keys_.identity, keys_.ring,
                                         peer_keys(config_), clock);
  store::StoreOptions options;
  options.dsn = config_.store.dsn;
  options.self = config_.node.id;
  store_ = std::make_unique<store::PgStore>(
      options,
      store::StoreCallbacks{[this](const mesh::StoreDone& done) {
                              asio::post(io_, [this, done] {
                                if (stopped_) return;
                                incidents_.stored(done);
                                node_->on_stored(now(), done);
                                if (done.delivered) consumer_kicks_.kick();
                                after_input();
                              });
                            },
                            [this](std::uint64_t ticket, std::vector<mesh::EventPtr> events) {
                              asio::post(io_, [this, ticket, events = std::move(events)] {
                                if (stopped_) return;
                                node_->on_loaded(now(), ticket, events);
                                after_input();
                              });
                            },
                            [this](const std::string& lane, bool healthy, const std::string& why) {
                              report_lane(lane, healthy, why);
                              asio::post(io_, [this, healthy, why] {
                                database_up_ = healthy;
                                database_error_ = why;
                              });
                            }});
  tap_ = std::make_unique<StoreTap>(*store_, incidents_);
  node_ = std::make_unique<mesh::Node>(config_.node.id, config_.node.groups, peer_infos(config_),
                                       tuning_of(config_), *tap_, *this, std::random_device{}());
  node_->start(now(), std::move(snapshot));
  OutboxOptions outbox;
  outbox.dsn = config_.store.dsn;
  outbox.kick = config_.kick.listen;
  outbox.poll_interval = config_.store.poll_interval;
  outbox.health = &health_;
  outbox_ = std::make_unique<OutboxWatch>(io_, outbox, config_, keys_.identity,
                                          [this](store::ClaimResult result) {
                                            if (stopped_) return;
                                            incidents_.claimed(result.events, config_);
                                            for (auto& event : result.events) {
                                              node_->on_local_event(now(), std::move(event));
                                            }
                                            if (result.delivered) consumer_kicks_.kick();
                                            after_input();
                                          });
}

void Daemon::report_lane(const std::string& lane, bool healthy, const std::string& why) {
  const auto part = lane == "urgent" ? Health::kUrgentLane : Health::kBulkLane;
  healthy ? health_.ok(part) : health_.failing(part, why);
}

Daemon::~Daemon() {
  stop();
}

void Daemon::start() {
  const auto at = resolve(io_, config_.node.listen);
  socket_.open(at.protocol());
  socket_.set_option(asio::socket_base::receive_buffer_size(kSocketBuffer));
  socket_.set_option(asio::socket_base::send_buffer_size(kSocketBuffer));
  try {
    socket_.bind(at);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "mesh socket " + config_.node.listen.to_string());
  }
  outbox_->start();
  asio::co_spawn(io_, receive(), asio::detached);
  asio::co_spawn(io_, tick(), asio::detached);
  spdlog::info("relayd {}: mesh on {}, kicks on {}, {} peers", config_.node.id,
               socket_.local_endpoint().port(), config_.kick.listen.to_string(),
               config_.peers.size());
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  outbox_->stop();  // no new claims
  store_->stop();   // flushes what is queued while the database answers
  asio::error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
}

std::uint16_t Daemon::mesh_port() const {
  return socket_.local_endpoint().port();
}

void Daemon::reload(const Config& config, NodeKeys keys) {
  // Keys and peers' identities change in place; relayd restarts itself in
  // place for anything else (peers, addresses), which loses nothing either.
  codec_->set_key_ring(keys.ring);
  auto peers = peer_keys(config);
  for (auto it = peers.begin(); it != peers.end();) {
    it = addresses_.contains(it->first) ? std::next(it) : peers.erase(it);
  }
  codec_->set_peers(std::move(peers));
  keys_.ring = std::move(keys.ring);
  spdlog::info("reloaded: key ring with {} keys, sending with key id {}", keys_.ring.keys.size(),
               keys_.ring.current);
}

void Daemon::send(const std::string& peer, const v1::Datagram& body) {
  auto it = addresses_.find(peer);
  if (it == addresses_.end() || stopped_) return;
  auto sealed = codec_->seal(body);
  if (!sealed) {
    spdlog::error("a datagram for {} exceeds {} bytes and was not sent (a bug)", peer,
                  wire::kMaxDatagram);
    return;
  }
  asio::error_code ec;
  // A full send buffer drops the datagram: the protocol's retries cover it.
  socket_.send_to(asio::buffer(*sealed), it->second, 0, ec);
}

asio::awaitable<void> Daemon::receive() {
  std::array<std::uint8_t, 2048> buffer{};
  asio::ip::udp::endpoint from;
  while (!stopped_) {
    auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(buffer), from, use_tuple);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    const std::span<const std::uint8_t> datagram(buffer.data(), n);
    if (const auto reason = codec_->open(datagram, opened_); reason != wire::Reject::none) {
      rejected(reason, from, datagram);
      continue;
    }
    node_->on_datagram(now(), opened_.sender, opened_.body, opened_.events);
    after_input();
  }
}

void Daemon::rejected(wire::Reject reason, const asio::ip::udp::endpoint& from,
                      std::span<const std::uint8_t> datagram) {
  auto& last = last_warned_[static_cast<std::size_t>(reason)];
  const auto t = std::chrono::steady_clock::now();
  if (t - last < std::chrono::minutes(1)) return;
  last = t;
  auto header = wire::parse_header(datagram);
  spdlog::warn(
      "dropping datagrams: {} (from {}:{}{}; {} so far; this warning at most once a minute)",
      wire::to_string(reason), from.address().to_string(), from.port(),
      header ? ", sender \"" + header->sender + "\", key id " + std::to_string(header->key_id) : "",
      codec_->rejected(reason));
}

asio::awaitable<void> Daemon::tick() {
  while (!stopped_) {
    timer_.expires_at(node_->next_deadline());
    auto [ec] = co_await timer_.async_wait(use_tuple);
    if (stopped_) co_return;
    if (ec == asio::error::operation_aborted) continue;  // an earlier deadline came up
    node_->on_timer(now());
    after_input();
    if (incidents_.peers_due(now())) incidents_.observe_peers(now(), node_->peer_status(now()));
  }
}

void Daemon::after_input() {
  // The core may now want to wake earlier than the timer is set for.
  if (node_->next_deadline() < timer_.expiry()) timer_.cancel();
  const bool pause = !node_->accepting_local();
  if (pause != paused_) {
    paused_ = pause;
    outbox_->set_paused(pause);
    if (pause)
      spdlog::warn("outbox claims paused: too many own events not yet delivered (back-pressure)");
  }
}

DaemonStatus Daemon::status() const {
  DaemonStatus s;
  s.node = config_.node.id;
  s.database_up = database_up_;
  s.database_error = database_error_;
  s.peers = node_->peer_status(now());
  s.stats = node_->stats();
  s.accepted = codec_->accepted();
  for (std::size_t r = 1; r < wire::kRejectReasons; ++r) {
    s.rejected[wire::to_string(static_cast<wire::Reject>(r))] =
        codec_->rejected(static_cast<wire::Reject>(r));
  }
  s.kicks = outbox_->kicks();
  s.notifies = outbox_->notifies();
  s.claims_paused = paused_;
  s.taken_at = now();
  s.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return s;
}

}  // namespace relay::net

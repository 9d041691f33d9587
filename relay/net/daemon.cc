#include "relay/net/daemon.h"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>

#include "common/policy_config.h"

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
  t.max_age = config.delivery.max_age;
  // The wire layer adds its header (with this node's id) and the tag.
  t.max_body = wire::kMaxDatagram - wire::kFixedHeader - config.node.id.size() - crypto::kTagSize;
  t.wire_overhead = wire::kFixedHeader + config.node.id.size() + crypto::kTagSize;
  return t;
}

std::vector<mesh::PeerInfo> peer_infos(const Config& config) {
  std::vector<mesh::PeerInfo> peers;
  for (const auto& p : config.peers) peers.push_back({p.id, p.groups, p.paths().size()});
  return peers;
}

}  // namespace

namespace {

crypto::VerifyKey verify_key(const std::string& who, const crypto::PublicKeyBytes& raw) {
  auto key = crypto::VerifyKey::from_bytes(raw);
  if (!key) throw std::runtime_error(who + ": not a valid Ed25519 public key");
  return *key;
}

wire::IdentityKeys identity_keys(const std::string& who, crypto::VerifyKey current,
                                 const std::vector<RetiredKey>& retired) {
  wire::IdentityKeys keys{std::move(current), {}};
  for (const auto& r : retired) keys.retired.push_back({verify_key(who, r.key), r.last_seq});
  return keys;
}

}  // namespace

std::map<std::string, wire::IdentityKeys> Daemon::peer_keys(const Config& config) {
  std::map<std::string, wire::IdentityKeys> keys;
  for (const auto& p : config.peers) {
    keys.emplace(p.id, identity_keys("peer " + p.id, verify_key("peer " + p.id, p.public_key),
                                     p.retired_keys));
  }
  return keys;
}

std::map<std::string, v1::PairView> Daemon::views_of(const Config& config,
                                                    const crypto::SigningKey& identity) {
  // What this node's configuration says about itself and each peer: its
  // hellos carry it, so that two sites whose configurations disagree (a
  // group, a key, the mesh policy) both say so instead of silently missing
  // alerts or enforcing different rules.
  std::map<std::string, v1::PairView> views;
  const auto own_key = identity.public_key();
  const auto policy = policy_digest(config.policy);
  for (const auto& p : config.peers) {
    v1::PairView& v = views[p.id];
    v.set_policy_digest(policy.data(), policy.size());
    v.mutable_self()->set_id(config.node.id);
    for (const auto& g : config.node.groups) v.mutable_self()->add_groups(g);
    v.mutable_self()->add_keys(own_key.data(), own_key.size());
    v.mutable_peer()->set_id(p.id);
    for (const auto& g : p.groups) v.mutable_peer()->add_groups(g);
    v.mutable_peer()->add_keys(p.public_key.data(), p.public_key.size());
    for (const auto& r : p.retired_keys) {
      if (!r.last_seq) v.mutable_peer()->add_keys(r.key.data(), r.key.size());  // an overlap
    }
  }
  return views;
}

void Daemon::log_drift(const std::string& peer) {
  const auto drift = codec_->peer_state(peer).drift;
  auto& logged = logged_drift_[peer];
  if (drift == logged) return;
  if (drift.empty()) {
    spdlog::info("configuration of {} agrees with this node's again", peer);
  } else {
    std::string what;
    for (const auto& d : drift) what += (what.empty() ? "" : "; ") + d;
    spdlog::warn("CONFIGURATION DRIFT with {}: {}. Alerts to a group are resolved at their "
                 "origin, but fix the configurations (OPERATOR.md, \"Configuration drift\")",
                 peer, what);
  }
  logged = drift;
}

wire::IdentityKeys Daemon::own_keys(const Config& config, const crypto::SigningKey& identity) {
  return identity_keys("[node] retired_keys", identity.verify_key(), config.node.retired_keys);
}

Daemon::Daemon(asio::io_context& io, Config config, NodeKeys keys, store::NumberingState& numbering,
               StateDir& state, spool::Spool& spool, Health& health,
               std::function<void()> retention_changed)
    : io_(io),
      config_(std::move(config)),
      keys_(std::move(keys)),
      socket_(io),
      timer_(io),
      paths_(io, config_),
      health_(health),
      consumer_kicks_(io, config_.delivery.kick),
      numbering_(numbering),
      state_(state),
      spool_(spool) {
  static const SystemClock clock;
  // The boot counter orders this node's sessions; durable before it is used.
  const std::uint64_t boot = state_.bump_counter("boot");
  codec_ = std::make_unique<wire::Codec>(config_.node.id, keys_.identity,
                                         own_keys(config_, keys_.identity), keys_.ring,
                                         peer_keys(config_), boot, clock);
  codec_->set_views(views_of(config_, keys_.identity));
  store::StoreOptions options;
  options.dsn = config_.store.dsn;
  options.self = config_.node.id;
  options.unsafe_durability = config_.store.unsafe_durability;
  store_ = std::make_unique<store::PgStore>(
      options,
      store::StoreCallbacks{[this](const mesh::StoreDone& done) {
                              asio::post(io_, [this, done] {
                                if (stopped_) return;
                                incidents_.stored(done);
                                if (drained(done)) return;
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
                              asio::post(io_, [this, lane, healthy, why] {
                                // Up only while no lane fails: one that
                                // recovers does not speak for the other.
                                if (healthy) {
                                  failing_lanes_.erase(lane);
                                } else {
                                  failing_lanes_[lane] = why;
                                }
                                const bool up = failing_lanes_.empty();
                                if (!up && database_up_) database_down_since_ = now();
                                database_up_ = up;
                                database_error_ = up ? "" : failing_lanes_.begin()->second;
                                if (!stopped_) report_health();
                              });
                            }});
  tap_ = std::make_unique<StoreTap>(*store_, incidents_);
  node_ = std::make_unique<mesh::Node>(config_.node.id, config_.node.groups, peer_infos(config_),
                                       tuning_of(config_), *tap_, *this, std::random_device{}());
  node_->set_policy(config_.policy);
  database_down_since_ = now();
  report_health();
  node_->start_without_store(now());
  OutboxOptions outbox;
  outbox.numbering = &numbering_;
  outbox.retention_changed = std::move(retention_changed);
  outbox.dsn = config_.store.dsn;
  outbox.unsafe_durability = config_.store.unsafe_durability;
  outbox.kick = config_.kick.listen;
  outbox.poll_interval = config_.store.poll_interval;
  outbox.health = &health_;
  outbox_ = std::make_unique<OutboxWatch>(io_, outbox, config_, keys_.identity,
                                          [this](store::ClaimResult result) {
                                            if (stopped_) return;
                                            incidents_.claimed(result.events, config_, true);
                                            for (const auto& replaced : result.replaced) {
                                              node_->replace_own(now(), replaced);
                                            }
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
  control_ =
      std::make_unique<ControlSocket>(io_, config_.control.socket, config_.control.group,
                                      [this](const std::string& request, const Caller& caller) {
                                        // "receipts" reads what this thread saw
                                        // arrive; the other verbs are raise.cc's.
                                        if (auto answer = confirmations_.answer(request))
                                          return *answer;
                                        return on_control(request, caller);
                                      });
  control_->start();
  for (const auto& [peer, hello] : codec_->greet()) send_raw(peer, hello);
  asio::co_spawn(io_, receive(), asio::detached);
  asio::co_spawn(io_, tick(), asio::detached);
  send_spooled();
  start_escalation();
  start_drills();
  spdlog::info("relayd {}: mesh on {}, control socket {}, {} peers; waiting for the database",
               config_.node.id, socket_.local_endpoint().port(), config_.control.socket.string(),
               config_.peers.size());
}

void Daemon::attach(mesh::Snapshot snapshot) {
  if (stopped_) return;
  node_->attach_store(now(), std::move(snapshot));
  outbox_->start();
  drain_spool();
  report_health();
  health_.ok(Health::kCore);
  spdlog::info("relayd {}: the database answered; claiming from the outbox, kicks on {}",
               config_.node.id, config_.kick.listen.to_string());
  after_input();
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (control_) control_->stop();
  if (escalation_) escalation_->stop();
  if (drills_) drills_->stop();
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
  std::erase_if(peers, [&](const auto& entry) { return !paths_.contains(entry.first); });
  codec_->set_peers(std::move(peers));
  codec_->set_views(views_of(config, keys.identity));
  if (keys.identity.public_key() != keys_.identity.public_key()) {
    // A rotated identity: claims sign with it from now on, and every peer
    // gets a new session under it.
    const std::uint64_t boot = state_.bump_counter("boot");
    codec_->set_identity(keys.identity, own_keys(config, keys.identity), boot);
    outbox_->set_key(keys.identity);
    keys_.identity = keys.identity;
    spdlog::warn("reloaded: a new identity key (public {}); new sessions with every peer",
                 format_public_key(keys_.identity.public_key()));
  } else {
    codec_->set_self_keys(own_keys(config, keys_.identity));
  }
  for (const auto& [peer, hello] : codec_->greet()) send_raw(peer, hello);
  keys_.ring = std::move(keys.ring);
  spdlog::info("reloaded: key ring with {} keys, sending with key id {}", keys_.ring.keys.size(),
               keys_.ring.current);
}

std::uint64_t Daemon::send(const std::string& peer, const v1::Datagram& body, mesh::PathSet paths) {
  if (stopped_) return 0;
  const auto sealed = codec_->seal(peer, body);
  if (!sealed) {
    spdlog::error("a datagram for {} exceeds {} bytes and was not sent (a bug)", peer,
                  wire::kMaxDatagram);
    return 0;
  }
  // Sealed once, sent on each path asked for (the receiver's replay window
  // drops the copies that arrive second). The counter lets the core match
  // the peer's transport feedback; a hello instead means the body waits.
  std::uint64_t counter = 0;
  for (const auto& datagram : *sealed) {
    const auto header = wire::parse_header(crypto::as_bytes(datagram));
    const bool hello = header && header->kind == wire::Kind::hello;
    if (header && !hello) counter = header->counter;
    send_raw(peer, datagram, hello ? 0 : paths);
  }
  return counter;
}

void Daemon::send_raw(const std::string& peer, const std::string& datagram, mesh::PathSet paths) {
  if (stopped_) return;
  // Replies and hellos (paths 0) go on every path: a session must come up
  // whichever one works.
  paths_.send(socket_, peer, datagram, paths);
}

void Daemon::report_health() {
  // Until the database first answers the core runs without its store: down
  // since start, whatever the lanes say.
  const bool up = database_up_ && node_->has_store();
  v1::Health health;
  health.set_store_up(up);
  if (!up) {
    health.set_store_down_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(now() - database_down_since_)
            .count());
  }
  health.set_spool_depth(spool_.depth());
  health.set_spool_oldest_ms(spool_oldest_ms());
  node_->set_health(health);
}

asio::awaitable<void> Daemon::receive() {
  std::array<std::uint8_t, 2048> buffer{};
  asio::ip::udp::endpoint from;
  while (!stopped_) {
    auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(buffer), from, use_tuple);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    const std::span<const std::uint8_t> datagram(buffer.data(), n);
    const auto reason = codec_->open(datagram, opened_);
    // Replies (a hello, what waited for a session) go to the configured
    // address, never to wherever the datagram claims to come from.
    for (const auto& reply : opened_.replies) send_raw(opened_.sender, reply);
    if (reason == wire::Reject::bad_credential) log_drift(opened_.sender);
    if (reason != wire::Reject::none) {
      rejected(reason, from, datagram);
      continue;
    }
    if (opened_.body.has_hello()) {
      log_drift(opened_.sender);
      // What its build takes (v3 kinds): the core sends it only those.
      node_->set_peer_features(now(), opened_.sender, codec_->peer_state(opened_.sender).features);
      after_input();
    }
    if (!opened_.for_core) continue;
    if (opened_.body.has_receipts()) confirmations_.note(opened_.body.receipts());
    const auto header = wire::parse_header(datagram);
    const mesh::Arrival arrival{header ? header->counter : 0, n};
    node_->on_datagram(now(), opened_.sender, opened_.body, opened_.events, arrival);
    after_input();
  }
}

void Daemon::rejected(wire::Reject reason, const asio::ip::udp::endpoint& from,
                      std::span<const std::uint8_t> datagram) {
  auto header = wire::parse_header(datagram);
  // A site on a key this node lacks is named once a minute each (configured
  // peers only: the sender's name is not authenticated here).
  const bool named =
      reason == wire::Reject::unknown_key_id && header && paths_.contains(header->sender);
  auto& last = named ? key_warned_[header->sender] : last_warned_[static_cast<std::size_t>(reason)];
  const auto t = std::chrono::steady_clock::now();
  if (t - last < std::chrono::minutes(1)) return;
  last = t;
  if (named) {
    spdlog::warn(
        "{} seals with key id {}, which this node does not hold (its mesh key ring is not the "
        "same as this one: OPERATOR.md, \"Rotating the mesh key\"; {} such datagrams so far; "
        "at most once a minute)",
        header->sender, header->key_id, codec_->rejected(reason));
    return;
  }
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
    if (!database_up_ || !node_->has_store()) report_health();  // how long it has been down
    if (drain_retry_ && now() >= *drain_retry_) {
      drain_retry_.reset();
      drain_spool();
    }
    node_->on_timer(now());
    after_input();
    if (incidents_.peers_due(now())) incidents_.observe_peers(now(), node_->peer_status(now()));
  }
}

void Daemon::pruned(const std::map<std::string, std::uint64_t>& settled_through) {
  if (stopped_) return;
  node_->on_pruned(now(), settled_through);
  after_input();
}

void Daemon::after_input() {
  // The core may now want to wake earlier than the timer is set for.
  if (node_->next_deadline() < timer_.expiry()) timer_.cancel();
  // Before the store is attached the state directory's mark is all there
  // is (NumberingState's own view); the core's learning starts with it.
  if (node_->has_store()) {
    const mesh::Numbering numbering = node_->numbering();
    numbering_.update(numbering);
    if (numbering.ready && !numbering_ready_) {
      if (numbering.jump) {
        spdlog::info(
            "numbering: not every peer has answered yet; own events above seq {} go on in a "
            "block of their own until they have",
            numbering.floor);
      } else {
        spdlog::info("numbering: every peer answered; own events continue above seq {}",
                     numbering.floor);
      }
      outbox_->wake();  // normal rows waited for this
    }
    if (!numbering.jump && numbering_unsure_ && numbering_ready_) {
      spdlog::info("numbering: every peer has now answered; own events continue above seq {}",
                   numbering.floor);
    }
    numbering_ready_ = numbering.ready;
    numbering_unsure_ = numbering.jump;
  }
  for (const auto& c : node_->take_conflicts()) {
    // Once per event: the sender retries it until the origin has healed.
    constexpr std::size_t kConflictsRemembered = 4096;
    if (conflicts_seen_.size() >= kConflictsRemembered) conflicts_seen_.clear();
    if (!conflicts_seen_.insert(c.key).second) continue;
    if (c.key.origin != config_.node.id) {
      spdlog::error(
          "CONFLICT: {} sent event {}:{} with different content than the one held here, under "
          "the origin's signature: {} numbered a seq twice (restored from a snapshot, cloned) or "
          "its identity key is in other hands; not acknowledged, and the event held here sent to "
          "{} so that it sends its own again under a fresh seq",
          c.from, c.key.origin, c.key.seq, c.key.origin, c.key.origin);
      continue;
    }
    spdlog::error(
        "CONFLICT: {} holds this node's seq {} with other content, under this node's own "
        "signature: numbering was rewound (a VM snapshot, a restore, a clone). Numbering jumps "
        "above everything the mesh holds, and the event numbered {} here goes again under a "
        "fresh seq | incident=seq_healed seq={}",
        c.from, c.key.seq, c.key.seq, c.key.seq);
    outbox_->heal(c.held, c.incoming);
  }
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
  for (const auto& p : config_.peers) s.wire[p.id] = codec_->peer_state(p.id);
  s.numbering = node_->numbering();
  s.store_attached = node_->has_store();
  s.reload_refused = reload_refused_;
  s.spool_depth = spool_.depth();
  s.spool_capacity = spool_.capacity();
  s.spool_oldest_ms = spool_oldest_ms();
  for (const auto& [number, payload] : spool_.records()) {
    v1::SignedEvent signed_event;
    v1::Event event;
    if (signed_event.ParseFromString(payload) && event.ParseFromString(signed_event.event()))
      s.spooled.push_back(std::move(event));
  }
  for (const auto& d : drained_) {
    if (unix_ms_now() - d.unix_ms < kDrainedShownMs) s.drained.push_back(d);
  }
  if (drills_) s.drills = drills_->view();
  s.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return s;
}

}  // namespace relay::net

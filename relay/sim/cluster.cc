#include "relay/sim/cluster.h"

#include <algorithm>
#include <array>

#include "relay/wire/datagram.h"

namespace relay::sim {
namespace {

// A sealed datagram adds the wire header (version, key id, session,
// counter, sender) and the AEAD tag to the body: relay/wire's framing.
constexpr std::size_t kWireOverhead = 1 + 1 + 4 + 8 + 8 + 8 + 8 + 1 + 16;
constexpr std::int64_t kEpochMs = 1'790'000'000'000;

}  // namespace

struct Cluster::Slot final : Transport {
  Cluster* cluster = nullptr;
  std::size_t index = 0;
  std::string id;
  std::vector<std::string> groups;
  DurableState durable;
  NodeState state;
  std::unique_ptr<SimStore> store;
  std::unique_ptr<Node> node;
  std::uint64_t incarnation = 0;
  std::optional<Time> timer_at;
  std::int64_t skew_ms = 0;
  std::uint64_t counter = 0;  // wire counter of its datagrams
  std::uint64_t features = wire::kFeatures;  // as its hellos would announce
  bool store_down = false;
  bool refuse_alarms = false;    // batches with alarm changes are refused
  std::vector<StoreBatch> held;  // batches waiting for the database
  // With a store rate: when the last batch of each lane commits (urgent,
  // bulk: relay/store/pg_store.h).
  std::array<Time, 2> store_busy_until{};

  std::uint64_t send(const std::string& peer, const v1::Datagram& body, PathSet paths) override {
    return cluster->route(index, peer, body, paths);
  }
};

Cluster::Cluster(SimConfig config) : config_(config), rng_(config.seed) {
  for (std::size_t i = 0; i < config_.nodes; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->cluster = this;
    slot->index = i;
    slot->id = i == 0 ? "hq" : "clinic-" + std::to_string(i);
    slot->groups = {i == 0 ? "hq" : "clinics"};
    index_[slot->id] = i;
    slots_.push_back(std::move(slot));
  }
  for (std::size_t i = 0; i < slots_.size(); ++i) restart(i);
}

Cluster::~Cluster() = default;

const std::string& Cluster::id(std::size_t i) const {
  return slots_[i]->id;
}
std::size_t Cluster::index(const std::string& id) const {
  return index_.at(id);
}
bool Cluster::up(std::size_t i) const {
  return slots_[i]->node != nullptr;
}
const DurableState& Cluster::durable(std::size_t i) const {
  return slots_[i]->durable;
}
const Node* Cluster::node(std::size_t i) const {
  return slots_[i]->node.get();
}

std::int64_t Cluster::wall_ms() const {
  return kEpochMs + std::chrono::duration_cast<milliseconds>(now_.time_since_epoch()).count();
}

void Cluster::schedule(Time at, std::function<void()> fn) {
  actions_.push({at, order_++, std::move(fn)});
}

EventPtr Cluster::commit(std::size_t origin, v1::Priority priority,
                         const std::vector<std::string>& targets) {
  v1::Event e;
  e.set_kind(priority == v1::PRIORITY_DURESS ? v1::KIND_DURESS : v1::KIND_NOTIFICATION);
  e.set_priority(priority);
  e.set_created_unix_ms(wall_ms() + slots_[origin]->skew_ms);
  for (const auto& t : targets) e.add_targets(t);
  e.set_title("Simulated alert");
  e.set_body("Fire in the west wing: evacuate through the east stairs. This is a simulation.");
  e.set_location("West wing, level 2");
  return commit_event(origin, std::move(e));
}

EventPtr Cluster::commit_event(std::size_t origin, v1::Event e) {
  Slot& slot = *slots_[origin];
  EventPtr event =
      slot.store->commit_local(std::move(e), wall_ms() + slot.skew_ms, slot.node->numbering());
  auto [seen, fresh] = contents_.emplace(event->key, event->signed_event.event());
  if (!fresh && seen->second != event->signed_event.event() && violations_.size() < 10) {
    violations_.push_back(id(origin) + " numbered two events " + std::to_string(event->key.seq));
  }
  injected_.push_back({event->key, now_, event->priority, event->targets});
  auto& at = stored_at_[event->key];
  at.assign(slots_.size(), std::nullopt);
  at[origin] = now_;
  return event;
}

EventKey Cluster::inject_event(std::size_t origin, v1::Event event) {
  if (event.created_unix_ms() == 0) event.set_created_unix_ms(wall_ms() + slots_[origin]->skew_ms);
  EventPtr committed = commit_event(origin, std::move(event));
  slots_[origin]->node->on_local_event(now_, committed);
  settle(origin);
  return committed->key;
}

EventKey Cluster::inject(std::size_t origin, v1::Priority priority,
                         std::vector<std::string> targets) {
  EventPtr event = commit(origin, priority, targets);
  slots_[origin]->node->on_local_event(now_, event);
  settle(origin);
  return event->key;
}

EventKey Cluster::inject_then_crash(std::size_t origin, v1::Priority priority) {
  // Committed as inject() does, but the process dies before its core runs.
  EventPtr event = commit(origin, priority, {"all"});
  crash(origin);
  return event->key;
}

void Cluster::crash(std::size_t i) {
  Slot& slot = *slots_[i];
  slot.node.reset();
  slot.store.reset();  // writes not yet committed are lost with it
  slot.held.clear();
  ++slot.incarnation;
  slot.timer_at.reset();
}

void Cluster::restart(std::size_t i) {
  Slot& slot = *slots_[i];
  std::vector<PeerInfo> peers;
  std::vector<std::string> origins;
  for (const auto& other : slots_) {
    origins.push_back(other->id);
    if (other.get() != &slot)
      peers.push_back({other->id, other->groups, config_.paths, other->features});
  }
  const std::uint64_t seed = config_.seed * 1'000'003 + i * 7'919 + slot.incarnation;
  slot.store = std::make_unique<SimStore>(slot.id, slot.groups, slot.durable, slot.state,
                                          seed ^ 0x5eed'e17a'0b10'cc5dULL);
  slot.node = std::make_unique<Node>(slot.id, slot.groups, std::move(peers), config_.tuning,
                                     *slot.store, slot, seed);
  slot.node->set_wall_clock([this, i] { return wall_ms() + slots_[i]->skew_ms; });
  slot.node->set_policy(config_.policy);
  slot.node->start(now_, slot.store->snapshot(origins));
  settle(i);
}

void Cluster::announce_features(std::size_t i, std::uint64_t features) {
  slots_[i]->features = features;
  for (auto& other : slots_) {
    if (other->node && other->index != i) other->node->set_peer_features(now_, id(i), features);
  }
  for (std::size_t k = 0; k < slots_.size(); ++k) settle(k);
}

void Cluster::rebuild_database(std::size_t i) {
  crash(i);
  forget_receipts(i);
  slots_[i]->durable = DurableState{};
}

void Cluster::restore_database(std::size_t i, DurableState backup) {
  crash(i);
  forget_receipts(i);
  slots_[i]->durable = std::move(backup);
}

void Cluster::forget_receipts(std::size_t origin) {
  // Receipts an origin recorded live in its database: targets do not send
  // them again once confirmed, so a rebuild or restore loses them there.
  for (const auto& e : injected_) {
    if (e.key.origin == id(origin)) receipts_lost_.insert(e.key);
  }
}

std::pair<DurableState, NodeState> Cluster::snapshot_site(std::size_t i) const {
  return {slots_[i]->durable, slots_[i]->state};
}

void Cluster::revert(std::size_t i, std::pair<DurableState, NodeState> snapshot) {
  restore_database(i, std::move(snapshot.first));
  slots_[i]->state = snapshot.second;
}

void Cluster::lose_state(std::size_t i) {
  crash(i);
  slots_[i]->state.lost = true;
}

void Cluster::store_down(std::size_t i, bool report) {
  Slot& slot = *slots_[i];
  slot.store_down = true;
  if (report && slot.node) {
    v1::Health health;
    health.set_store_up(false);
    slot.node->set_health(health);
  }
}

void Cluster::refuse_alarms(std::size_t i, bool refuse) {
  slots_[i]->refuse_alarms = refuse;
}

void Cluster::report_health(std::size_t i, const v1::Health& health) {
  if (slots_[i]->node) slots_[i]->node->set_health(health);
}

void Cluster::store_up(std::size_t i) {
  Slot& slot = *slots_[i];
  slot.store_down = false;
  if (!slot.node) return;
  v1::Health health;
  health.set_store_up(true);
  slot.node->set_health(health);
  settle(i);
}

void Cluster::skew_clock(std::size_t i, Duration skew) {
  slots_[i]->skew_ms = std::chrono::duration_cast<milliseconds>(skew).count();
}

void Cluster::prune(std::size_t i, std::uint64_t keep, bool force) {
  Slot& slot = *slots_[i];
  std::vector<std::string> peers;
  for (const auto& other : slots_) {
    if (other.get() != &slot) peers.push_back(other->id);
  }
  const auto pruned = slot.store->prune(keep, peers, force);
  if (slot.node) slot.node->on_pruned(now_, pruned);
  settle(i);
}

void Cluster::block(std::size_t from, std::size_t to) {
  blocked_.insert({from, to});
}
void Cluster::unblock(std::size_t from, std::size_t to) {
  blocked_.erase({from, to});
}

void Cluster::isolate(std::size_t i) {
  for (std::size_t j = 0; j < slots_.size(); ++j) {
    if (j == i) continue;
    block(i, j);
    block(j, i);
  }
}

void Cluster::heal(std::size_t i) {
  std::erase_if(blocked_, [i](const auto& pair) { return pair.first == i || pair.second == i; });
}

void Cluster::set_link(std::size_t from, std::size_t to, LinkFaults faults) {
  links_[{from, to}] = faults;
}

const LinkFaults& Cluster::link(std::size_t from, std::size_t to) const {
  auto it = links_.find({from, to});
  return it == links_.end() ? config_.link : it->second;
}

void Cluster::block_path(std::size_t from, std::size_t to, std::size_t path) {
  blocked_paths_.insert({from, to, path});
}
void Cluster::unblock_path(std::size_t from, std::size_t to, std::size_t path) {
  blocked_paths_.erase({from, to, path});
}

std::uint64_t Cluster::arrived_bytes(std::size_t from, std::size_t to) const {
  auto it = arrived_.find({from, to});
  return it == arrived_.end() ? 0 : it->second;
}

std::uint64_t Cluster::route(std::size_t from, const std::string& to, const v1::Datagram& body,
                             PathSet paths) {
  const std::size_t size = body.ByteSizeLong();
  if (size > config_.tuning.max_body && violations_.size() < 10) {
    violations_.push_back("datagram of " + std::to_string(size) + " bytes from " + id(from) +
                          " exceeds the body limit");
  }
  check_acks(from, body);
  // Sealed once, so one counter whatever the number of paths (relay/wire).
  const Arrival arrival{++slots_[from]->counter, size + kWireOverhead + id(from).size()};
  const std::size_t target = index_.at(to);
  const LinkFaults& faults = link(from, target);
  std::uniform_real_distribution<> coin(0, 1);
  for (std::size_t path = 0; path < config_.paths; ++path) {
    if ((paths & (PathSet{1} << path)) == 0) continue;
    ++stats_.datagrams;
    stats_.bytes += arrival.bytes;
    if (blocked_.contains({from, target}) || blocked_paths_.contains({from, target, path}) ||
        coin(rng_) < faults.loss) {
      ++stats_.dropped;
      continue;
    }
    // The link's queue, as a tbf shaper keeps it: tail drop when full.
    Time leaves = now_;
    if (faults.rate.bytes_per_second() > 0) {
      Time& busy = busy_until_[{from, target, path}];
      const Time start = std::max(busy, now_);
      const double waiting = faults.rate.bytes_in(start - now_);
      if (waiting + static_cast<double>(arrival.bytes) > static_cast<double>(faults.queue_bytes)) {
        ++stats_.dropped;
        ++stats_.queue_dropped;
        continue;
      }
      busy = start + faults.rate.time_for(static_cast<double>(arrival.bytes));
      leaves = busy;
    }
    const int copies = coin(rng_) < faults.duplicate ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      const auto jitter = std::chrono::duration_cast<Duration>(faults.jitter * coin(rng_));
      schedule(leaves + faults.delay + jitter, [this, from, target, body, arrival] {
        arrived_[{from, target}] += arrival.bytes;
        deliver(from, target, body, arrival);
      });
    }
  }
  return arrival.counter;
}

void Cluster::check_acks(std::size_t from, const v1::Datagram& body) {
  // Durable before ack: everything an ack claims must be in the sender's
  // durable state at the moment the ack leaves.
  if (!body.has_acks() || violations_.size() >= 10) return;
  const DurableState& durable = slots_[from]->durable;
  for (const auto& a : body.acks().origins()) {
    auto it = durable.seqs.find(a.origin());
    const bool through_ok =
        a.through() == 0 ||
        (it != durable.seqs.end() && it->second.held_watermark() >= a.through());
    bool seqs_ok = true;
    for (auto seq : a.seqs()) seqs_ok = seqs_ok && it != durable.seqs.end() && it->second.held(seq);
    if (!through_ok || !seqs_ok) {
      violations_.push_back(id(from) + " acked events of " + a.origin() + " through " +
                            std::to_string(a.through()) + " before they were durable");
    }
  }
}

void Cluster::deliver(std::size_t from, std::size_t to, const v1::Datagram& body, Arrival arrival) {
  Slot& slot = *slots_[to];
  if (!slot.node) return;
  std::vector<v1::Event> events;
  if (body.has_events()) {
    for (const auto& signed_event : body.events().events()) {
      events.emplace_back().ParseFromString(signed_event.event());
    }
  }
  slot.node->on_datagram(now_, id(from), body, events, arrival);
  settle(to);
}

void Cluster::settle(std::size_t i) {
  Slot& slot = *slots_[i];
  if (!slot.node) return;
  const std::uint64_t incarnation = slot.incarnation;
  for (auto& batch : slot.store->take_pending()) slot.held.push_back(std::move(batch));
  // A database that is down commits nothing; the batches wait for it.
  std::vector<StoreBatch> committing;
  if (!slot.store_down) committing = std::exchange(slot.held, {});
  for (auto& batch : committing) {
    // With a store rate, the batches of a lane commit one after another,
    // each taking its events' time at that rate (a database that keeps up
    // with only so much), duress and emergency on a lane of their own as
    // PgStore does: else each after commit_latency, side by side.
    Time commit_at = now_ + config_.commit_latency;
    if (config_.store_events_per_second > 0) {
      const bool urgent = batch.priority >= v1::PRIORITY_EMERGENCY || !batch.alarms.empty();
      Time& busy = slot.store_busy_until[urgent ? 0 : 1];
      const double seconds =
          static_cast<double>(batch.events.size()) / config_.store_events_per_second;
      commit_at = std::max(commit_at, std::max(busy, now_) +
                                          std::chrono::duration_cast<Duration>(
                                              std::chrono::duration<double>(seconds)));
      busy = commit_at;
    }
    schedule(commit_at, [this, i, incarnation, batch = std::move(batch)] {
      Slot& s = *slots_[i];
      if (s.incarnation != incarnation || !s.node) return;  // crashed before COMMIT
      if (s.refuse_alarms && !batch.alarms.empty()) {
        StoreDone refused;
        refused.ticket = batch.ticket;
        refused.failed = true;
        s.node->on_stored(now_, refused);
        settle(i);
        return;
      }
      s.store->apply(batch, wall_ms());
      for (const auto& write : batch.events) {
        auto at = stored_at_.find(write.event->key);
        if (at != stored_at_.end() && !at->second[i]) at->second[i] = now_;
      }
      s.node->on_stored(now_, {batch.ticket, wall_ms()});
      settle(i);
    });
  }
  for (auto& load : slot.store->take_loads()) {
    schedule(now_ + config_.load_latency, [this, i, incarnation, load = std::move(load)] {
      Slot& s = *slots_[i];
      if (s.incarnation != incarnation || !s.node) return;
      s.node->on_loaded(now_, load.ticket, s.store->answer(load));
      settle(i);
    });
  }
  const Time at = std::max(slot.node->next_deadline(), now_ + std::chrono::microseconds(1));
  if (!slot.timer_at || at < *slot.timer_at) {
    slot.timer_at = at;
    schedule(at, [this, i, incarnation, at] {
      Slot& s = *slots_[i];
      if (s.incarnation != incarnation || !s.node || s.timer_at != at) return;
      s.timer_at.reset();
      s.node->on_timer(now_);
      settle(i);
    });
  }
}

bool Cluster::step(Time limit) {
  if (actions_.empty() || actions_.top().at > limit) return false;
  Action action = actions_.top();
  actions_.pop();
  now_ = action.at;
  action.fn();
  return true;
}

void Cluster::run_for(Duration d) {
  const Time limit = now_ + d;
  while (step(limit)) {
  }
  now_ = limit;
}

bool Cluster::run_until_converged(Duration limit) {
  const Time end = now_ + limit;
  Time next_check = now_;
  while (true) {
    if (now_ >= next_check) {
      if (converged()) return true;
      next_check = now_ + milliseconds(10);
    }
    if (!step(end)) {
      now_ = end;
      return converged();
    }
  }
}

bool Cluster::converged() const {
  for (const auto& e : injected_) {
    const DurableState& origin = slots_[index_.at(e.key.origin)]->durable;
    for (const auto& slot : slots_) {
      auto seqs = slot->durable.seqs.find(e.key.origin);
      if (seqs == slot->durable.seqs.end() || !seqs->second.contains(e.key.seq)) return false;
      // A target that logged it owes the origin a receipt; one that holds
      // it only as settled history never saw it.
      if (slot->durable.log.contains(e.key) && targets_node(e.targets, slot->id, slot->groups) &&
          !receipts_lost_.contains(e.key) && !origin.receipts.contains({e.key, slot->id})) {
        return false;
      }
    }
  }
  return true;
}

std::optional<std::string> Cluster::check() const {
  if (!violations_.empty()) return violations_.front();
  auto name = [](const EventKey& k) { return k.origin + ":" + std::to_string(k.seq); };
  for (const auto& e : injected_) {
    const DurableState& origin = slots_[index_.at(e.key.origin)]->durable;
    for (const auto& slot : slots_) {
      const DurableState& d = slot->durable;
      auto seqs = d.seqs.find(e.key.origin);
      // Stored here, or settled here while no node can serve it any more
      // (pruned everywhere): a settled claim is no excuse while one can.
      const bool held = seqs != d.seqs.end() && seqs->second.held(e.key.seq);
      const bool settled = seqs != d.seqs.end() && seqs->second.contains(e.key.seq);
      const bool servable = std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) {
        return s->durable.log.contains(e.key);
      });
      if (!held && !(settled && !servable))
        return "event " + name(e.key) + " is not stored at " + slot->id;
      const bool logged = d.log.contains(e.key);
      const bool target = targets_node(e.targets, slot->id, slot->groups);
      auto outcome = d.outcomes.find(e.key);
      const bool withheld = outcome != d.outcomes.end() &&
                            outcome->second != v1::OUTCOME_DELIVERED &&
                            outcome->second != v1::OUTCOME_DELIVERED_LATE;
      const auto rows = d.delivered.find(e.key);
      const int count = rows == d.delivered.end() ? 0 : rows->second;
      const int expected = target && logged && !withheld ? 1 : 0;
      // Settled history may have been delivered before it was pruned here.
      if (count != expected && !(logged == false && count == 1)) {
        return "event " + name(e.key) + " delivered " + std::to_string(count) + " times at " +
               slot->id + (target ? " (a target)" : " (not a target)");
      }
      if (target && logged && !receipts_lost_.contains(e.key) &&
          !origin.receipts.contains({e.key, slot->id})) {
        return "the receipt of " + slot->id + " for " + name(e.key) + " did not reach its origin";
      }
    }
  }
  return std::nullopt;
}

std::optional<Time> Cluster::stored_at(const EventKey& key, std::size_t i) const {
  auto it = stored_at_.find(key);
  return it == stored_at_.end() ? std::nullopt : it->second[i];
}

std::vector<Duration> Cluster::convergence_times() const {
  std::vector<Duration> out;
  for (const auto& e : injected_) {
    const auto& at = stored_at_.at(e.key);
    if (std::any_of(at.begin(), at.end(), [](const auto& t) { return !t; })) continue;
    Time last = e.committed;
    for (const auto& t : at) last = std::max(last, *t);
    out.push_back(last - e.committed);
  }
  return out;
}

}  // namespace relay::sim

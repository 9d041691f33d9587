// Reliable delivery: pushing events to peers with a window and per-peer
// retransmission timers, acks after durability, path diversity.
#include <algorithm>
#include <cmath>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// Framing of one event inside Events: field tag and a length of up to 2 bytes.
constexpr std::size_t kPerEventFraming = 3;
// Datagram oneof tag and length, and room for the forward_to list's framing.
constexpr std::size_t kEventsFraming = 4;

}  // namespace

void Node::push(Peer& peer, const EventPtr& event) {
  const EventKey& key = event->key;
  const bool own = key.origin == self_;
  if (!takes(peer.info.features, *event)) {
    // An older build would drop the whole datagram. It waits in the log
    // until the peer announces the kind (set_peer_features), and nobody
    // waits for it meanwhile, as for a down peer.
    if (auto it = unreplicated_.find(key); it != unreplicated_.end()) {
      it->second.erase(peer.info.id);
      check_replicated(key);
    }
    ++stats_.withheld_for_features;
    return;
  }
  if (peer.down) {
    // Its catch-up is anti-entropy's job when it returns; do not hold the
    // origin's back-pressure hostage to a site that is gone. Own urgent
    // events go to it first when it is back.
    if (auto it = unreplicated_.find(key); it != unreplicated_.end()) {
      it->second.erase(peer.info.id);
      check_replicated(key);
    }
    constexpr std::size_t kMaxOwedUrgent = 4096;
    if (own && event->priority >= v1::PRIORITY_EMERGENCY &&
        peer.owed_urgent.size() < kMaxOwedUrgent)
      peer.owed_urgent.insert(key);
    return;
  }
  if (peer.in_flight.contains(key) || peer.queued_events.contains(key)) return;
  // A degraded peer is bounded like forwarded traffic: it stores nothing now.
  if ((!own || peer.degraded) && peer.queue.size() >= tuning_.max_queue &&
      event->priority < v1::PRIORITY_DURESS) {
    return;  // anti-entropy covers it
  }
  peer.queue.insert({static_cast<int>(event->priority), key});
  peer.queued_events.emplace(key, event);
  dirty_.insert(index_of(peer));
}

void Node::set_peer_features(Time now, const std::string& id, std::uint64_t features) {
  Peer* peer = find_peer(id);
  if (peer == nullptr || peer->info.features == features) return;
  const bool more = (features & ~peer->info.features) != 0;
  peer->info.features = features;
  if (!more) return;
  // What waited for its upgrade: an exchange with it finds it soon.
  catch_up_ = index_of(*peer);
  next_entropy_ = std::min(next_entropy_, now);
}

EventPtr Node::recent_event(const EventKey& key) const {
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

void Node::send_events(Peer& peer, const std::vector<EventPtr>& events,
                       const std::vector<std::string>& forward_to, SendAs as) {
  std::size_t budget = tuning_.max_body - kEventsFraming;
  for (const auto& id : forward_to) budget -= id.size() + 2;
  v1::Datagram d;
  std::size_t used = 0;
  auto flush = [&] {
    if (used == 0) return;
    for (const auto& id : forward_to) d.mutable_events()->add_forward_to(id);
    send(peer, d, as);
    d.Clear();
    used = 0;
  };
  for (const auto& event : events) {
    const std::size_t size = event->wire_size + kPerEventFraming;
    if (used + size > budget) flush();
    *d.mutable_events()->add_events() = event->signed_event;
    used += size;
    ++stats_.events_sent;
  }
  flush();
}

Duration Node::rto(const Peer& peer, const Event& event, int attempts) {
  const Duration floor =
      event.priority == v1::PRIORITY_DURESS ? tuning_.rto_floor_duress : tuning_.rto_floor;
  const Duration base = peer.rtt.rto(floor, tuning_.rto_cap);
  // Exponential backoff with jitter, so that retries of many nodes after a
  // shared outage do not arrive in lockstep. The first retries go at the
  // plain timeout (a duress event's for longer): on a lossy WAN path a lost
  // datagram is likelier than congestion, which the window bounds anyway.
  const int doublings = attempts - (event.priority == v1::PRIORITY_DURESS ? 4 : 3);
  const double backoff = std::ldexp(1.0, std::clamp(doublings, 0, 16));
  const double jitter = std::uniform_real_distribution<>(0.8, 1.2)(rng_);
  const auto d = std::chrono::duration_cast<Duration>(base * backoff * jitter);
  return std::min<Duration>(
      d, event.priority == v1::PRIORITY_DURESS ? tuning_.rto_cap_duress : tuning_.rto_cap);
}

void Node::acked(Time now, Peer& peer, const EventKey& key) {
  auto it = peer.in_flight.find(key);
  if (it == peer.in_flight.end()) {
    // Held there already (a retry still waiting for the pacer, say).
    if (auto q = peer.queued_events.find(key); q != peer.queued_events.end()) {
      peer.queue.erase({static_cast<int>(q->second->priority), key});
      peer.queued_events.erase(q);
    }
    return;
  }
  peer.last_ack = now;
  // Urgent events are stored on a lane of their own, ahead of the rest.
  // The ack of a retried event may be the first copy's: only its first
  // send is surely behind what the peer has stored.
  if (it->second.event->priority < v1::PRIORITY_EMERGENCY) {
    const Flight& f = it->second;
    peer.acked_sent = std::max(peer.acked_sent, f.attempts == 1 ? f.sent : f.first_sent);
    peer.last_bulk_ack = now;
  }
  // Karn: only a datagram sent once gives an unambiguous sample.
  if (it->second.attempts == 1) peer.rtt.sample(now - it->second.sent);
  peer.retry_at.erase({it->second.event->priority, it->second.due, key});
  peer.in_flight.erase(it);
  if (key.origin == self_) {
    if (auto u = unreplicated_.find(key); u != unreplicated_.end()) {
      u->second.erase(peer.info.id);
      check_replicated(key);
    }
  }
  dirty_.insert(index_of(peer));
}

void Node::check_replicated(const EventKey& key) {
  auto it = unreplicated_.find(key);
  if (it == unreplicated_.end() || !it->second.empty()) return;
  unreplicated_.erase(it);
  batch_.replicated.push_back(key);
}

void Node::handle_events(Time /*now*/, Peer& from, const v1::Events& body,
                         const std::vector<v1::Event>& events) {
  std::vector<std::string> forward_to;
  for (const auto& id : body.forward_to()) {
    if (id != self_ && id != from.info.id && find_peer(id) != nullptr) forward_to.push_back(id);
  }
  const int count = std::min(body.events_size(), static_cast<int>(events.size()));
  // An all-clear or a cancel that arrives with what it ends withholds it,
  // whatever their order in the datagram.
  for (int i = 0; i < count; ++i) {
    const v1::Event& parsed = events[static_cast<std::size_t>(i)];
    if (withholds_as(parsed.kind()) == v1::OUTCOME_DELIVERED || !stored_.contains(parsed.origin()))
      continue;
    std::vector<EventKey> keys;
    for (const auto& r : parsed.references()) keys.push_back({r.origin(), r.seq()});
    note_ending(parsed.kind(), parsed.origin(), keys);
  }
  for (int i = 0; i < count; ++i) {
    const v1::Event& parsed = events[static_cast<std::size_t>(i)];
    auto known = stored_.find(parsed.origin());
    if (known == stored_.end() || parsed.seq() == 0) continue;  // not an origin of this mesh
    const EventKey key{parsed.origin(), parsed.seq()};
    if (key.origin == self_) mesh_highest_own_ = std::max(mesh_highest_own_, key.seq);
    if (known->second.held(key.seq)) {
      // Already held here: ack it once its content is known to be the
      // same, and pass it on if asked. (A seq settled without ever being
      // stored here is not: a settled claim only stops pulls.)
      ++stats_.duplicates;
      EventPtr event = make_event(body.events(i), parsed);
      if (known->second.servable(key.seq)) {
        check_duplicate(from, event);
      } else {
        from.acks_owed[key.origin].push_back(key.seq);  // settled: history
        dirty_.insert(index_of(from));
      }
      for (const auto& id : forward_to) push(*find_peer(id), event);
    } else if (auto pending = storing_.find(key); pending != storing_.end()) {
      ++stats_.duplicates;
      pending->second.ack_to.push_back(from.info.id);
      for (const auto& id : forward_to) pending->second.forward_to.push_back(id);
    } else if (storing_.size() < tuning_.max_queue ||
               (parsed.priority() >= v1::PRIORITY_EMERGENCY &&
                storing_.size() < 2 * tuning_.max_queue)) {
      store_event(make_event(body.events(i), parsed), from.info.id, forward_to);
    }
    // else the store is behind: take nothing more and ack nothing; the
    // sender's retries bring it again (back-pressure, not loss). Duress and
    // emergency events are taken all the same (the store's urgent lane):
    // they must not wait for a retry behind a flood; up to a bound, so that
    // a site flooding urgent events cannot exhaust this one's memory.
  }
}

void Node::check_duplicate(Peer& from, const EventPtr& incoming) {
  const EventKey& key = incoming->key;
  auto cached = cache_.find(key);
  if (cached != cache_.end()) {
    if (cached->second->signed_event.event() != incoming->signed_event.event()) {
      note_conflict(key, from.info.id, cached->second, incoming);  // never acked away
      return;
    }
    from.acks_owed[key.origin].push_back(key.seq);
    dirty_.insert(index_of(from));
    return;
  }
  // Not in memory: compare with the log before acking. Bounded; beyond the
  // bound the sender's retry comes back to it.
  constexpr std::size_t kMaxLoads = 64;
  if (loads_.size() >= kMaxLoads) return;
  LoadRequest load;
  load.ticket = next_ticket_++;
  load.keys.push_back(key);
  loads_[load.ticket] = Load{"", {Verify{incoming, from.info.id}}};
  store_.load(std::move(load));
}

const std::vector<std::string>& Node::groups_of(const std::string& id) const {
  static const std::vector<std::string> kNone;
  if (id == self_) return self_groups_;
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? kNone : peers_[it->second].info.groups;
}

std::string Node::refusal(v1::Kind kind, const std::string& by, const EventKey& key) const {
  // A cancel ends its own origin's events only (wire::well_formed refuses
  // any other; checked again here, where it would withhold).
  if (kind == v1::KIND_CANCEL)
    return by == key.origin ? "" : by + " may not cancel " + key.origin + ":" + std::to_string(key.seq);
  if (kind != v1::KIND_ALL_CLEAR) return "";
  if (!policy_.clear_rule(by, groups_of(by), key.origin, groups_of(key.origin)).empty()) return "";
  return clear_refusal(by, key.origin + ":" + std::to_string(key.seq), key.origin);
}

void Node::note_ending(v1::Kind kind, const std::string& by, const std::vector<EventKey>& keys) {
  const v1::Outcome outcome = withholds_as(kind);
  if (outcome == v1::OUTCOME_DELIVERED) return;
  // Refused whole when it ends anything beyond its maker's rights.
  for (const auto& key : keys)
    if (!refusal(kind, by, key).empty()) return;
  for (const auto& key : keys) withheld_.emplace(key, outcome);  // the first one held says why
}

void Node::store_event(const EventPtr& event, const std::string& ack_to,
                       const std::vector<std::string>& forward_to) {
  StoreBatch::Write write = decide(event);
  if (write.target && !write.delivers()) ++stats_.withheld;
  if (write.outcome == v1::OUTCOME_REFUSED) ++stats_.refused;
  note_ending(event->kind, event->key.origin, event->references);
  if (write.target && event->key.origin == self_) {
    // An own event pulled back after a restore: its receipt here too.
    batch_.receipts.push_back({event->key, self_, wall_(), write.outcome});
  }
  batch_.events.push_back(std::move(write));
  batch_.priority = std::max(batch_.priority, event->priority);
  storing_[event->key] = Pending{{ack_to}, forward_to};
}

void Node::handle_acks(Time now, Peer& from, const v1::Acks& acks) {
  for (const auto& a : acks.origins()) {
    // Everything below `through` is stored there: what retention may prune
    // (its digests say more, across the seqs a jump skipped).
    if (a.origin() == self_ && a.through() > from.own_held) {
      from.own_held = a.through();
      from.own_held_moved = true;
    }
    std::vector<EventKey> done;
    for (auto it = from.in_flight.lower_bound({a.origin(), 1});
         it != from.in_flight.end() && it->first.origin == a.origin() &&
         it->first.seq <= a.through();
         ++it) {
      done.push_back(it->first);
    }
    for (std::uint64_t seq : a.seqs()) done.push_back({a.origin(), seq});
    for (const auto& key : done) acked(now, from, key);
  }
}

void Node::flush_acks(Peer& peer) {
  if (peer.acks_owed.empty()) return;
  // Cumulative: `through` is our watermark, durable by definition; single
  // seqs above it follow. Split so that each datagram fits. Acks of a
  // duress go on every live path, as the duress came.
  const SendAs as{peer.urgent_acks ? live_paths(now_, peer) : 0, false, false};
  v1::Datagram d;
  std::size_t used = 0;
  auto open_origin = [&](const std::string& origin) {
    if (used + origin.size() + 16 > tuning_.max_body) {
      send(peer, d, as);
      d.Clear();
      used = 0;
    }
    used += origin.size() + 16;
    auto* a = d.mutable_acks()->add_origins();
    a->set_origin(origin);
    a->set_through(stored_[origin].held_watermark());
    return a;
  };
  for (auto& [origin, seqs] : peer.acks_owed) {
    auto* a = open_origin(origin);
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    for (std::uint64_t seq : seqs) {
      if (seq <= a->through()) continue;
      if (used + 10 > tuning_.max_body) a = open_origin(origin);
      a->add_seqs(seq);
      used += 10;
    }
  }
  if (used > 0) send(peer, d, as);
  peer.acks_owed.clear();
  peer.urgent_acks = false;
}

void Node::drop_queues(Peer& peer) {
  std::vector<EventKey> keys;
  auto keep_urgent = [&](const EventPtr& event) {
    if (event->key.origin == self_ && event->priority >= v1::PRIORITY_EMERGENCY)
      peer.owed_urgent.insert(event->key);
  };
  for (const auto& [key, flight] : peer.in_flight) {
    keys.push_back(key);
    keep_urgent(flight.event);
  }
  for (const auto& [key, event] : peer.queued_events) {
    keys.push_back(key);
    keep_urgent(event);
  }
  peer.in_flight.clear();
  peer.retry_at.clear();
  peer.queue.clear();
  peer.queued_events.clear();
  for (const auto& key : keys) {
    if (auto it = unreplicated_.find(key); it != unreplicated_.end()) {
      it->second.erase(peer.info.id);
      check_replicated(key);
    }
  }
}

}  // namespace relay::mesh

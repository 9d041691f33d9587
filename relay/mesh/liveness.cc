// Liveness: direct and indirect probes (SWIM style), suspicion, down
// detection and supervision alarms.
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {

Duration Node::probe_period() const {
  // Each peer once per probe_interval, unless that exceeds the rate cap.
  const auto by_rate = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(static_cast<double>(peers_.size()) / tuning_.max_probe_rate));
  return std::max(tuning_.probe_interval, by_rate);
}

bool Node::suspect(Time now, const Peer& peer) const {
  return now - peer.last_confirmed > tuning_.suspect_periods * probe_period();
}

void Node::probe_round(Time now) {
  if (peers_.empty()) {
    next_probe_round_ = now + tuning_.probe_interval;
    return;
  }
  next_probe_round_ = now + probe_period() / static_cast<long>(peers_.size());
  Peer& peer = peers_[probe_cursor_++ % peers_.size()];
  if (now < peer.next_probe) return;
  peer.next_probe = now + probe_period();
  // Probed even when traffic flows: only an answer to a fresh nonce proves
  // a peer alive (traffic can be a replay).
  // One nonce on every path, each probe naming its path: the answer says
  // which paths work, and any answer proves the peer alive.
  const std::uint64_t nonce = next_nonce_++;
  peer.probe = {nonce, now};
  peer.probe_answered = false;
  peer.indirect_sent = false;
  for (std::size_t i = 0; i < peer.paths.size(); ++i) {
    v1::Datagram d;
    d.mutable_probe()->set_nonce(nonce);
    d.mutable_probe()->set_target(peer.info.id);
    d.mutable_probe()->set_wall_unix_ms(wall_());
    d.mutable_probe()->set_path(static_cast<std::uint32_t>(i));
    send(peer, d, {PathSet{1} << i, false, false});
  }
  wake(peer, now + tuning_.probe_timeout);
}

void Node::handle_probe(Time now, Peer& from, const v1::Probe& probe) {
  if (probe.wall_unix_ms() != 0 && probe.on_behalf_of().empty()) {
    from.clock_offset_ms = probe.wall_unix_ms() - wall_();
  }
  if (probe.target() == self_) {
    // An indirect answer names its requester and is signed by the wire
    // layer (an Ed25519 signature each): a few a second at most.
    const bool indirect = !probe.on_behalf_of().empty() && probe.on_behalf_of() != from.info.id;
    if (indirect) {
      if (now - signed_answers_at_ >= std::chrono::seconds(1)) {
        signed_answers_at_ = now;
        signed_answers_ = 0;
      }
      constexpr int kSignedAnswersPerSecond = 20;
      if (++signed_answers_ > kSignedAnswersPerSecond) return;
    }
    v1::Datagram d;
    auto* ack = d.mutable_probe_ack();
    ack->set_nonce(probe.nonce());
    ack->set_target(self_);
    ack->set_wall_unix_ms(wall_());
    if (indirect) {
      ack->set_requester(probe.on_behalf_of());
    } else {
      // Only in the pairwise session with the asker, where no other node
      // can make it up (an indirect answer's signature does not cover it).
      ack->set_path(probe.path());
      if (health_) *ack->mutable_health() = *health_;
    }
    // On every path: the asker learns that its path works whichever of
    // ours carries the answer (a path may fail one way only).
    send(from, d, {(PathSet{1} << from.paths.size()) - 1, false, false});
    return;
  }
  // `from` asks us to probe a peer it cannot reach; the answer comes back
  // signed by that peer, and we pass it on.
  Peer* target = find_peer(probe.target());
  if (target == nullptr || target == &from || probe.on_behalf_of() != from.info.id ||
      indirect_.size() >= 4 * peers_.size() + 16) {
    return;
  }
  indirect_[{from.info.id, probe.nonce(), target->info.id}] = now + 4 * tuning_.probe_timeout;
  v1::Datagram d;
  d.mutable_probe()->set_nonce(probe.nonce());
  d.mutable_probe()->set_on_behalf_of(from.info.id);
  d.mutable_probe()->set_target(target->info.id);
  send(*target, d);
}

void Node::handle_probe_ack(Time now, Peer& from, const v1::ProbeAck& ack) {
  if (!ack.requester().empty() && ack.requester() != self_) {
    // An answer to a probe we passed on for someone else: pass it back as
    // it is; its signature, not our word, convinces the requester.
    auto it = indirect_.find({ack.requester(), ack.nonce(), from.info.id});
    if (it == indirect_.end() || ack.target() != from.info.id) return;
    indirect_.erase(it);
    if (Peer* requester = find_peer(ack.requester())) {
      v1::Datagram d;
      *d.mutable_probe_ack() = ack;
      send(*requester, d);
    }
    return;
  }
  // Direct from the target, or relayed with the target's signature (the
  // wire layer checked it).
  Peer* subject = ack.target() == from.info.id ? &from : find_peer(ack.target());
  if (subject == nullptr || !subject->probe || subject->probe->first != ack.nonce()) return;
  if (subject == &from && ack.requester().empty()) {
    if (ack.has_health()) subject->health = ack.health();
    const std::size_t path = ack.path();
    if (path < subject->paths.size()) {
      subject->paths[path].last_confirmed = now;
      subject->paths[path].rtt.sample(now - subject->probe->second);
      choose_path(now, *subject);
    }
    // The round trip that retries are timed by is the path events take.
    if (path == subject->best_path) subject->rtt.sample(now - subject->probe->second);
    if (ack.wall_unix_ms() != 0) {
      // Its clock when it answered, about half a round trip ago.
      const auto half = std::chrono::duration_cast<milliseconds>(now - subject->probe->second) / 2;
      subject->clock_offset_ms = ack.wall_unix_ms() - (wall_() - half.count());
    }
  }
  // Kept for the other paths' answers; no indirect probe now.
  subject->probe_answered = true;
  confirmed(now, *subject);
}

void Node::confirmed(Time now, Peer& peer) {
  // Back from a silence in which nothing it was sent came back: its pacer
  // backed off to probing a dead path, and what the path carries now is
  // learned afresh, from the start. (A peer only slow to answer behind a
  // full link still sends feedback, and keeps its pacer.)
  if (peer.pacer.silent()) peer.pacer.reset(now);
  if (suspect(now, peer) && !peer.down) hurry_urgent(now, peer);
  peer.last_confirmed = now;
  // Learning own numbering: a peer just heard from for the first time is
  // asked at once, not at the next learning round.
  if (learning_ && !peer.heard) send_digest(peer, {self_}, true);
  peer.heard = true;
  if (peer.down) {
    peer.down = false;
    returned(now, peer);
  }
  if (peer.alarmed) {
    peer.alarmed = false;
    batch_.alarms.push_back({peer.info.id, false, 0});
  }
}

void Node::sweep(Time now) {
  next_sweep_ = now + std::chrono::seconds(1);
  for (auto& peer : peers_) {
    if (peer.own_held_moved) {
      batch_.peer_held.emplace_back(peer.info.id, peer.own_held);
      peer.own_held_moved = false;
    }
    const Duration silent = now - peer.last_confirmed;
    // In a large mesh each peer is probed less often; give it as many
    // chances to answer before it counts as down.
    if (!peer.down && silent > std::max(tuning_.down_after, 4 * probe_period())) {
      peer.down = true;
      peer.degraded = false;
      drop_queues(peer);
    }
    judge_store(now, peer);
    alarm_store(peer);
    choose_path(now, peer);
    if (!peer.alarmed && silent >= tuning_.supervision_timeout) {
      peer.alarmed = true;
      ++stats_.alarms_raised;
      batch_.alarms.push_back(
          {peer.info.id, true, std::chrono::duration_cast<milliseconds>(silent).count()});
    }
  }
  std::erase_if(indirect_, [&](const auto& entry) { return entry.second <= now; });
  if (!alarms_refused_.empty() && now >= alarm_retry_at_) retry_alarms(now);
}

void Node::retry_alarms(Time now) {
  // Written again as the state is now, not as it was refused: the store's
  // raise of an open alarm and clear of a closed one write nothing, so the
  // rows still come in pairs whatever changed in between.
  for (const auto& [id, reason] : std::exchange(alarms_refused_, {})) {
    const Peer* peer = find_peer(id);
    if (peer == nullptr) {
      batch_.alarms.push_back({id, false, 0, reason, "no longer configured"});
      continue;
    }
    const bool store = reason == kDatabaseDown;
    const bool raised = store ? peer->store_alarmed : peer->alarmed;
    std::int64_t silent_ms = 0;
    if (raised && store && peer->health) silent_ms = peer->health->store_down_ms();
    if (raised && !store) {
      silent_ms = std::chrono::duration_cast<milliseconds>(now - peer->last_confirmed).count();
    }
    batch_.alarms.push_back({id, raised, silent_ms, reason});
  }
}

void Node::returned(Time now, Peer& peer) {
  // Back from an outage, or storing again: what it missed of this node's
  // duress and emergency events goes first (the queue is in priority
  // order), then an exchange right away catches it up on the rest.
  LoadRequest load;
  for (const auto& key : peer.owed_urgent) {
    if (auto it = cache_.find(key); it != cache_.end()) {
      push(peer, it->second);
    } else {
      load.keys.push_back(key);
    }
  }
  peer.owed_urgent.clear();
  constexpr std::size_t kMaxLoads = 64;
  if (!load.keys.empty() && loads_.size() < kMaxLoads) {
    load.ticket = next_ticket_++;
    loads_[load.ticket] = Load{peer.info.id, {}};
    store_.load(std::move(load));
  }
  catch_up_ = index_of(peer);
  next_entropy_ = now;
}

void Node::alarm_store(Peer& peer) {
  // Its own report, however old: raised once the database has been down a
  // supervision period, cleared when a report says it is back.
  if (!peer.health) return;
  const auto down_for = milliseconds(peer.health->store_down_ms());
  const bool raise = !peer.health->store_up() && down_for >= tuning_.supervision_timeout;
  const bool clear = peer.health->store_up();
  if (raise && !peer.store_alarmed) {
    peer.store_alarmed = true;
    ++stats_.alarms_raised;
    batch_.alarms.push_back({peer.info.id, true, down_for.count(), kDatabaseDown});
  } else if (clear && peer.store_alarmed) {
    peer.store_alarmed = false;
    batch_.alarms.push_back({peer.info.id, false, 0, kDatabaseDown});
  }
}

void Node::judge_store(Time now, Peer& peer) {
  // Alive but not storing: its own report says so (prefer it: it is
  // immediate and says why), or, from a peer that sends none, events
  // outstanding there long without an ack.
  bool degraded = false;
  if (!peer.down && !suspect(now, peer)) {
    if (peer.health) {
      degraded = !peer.health->store_up();
    } else if (now - peer.last_ack > tuning_.degraded_after) {
      for (const auto& [key, flight] : peer.in_flight) {
        if (now - flight.first_sent > tuning_.degraded_after) {
          degraded = true;
          break;
        }
      }
    }
  }
  if (degraded == peer.degraded) return;
  peer.degraded = degraded;
  if (degraded) {
    // Back-pressure stops waiting for it; it still gets what is sent, and
    // a duress.
    std::vector<EventKey> keys;
    for (auto& [key, lacking] : unreplicated_) {
      if (lacking.erase(peer.info.id) > 0) keys.push_back(key);
    }
    for (const auto& key : keys) check_replicated(key);
    return;
  }
  peer.last_ack = now;
  returned(now, peer);
}

}  // namespace relay::mesh

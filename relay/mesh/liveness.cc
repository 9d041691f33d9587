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
  const std::uint64_t nonce = next_nonce_++;
  peer.probe = {nonce, now};
  peer.indirect_sent = false;
  v1::Datagram d;
  d.mutable_probe()->set_nonce(nonce);
  d.mutable_probe()->set_target(peer.info.id);
  d.mutable_probe()->set_wall_unix_ms(wall_());
  send(peer, d);
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
    if (indirect) ack->set_requester(probe.on_behalf_of());
    send(from, d);
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
    subject->rtt.sample(now - subject->probe->second);
    if (ack.wall_unix_ms() != 0) {
      // Its clock when it answered, about half a round trip ago.
      const auto half = std::chrono::duration_cast<milliseconds>(now - subject->probe->second) / 2;
      subject->clock_offset_ms = ack.wall_unix_ms() - (wall_() - half.count());
    }
  }
  confirmed(now, *subject);
  subject->probe.reset();
}

void Node::confirmed(Time now, Peer& peer) {
  peer.last_confirmed = now;
  // Learning own numbering: a peer just heard from for the first time is
  // asked at once, not at the next learning round.
  if (learning_ && !peer.heard) send_digest(peer, {self_}, true);
  peer.heard = true;
  if (peer.down) {
    // Back from an outage: catch it up with an exchange right away.
    peer.down = false;
    catch_up_ = index_of(peer);
    next_entropy_ = now;
  }
  if (peer.alarmed) {
    peer.alarmed = false;
    batch_.alarms.push_back({peer.info.id, false, 0});
  }
}

void Node::sweep(Time now) {
  next_sweep_ = now + std::chrono::seconds(1);
  for (auto& peer : peers_) {
    const Duration silent = now - peer.last_confirmed;
    // In a large mesh each peer is probed less often; give it as many
    // chances to answer before it counts as down.
    if (!peer.down && silent > std::max(tuning_.down_after, 4 * probe_period())) {
      peer.down = true;
      drop_queues(peer);
    }
    if (!peer.alarmed && silent >= tuning_.supervision_timeout) {
      peer.alarmed = true;
      ++stats_.alarms_raised;
      batch_.alarms.push_back(
          {peer.info.id, true, std::chrono::duration_cast<milliseconds>(silent).count()});
    }
  }
  std::erase_if(indirect_, [&](const auto& entry) { return entry.second <= now; });
}

}  // namespace relay::mesh

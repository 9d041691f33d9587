// What leaves for a peer when, and on which of its paths: duress at once on
// every live path with a redundant copy, everything else at the rate its
// pacer allows, most urgent first; the transport feedback both ways.
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// Framing of one event inside Events, and of the Events body itself
// (delivery.cc packs with the same figures).
constexpr std::size_t kPerEventFraming = 3;
constexpr std::size_t kEventsFraming = 4;

}  // namespace

EventPtr Node::retry(Time now, Peer& peer, const EventKey& key) {
  auto it = peer.in_flight.find(key);
  if (it == peer.in_flight.end()) return nullptr;
  Flight& flight = it->second;
  ++flight.attempts;
  flight.sent = now;
  flight.hurried = false;
  set_due(peer, key, flight, now + rto(peer, *flight.event, flight.attempts));
  ++stats_.retransmissions;
  // Path diversity: the direct path keeps failing, so ask another live
  // peer to deliver it too. Its own retries then cover this hop.
  if (flight.attempts % tuning_.relay_after == 0 || suspect(now, peer)) {
    Peer* relay = random_live_peer(now, peer.info.id, "");
    if (relay != nullptr && takes(relay->info.features, *flight.event)) {
      send_events(*relay, {flight.event}, {peer.info.id});
      ++stats_.relays_requested;
    }
  }
  return flight.event;
}

void Node::start_flight(Time now, Peer& peer, const EventPtr& event) {
  auto [it, added] = peer.in_flight.emplace(event->key, Flight{event, now, {}, 1, now});
  if (added) set_due(peer, event->key, it->second, now + rto(peer, *event, 1));
}

void Node::set_due(Peer& peer, const EventKey& key, Flight& flight, Time at) {
  const int priority = flight.event->priority;
  peer.retry_at.erase({priority, flight.due, key});
  flight.due = at;
  peer.retry_at.insert({priority, at, key});
  wake(peer, at);
}

bool Node::presumed_lost(Time now, const Peer& peer, const Flight& flight) const {
  // Acks come once an event is durable, so a peer whose database is the
  // bottleneck of a flood acks late, in the order events came. Its timer
  // ran out, but while that peer acks events sent after this one, it was
  // lost; while it acks only earlier ones, it is most likely still waiting
  // in its store, and another copy would only add to the queue (a flood
  // once went four times over, and the receiving node's CPU went to
  // deduplicating it). With no ack for a timeout, the path or the peer may
  // be gone: it goes again, backing off (rto()). Duress and emergency
  // events are stored on a lane of their own, never behind a flood: they
  // always go.
  // A peer that said it lacks the event (resend_soon) gets it too.
  if (flight.event->priority >= v1::PRIORITY_EMERGENCY || flight.hurried) return true;
  if (flight.sent < peer.acked_sent) return true;
  return now - peer.last_bulk_ack >= peer.rtt.rto(tuning_.rto_floor, tuning_.rto_cap);
}

const Node::Due* Node::first_due(const Peer& peer, Time now) {
  // The soonest of each priority, most urgent first: at most one look per
  // priority, however many retries are due.
  auto it = peer.retry_at.begin();
  while (it != peer.retry_at.end()) {
    if (it->at <= now) return &*it;
    it = peer.retry_at.lower_bound({it->priority - 1, Time::min(), EventKey{}});
  }
  return nullptr;
}

void Node::transmit(Time now, Peer& peer) {
  // A duress never waits for the pacer, the window or anything queued:
  // its retries due, then the new ones.
  std::vector<EventPtr> duress_retries;
  for (const Due* due = first_due(peer, now); due != nullptr && due->priority >= v1::PRIORITY_DURESS;
       due = first_due(peer, now)) {
    duress_retries.push_back(retry(now, peer, EventKey{due->key}));
  }
  if (!duress_retries.empty()) send_duress(now, peer, duress_retries, false);
  std::vector<EventPtr> duress_new;
  while (!peer.queue.empty() && peer.queue.begin()->priority >= v1::PRIORITY_DURESS) {
    const Queued next = *peer.queue.begin();
    peer.queue.erase(peer.queue.begin());
    EventPtr event = peer.queued_events.extract(next.key).mapped();
    start_flight(now, peer, event);
    duress_new.push_back(std::move(event));
  }
  if (!duress_new.empty()) send_duress(now, peer, duress_new, true);

  // The rest, one datagram at a time while the pacer allows: retries and
  // queued events merged by priority, a retry first among equals.
  const std::size_t budget = tuning_.max_body - kEventsFraming;
  const std::size_t window = peer.pacer.paced() ? tuning_.paced_window : tuning_.window;
  // The next event to go: a retry due (true), a queued one (false), none.
  auto next_is_retry = [&]() -> std::optional<bool> {
    const Due* due = first_due(peer, now);
    const bool has_new = !peer.queue.empty() && peer.in_flight.size() < window;
    if (due == nullptr && !has_new) return std::nullopt;
    if (!has_new) return true;
    if (due == nullptr) return false;
    return due->priority >= peer.queue.begin()->priority;
  };
  while (next_is_retry() && peer.pacer.ready(now)) {
    v1::Datagram d;
    std::size_t used = 0;
    while (auto retry_first = next_is_retry()) {
      EventPtr event;
      if (*retry_first) {
        const EventKey key = first_due(peer, now)->key;
        Flight& flight = peer.in_flight.at(key);
        if (!presumed_lost(now, peer, flight)) {
          set_due(peer, key, flight, now + rto(peer, *flight.event, flight.attempts));
          continue;
        }
        if (used + flight.event->wire_size + kPerEventFraming > budget && used > 0) break;
        event = retry(now, peer, key);
      } else {
        const Queued next = *peer.queue.begin();
        const EventPtr& queued = peer.queued_events.at(next.key);
        if (used + queued->wire_size + kPerEventFraming > budget && used > 0) break;
        peer.queue.erase(peer.queue.begin());
        event = peer.queued_events.extract(next.key).mapped();
        start_flight(now, peer, event);
      }
      *d.mutable_events()->add_events() = event->signed_event;
      used += event->wire_size + kPerEventFraming;
      ++stats_.events_sent;
    }
    if (used == 0) break;
    send(peer, d, {0, true, !next_is_retry()});
  }
  if (next_is_retry()) wake(peer, peer.pacer.next_ready(now));
}

void Node::send_duress(Time now, Peer& peer, const std::vector<EventPtr>& events, bool first) {
  // On every live path at once: a blackholed path costs nothing.
  const PathSet live = live_paths(now, peer);
  send_events(peer, events, {}, {live, false, false});
  if (!first) return;
  // Its first send also goes a second way, so that one lost datagram does
  // not cost a timeout: already on a second path, else through another
  // site (which stores it and delivers it on with its own retries), else
  // the same path again.
  if ((live & (live - 1)) != 0) return;
  if (Peer* relay = random_live_peer(now, peer.info.id, "")) {
    std::vector<EventPtr> relayed;
    for (const auto& e : events)
      if (takes(relay->info.features, *e)) relayed.push_back(e);
    if (relayed.size() == events.size()) {
      send_events(*relay, relayed, {peer.info.id}, {0, false, false});
      ++stats_.relays_requested;
      return;
    }
  }
  send_events(peer, events, {}, {live, false, false});
}

void Node::hurry_urgent(Time now, Peer& peer) {
  // Back from a silence: urgent events in flight go again now, not at the
  // end of a backoff that grew while nothing got through.
  std::vector<EventKey> urgent;
  for (const auto& [key, flight] : peer.in_flight) {
    if (flight.event->priority >= v1::PRIORITY_EMERGENCY && flight.due > now) urgent.push_back(key);
  }
  for (const auto& key : urgent) resend_soon(now, peer, key);
}

void Node::resend_soon(Time now, Peer& peer, const EventKey& key) {
  auto it = peer.in_flight.find(key);
  if (it == peer.in_flight.end()) return;
  it->second.hurried = true;  // even if its timer already ran out: not pushed back
  if (it->second.due <= now) return;
  set_due(peer, key, it->second, now);
  dirty_.insert(index_of(peer));
}

void Node::handle_feedback(Time now, Peer& from, const v1::Feedback& feedback) {
  from.pacer.on_feedback(now, feedback);
  dirty_.insert(index_of(from));  // the window may have opened
}

void Node::flush_feedback(Time now, Peer& peer) {
  const Time due = peer.tally.due();
  if (due == Time::max()) return;
  if (due > now) {
    wake(peer, due);
    return;
  }
  v1::Datagram d;
  *d.mutable_feedback() = peer.tally.take(now);
  send(peer, d);
}

PathSet Node::live_paths(Time now, const Peer& peer) const {
  const Duration window = tuning_.suspect_periods * probe_period();
  PathSet live = 0;
  for (std::size_t i = 0; i < peer.paths.size(); ++i) {
    if (now - peer.paths[i].last_confirmed <= window) live |= PathSet{1} << i;
  }
  // None answers: every path, since any may be back.
  return live != 0 ? live : (PathSet{1} << peer.paths.size()) - 1;
}

void Node::choose_path(Time now, Peer& peer) {
  // The first live path in the configured order (fibre before LTE): normal
  // traffic stays on it as long as it answers, and moves back when it does
  // again.
  const PathSet live = live_paths(now, peer);
  std::size_t best = 0;
  while (best + 1 < peer.paths.size() && (live & (PathSet{1} << best)) == 0) ++best;
  if (best == peer.best_path) return;
  peer.best_path = best;
  peer.pacer.reset(now);  // another path: its capacity is learned anew
}

}  // namespace relay::mesh

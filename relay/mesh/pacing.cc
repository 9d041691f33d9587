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
  peer.retry_at.erase({flight.due, key});
  ++flight.attempts;
  flight.sent = now;
  flight.due = now + rto(peer, *flight.event, flight.attempts);
  peer.retry_at.emplace(flight.due, key);
  wake(peer, flight.due);
  ++stats_.retransmissions;
  // Path diversity: the direct path keeps failing, so ask another live
  // peer to deliver it too. Its own retries then cover this hop.
  if (flight.attempts % tuning_.relay_after == 0 || suspect(now, peer)) {
    if (Peer* relay = random_live_peer(now, peer.info.id, "")) {
      send_events(*relay, {flight.event}, {peer.info.id});
      ++stats_.relays_requested;
    }
  }
  return flight.event;
}

void Node::transmit(Time now, Peer& peer) {
  // Retries due, most urgent first (older first within a priority).
  std::vector<EventKey> due;
  for (auto it = peer.retry_at.begin(); it != peer.retry_at.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  auto priority_of = [&](const EventKey& key) {
    auto it = peer.in_flight.find(key);
    return it == peer.in_flight.end() ? -1 : static_cast<int>(it->second.event->priority);
  };
  std::stable_sort(due.begin(), due.end(), [&](const EventKey& a, const EventKey& b) {
    return priority_of(a) > priority_of(b);
  });

  // A duress never waits for the pacer, the window or anything queued.
  std::vector<EventPtr> duress_retries;
  std::size_t next_due = 0;
  for (; next_due < due.size() && priority_of(due[next_due]) >= v1::PRIORITY_DURESS; ++next_due) {
    if (EventPtr e = retry(now, peer, due[next_due])) duress_retries.push_back(e);
  }
  if (!duress_retries.empty()) send_duress(now, peer, duress_retries, false);
  std::vector<EventPtr> duress_new;
  while (!peer.queue.empty() && peer.queue.begin()->priority >= v1::PRIORITY_DURESS) {
    const Queued next = *peer.queue.begin();
    peer.queue.erase(peer.queue.begin());
    EventPtr event = peer.queued_events.extract(next.key).mapped();
    Flight flight{event, now, now + rto(peer, *event, 1), 1, now};
    peer.retry_at.emplace(flight.due, next.key);
    wake(peer, flight.due);
    peer.in_flight.emplace(next.key, std::move(flight));
    duress_new.push_back(std::move(event));
  }
  if (!duress_new.empty()) send_duress(now, peer, duress_new, true);

  // The rest, one datagram at a time while the pacer allows: retries and
  // queued events merged by priority, a retry first among equals.
  const std::size_t budget = tuning_.max_body - kEventsFraming;
  const std::size_t window = peer.pacer.paced() ? tuning_.paced_window : tuning_.window;
  auto next_is_retry = [&]() -> std::optional<bool> {
    while (next_due < due.size() && !peer.in_flight.contains(due[next_due])) ++next_due;
    const bool has_retry = next_due < due.size();
    const bool has_new = !peer.queue.empty() && peer.in_flight.size() < window;
    if (!has_retry && !has_new) return std::nullopt;
    if (!has_new) return true;
    if (!has_retry) return false;
    return priority_of(due[next_due]) >= peer.queue.begin()->priority;
  };
  while (next_is_retry() && peer.pacer.ready(now)) {
    v1::Datagram d;
    std::size_t used = 0;
    while (auto retry_first = next_is_retry()) {
      EventPtr event;
      if (*retry_first) {
        auto it = peer.in_flight.find(due[next_due]);
        if (used + it->second.event->wire_size + kPerEventFraming > budget && used > 0) break;
        event = retry(now, peer, due[next_due++]);
      } else {
        const Queued next = *peer.queue.begin();
        const EventPtr& queued = peer.queued_events.at(next.key);
        if (used + queued->wire_size + kPerEventFraming > budget && used > 0) break;
        peer.queue.erase(peer.queue.begin());
        event = peer.queued_events.extract(next.key).mapped();
        Flight flight{event, now, now + rto(peer, *event, 1), 1, now};
        peer.retry_at.emplace(flight.due, next.key);
        wake(peer, flight.due);
        peer.in_flight.emplace(next.key, std::move(flight));
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
    send_events(*relay, events, {peer.info.id}, {0, false, false});
    ++stats_.relays_requested;
    return;
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
  if (it == peer.in_flight.end() || it->second.due <= now) return;
  peer.retry_at.erase({it->second.due, key});
  it->second.due = now;
  peer.retry_at.emplace(now, key);
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

#include "relay/mesh/node.h"

#include <algorithm>

namespace relay::mesh {

bool targets_node(const std::vector<std::string>& targets, const std::string& id,
                  const std::vector<std::string>& groups) {
  for (const auto& t : targets) {
    if (t == "all" || t == id) return true;
    if (t.starts_with("group:") &&
        std::find(groups.begin(), groups.end(), t.substr(6)) != groups.end()) {
      return true;
    }
  }
  return false;
}

bool targets_node(const Event& event, const std::string& id,
                  const std::vector<std::string>& groups) {
  if (event.resolved.empty()) return targets_node(event.targets, id, groups);
  return std::find(event.resolved.begin(), event.resolved.end(), id) != event.resolved.end();
}

EventPtr make_event(const v1::SignedEvent& signed_event, const v1::Event& parsed) {
  auto event = std::make_shared<Event>();
  event->key = {parsed.origin(), parsed.seq()};
  // A duress is a duress whatever priority its origin gave it: queued,
  // paced and stored as one everywhere.
  event->priority =
      parsed.kind() == v1::KIND_DURESS ? v1::PRIORITY_DURESS : parsed.priority();
  event->kind = parsed.kind();
  event->type = parsed.type();
  event->targets.assign(parsed.targets().begin(), parsed.targets().end());
  event->resolved.assign(parsed.resolved().begin(), parsed.resolved().end());
  event->created_unix_ms = parsed.created_unix_ms();
  event->expires_unix_ms = parsed.expires_unix_ms();
  for (const auto& r : parsed.references()) event->references.push_back({r.origin(), r.seq()});
  event->signed_event = signed_event;
  event->wire_size = signed_event.ByteSizeLong();
  return event;
}

Node::Node(std::string self, std::vector<std::string> self_groups, std::vector<PeerInfo> peers,
           Tuning tuning, Store& store, Transport& transport, std::uint64_t seed)
    : self_(std::move(self)),
      self_groups_(std::move(self_groups)),
      tuning_(tuning),
      store_(store),
      transport_(transport),
      rng_(seed),
      wall_([] {
        return std::chrono::duration_cast<milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
      }) {
  peers_.reserve(peers.size());
  for (auto& info : peers) {
    peer_index_[info.id] = peers_.size();
    Peer& peer = peers_.emplace_back();
    peer.paths.resize(std::clamp<std::size_t>(info.paths, 1, kMaxPaths));
    peer.info = std::move(info);
    peer.pacer = Pacer(tuning_.pacing);
  }
}

void Node::start(Time now, Snapshot snapshot) {
  begin(now);
  load(now, std::move(snapshot));
}

void Node::start_without_store(Time now) {
  store_ready_ = false;
  begin(now);
  finish(now);
}

void Node::attach_store(Time now, Snapshot snapshot) {
  // What was sent meanwhile (spooled alarms) stays held: it is durable in
  // the spool and on its way into the log.
  const SeqSet sent_meanwhile = stored_[self_];
  SeqSet& own = snapshot.stored[self_];
  for (const auto& [first, last] : sent_meanwhile.above_ranges_map()) own.add_range(first, last);
  own.add_range(1, sent_meanwhile.watermark());
  store_ready_ = true;
  load(now, std::move(snapshot));
  // Alarms and receipts that waited for the store go now.
  for (auto& held : std::exchange(held_, {})) store_.persist(std::move(held));
}

void Node::begin(Time now) {
  now_ = now;
  stored_[self_];
  const Duration period = probe_period();
  for (auto& peer : peers_) {
    stored_[peer.info.id];
    // Everyone gets a full supervision period from our start: we cannot
    // know how long a peer was silent while we were down.
    peer.last_confirmed = now;
    peer.last_ack = now;
    for (auto& path : peer.paths) path.last_confirmed = now;
    peer.pacer.reset(now);
    peer.next_probe = now + std::chrono::duration_cast<Duration>(
                                period * std::uniform_real_distribution<>(0, 1)(rng_));
  }
  next_probe_round_ = now;
  next_entropy_ = now + tuning_.entropy_interval / 4;
  next_sweep_ = now + std::chrono::seconds(1);
  started_wall_ms_ = wall_();
}

void Node::load(Time now, Snapshot snapshot) {
  for (auto& [origin, seqs] : snapshot.stored) stored_[origin] = std::move(seqs);
  for (const auto& e : snapshot.endings) note_ending(e->kind, e->key.origin, e->references);
  restored_ = snapshot.restored;
  own_high_water_ = snapshot.own_high_water;
  if (!sure()) {
    // Ask every peer at once what it holds of ours, after every start: a
    // restore of this machine cannot be told from an ordinary restart here
    // (lifecycle.cc).
    learning_ = true;
    learn_until_ = now + tuning_.learn_timeout;
  }
  for (const auto& event : snapshot.unreplicated) on_local_event(now, event);
  for (const auto& receipt : snapshot.receipts_owed) {
    owe_receipt(now, receipt.event, receipt.delivered_unix_ms, receipt.outcome);
  }
  // Alarms raised before a restart stay raised: the peer's return clears
  // them, and a peer still silent does not raise them twice.
  for (const auto& [peer, reason] : snapshot.open_alarms) {
    Peer* p = find_peer(peer);
    if (p == nullptr) {
      // A peer taken out of the configuration: nothing will clear it else.
      // The row says why, so that nobody reads it as the site being back.
      batch_.alarms.push_back({peer, false, 0, reason, "no longer configured"});
      continue;
    }
    if (reason == kUnreachable) p->alarmed = true;
    if (reason == kDatabaseDown) p->store_alarmed = true;
  }
  if (learning_) learn_round(now);
  finish(now);
}

void Node::on_local_event(Time now, EventPtr event) {
  now_ = now;
  SeqSet& own = stored_[self_];
  const bool jumped = event->key.seq > own.highest() + 1;
  own.add(event->key.seq);
  // A seq above a gap that learning no longer covers (numbering jumped to
  // the wall clock with no peer heard): what it skipped will never exist.
  if (jumped && store_ready_ && !learning_ && !resolve_at_) resolve_own(now, false);
  mark_hot(self_);
  note_urgent(*event);
  cache(event);
  auto& lacking = unreplicated_[event->key];
  // Targets first: with a window, the first pushes leave first.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& peer : peers_) {
      const bool target = targets_node(*event, peer.info.id, peer.info.groups);
      if (target != (pass == 0)) continue;
      // Back-pressure waits only for peers that store: a down one is
      // caught up on its return, a degraded one gets it but is not waited for.
      if (!peer.down && !peer.degraded) lacking.insert(peer.info.id);
      push(peer, event);
    }
  }
  check_replicated(event->key);
  finish(now);
}

bool Node::accepting_local() const {
  return unreplicated_.size() < tuning_.max_queue;
}

void Node::on_datagram(Time now, const std::string& from, const v1::Datagram& body,
                       const std::vector<v1::Event>& events, Arrival arrival) {
  now_ = now;
  Peer* peer = find_peer(from);
  if (peer == nullptr) return;  // the wire layer admits only peers; be safe anyway
  if (arrival.counter != 0 && (body.has_events() || body.has_receipts())) {
    // What the sender paces and tracks (events, receipts) is reported back.
    peer->tally.on_arrival(now, arrival.counter, arrival.bytes);
    dirty_.insert(index_of(*peer));
  }
  // Heard, not proven alive: only a fresh probe answer proves that (a
  // datagram held back on the path and replayed later must not).
  peer->heard = true;
  switch (body.body_case()) {
    case v1::Datagram::kEvents:
      // Without a store nothing can be acked: the sender keeps it and retries.
      if (store_ready_) handle_events(now, *peer, body.events(), events);
      break;
    case v1::Datagram::kAcks:
      handle_acks(now, *peer, body.acks());
      break;
    case v1::Datagram::kDigest:
      handle_digest(now, *peer, body.digest());
      break;
    case v1::Datagram::kPulls:
      if (store_ready_) handle_pulls(now, *peer, body.pulls());
      break;
    case v1::Datagram::kProbe:
      handle_probe(now, *peer, body.probe());
      break;
    case v1::Datagram::kProbeAck:
      handle_probe_ack(now, *peer, body.probe_ack());
      break;
    case v1::Datagram::kReceipts:
      handle_receipts(now, *peer, body.receipts());
      break;
    case v1::Datagram::kReceiptAcks:
      handle_receipt_acks(now, *peer, body.receipt_acks());
      break;
    case v1::Datagram::kFeedback:
      handle_feedback(now, *peer, body.feedback());
      break;
    case v1::Datagram::kHello:  // sessions are the wire layer's
    case v1::Datagram::BODY_NOT_SET:
      break;
  }
  finish(now);
}

void Node::on_stored(Time now, const StoreDone& done) {
  now_ = now;
  auto node = committing_.extract(done.ticket);
  if (node.empty()) return;
  const StoreBatch& batch = node.mapped();
  for (const auto& s : batch.settled) settling_.erase({s.origin, s.range.first, s.range.last});
  if (!batch.alarms.empty() && !done.failed) alarm_backoff_ = std::chrono::seconds(5);
  if (!batch.alarms.empty() && done.failed) {
    for (const auto& a : batch.alarms) alarms_refused_.emplace(a.peer, a.reason);
    alarm_retry_at_ = now + alarm_backoff_;
    alarm_backoff_ = std::min<Duration>(alarm_backoff_ * 2, std::chrono::minutes(5));
  }
  if (done.failed) {
    for (const auto& write : batch.events) storing_.erase(write.event->key);
    receipt_via_.erase(done.ticket);
    finish(now);
    return;
  }
  for (const auto& write : batch.events) {
    const EventKey& key = write.event->key;
    if (stored_[key.origin].add(key.seq)) {
      ++stats_.events_stored;
      mark_hot(key.origin);
      note_urgent(*write.event);
    }
    cache(write.event);
    auto pending = storing_.extract(key);
    if (!pending.empty()) {
      for (const auto& id : pending.mapped().ack_to) {
        if (Peer* p = find_peer(id)) {
          p->acks_owed[key.origin].push_back(key.seq);
          p->urgent_acks = p->urgent_acks || write.event->priority >= v1::PRIORITY_DURESS;
          dirty_.insert(index_of(*p));
        }
      }
      for (const auto& id : pending.mapped().forward_to) {
        if (Peer* p = find_peer(id)) push(*p, write.event);
      }
    }
    if (write.target && key.origin != self_) {
      owe_receipt(now, key, done.commit_unix_ms, write.outcome,
                  write.event->priority >= v1::PRIORITY_DURESS);
    }
  }
  for (const auto& settle : batch.settled) {
    // Durable now: not pulled any more (a settled seq is not held: one that
    // arrives is still stored).
    SeqSet& seqs = stored_[settle.origin];
    if (!seqs.contains(settle.range.first) || !seqs.contains(settle.range.last)) {
      stats_.settled += settle.range.last - settle.range.first + 1;
    }
    seqs.settle_range(settle.range.first, settle.range.last);
  }
  // Receipts recorded here as the origin: confirm them along the way they came.
  auto via = receipt_via_.extract(done.ticket);
  std::map<std::pair<std::string, std::string>, v1::Datagram> replies;
  for (std::size_t i = 0; i < batch.receipts.size(); ++i) {
    const Receipt& r = batch.receipts[i];
    ++stats_.receipts_recorded;
    const std::string& route = via.empty() ? r.target : via.mapped()[i];
    auto& reply = replies[{route, r.target}];
    reply.mutable_receipt_acks()->set_origin(self_);
    reply.mutable_receipt_acks()->set_target(r.target);
    reply.mutable_receipt_acks()->add_seqs(r.event.seq);
  }
  for (const auto& [route, reply] : replies) {
    if (Peer* p = find_peer(route.first)) send(*p, reply);
  }
  finish(now);
}

void Node::on_loaded(Time now, std::uint64_t ticket, const std::vector<EventPtr>& events) {
  now_ = now;
  auto node = loads_.extract(ticket);
  if (node.empty()) return;
  const Load& load = node.mapped();
  for (const auto& v : load.verify) {
    Peer* from = find_peer(v.from);
    auto held = std::find_if(events.begin(), events.end(),
                             [&](const EventPtr& e) { return e->key == v.incoming->key; });
    if (from == nullptr || held == events.end()) continue;  // pruned meanwhile: settled anyway
    if ((*held)->signed_event.event() != v.incoming->signed_event.event()) {
      note_conflict(v.incoming->key, v.from, *held, v.incoming);
      continue;
    }
    from->acks_owed[v.incoming->key.origin].push_back(v.incoming->key.seq);
    dirty_.insert(index_of(*from));
  }
  // Served through the peer's queue: paced, most urgent first.
  Peer* peer = load.serve_to.empty() ? nullptr : find_peer(load.serve_to);
  if (peer != nullptr) {
    for (const auto& event : events) push(*peer, event);
  }
  finish(now);
}

void Node::on_timer(Time now) {
  now_ = now;
  std::set<std::size_t> due;
  while (!wakeups_.empty() && wakeups_.top().first <= now) {
    due.insert(wakeups_.top().second);
    wakeups_.pop();
  }
  for (std::size_t index : due) {
    Peer& peer = peers_[index];
    transmit(now, peer);
    flush_feedback(now, peer);
    if (!peer.receipts_owed.empty() && peer.receipts_due <= now) send_receipts(now, peer);
    if (peer.probe && !peer.probe_answered && !peer.indirect_sent &&
        peer.probe->second + tuning_.probe_timeout <= now) {
      // No direct answer in time: ask others to probe it for us.
      peer.indirect_sent = true;
      for (std::size_t i = 0; i < tuning_.indirect_probes; ++i) {
        Peer* helper = random_live_peer(now, peer.info.id, "");
        if (helper == nullptr) break;
        v1::Datagram d;
        d.mutable_probe()->set_nonce(peer.probe->first);
        d.mutable_probe()->set_on_behalf_of(self_);
        d.mutable_probe()->set_target(peer.info.id);
        send(*helper, d);
      }
    }
  }
  if (now >= next_probe_round_) probe_round(now);
  if (learning_ && now >= learn_until_) {
    learning_ = false;
    resolve_own(now, false);
  } else if (!sure() && store_ready_ && now >= next_learn_) {
    learn_round(now);
  }
  if (resolve_at_ && now >= *resolve_at_) resolve_own(now, true);
  if (now >= next_entropy_ && store_ready_) entropy_round(now);
  if (!store_ready_) next_entropy_ = now + tuning_.entropy_interval;
  if (now >= next_sweep_) sweep(now);
  finish(now);
}

Time Node::next_deadline() const {
  Time next = std::min({next_probe_round_, next_entropy_, next_sweep_});
  if (learning_) next = std::min(next, learn_until_);
  if (!sure() && store_ready_) next = std::min(next, next_learn_);
  if (resolve_at_) next = std::min(next, *resolve_at_);
  if (!wakeups_.empty()) next = std::min(next, wakeups_.top().first);
  return next;
}

std::vector<PeerStatus> Node::peer_status(Time now) const {
  std::vector<PeerStatus> out;
  for (const auto& peer : peers_) {
    PeerStatus& s = out.emplace_back();
    s.id = peer.info.id;
    s.heard = peer.heard;
    s.suspect = suspect(now, peer);
    s.down = peer.down;
    s.alarmed = peer.alarmed;
    s.store_alarmed = peer.store_alarmed;
    s.srtt = peer.rtt.srtt();
    s.in_flight = peer.in_flight.size();
    s.queued = peer.queue.size();
    s.last_heard = peer.last_confirmed;
    s.receipts_owed = peer.receipts_owed.size();
    s.degraded = peer.degraded;
    s.health = peer.health;
    for (const auto& [key, flight] : peer.in_flight) {
      s.unacked_for = std::max(s.unacked_for, now - flight.first_sent);
    }
    s.pacing_rate = peer.pacer.paced() ? peer.pacer.rate() : Rate{};
    s.queue_delay = peer.pacer.queue_delay();
    const PathSet live = live_paths(now, peer);
    for (std::size_t i = 0; i < peer.paths.size(); ++i) {
      const bool answers = now - peer.paths[i].last_confirmed <=
                           tuning_.suspect_periods * probe_period();
      s.paths_up.push_back(answers && (live & (PathSet{1} << i)) != 0);
    }
    s.best_path = peer.best_path;
  }
  return out;
}

void Node::finish(Time now) {
  // Flush what this input produced: acks, window refills, receipts, then
  // hand the store batch over. Acks only name events already durable.
  for (std::size_t index : dirty_) {
    Peer& peer = peers_[index];
    flush_acks(peer);
    transmit(now, peer);
    flush_feedback(now, peer);
    if (!peer.receipts_owed.empty() && peer.receipts_due <= now) send_receipts(now, peer);
  }
  dirty_.clear();
  commit_batch();
}

Node::Peer* Node::find_peer(const std::string& id) {
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? nullptr : &peers_[it->second];
}

Node::Peer* Node::random_live_peer(Time now, const std::string& except_a,
                                   const std::string& except_b) {
  // A few random draws, then a scan from a random start: cheap in large
  // meshes, and still finds the one live peer in a small broken one.
  if (peers_.empty()) return nullptr;
  std::uniform_int_distribution<std::size_t> pick(0, peers_.size() - 1);
  auto usable = [&](const Peer& p) {
    return !p.down && !suspect(now, p) && p.info.id != except_a && p.info.id != except_b;
  };
  for (int i = 0; i < 4; ++i) {
    Peer& p = peers_[pick(rng_)];
    if (usable(p)) return &p;
  }
  const std::size_t start = pick(rng_);
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    Peer& p = peers_[(start + i) % peers_.size()];
    if (usable(p)) return &p;
  }
  return nullptr;
}

bool Node::is_target(const Event& event) const {
  return targets_node(event, self_, self_groups_);
}

void Node::send(Peer& peer, const v1::Datagram& body, SendAs as) {
  ++stats_.datagrams_sent;
  const PathSet paths = as.paths != 0 ? as.paths : PathSet{1} << peer.best_path;
  const std::uint64_t counter = transport_.send(peer.info.id, body, paths);
  using Kind = Pacer::Kind;
  const Kind kind = !body.has_events() && !body.has_receipts() ? Kind::control
                    : !as.paced                                 ? Kind::urgent
                    : as.app_limited                            ? Kind::paced_last
                                                                : Kind::paced;
  peer.pacer.on_sent(now_, counter, body.ByteSizeLong() + tuning_.wire_overhead, kind);
}

void Node::wake(const Peer& peer, Time when) {
  wakeups_.emplace(when, index_of(peer));
}

void Node::cache(const EventPtr& event) {
  if (!cache_.emplace(event->key, event).second) return;
  cache_order_.push_back(event->key);
  while (cache_order_.size() > tuning_.cache_limit) {
    cache_.erase(cache_order_.front());
    cache_order_.pop_front();
  }
}

void Node::commit_batch() {
  if (batch_.empty()) return;
  if (!store_ready_) {
    // No store yet: what must be written waits (bounded by what arrives
    // while the database is away: alarms and a few receipts).
    constexpr std::size_t kMaxHeld = 1024;
    if (held_.size() < kMaxHeld) held_.push_back(std::move(batch_));
    batch_ = StoreBatch{};
    return;
  }
  // Alarm changes commit alone, on the store's urgent lane and in order
  // there; no bulk rides along ahead of a duress.
  StoreBatch alarms;
  alarms.alarms = std::exchange(batch_.alarms, {});
  if (batch_.empty()) {
    batch_.alarms = std::move(alarms.alarms);
  } else if (!alarms.alarms.empty()) {
    alarms.ticket = next_ticket_++;
    committing_[alarms.ticket] = alarms;
    store_.persist(std::move(alarms));
  }
  // Duress and emergency events commit apart too, on the urgent lane: no
  // bulk rides along ahead of them, and no bulk is acked there ahead of
  // bulk that came before it and waits on the other lane (which would have
  // the sender presume that lost: presumed_lost()).
  if (batch_.priority >= v1::PRIORITY_EMERGENCY) {
    StoreBatch urgent;
    std::vector<StoreBatch::Write> rest;
    for (auto& write : batch_.events) {
      if (write.event->priority >= v1::PRIORITY_EMERGENCY) {
        urgent.priority = std::max(urgent.priority, write.event->priority);
        urgent.events.push_back(std::move(write));
      } else {
        rest.push_back(std::move(write));
      }
    }
    batch_.events = std::move(rest);
    batch_.priority = v1::PRIORITY_BULK;
    for (const auto& write : batch_.events)
      batch_.priority = std::max(batch_.priority, write.event->priority);
    urgent.ticket = next_ticket_++;
    committing_[urgent.ticket] = urgent;
    store_.persist(std::move(urgent));
    if (batch_.empty()) {
      batch_ = StoreBatch{};
      return;
    }
  }
  batch_.ticket = next_ticket_++;
  if (!batch_receipt_via_.empty()) receipt_via_[batch_.ticket] = std::move(batch_receipt_via_);
  batch_receipt_via_.clear();
  committing_[batch_.ticket] = batch_;
  store_.persist(std::move(batch_));
  batch_ = StoreBatch{};
}

}  // namespace relay::mesh

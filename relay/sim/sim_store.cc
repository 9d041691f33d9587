#include "relay/sim/sim_store.h"

#include "relay/mesh/numbering.h"

namespace relay::sim {

void SimStore::apply(const StoreBatch& batch, std::int64_t now_ms) {
  for (const auto& write : batch.events) {
    const EventKey& key = write.event->key;
    // ON CONFLICT DO NOTHING, and nothing at all for a seq stored before
    // (a seq settled without ever being stored here is new).
    if (durable_.seqs[key.origin].held(key.seq)) continue;
    if (!durable_.log.emplace(key, write.event).second) continue;
    durable_.seqs[key.origin].add(key.seq);
    if (write.delivers()) {
      ++durable_.delivered[key];
      if (write.redelivered) durable_.redelivered.insert(key);
    }
    if (write.target) {
      durable_.outcomes[key] = write.outcome;
      if (key.origin != self_)
        durable_.receipts_owed.emplace(key, Receipt{key, self_, now_ms, write.outcome});
    }
  }
  for (const auto& r : batch.receipts) durable_.receipts.emplace(std::pair(r.event, r.target), r);
  for (const auto& r : batch.receipts_confirmed) durable_.receipts_owed.erase(r.event);
  for (const auto& key : batch.replicated) durable_.replicated.insert(key);
  for (const auto& [peer, through] : batch.peer_held)
    durable_.peer_held[peer] = std::max(durable_.peer_held[peer], through);
  for (const auto& alarm : batch.alarms) {
    const std::pair key(alarm.peer, alarm.reason);
    const bool changed =
        alarm.raised ? durable_.open_alarms.insert(key).second : durable_.open_alarms.erase(key) > 0;
    if (changed) durable_.alarms.push_back({alarm.peer, alarm.raised, now_ms, alarm.reason, alarm.note});
  }
  for (const auto& settle : batch.settled) {
    ++durable_.settled_writes;
    durable_.seqs[settle.origin].settle_range(settle.range.first, settle.range.last);
  }
}

std::vector<EventPtr> SimStore::answer(const LoadRequest& request) const {
  std::vector<EventPtr> out;
  for (const auto& key : request.keys) {
    if (auto it = durable_.log.find(key); it != durable_.log.end()) out.push_back(it->second);
  }
  return out;
}

EventPtr SimStore::commit_local(v1::Event event, std::int64_t now_ms, const Numbering& numbering) {
  event.set_origin(self_);
  const std::uint64_t seq =
      life_.first(durable_.next_seq, state_.high_water, numbering, entropy_());
  life_.numbered(seq, numbering);
  event.set_seq(seq);
  durable_.next_seq = seq + 1;
  state_.high_water = std::max(state_.high_water, seq);  // fsynced before the commit
  v1::SignedEvent signed_event;
  event.SerializeToString(signed_event.mutable_event());
  // The simulator checks no signatures; a signature's bytes keep sizes real.
  signed_event.set_signature(std::string(64, '\0'));
  EventPtr ptr = make_event(signed_event, event);
  durable_.log.emplace(ptr->key, ptr);
  durable_.seqs[self_].add(ptr->key.seq);
  if (targets_node(*ptr, self_, groups_)) {
    ++durable_.delivered[ptr->key];
    durable_.outcomes[ptr->key] = v1::OUTCOME_DELIVERED;
    durable_.receipts.emplace(std::pair(ptr->key, self_), Receipt{ptr->key, self_, now_ms});
  }
  return ptr;
}

Snapshot SimStore::snapshot(const std::vector<std::string>& origins) {
  Snapshot s;
  for (const auto& origin : origins) s.stored[origin];
  for (const auto& [origin, seqs] : durable_.seqs) s.stored[origin] = seqs;
  for (auto it = durable_.log.lower_bound({self_, 1});
       it != durable_.log.end() && it->first.origin == self_; ++it) {
    if (!durable_.replicated.contains(it->first)) s.unreplicated.push_back(it->second);
  }
  for (const auto& [key, event] : durable_.log) {
    if (event->kind == v1::KIND_ALL_CLEAR || event->kind == v1::KIND_CANCEL)
      s.endings.push_back(event);
  }
  for (const auto& [key, receipt] : durable_.receipts_owed) s.receipts_owed.push_back(receipt);
  s.open_alarms.assign(durable_.open_alarms.begin(), durable_.open_alarms.end());
  // As relay/store/numbering.cc decides at relayd's start.
  const std::uint64_t db_max = std::max(durable_.seqs[self_].highest(), durable_.next_seq - 1);
  s.restored = !state_.lost && db_max < state_.high_water;
  s.own_high_water = state_.lost ? db_max : std::max(state_.high_water, db_max);
  state_ = NodeState{s.own_high_water, false};
  durable_.next_seq = std::max(durable_.next_seq, s.own_high_water + 1);
  return s;
}

std::map<std::string, std::uint64_t> SimStore::prune(std::uint64_t keep,
                                                     const std::vector<std::string>& peers,
                                                     bool force) {
  std::map<std::string, std::uint64_t> pruned;
  for (auto& [origin, seqs] : durable_.seqs) {
    std::uint64_t through = seqs.watermark() > keep ? seqs.watermark() - keep : 0;
    if (origin == self_ && !force) {
      // Own events only once every configured peer holds them, as prune_log.
      for (const auto& peer : peers) through = std::min(through, durable_.peer_held[peer]);
    }
    if (through <= seqs.settled_through()) continue;
    std::erase_if(durable_.log, [&](const auto& entry) {
      return entry.first.origin == origin && entry.first.seq <= through;
    });
    seqs.settle_through(through);
    pruned[origin] = through;
  }
  return pruned;
}

}  // namespace relay::sim

#include "relay/sim/sim_store.h"

namespace relay::sim {

void SimStore::apply(const StoreBatch& batch, std::int64_t now_ms) {
  for (const auto& write : batch.events) {
    const EventKey& key = write.event->key;
    if (!durable_.log.emplace(key, write.event).second) continue;  // ON CONFLICT DO NOTHING
    durable_.seqs[key.origin].add(key.seq);
    if (write.deliver) {
      ++durable_.delivered[key];
      if (key.origin != self_) durable_.receipts_owed.emplace(key, now_ms);
    }
  }
  for (const auto& r : batch.receipts)
    durable_.receipts.emplace(std::pair(r.event, r.target), r.delivered_unix_ms);
  for (const auto& r : batch.receipts_confirmed) durable_.receipts_owed.erase(r.event);
  for (const auto& key : batch.replicated) durable_.replicated.insert(key);
  for (const auto& alarm : batch.alarms)
    durable_.alarms.push_back({alarm.peer, alarm.raised, now_ms});
}

std::vector<EventPtr> SimStore::answer(const LoadRequest& request) const {
  std::vector<EventPtr> out;
  for (const auto& key : request.keys) {
    if (auto it = durable_.log.find(key); it != durable_.log.end()) out.push_back(it->second);
  }
  return out;
}

EventPtr SimStore::commit_local(v1::Event event, std::int64_t now_ms) {
  event.set_origin(self_);
  event.set_seq(durable_.next_seq++);
  v1::SignedEvent signed_event;
  event.SerializeToString(signed_event.mutable_event());
  // The simulator checks no signatures; a signature's bytes keep sizes real.
  signed_event.set_signature(std::string(64, '\0'));
  EventPtr ptr = make_event(signed_event, event);
  durable_.log.emplace(ptr->key, ptr);
  durable_.seqs[self_].add(ptr->key.seq);
  if (targets_node(ptr->targets, self_, groups_)) {
    ++durable_.delivered[ptr->key];
    durable_.receipts.emplace(std::pair(ptr->key, self_), now_ms);
  }
  return ptr;
}

Snapshot SimStore::snapshot(const std::vector<std::string>& origins) const {
  Snapshot s;
  for (const auto& origin : origins) s.stored[origin];
  for (const auto& [origin, seqs] : durable_.seqs) s.stored[origin] = seqs;
  for (auto it = durable_.log.lower_bound({self_, 1});
       it != durable_.log.end() && it->first.origin == self_; ++it) {
    if (!durable_.replicated.contains(it->first)) s.unreplicated.push_back(it->second);
  }
  for (const auto& [key, at] : durable_.receipts_owed) s.receipts_owed.push_back({key, self_, at});
  return s;
}

}  // namespace relay::sim

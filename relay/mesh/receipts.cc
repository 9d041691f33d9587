// Receipts: a target tells the origin when it delivered each event, retried
// until the origin confirms, and relayed through a live peer when the
// direct path fails.
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// One delivery entry at most: seq (up to 2^63) and timestamp varints, the
// outcome, framing.
constexpr std::size_t kDeliverySize = 22;
// Datagrams of receipts per attempt; the rest go on the next.
constexpr int kReceiptDatagrams = 8;

}  // namespace

void Node::owe_receipt(Time now, const EventKey& key, std::int64_t delivered_unix_ms,
                       v1::Outcome outcome, bool urgent) {
  Peer* origin = find_peer(key.origin);
  if (origin == nullptr) return;
  // Beyond the bound the receipt stays only in the store, which hands it
  // back at the next start.
  if (origin->receipts_owed.size() >= tuning_.max_receipts_owed) return;
  if (origin->receipts_owed.empty()) {
    origin->receipts_due = now;
    origin->receipt_attempts = 0;
  }
  origin->receipts_owed.emplace(key.seq, std::pair(delivered_unix_ms, outcome));
  if (urgent) {
    origin->urgent_receipts.insert(key.seq);
    origin->receipts_due = now;
  }
  dirty_.insert(index_of(*origin));
}

void Node::send_receipts(Time now, Peer& origin) {
  const std::size_t per_datagram = (tuning_.max_body - 80) / kDeliverySize;
  auto add = [&](v1::Datagram& d, std::uint64_t seq) {
    auto* r = d.mutable_receipts();
    r->set_origin(origin.info.id);
    r->set_target(self_);
    auto* delivery = r->add_deliveries();
    delivery->set_seq(seq);
    delivery->set_delivered_unix_ms(origin.receipts_owed.at(seq).first);
    delivery->set_outcome(origin.receipts_owed.at(seq).second);
  };
  ++origin.receipt_attempts;
  const bool relay = origin.receipt_attempts > tuning_.relay_after || suspect(now, origin);
  Peer* via = relay ? random_live_peer(now, origin.info.id, "") : nullptr;
  // A duress's receipts skip the pacer and go on every live path.
  std::erase_if(origin.urgent_receipts,
                [&](std::uint64_t seq) { return !origin.receipts_owed.contains(seq); });
  if (!origin.urgent_receipts.empty()) {
    v1::Datagram d;
    for (std::uint64_t seq : origin.urgent_receipts) {
      if (static_cast<std::size_t>(d.receipts().deliveries_size()) == per_datagram) break;
      add(d, seq);
    }
    send(origin, d, {live_paths(now, origin), false, false});
    if (via != nullptr) send(*via, d);
  }
  // The rest at the pacer's rate: receipts of a bulk flood are bulk too.
  auto it = origin.receipts_owed.begin();
  int sent = 0;
  for (; sent < kReceiptDatagrams && it != origin.receipts_owed.end(); ++sent) {
    if (!origin.pacer.ready(now)) break;
    v1::Datagram d;
    for (std::size_t i = 0; i < per_datagram && it != origin.receipts_owed.end(); ++i, ++it) {
      add(d, it->first);
    }
    const bool last = it == origin.receipts_owed.end() || sent + 1 == kReceiptDatagrams;
    send(origin, d, {0, true, last});
    if (via != nullptr) send(*via, d);
  }
  if (sent == 0 && it != origin.receipts_owed.end()) {
    // Not an attempt: they wait for the pacer.
    --origin.receipt_attempts;
    origin.receipts_due = origin.pacer.next_ready(now);
  } else {
    // Backoff as for events, at normal priority; the origin's confirmation
    // brings the rest sooner.
    Event normal;
    origin.receipts_due = now + rto(origin, normal, std::max(1, origin.receipt_attempts));
  }
  wake(origin, origin.receipts_due);
}

void Node::handle_receipts(Time now, Peer& from, const v1::Receipts& receipts) {
  if (receipts.origin() != self_) {
    // We are the relay: one hop on, no state kept; the target retries.
    if (Peer* origin = find_peer(receipts.origin()); origin != nullptr && origin != &from) {
      v1::Datagram d;
      *d.mutable_receipts() = receipts;
      send(*origin, d);
    }
    return;
  }
  Peer* target = find_peer(receipts.target());
  if (target == nullptr) return;
  for (const auto& delivery : receipts.deliveries()) {
    const EventKey key{self_, delivery.seq()};
    if (!stored_[self_].contains(key.seq)) continue;  // not an event of ours
    // A receipt proves the target holds the event: stop pushing it there.
    acked(now, *target, key);
    batch_.receipts.push_back(
        {key, target->info.id, delivery.delivered_unix_ms(), delivery.outcome()});
    batch_receipt_via_.push_back(from.info.id);
  }
}

void Node::handle_receipt_acks(Time now, Peer& from, const v1::ReceiptAcks& acks) {
  if (acks.target() != self_) {
    if (Peer* target = find_peer(acks.target()); target != nullptr && target != &from) {
      v1::Datagram d;
      *d.mutable_receipt_acks() = acks;
      send(*target, d);
    }
    return;
  }
  Peer* origin = find_peer(acks.origin());
  if (origin == nullptr) return;
  bool progress = false;
  for (std::uint64_t seq : acks.seqs()) {
    auto it = origin->receipts_owed.find(seq);
    if (it == origin->receipts_owed.end()) continue;
    batch_.receipts_confirmed.push_back(
        {{origin->info.id, seq}, self_, it->second.first, it->second.second});
    origin->receipts_owed.erase(it);
    origin->urgent_receipts.erase(seq);
    progress = true;
  }
  if (progress && !origin->receipts_owed.empty()) {
    // The path works: send the rest now rather than at the backoff.
    origin->receipt_attempts = 0;
    origin->receipts_due = now;
    dirty_.insert(index_of(*origin));
  }
}

}  // namespace relay::mesh

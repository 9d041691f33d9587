// The life of a site around the protocol: settled history (pruned or
// skipped seqs), learning where this node's own numbering stands after its
// database was rebuilt or restored, and what is delivered here at all
// (history, expiry, all-clears).
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// Urgent seqs remembered per origin and named in its summaries.
constexpr std::size_t kMaxUrgent = 4;
// Conflicts kept until the runtime takes them.
constexpr std::size_t kMaxConflicts = 16;
// Holes of one origin examined for settling in one summary.
constexpr std::size_t kSettleHoles = 1024;
// Settled ranges whose write is under way, at most.
constexpr std::size_t kMaxSettling = 4096;

/// The parts of `r` that `summary` says are settled.
std::vector<SeqRange> settled_parts(const SeqRange& r, const v1::OriginSummary& summary) {
  std::vector<SeqRange> out;
  if (r.first <= summary.settled_through()) {
    out.push_back({r.first, std::min(r.last, summary.settled_through())});
  }
  for (const auto& v : summary.settled()) {
    const std::uint64_t first = std::max(r.first, v.first());
    const std::uint64_t last = std::min(r.last, v.last());
    if (first <= last && first > summary.settled_through()) out.push_back({first, last});
  }
  return out;
}

}  // namespace

void Node::settle_from(Peer& /*from*/, const v1::OriginSummary& summary) {
  const std::string& origin = summary.origin();
  if (origin == self_) return;  // an origin settles its own seqs itself
  const SeqSet& mine = stored_[origin];
  // At the bound of void ranges nothing is settled (in memory or in the
  // database): pulled for in vain rather than held without a record.
  if (mine.void_full()) return;
  // Quick path: nothing settled beyond what this node already holds.
  std::uint64_t claimed = summary.settled_through();
  for (const auto& v : summary.settled()) claimed = std::max(claimed, v.last());
  if (claimed <= mine.watermark()) return;
  // Believed only below the highest seq of the origin held here: a peer can
  // settle history this node lacks, never the origin's future events.
  if (mine.highest() == 0) return;
  const std::uint64_t bound = mine.highest() - 1;
  for (SeqRange hole : mine.holes(kSettleHoles)) {
    hole.last = std::min(hole.last, bound);
    if (hole.first > hole.last) continue;
    for (const auto& part : settled_parts(hole, summary)) {
      // Written once while its write is under way, however many digests
      // repeat it meanwhile (a slow or absent database); a peer varying
      // the ranges fills a bounded set, and digests repeat what is skipped.
      if (settling_.size() < kMaxSettling &&
          settling_.emplace(origin, part.first, part.last).second) {
        batch_.settled.push_back({origin, part});
      }
    }
  }
}

void Node::learn_from(Time now, Peer& from, const v1::OriginSummary& summary) {
  // What a peer holds of this node's own events: numbering continues above
  // it, and it is pulled back if this node's database lost it.
  const SeqSet& own = stored_[self_];
  if (summary.highest() > own.highest() && !restored_ && (learning_ || resolve_at_)) {
    restored_ = true;  // the mesh holds own events this database never had: restored
  }
  mesh_highest_own_ = std::max(mesh_highest_own_, summary.highest());
  // Every answer counts for the whole life, however late: numbering is sure
  // of where it stands once each configured peer has answered.
  learned_from_.insert(from.info.id);
  if (!learning_ && !resolve_at_) return;
  if (summary.watermark() > 0) own_seen_.add(1, summary.watermark());
  std::uint64_t next = summary.watermark() + 1;
  for (const auto& h : summary.holes()) {
    if (h.first() > next) own_seen_.add(next, std::min(h.first() - 1, summary.highest()));
    next = std::max(next, h.last() + 1);
  }
  if (next <= summary.highest()) own_seen_.add(next, summary.highest());
  if (!learning_) return;
  if (sure()) {
    learning_ = false;
    resolve_own(now, false);
  }
}

void Node::learn_round(Time now) {
  // Quickly at start; then, while a peer has not answered (it is down), now
  // and then, so that numbering learns where it stands when it returns.
  next_learn_ = now + (learning_ ? std::chrono::seconds(1) : std::chrono::seconds(5));
  for (auto& peer : peers_) {
    if (!learned_from_.contains(peer.info.id)) send_digest(peer, {self_}, true);
  }
}

void Node::resolve_own(Time now, bool all) {
  // Own seqs up to the highest known anywhere that this node does not hold:
  // those no peer holds will never exist and are settled now; those a peer
  // holds are pulled back, and settled after resolve_after if they never come.
  const SeqSet& own = stored_[self_];
  const std::uint64_t top = std::max({own.highest(), own_high_water_, mesh_highest_own_});
  std::vector<SeqRange> unheld = own.holes(SIZE_MAX);
  if (top > own.highest()) unheld.push_back({own.highest() + 1, top});
  bool waiting = false;
  for (const auto& range : unheld) {
    for (std::uint64_t seq = range.first; seq <= range.last;) {
      // Split the range into runs that some peer holds and runs nobody does.
      const bool seen = own_seen_.contains(seq);
      std::uint64_t end = range.last;
      for (const auto& [f, l] : own_seen_.ranges()) {
        if (seen && f <= seq && seq <= l) end = std::min(end, l);
        if (!seen && f > seq) {
          end = std::min(end, f - 1);
          break;
        }
      }
      if (seen && !all) {
        waiting = true;
      } else if (!own.void_full()) {
        batch_.settled.push_back({self_, {seq, end}});
      }
      if (end == UINT64_MAX) break;
      seq = end + 1;
    }
  }
  resolve_at_.reset();
  if (waiting) resolve_at_ = now + tuning_.resolve_after;
  if (!waiting) own_seen_ = RangeSet{};
}

bool Node::sure() const {
  return learned_from_.size() >= peers_.size();
}

Numbering Node::numbering() const {
  auto own = stored_.find(self_);
  const std::uint64_t held = own == stored_.end() ? 0 : own->second.highest();
  return {!learning_, std::max({held, own_high_water_, mesh_highest_own_}), !sure()};
}

void Node::on_pruned(Time now, const std::map<std::string, std::uint64_t>& settled_through) {
  now_ = now;
  for (const auto& [origin, through] : settled_through) {
    auto it = stored_.find(origin);
    if (it != stored_.end()) it->second.settle_through(through);
  }
  finish(now);
}

std::int64_t Node::origin_now_ms(const std::string& origin) const {
  // An event's age is judged on its origin's own clock, as its peers last
  // measured it, so that a clinic whose clock is a day behind is not aged
  // out; an origin never heard from directly falls back on this clock.
  if (auto it = peer_index_.find(origin); it != peer_index_.end()) {
    if (const auto& offset = peers_[it->second].clock_offset_ms) return wall_() + *offset;
  }
  return wall_();
}

StoreBatch::Write Node::decide(const EventPtr& event) const {
  StoreBatch::Write write{event, is_target(*event)};
  if (!write.target) return write;
  const Event& e = *event;
  const std::int64_t origin_now = origin_now_ms(e.key.origin);
  const Duration age = milliseconds(origin_now - e.created_unix_ms);
  // A duress is withheld only when its all-clear is here already: never for
  // its age, whoever's clock it is judged by.
  const bool duress = e.kind == v1::KIND_DURESS || e.priority == v1::PRIORITY_DURESS;
  // Beyond its maker's rights: not delivered, and what it would end stays;
  // this node raises a relay.policy row instead (never for a duress: an
  // all-clear is not one).
  for (const auto& key : e.references) {
    if (auto why = refusal(e.kind, e.key.origin, key); !why.empty()) {
      write.outcome = v1::OUTCOME_REFUSED;
      write.refusal = why;
      return write;
    }
  }
  // Sent beyond its origin's rights: refused, except a duress, which is
  // delivered all the same and flagged (an alarm lost to a policy typo is
  // worse than one sent by the wrong site).
  if (auto why = policy_.send_refusal(sending_of(e), [this](const std::string& id) {
        return groups_of(id);
      });
      !why.empty()) {
    if (!duress) {
      write.outcome = v1::OUTCOME_REFUSED;
      write.refusal = why;
      return write;
    }
    write.outside_policy = why;
  }
  // What ended it held here first; for an update, what ended the alert it
  // updates (new text for an alert that is over would reopen it).
  auto ended = withheld_.find(e.key);
  if (e.kind == v1::KIND_UPDATE && !e.references.empty()) ended = withheld_.find(e.references[0]);
  if (ended != withheld_.end() && withholds_as(e.kind) == v1::OUTCOME_DELIVERED) {
    write.outcome = ended->second;
  } else if (!duress && e.expires_unix_ms != 0 && origin_now >= e.expires_unix_ms) {
    write.outcome = v1::OUTCOME_EXPIRED;
  } else if (!duress && age > tuning_.max_age) {
    write.outcome = v1::OUTCOME_TOO_OLD;
  } else if (age > tuning_.late_after) {
    write.outcome = v1::OUTCOME_DELIVERED_LATE;
  }
  // Raised before this node started after a restore: it may have been
  // delivered here before, into a message_queue the restore rolled back.
  write.redelivered = restored_ && age >= milliseconds(wall_() - started_wall_ms_);
  return write;
}

void Node::note_urgent(const Event& event) {
  if (event.priority < v1::PRIORITY_EMERGENCY) return;
  auto& seqs = urgent_[event.key.origin];
  if (std::find(seqs.begin(), seqs.end(), event.key.seq) != seqs.end()) return;
  seqs.push_front(event.key.seq);
  if (seqs.size() > kMaxUrgent) seqs.pop_back();
}

void Node::note_conflict(const EventKey& key, const std::string& from, const EventPtr& held,
                         const EventPtr& incoming) {
  ++stats_.conflicts;
  if (conflicts_.size() < kMaxConflicts) conflicts_.push_back({key, from, held, incoming});
  // Tell the origin, in a message it can verify: the event held here, under
  // its own signature. Only a real conflict makes it one there too, and the
  // origin heals (Node::replace_own).
  if (key.origin == self_) return;
  if (Peer* origin = find_peer(key.origin)) push(*origin, held);
}

void Node::replace_own(Time now, const EventPtr& mesh_version) {
  now_ = now;
  // The mesh holds its own event under this seq: that one is served and
  // acked from now on, and ours stops going out under it.
  const EventKey& key = mesh_version->key;
  if (auto cached = cache_.find(key); cached != cache_.end()) {
    cached->second = mesh_version;
  } else {
    cache(mesh_version);
  }
  for (auto& peer : peers_) {
    if (auto f = peer.in_flight.find(key); f != peer.in_flight.end()) {
      peer.retry_at.erase({f->second.event->priority, f->second.due, key});
      peer.in_flight.erase(f);
    }
    if (auto q = peer.queued_events.find(key); q != peer.queued_events.end()) {
      peer.queue.erase({static_cast<int>(q->second->priority), key});
      peer.queued_events.erase(q);
    }
    peer.owed_urgent.erase(key);
  }
  unreplicated_.erase(key);
  ++stats_.healed;
  // Proof that this node's numbering was rewound: unsure again, and asking
  // every peer anew, until all have said what they hold of it.
  learned_from_.clear();
  learning_ = true;
  learn_until_ = now + tuning_.learn_timeout;
  learn_round(now);
  finish(now);
}

}  // namespace relay::mesh

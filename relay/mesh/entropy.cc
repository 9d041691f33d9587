// Anti-entropy: periodic digest exchanges that find and fill what direct
// delivery left behind, highest priority first, bounded per exchange.
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// The field tag and length of a summary inside a digest.
constexpr std::size_t kSummaryFraming = 3;
constexpr std::size_t kHoleSize = 12;
// Holes listed per origin; more are left for later rounds.
constexpr std::size_t kMaxHoles = 16;

}  // namespace

void Node::entropy_round(Time now) {
  const double spread = std::uniform_real_distribution<>(0.75, 1.25)(rng_);
  next_entropy_ = now + std::chrono::duration_cast<Duration>(tuning_.entropy_interval * spread);
  Peer* peer = nullptr;
  if (catch_up_) {
    peer = &peers_[*catch_up_];
    catch_up_.reset();
  } else {
    peer = random_live_peer(now, "", "");
  }
  if (peer == nullptr || stored_.empty()) return;
  ++stats_.entropy_rounds;

  // Hot origins first, then as many others as fit, continuing where the
  // last round stopped, so that a large mesh is covered over several rounds.
  v1::Digest digest;
  digest.set_reply(true);
  std::size_t used = 4;
  std::set<std::string> named;
  for (const auto& origin : hot_) add_summary(digest, origin, used, named);
  auto it = stored_.begin();
  std::advance(it, entropy_cursor_ % stored_.size());
  for (std::size_t n = 0; n < stored_.size(); ++n, ++it) {
    if (it == stored_.end()) it = stored_.begin();
    const std::size_t before = digest.origins_size();
    add_summary(digest, it->first, used, named);
    if (static_cast<std::size_t>(digest.origins_size()) == before && !named.contains(it->first))
      break;
    ++entropy_cursor_;
  }
  v1::Datagram d;
  *d.mutable_digest() = std::move(digest);
  send(*peer, d);
}

void Node::handle_digest(Time now, Peer& from, const v1::Digest& digest) {
  if (!store_ready_) {
    // Nothing to compare with yet; what the peer holds still stops pushes.
    for (const auto& summary : digest.origins()) ack_held(now, from, summary);
    return;
  }
  std::vector<EventKey> give;
  v1::Datagram pulls;
  std::size_t pull_left = tuning_.pull_budget;
  std::size_t pull_bytes = 4;
  for (const auto& summary : digest.origins()) {
    auto mine = stored_.find(summary.origin());
    if (mine == stored_.end()) continue;
    settle_from(from, summary);
    if (summary.origin() == self_) {
      learn_from(now, from, summary);
      // What it holds now, as it says: lower too after a restore there.
      const std::uint64_t held = mine->second.covered_through(summary);
      if (held != from.own_held) {
        from.own_held = held;
        from.own_held_moved = true;
      }
    }
    ack_held(now, from, summary);

    // Offer the urgent events it lacks first, then the rest lowest first.
    if (auto urgent = urgent_.find(summary.origin()); urgent != urgent_.end()) {
      for (std::uint64_t seq : urgent->second) {
        if (give.size() < tuning_.entropy_budget && !summary_contains(summary, seq) &&
            mine->second.servable(seq)) {
          give.push_back({summary.origin(), seq});
        }
      }
    }
    if (give.size() < tuning_.entropy_budget) {
      for (std::uint64_t seq :
           mine->second.missing_from(summary, tuning_.entropy_budget - give.size())) {
        if (std::find(give.begin(), give.end(), EventKey{summary.origin(), seq}) == give.end())
          give.push_back({summary.origin(), seq});
      }
    }
    if (pull_left > 0 && pull_bytes + 64 < tuning_.max_body) {
      // The urgent seqs it names come first, each a range of its own.
      std::vector<SeqRange> ranges;
      for (std::uint64_t seq : summary.urgent()) {
        if (!mine->second.contains(seq) && summary_serves(summary, seq))
          ranges.push_back({seq, seq});
      }
      for (const auto& r : mine->second.lacking(summary, 8)) ranges.push_back(r);
      if (ranges.empty()) continue;
      auto* pull = pulls.mutable_pulls()->add_pulls();
      pull->set_origin(summary.origin());
      pull_bytes += summary.origin().size() + 4;
      for (const auto& r : ranges) {
        if (pull_left == 0 || pull_bytes + kHoleSize > tuning_.max_body) break;
        const std::uint64_t last = std::min(r.last, r.first + pull_left - 1);
        auto* range = pull->add_ranges();
        range->set_first(r.first);
        range->set_last(last);
        pull_left -= last - r.first + 1;
        pull_bytes += kHoleSize;
      }
    }
  }
  if (pulls.pulls().pulls_size() > 0) {
    send(from, pulls);
    // A full pull means more is missing: exchange with this peer again as
    // soon as these have had time to arrive, instead of a whole interval.
    if (pull_left == 0) {
      catch_up_ = index_of(from);
      const Duration soon = std::max<Duration>(milliseconds(100), 2 * from.rtt.srtt());
      next_entropy_ = std::min(next_entropy_, now + soon);
    }
  }
  if (!give.empty()) serve(from, std::move(give));
  if (digest.reply()) {
    // Answer with ours: the same origins, then our hot ones, so that the
    // sender can pull what we have and it did not think to ask about.
    std::vector<std::string> origins;
    for (const auto& summary : digest.origins()) origins.push_back(summary.origin());
    origins.insert(origins.end(), hot_.begin(), hot_.end());
    send_digest(from, origins, false);
  }
}

void Node::ack_held(Time now, Peer& from, const v1::OriginSummary& summary) {
  // What the peer holds needs no more pushing: a digest is an ack too.
  std::vector<EventKey> held;
  for (auto f = from.in_flight.lower_bound({summary.origin(), 1});
       f != from.in_flight.end() && f->first.origin == summary.origin(); ++f) {
    if (summary_contains(summary, f->first.seq)) held.push_back(f->first);
  }
  for (const auto& key : held) acked(now, from, key);
}

void Node::send_digest(Peer& to, const std::vector<std::string>& origins, bool reply) {
  v1::Datagram d;
  d.mutable_digest()->set_reply(reply);
  std::size_t used = 4;
  std::set<std::string> named;
  for (const auto& origin : origins) add_summary(*d.mutable_digest(), origin, used, named);
  send(to, d);
}

void Node::add_summary(v1::Digest& digest, const std::string& origin, std::size_t& used,
                       std::set<std::string>& named) {
  auto mine = stored_.find(origin);
  if (mine == stored_.end() || named.contains(origin)) return;
  v1::OriginSummary summary;
  summary.set_origin(origin);
  mine->second.summarize(summary, kMaxHoles);
  if (auto urgent = urgent_.find(origin); urgent != urgent_.end()) {
    for (std::uint64_t seq : urgent->second) {
      if (mine->second.servable(seq)) summary.add_urgent(seq);
    }
  }
  // Its real size, so that a mesh of quiet origins packs many per digest.
  const std::size_t size = summary.ByteSizeLong() + kSummaryFraming;
  if (used + size > tuning_.max_body) return;
  named.insert(origin);
  *digest.add_origins() = std::move(summary);
  used += size;
}

void Node::mark_hot(const std::string& origin) {
  constexpr std::size_t kHotOrigins = 8;
  if (!hot_.empty() && hot_.front() == origin) return;
  std::erase(hot_, origin);
  hot_.push_front(origin);
  if (hot_.size() > kHotOrigins) hot_.pop_back();
}

void Node::handle_pulls(Time /*now*/, Peer& from, const v1::Pulls& pulls) {
  std::vector<EventKey> keys;
  std::set<EventKey> named;  // urgent seqs come first and again in their range
  std::vector<std::uint64_t> seqs;
  for (const auto& pull : pulls.pulls()) {
    auto mine = stored_.find(pull.origin());
    if (mine == stored_.end()) continue;
    for (const auto& r : pull.ranges()) {
      // Costs what it answers, however wide or hollow the range.
      seqs.clear();
      mine->second.collect(r.first(), r.last(), tuning_.pull_budget - keys.size(), seqs);
      for (std::uint64_t seq : seqs) {
        if (named.insert({pull.origin(), seq}).second) keys.push_back({pull.origin(), seq});
      }
    }
  }
  stats_.events_pulled += keys.size();
  if (!keys.empty()) serve(from, std::move(keys));
}

void Node::serve(Peer& to, std::vector<EventKey> keys) {
  // Through the peer's queue, so that what is served is paced and leaves
  // most urgent first, behind nothing more urgent; what the cache lacks is
  // loaded first.
  // The peer says it lacks them: one in flight there long enough to have
  // arrived goes again now, not at the end of a backoff.
  LoadRequest load;
  for (auto& key : keys) {
    if (auto f = to.in_flight.find(key); f != to.in_flight.end()) {
      if (now_ - f->second.sent > to.rtt.srtt() + tuning_.rto_floor) resend_soon(now_, to, key);
    } else if (auto it = cache_.find(key); it != cache_.end()) {
      push(to, it->second);
    } else {
      load.keys.push_back(std::move(key));
    }
  }
  // Loads are bounded too: a peer asking faster than the store answers
  // simply asks again in a later round.
  constexpr std::size_t kMaxLoads = 64;
  if (!load.keys.empty() && loads_.size() < kMaxLoads) {
    load.ticket = next_ticket_++;
    loads_[load.ticket] = Load{to.info.id, {}};
    store_.load(std::move(load));
  }
}

}  // namespace relay::mesh

// Anti-entropy: periodic digest exchanges that find and fill what direct
// delivery left behind, highest priority first, bounded per exchange.
#include <algorithm>

#include "relay/mesh/node.h"

namespace relay::mesh {
namespace {

// An origin summary without holes: origin, watermark, highest, framing.
constexpr std::size_t kSummaryBase = 24;
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

  // As many origins as fit, continuing where the last round stopped, so a
  // large mesh is covered over several rounds.
  v1::Digest digest;
  digest.set_reply(true);
  std::size_t used = 4;
  auto it = stored_.begin();
  std::advance(it, entropy_cursor_ % stored_.size());
  for (std::size_t n = 0; n < stored_.size(); ++n, ++it) {
    if (it == stored_.end()) it = stored_.begin();
    const std::size_t size = kSummaryBase + it->first.size() + kHoleSize * kMaxHoles;
    if (used + size > tuning_.max_body) break;
    auto* summary = digest.add_origins();
    summary->set_origin(it->first);
    it->second.summarize(*summary, kMaxHoles);
    used += size;
    ++entropy_cursor_;
  }
  v1::Datagram d;
  *d.mutable_digest() = std::move(digest);
  send(*peer, d);
}

void Node::handle_digest(Time now, Peer& from, const v1::Digest& digest) {
  std::vector<EventKey> give;
  v1::Datagram pulls;
  std::size_t pull_left = tuning_.pull_budget;
  std::size_t pull_bytes = 4;
  for (const auto& summary : digest.origins()) {
    auto mine = stored_.find(summary.origin());
    if (mine == stored_.end()) continue;
    // What the peer holds needs no more pushing: the digest is an ack too.
    std::vector<EventKey> held;
    for (auto f = from.in_flight.lower_bound({summary.origin(), 1});
         f != from.in_flight.end() && f->first.origin == summary.origin(); ++f) {
      if (summary_contains(summary, f->first.seq)) held.push_back(f->first);
    }
    for (const auto& key : held) acked(now, from, key);

    if (give.size() < tuning_.entropy_budget) {
      for (std::uint64_t seq : mine->second.missing_from(summary, tuning_.entropy_budget - give.size())) {
        give.push_back({summary.origin(), seq});
      }
    }
    if (pull_left > 0 && pull_bytes + 64 < tuning_.max_body) {
      auto ranges = mine->second.lacking(summary, 8);
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
  if (!give.empty()) serve(now, from, std::move(give));
  if (digest.reply()) {
    // Answer with ours, covering the same origins, so the sender can pull.
    v1::Datagram d;
    for (const auto& summary : digest.origins()) {
      auto mine = stored_.find(summary.origin());
      if (mine == stored_.end()) continue;
      auto* s = d.mutable_digest()->add_origins();
      s->set_origin(summary.origin());
      mine->second.summarize(*s, kMaxHoles);
    }
    send(from, d);
  }
}

void Node::handle_pulls(Time now, Peer& from, const v1::Pulls& pulls) {
  std::vector<EventKey> keys;
  for (const auto& pull : pulls.pulls()) {
    auto mine = stored_.find(pull.origin());
    if (mine == stored_.end()) continue;
    for (const auto& r : pull.ranges()) {
      // Clamp to what is held, so a wide range costs no more than its answer.
      const std::uint64_t last = std::min(r.last(), mine->second.highest());
      for (std::uint64_t seq = std::max<std::uint64_t>(r.first(), 1);
           seq <= last && keys.size() < tuning_.pull_budget; ++seq) {
        if (mine->second.contains(seq)) keys.push_back({pull.origin(), seq});
      }
    }
  }
  stats_.events_pulled += keys.size();
  if (!keys.empty()) serve(now, from, std::move(keys));
}

void Node::serve(Time now, Peer& to, std::vector<EventKey> keys) {
  // Send what the cache holds at once, most urgent first; load the rest.
  std::vector<EventPtr> ready;
  LoadRequest load;
  for (auto& key : keys) {
    if (auto it = cache_.find(key); it != cache_.end()) {
      ready.push_back(it->second);
    } else {
      load.keys.push_back(std::move(key));
    }
  }
  std::stable_sort(ready.begin(), ready.end(),
                   [](const EventPtr& a, const EventPtr& b) { return a->priority > b->priority; });
  if (!ready.empty()) send_events(now, to, ready, {});
  if (!load.keys.empty()) {
    load.ticket = next_ticket_++;
    loads_[load.ticket] = to.info.id;
    store_.load(std::move(load));
  }
}

}  // namespace relay::mesh

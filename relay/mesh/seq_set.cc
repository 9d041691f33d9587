#include "relay/mesh/seq_set.h"

#include <algorithm>

namespace relay::mesh {

namespace v1 = relaymesh::v1;

namespace {

// Void ranges named in one summary.
constexpr int kSummaryVoidRanges = 8;
// Void ranges shown as missing in a summary, the most recent: what a node
// that still has such an event pushes. Older ones count as held there, so
// that the jumps of an origin's numbering over the years never crowd its
// newest events out of the summary's bounded list of holes.
constexpr std::size_t kWantedVoidRanges = 4;

/// True if a range ending at `last` touches or overlaps one starting at `first`.
bool touches(std::uint64_t last, std::uint64_t first) {
  return last == UINT64_MAX || last + 1 >= first;
}

/// The parts of `a` not in `b`; both sorted and disjoint. Stops after `limit` ranges.
std::vector<SeqRange> minus(const std::vector<SeqRange>& a, const std::vector<SeqRange>& b,
                            std::size_t limit) {
  std::vector<SeqRange> out;
  auto cut = b.begin();
  for (SeqRange r : a) {
    while (cut != b.end() && cut->last < r.first) ++cut;
    for (auto c = cut; c != b.end() && c->first <= r.last && out.size() < limit; ++c) {
      if (c->first > r.first) out.push_back({r.first, c->first - 1});
      if (c->last >= r.last) {
        r.first = 1;
        r.last = 0;  // consumed
        break;
      }
      r.first = c->last + 1;
    }
    if (r.first <= r.last && out.size() < limit) out.push_back(r);
    if (out.size() >= limit) break;
  }
  return out;
}

std::vector<SeqRange> held_ranges(std::uint64_t watermark, const RangeSet& above) {
  std::vector<SeqRange> held;
  if (watermark > 0) held.push_back({1, watermark});
  for (const auto& [f, l] : above.ranges()) held.push_back({f, l});
  return held;
}

/// What a peer's summary says it holds; with `servable_only`, without what it settled.
std::vector<SeqRange> summary_ranges(const v1::OriginSummary& s, bool servable_only) {
  std::vector<SeqRange> held;
  if (s.watermark() > 0) held.push_back({1, s.watermark()});
  std::uint64_t next = s.watermark() + 1;
  for (const auto& h : s.holes()) {
    if (h.first() > next) held.push_back({next, std::min(h.first() - 1, s.highest())});
    next = std::max(next, h.last() == UINT64_MAX ? h.last() : h.last() + 1);
    if (h.last() == UINT64_MAX) return held;
  }
  if (next <= s.highest()) held.push_back({next, s.highest()});
  if (!servable_only) return held;
  std::vector<SeqRange> unservable;
  if (s.settled_through() > 0) unservable.push_back({1, s.settled_through()});
  for (const auto& v : s.settled()) {
    if (v.first() > v.last() || v.first() <= s.settled_through()) continue;
    if (!unservable.empty() && v.first() <= unservable.back().last) continue;  // not sorted: skip
    unservable.push_back({v.first(), v.last()});
  }
  return minus(held, unservable, SIZE_MAX);
}

}  // namespace

std::uint64_t RangeSet::add(std::uint64_t first, std::uint64_t last) {
  first = std::max<std::uint64_t>(first, 1);
  if (first > last) return 0;
  std::uint64_t added = last - first + 1;
  std::uint64_t lo = first, hi = last;
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) --it;
  while (it != ranges_.end() && touches(hi, it->first)) {
    const auto [f, l] = *it;
    if (!touches(l, lo)) {  // the predecessor, apart from the new range
      ++it;
      continue;
    }
    const std::uint64_t of = std::max(f, first), ol = std::min(l, last);
    if (of <= ol) added -= ol - of + 1;
    lo = std::min(lo, f);
    hi = std::max(hi, l);
    it = ranges_.erase(it);
  }
  ranges_.emplace(lo, hi);
  return added;
}

bool RangeSet::contains(std::uint64_t seq) const {
  auto it = ranges_.upper_bound(seq);
  if (it == ranges_.begin()) return false;
  return seq <= std::prev(it)->second;
}

void RangeSet::erase_through(std::uint64_t through) {
  while (!ranges_.empty() && ranges_.begin()->first <= through) {
    const auto [f, l] = *ranges_.begin();
    ranges_.erase(ranges_.begin());
    if (l > through) {
      ranges_.emplace(through + 1, l);
      return;
    }
  }
}

bool RangeSet::erase(std::uint64_t seq) {
  auto it = ranges_.upper_bound(seq);
  if (it == ranges_.begin()) return false;
  --it;
  const auto [f, l] = *it;
  if (seq > l) return false;
  ranges_.erase(it);
  if (f < seq) ranges_.emplace(f, seq - 1);
  if (seq < l) ranges_.emplace(seq + 1, l);
  return true;
}

bool SeqSet::add(std::uint64_t seq) {
  if (void_.erase(seq)) return true;  // settled without it, now stored here
  if (seq == 0 || contains(seq)) return false;
  if (seq == watermark_ + 1) {
    watermark_ = seq;
    absorb();  // what arrived early and now joins the contiguous run
  } else {
    above_.add(seq, seq);
  }
  return true;
}

void SeqSet::add_range(std::uint64_t first, std::uint64_t last) {
  first = std::max<std::uint64_t>(first, 1);
  if (first > last || last <= watermark_) return;
  if (first > watermark_ + 1) {
    above_.add(first, last);
    return;
  }
  watermark_ = last;
  absorb();
}

void SeqSet::absorb() {
  above_.erase_through(watermark_);
  while (!above_.empty() && above_.front().first == watermark_ + 1) {
    watermark_ = above_.front().last;
    above_.erase_through(watermark_);
  }
}

bool SeqSet::contains(std::uint64_t seq) const {
  return (seq != 0 && seq <= watermark_) || above_.contains(seq);
}

void SeqSet::settle_through(std::uint64_t through) {
  if (through <= settled_through_) return;
  settled_through_ = through;
  add_range(1, through);
}

void SeqSet::settle_range(std::uint64_t first, std::uint64_t last) {
  first = std::max(first, settled_through_ + 1);
  if (first > last) return;
  // What was stored here stays held; the rest is void. At the bound the
  // range is left unsettled (pulled for in vain) rather than settled
  // without a record of what was never stored.
  const auto unheld = minus({{first, last}}, held_ranges(watermark_, above_), SIZE_MAX);
  if (void_.size() + unheld.size() > SeqSet::kMaxVoid) return;
  for (const auto& r : unheld) void_.add(r.first, r.last);
  if (first == settled_through_ + 1) {
    settle_through(last);  // continues the settled prefix
  } else {
    add_range(first, last);
  }
}

void SeqSet::mark_void(std::uint64_t first, std::uint64_t last) {
  for (const auto& r : minus({{first, last}}, held_ranges(watermark_, above_), SIZE_MAX)) {
    if (void_.size() < SeqSet::kMaxVoid) void_.add(r.first, r.last);
  }
}

bool SeqSet::servable(std::uint64_t seq) const {
  return contains(seq) && seq > settled_through_ && !void_.contains(seq);
}

namespace {

std::vector<SeqRange> unservable_ranges(std::uint64_t settled_through, RangeSet voids) {
  // Void ranges may lie inside the settled prefix: merged, sorted, disjoint.
  if (settled_through > 0) voids.add(1, settled_through);
  std::vector<SeqRange> out;
  for (const auto& [f, l] : voids.ranges()) out.push_back({f, l});
  return out;
}

}  // namespace

void SeqSet::collect(std::uint64_t first, std::uint64_t last, std::size_t limit,
                     std::vector<std::uint64_t>& out) const {
  first = std::max<std::uint64_t>(first, 1);
  if (first > last) return;
  std::vector<SeqRange> window{{first, last}};
  auto outside = unservable_ranges(settled_through_, void_);
  // Held seqs inside [first, last] = window minus what is not held.
  auto servable = minus(window, outside, SIZE_MAX);
  for (const auto& r : servable) {
    const auto held = minus({r}, holes(SIZE_MAX), SIZE_MAX);
    for (const auto& h : held) {
      for (std::uint64_t seq = h.first; seq <= std::min(h.last, highest()) && out.size() < limit;
           ++seq) {
        out.push_back(seq);
      }
      if (out.size() >= limit) return;
    }
  }
}

std::vector<SeqRange> SeqSet::holes(std::size_t limit) const {
  std::vector<SeqRange> out;
  std::uint64_t next = watermark_ + 1;  // lowest seq not yet accounted for
  for (const auto& [f, l] : above_.ranges()) {
    if (out.size() == limit) break;
    if (f > next) out.push_back({next, f - 1});
    next = l + 1;
  }
  return out;
}

void SeqSet::summarize(v1::OriginSummary& out, std::size_t hole_limit) const {
  // What is held: void seqs are shown as missing, so that a node that still
  // has one of those events pushes it here.
  auto held = held_ranges(watermark_, above_);
  const std::size_t wanted_voids = std::min(kWantedVoidRanges, void_.size());
  if (!void_.empty()) {
    RangeSet wanted;
    auto v = void_.ranges().rbegin();
    for (std::size_t n = 0; n < kWantedVoidRanges && v != void_.ranges().rend(); ++n, ++v)
      wanted.add(v->first, v->second);
    held = minus(held, unservable_ranges(0, wanted), SIZE_MAX);
  }
  std::size_t i = 0;
  std::uint64_t watermark = 0;
  if (!held.empty() && held.front().first == 1) watermark = held[i++].last;
  out.set_watermark(watermark);
  std::uint64_t highest = held.empty() ? 0 : held.back().last;
  out.clear_holes();
  for (std::uint64_t next = watermark + 1; i < held.size(); next = held[i++].last + 1) {
    if (static_cast<std::size_t>(out.holes_size()) == hole_limit + wanted_voids) {
      highest = next - 1;  // claim nothing beyond the first hole left out
      break;
    }
    auto* h = out.add_holes();
    h->set_first(next);
    h->set_last(held[i].first - 1);
  }
  out.set_highest(highest);
  out.set_settled_through(settled_through_);
  out.clear_settled();
  for (const auto& [f, l] : void_.ranges()) {
    if (l <= settled_through_) continue;  // said by the prefix
    if (out.settled_size() == kSummaryVoidRanges) break;
    auto* v = out.add_settled();
    v->set_first(f);
    v->set_last(l);
  }
}

bool summary_contains(const v1::OriginSummary& summary, std::uint64_t seq) {
  if (seq == 0) return false;
  if (seq <= summary.watermark()) return true;
  if (seq > summary.highest()) return false;
  for (const auto& h : summary.holes()) {
    if (seq >= h.first() && seq <= h.last()) return false;
  }
  return true;
}

bool summary_serves(const v1::OriginSummary& summary, std::uint64_t seq) {
  if (!summary_contains(summary, seq) || seq <= summary.settled_through()) return false;
  for (const auto& v : summary.settled()) {
    if (seq >= v.first() && seq <= v.last()) return false;
  }
  return true;
}

std::vector<std::uint64_t> SeqSet::missing_from(const v1::OriginSummary& other,
                                                std::size_t limit) const {
  // Ranges throughout, so that a long shared run or a wide settled range
  // costs nothing.
  const auto mine =
      minus(held_ranges(watermark_, above_), unservable_ranges(settled_through_, void_), SIZE_MAX);
  std::vector<std::uint64_t> out;
  for (const auto& r : minus(mine, summary_ranges(other, false), limit)) {
    for (std::uint64_t seq = r.first; seq <= r.last && out.size() < limit; ++seq)
      out.push_back(seq);
    if (out.size() >= limit) break;
  }
  return out;
}

std::uint64_t SeqSet::covered_through(const v1::OriginSummary& other) const {
  RangeSet covered;
  for (const auto& r : summary_ranges(other, false)) covered.add(r.first, r.last);
  for (const auto& r : unservable_ranges(settled_through_, void_)) covered.add(r.first, r.last);
  if (covered.empty() || covered.front().first != 1) return 0;
  return covered.front().last;
}

std::vector<SeqRange> SeqSet::lacking(const v1::OriginSummary& other, std::size_t limit) const {
  return minus(summary_ranges(other, true), held_ranges(watermark_, above_), limit);
}

}  // namespace relay::mesh

#include "relay/mesh/seq_set.h"

#include <algorithm>

namespace relay::mesh {

namespace v1 = relaymesh::v1;

bool SeqSet::add(std::uint64_t seq) {
  if (seq == 0 || contains(seq)) return false;
  if (seq == watermark_ + 1) {
    watermark_ = seq;
    absorb();  // what arrived early and now joins the contiguous run
  } else {
    above_.insert(seq);
  }
  return true;
}

void SeqSet::add_range(std::uint64_t first, std::uint64_t last) {
  first = std::max<std::uint64_t>(first, 1);
  if (first > last) return;
  if (first > watermark_ + 1) {
    // Above a hole: held one by one until the hole fills (rare, and small).
    for (std::uint64_t seq = first; seq <= last && seq != 0; ++seq) above_.insert(seq);
    return;
  }
  if (last <= watermark_) return;
  above_.erase(above_.begin(), above_.upper_bound(last));
  watermark_ = last;
  absorb();
}

void SeqSet::absorb() {
  while (!above_.empty() && *above_.begin() == watermark_ + 1) {
    watermark_ = *above_.begin();
    above_.erase(above_.begin());
  }
}

bool SeqSet::contains(std::uint64_t seq) const {
  return (seq != 0 && seq <= watermark_) || above_.contains(seq);
}

void SeqSet::collect(std::uint64_t first, std::uint64_t last, std::size_t limit,
                     std::vector<std::uint64_t>& out) const {
  first = std::max<std::uint64_t>(first, 1);
  for (std::uint64_t seq = first; seq <= std::min(last, watermark_) && out.size() < limit; ++seq) {
    out.push_back(seq);
  }
  for (auto it = above_.lower_bound(std::max(first, watermark_ + 1));
       it != above_.end() && *it <= last && out.size() < limit; ++it) {
    out.push_back(*it);
  }
}

std::vector<SeqRange> SeqSet::holes(std::size_t limit) const {
  std::vector<SeqRange> out;
  std::uint64_t next = watermark_ + 1;  // lowest seq not yet accounted for
  for (std::uint64_t held : above_) {
    if (out.size() == limit) break;
    if (held > next) out.push_back({next, held - 1});
    next = held + 1;
  }
  return out;
}

void SeqSet::summarize(v1::OriginSummary& out, std::size_t hole_limit) const {
  out.set_watermark(watermark_);
  std::uint64_t highest = this->highest();
  auto ranges = holes(hole_limit + 1);
  if (ranges.size() > hole_limit) {
    // Claim nothing beyond the first hole left out.
    highest = ranges.back().first - 1;
    ranges.pop_back();
  }
  out.set_highest(highest);
  out.clear_holes();
  for (const auto& r : ranges) {
    auto* h = out.add_holes();
    h->set_first(r.first);
    h->set_last(r.last);
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

std::vector<std::uint64_t> SeqSet::missing_from(const v1::OriginSummary& other,
                                                std::size_t limit) const {
  std::vector<std::uint64_t> out;
  auto take = [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t seq = first; seq <= last && out.size() < limit; ++seq) out.push_back(seq);
  };
  // Within this node's contiguous run the peer lacks its holes and all
  // above its highest; work by ranges so a long shared run costs nothing.
  for (const auto& h : other.holes()) {
    take(std::max(h.first(), other.watermark() + 1), std::min(h.last(), watermark_));
  }
  take(std::max(other.highest(), other.watermark()) + 1, watermark_);
  for (std::uint64_t seq : above_) {
    if (out.size() >= limit) break;
    if (!summary_contains(other, seq)) out.push_back(seq);
  }
  return out;
}

std::vector<SeqRange> SeqSet::lacking(const v1::OriginSummary& other, std::size_t limit) const {
  std::vector<SeqRange> out;
  // Appends the parts of [first, last] not held here.
  auto cut = [&](std::uint64_t first, std::uint64_t last) {
    std::uint64_t start = std::max(first, watermark_ + 1);
    for (auto it = above_.lower_bound(start); start <= last && out.size() < limit; ++it) {
      const std::uint64_t stop = it == above_.end() ? last : std::min(last, *it - 1);
      if (start <= stop) out.push_back({start, stop});
      if (it == above_.end() || *it >= last) break;
      start = *it + 1;
    }
  };
  // The peer holds [1, watermark] and (watermark, highest] minus its holes.
  cut(1, other.watermark());
  std::uint64_t next = other.watermark() + 1;
  for (const auto& h : other.holes()) {
    if (h.first() > next) cut(next, std::min(h.first() - 1, other.highest()));
    next = std::max(next, h.last() + 1);
  }
  if (next <= other.highest()) cut(next, other.highest());
  return out;
}

}  // namespace relay::mesh

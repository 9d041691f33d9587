#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "proto/relaymesh.pb.h"

namespace relay::mesh {

/// A closed range of sequence numbers.
struct SeqRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const SeqRange&) const = default;
};

/// Disjoint, non-adjacent closed ranges, kept as first -> last.
class RangeSet {
 public:
  /// Adds [first, last], merging with neighbours; returns how many seqs were new.
  std::uint64_t add(std::uint64_t first, std::uint64_t last);
  bool contains(std::uint64_t seq) const;
  /// Removes everything up to and including `through`.
  void erase_through(std::uint64_t through);
  /// Removes one seq, splitting its range; returns whether it was there.
  bool erase(std::uint64_t seq);
  bool empty() const { return ranges_.empty(); }
  /// The lowest range; the set must not be empty.
  SeqRange front() const { return {ranges_.begin()->first, ranges_.begin()->second}; }
  std::uint64_t highest() const { return ranges_.empty() ? 0 : ranges_.rbegin()->second; }
  std::size_t size() const { return ranges_.size(); }
  const std::map<std::uint64_t, std::uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;
};

/// The seqs of one origin that a node holds: everything up to the
/// watermark, plus ranges above it (what arrived out of order). Some held
/// seqs are *settled*: counted as held, so that nobody asks for them, but
/// never offered or served, because no event stands behind them here. They
/// are everything up to `settled_through()` (pruned here by retention) and
/// the `void_ranges()`: seqs settled without ever being stored here (pruned
/// elsewhere before this node got them, or skipped by their origin). A void
/// seq only stops pulls: it is not held (held() is false, summaries show it
/// as missing, so a node that still has the event pushes it), and an event
/// that arrives for it is stored as new (docs/wire.md, "Settled history").
class SeqSet {
 public:
  /// Void ranges kept at most. They are few (one per jump of an origin's
  /// numbering, one per history pruned before this node got it) and kept
  /// for the node's life; the bound keeps a buggy origin from growing every
  /// node's memory. At the bound nothing more is settled (it is pulled for
  /// in vain instead).
  static constexpr std::size_t kMaxVoid = 4096;
  /// Adds a seq (stored here); returns false if it was held already.
  bool add(std::uint64_t seq);
  /// Adds every seq in [first, last]; cheap whatever the size of the range.
  void add_range(std::uint64_t first, std::uint64_t last);
  /// Held or settled: nothing to pull.
  bool contains(std::uint64_t seq) const;
  /// Stored here (and maybe pruned since): a duplicate if it comes again.
  bool held(std::uint64_t seq) const { return contains(seq) && !void_.contains(seq); }
  /// Every seq in [1, watermark] is held or settled.
  std::uint64_t watermark() const { return watermark_; }
  /// Every seq in [1, held_watermark] is held: what a cumulative ack may say.
  std::uint64_t held_watermark() const {
    return void_.empty() ? watermark_ : std::min(watermark_, void_.front().first - 1);
  }
  /// The highest seq held (0 if none).
  std::uint64_t highest() const { return above_.empty() ? watermark_ : above_.highest(); }
  /// Number of ranges held above the watermark.
  std::size_t above_ranges() const { return above_.size(); }
  /// The ranges held above the watermark, first -> last.
  const std::map<std::uint64_t, std::uint64_t>& above_ranges_map() const { return above_.ranges(); }

  /// Settles every seq up to `through`, pruned here: never served.
  void settle_through(std::uint64_t through);
  /// Settles [first, last], seqs not stored here (pruned elsewhere, or
  /// skipped by their origin): never pulled or served; what of it was not
  /// held is void. A range that continues the settled prefix extends it.
  void settle_range(std::uint64_t first, std::uint64_t last);
  /// [first, last] is void (settled, never stored here), as the store
  /// remembers it across a restart.
  void mark_void(std::uint64_t first, std::uint64_t last);
  std::uint64_t settled_through() const { return settled_through_; }
  const RangeSet& void_ranges() const { return void_; }
  /// No more void ranges fit: settle nothing more.
  bool void_full() const { return void_.size() >= kMaxVoid; }
  /// True if `seq` is held and an event stands behind it.
  bool servable(std::uint64_t seq) const;

  /// Appends the servable seqs in [first, last], lowest first, until `out`
  /// holds `limit`; costs what it appends, however wide the range.
  void collect(std::uint64_t first, std::uint64_t last, std::size_t limit,
               std::vector<std::uint64_t>& out) const;
  /// Seqs in [1, highest()] neither held nor settled, as ranges, at most
  /// `limit` of them.
  std::vector<SeqRange> holes(std::size_t limit) const;
  /// Servable seqs held here and not in `other` (a peer's summary), lowest
  /// first, at most `limit` of them.
  std::vector<std::uint64_t> missing_from(const relaymesh::v1::OriginSummary& other,
                                          std::size_t limit) const;
  /// For an origin's own set: the highest seq S such that every seq in
  /// [1, S] is held by the node of `other` (a peer's summary of this
  /// origin) or settled here (pruned, or never issued).
  std::uint64_t covered_through(const relaymesh::v1::OriginSummary& other) const;
  /// Seqs the peer of `other` holds and can serve, not held here, as ranges,
  /// at most `limit`.
  std::vector<SeqRange> lacking(const relaymesh::v1::OriginSummary& other, std::size_t limit) const;

  /// This set as a summary for a digest: what is held (watermark, highest,
  /// the first `hole_limit` holes, void seqs among them; what lies beyond is
  /// left for a later round), and what is settled.
  void summarize(relaymesh::v1::OriginSummary& out, std::size_t hole_limit) const;

 private:
  void absorb();

  std::uint64_t watermark_ = 0;
  RangeSet above_;
  std::uint64_t settled_through_ = 0;
  RangeSet void_;
};

/// True if a peer's summary says it holds `seq` (settled or not).
bool summary_contains(const relaymesh::v1::OriginSummary& summary, std::uint64_t seq);
/// True if a peer's summary says it can serve `seq`.
bool summary_serves(const relaymesh::v1::OriginSummary& summary, std::uint64_t seq);

}  // namespace relay::mesh

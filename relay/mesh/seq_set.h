#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "proto/relaymesh.pb.h"

namespace relay::mesh {

/// A closed range of sequence numbers.
struct SeqRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const SeqRange&) const = default;
};

/// The seqs of one origin that a node holds: everything up to the
/// watermark, plus a set above it. Origins number events 1, 2, 3 ... without
/// gaps, so the set above the watermark stays small: it holds what arrived
/// out of order and shrinks as the holes below it fill.
class SeqSet {
 public:
  /// Adds a seq; returns false if it was already there.
  bool add(std::uint64_t seq);
  /// Adds every seq in [first, last]; cheap when the range extends the watermark.
  void add_range(std::uint64_t first, std::uint64_t last);
  bool contains(std::uint64_t seq) const;
  /// Every seq in [1, watermark] is held.
  std::uint64_t watermark() const { return watermark_; }
  /// The highest seq held (0 if none).
  std::uint64_t highest() const { return above_.empty() ? watermark_ : *above_.rbegin(); }
  /// Number of seqs held above the watermark.
  std::size_t above_count() const { return above_.size(); }

  /// Appends the seqs held in [first, last], lowest first, until `out`
  /// holds `limit`; costs what it appends, however wide the range.
  void collect(std::uint64_t first, std::uint64_t last, std::size_t limit,
               std::vector<std::uint64_t>& out) const;
  /// Missing seqs in [1, highest()], as ranges, at most `limit` of them.
  std::vector<SeqRange> holes(std::size_t limit) const;
  /// Seqs held here and not in `other` (a peer's summary), lowest first,
  /// at most `limit` of them.
  std::vector<std::uint64_t> missing_from(const relaymesh::v1::OriginSummary& other,
                                          std::size_t limit) const;
  /// Seqs in `other` (a peer's summary) not held here, as ranges, at most `limit`.
  std::vector<SeqRange> lacking(const relaymesh::v1::OriginSummary& other, std::size_t limit) const;

  /// This set as a summary for a digest: watermark, highest, and the first
  /// `hole_limit` holes (what lies beyond them is left for a later round).
  void summarize(relaymesh::v1::OriginSummary& out, std::size_t hole_limit) const;

 private:
  void absorb();

  std::uint64_t watermark_ = 0;
  std::set<std::uint64_t> above_;
};

/// True if a peer's summary says it holds `seq`.
bool summary_contains(const relaymesh::v1::OriginSummary& summary, std::uint64_t seq);

}  // namespace relay::mesh

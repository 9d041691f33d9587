#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "relay/mesh/node_io.h"

namespace relay::mesh {

/// The largest jump of an unsure life (docs/wire.md, "Numbering"): 2^40.
/// Two lives that both start unsure from one restored state pick their
/// blocks independently; they collide only if one's first seq lands among
/// the few the other numbered before learning where it stands, a chance of
/// about (events numbered while unsure) / 2^40 per pair of lives. Each such
/// start climbs 2^39 on average, so the 63-bit seq space holds millions.
inline constexpr std::uint64_t kMaxJump = std::uint64_t{1} << 40;

/// How one life of a node (one process start) numbers its own events.
///
/// A node is *sure* of where it stands once every configured peer has said
/// what it holds of this node's events (Numbering::jump false): then the
/// next seq is simply above everything known anywhere. Until then nothing
/// on this machine can be trusted to be the newest: a VM snapshot revert
/// rolls the state directory back together with the database, and the peer
/// holding the newest events may be offline. So an unsure life numbers in a
/// block of its own, at a random distance above everything it knows of, and
/// keeps to that block; it jumps again whenever what it learns reaches its
/// block. The randomness comes from the caller and must be fresh entropy,
/// never derived from anything a restore brings back.
class LifeNumbering {
 public:
  /// The first of the seqs to number next, above `db_next` (the database's
  /// next seq, 0 when not at hand), `high_water` (the state directory's
  /// mark) and what the core learned (`numbering.floor`). `random` is a
  /// uniformly random value, used only when this life must jump.
  std::uint64_t first(std::uint64_t db_next, std::uint64_t high_water,
                      const Numbering& numbering, std::uint64_t random) const {
    const std::uint64_t next = std::max({db_next, high_water + 1, numbering.floor + 1});
    if (!numbering.jump) return next;
    if (block_last_ && next == *block_last_ + 1) return next;  // this life's own block
    return next + 1 + random % kMaxJump;
  }
  /// Records what was numbered (`first`..`last`) under `numbering`.
  void numbered(std::uint64_t last, const Numbering& numbering) {
    if (numbering.jump) block_last_ = last;
  }
  /// This life jumped to a block of its own (the seqs it skipped are settled).
  bool jumped() const { return block_last_.has_value(); }

 private:
  // The last seq this life numbered while unsure.
  std::optional<std::uint64_t> block_last_;
};

}  // namespace relay::mesh

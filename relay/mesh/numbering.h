#pragma once

#include <algorithm>
#include <cstdint>

#include "relay/mesh/node.h"

namespace relay::mesh {

/// The first seq of the next own events. Above everything this node may
/// have numbered: the database's next seq, the high-water mark kept in the
/// state directory, and what the mesh holds of it (`numbering.floor`).
/// After a start without its state (a rebuilt server), an event that cannot
/// wait for peers to say what they hold (an urgent one while learning, any
/// once learning gave up without an answer) jumps to the wall clock in
/// milliseconds: above any seq a previous life of this node plausibly used,
/// as that would have taken more than one event a millisecond on average.
/// The seqs it skips are settled (Node::resolve_own).
inline std::uint64_t next_own_seq(std::uint64_t db_next, std::uint64_t high_water,
                                  const Numbering& numbering, bool urgent,
                                  std::int64_t wall_unix_ms) {
  std::uint64_t next = std::max({db_next, high_water + 1, numbering.floor + 1});
  if (numbering.jump && (urgent || numbering.ready) && wall_unix_ms > 0) {
    next = std::max(next, static_cast<std::uint64_t>(wall_unix_ms));
  }
  return next;
}

}  // namespace relay::mesh

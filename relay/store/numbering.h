#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <pqxx/connection>

#include "common/state_dir.h"
#include "relay/mesh/node.h"

namespace relay::store {

/// This origin's numbering across the life of a site. The database's own
/// sequence restarts when the database is rebuilt or restored from a
/// backup, and the mesh would then dedupe new events away as old ones. So a
/// high-water mark of every seq ever numbered is kept outside the database,
/// in the state directory ("seq"), raised and fsynced in every claim before
/// its COMMIT. At start it is compared with the database:
/// - equal (or the database ahead of it, as after an upgrade): normal;
/// - the database behind it: rebuilt or restored. Numbering continues above
///   the mark, and the core pulls back from peers what the database lost,
///   and settles the seqs nobody holds (docs/wire.md, "Numbering").
/// - no mark at all (a new node, or a rebuilt server): the core first
///   learns from peers what they hold of this node; until then only urgent
///   events are numbered, above the wall clock in ms (mesh/numbering.h).
/// Shared by the claim thread (reserve) and the network thread (update).
class NumberingState {
 public:
  /// Reads the mark (throws naming the file if it is damaged) and compares
  /// it with `db_highest`, the highest own seq the database knows of.
  NumberingState(StateDir& dir, std::uint64_t db_highest);

  bool state_lost() const { return state_lost_; }
  bool rewound() const { return rewound_; }
  std::uint64_t db_highest() const { return db_highest_; }
  /// The mark at start (at least db_highest).
  std::uint64_t start_high_water() const { return start_high_water_; }
  /// Fills what the core needs from this in its snapshot.
  void describe(mesh::Snapshot& snapshot) const;

  /// What the core learned from the mesh (network thread).
  void update(const mesh::Numbering& numbering);
  /// The first seq for new own events given the database's next seq.
  std::uint64_t next(std::uint64_t db_next, bool urgent, std::int64_t wall_unix_ms) const;
  /// Normal claims may go ahead (else only duress and emergency).
  bool ready() const;
  /// Durably raises the mark to `seq` before the claim that uses it
  /// commits; throws std::runtime_error naming the file if it cannot.
  void reserve(std::uint64_t seq);

 private:
  StateDir& dir_;
  std::uint64_t db_highest_ = 0;
  std::uint64_t start_high_water_ = 0;
  bool state_lost_ = false;
  bool rewound_ = false;
  mutable std::mutex mutex_;
  std::uint64_t high_water_ = 0;
  mesh::Numbering numbering_;
};

/// The highest own seq the database knows of: logged, pruned, settled or
/// numbered by its sequence row.
std::uint64_t own_highest(pqxx::connection_base& conn, const std::string& self);

}  // namespace relay::store

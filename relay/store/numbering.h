#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <pqxx/connection>

#include "common/state_dir.h"
#include "relay/mesh/node.h"
#include "relay/mesh/numbering.h"

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
/// - no mark at all (a new node, or a rebuilt server): said in the log.
/// None of this can tell a VM snapshot revert (the mark and the database
/// rolled back together) from an ordinary restart, so after every start,
/// until every peer has said what it holds of this node, new events are
/// numbered in a random block of their own (mesh/numbering.h).
/// Works before the database answers: the spool numbers duress alarms from
/// the mark alone. Shared by the claim thread, the network thread (the
/// spool, and what the core learned) and the thread that opens the database.
class NumberingState {
 public:
  /// Reads the mark; throws (naming the file) if it is damaged.
  explicit NumberingState(StateDir& dir);

  /// The database answered: compares the mark with `db_highest`, the
  /// highest own seq it knows of, and says in the log what it found.
  void on_database(std::uint64_t db_highest);
  bool state_lost() const { return state_lost_; }
  /// Fills what the core needs from this in its snapshot (after on_database).
  void describe(mesh::Snapshot& snapshot) const;

  /// What the core learned from the mesh (network thread).
  void update(const mesh::Numbering& numbering);
  /// Proof arrived that a seq of this node was numbered twice: whatever
  /// this life believed, the next seq jumps to a block of its own.
  void rewound();
  /// Normal claims may go ahead (else only duress and emergency).
  bool ready() const;
  /// Numbers `count` new own events given the database's next seq (0 when
  /// the database is not at hand), raising the mark durably before it
  /// returns: two callers never get the same seq, and a seq handed out is
  /// never handed out again, whatever becomes of the database. Throws
  /// std::runtime_error naming the file if the mark cannot be written.
  std::uint64_t allocate(std::uint64_t db_next, std::uint64_t count);

 private:
  StateDir& dir_;
  bool state_lost_ = false;
  bool rewound_ = false;
  std::uint64_t start_high_water_ = 0;
  mutable std::mutex mutex_;
  std::uint64_t high_water_ = 0;
  mesh::Numbering numbering_;
  mesh::LifeNumbering life_;
  bool jump_next_ = false;  // rewound(): the next allocation jumps
};

/// The highest own seq the database knows of: logged, pruned, settled or
/// numbered by its sequence row.
std::uint64_t own_highest(pqxx::connection_base& conn, const std::string& self);

}  // namespace relay::store

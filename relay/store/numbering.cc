#include "relay/store/numbering.h"

#include <algorithm>
#include <random>
#include <utility>

#include <spdlog/spdlog.h>
#include <pqxx/transaction>

namespace relay::store {
namespace {

constexpr const char* kFile = "seq";

}  // namespace

NumberingState::NumberingState(StateDir& dir) : dir_(dir) {
  const auto mark = dir_.read_counter(kFile);
  state_lost_ = !mark;
  high_water_ = mark.value_or(0);
  start_high_water_ = high_water_;
  // Unsure until the core has heard every peer (mesh/numbering.h).
  numbering_ = {false, high_water_, true};
}

void NumberingState::on_database(std::uint64_t db_highest) {
  std::lock_guard lock(mutex_);
  rewound_ = !state_lost_ && start_high_water_ > db_highest;
  if (state_lost_) {
    spdlog::warn(
        "numbering: no high-water mark in {} (a new node, or its state directory was lost): "
        "asking peers what they hold of this node; until all have answered, new events are "
        "numbered in a block of their own, a duress at once",
        (dir_.path() / kFile).string());
  } else if (rewound_) {
    spdlog::warn(
        "numbering: the database knows own events only up to seq {}, but this node numbered up to "
        "{}: the database was rebuilt or restored from a backup. New events continue above {}; "
        "what peers hold of {}..{} comes back into the log, the rest is settled",
        db_highest, start_high_water_, start_high_water_, db_highest + 1, start_high_water_);
  }
  if (db_highest > high_water_) {
    high_water_ = db_highest;  // the database is ahead of the mark (an upgrade): take it
    dir_.write_counter(kFile, high_water_);
  }
  start_high_water_ = std::max(start_high_water_, db_highest);
  if (state_lost_ && high_water_ == 0) dir_.write_counter(kFile, 0);  // the file exists from now on
}

void NumberingState::describe(mesh::Snapshot& snapshot) const {
  std::lock_guard lock(mutex_);
  snapshot.restored = rewound_;
  snapshot.own_high_water = start_high_water_;
}

void NumberingState::update(const mesh::Numbering& numbering) {
  std::lock_guard lock(mutex_);
  numbering_ = numbering;
}

void NumberingState::rewound() {
  std::lock_guard lock(mutex_);
  // The next seq jumps, even if the core's view (update) still says sure
  // until it has taken the healing in.
  jump_next_ = true;
  life_ = mesh::LifeNumbering{};
}

bool NumberingState::ready() const {
  std::lock_guard lock(mutex_);
  return numbering_.ready;
}

std::uint64_t NumberingState::allocate(std::uint64_t db_next, std::uint64_t count) {
  std::lock_guard lock(mutex_);
  mesh::Numbering numbering = numbering_;
  numbering.jump = numbering.jump || std::exchange(jump_next_, false);
  // Fresh entropy from the kernel, drawn only when unsure: nothing a
  // restore brings back decides it, and a sure claim costs no system call.
  std::uint64_t random = 0;
  if (numbering.jump) {
    std::random_device entropy;
    random = (std::uint64_t{entropy()} << 32) | entropy();
  }
  const std::uint64_t first = life_.first(db_next, high_water_, numbering, random);
  const std::uint64_t last = first + count - 1;
  dir_.write_counter(kFile, last);
  if (first > std::max({db_next, high_water_ + 1, numbering.floor + 1})) {
    spdlog::warn(
        "numbering: not every peer has said yet what it holds of this node (a restored or "
        "reverted machine cannot be told from a restart), so new events are numbered in a "
        "block of their own from seq {}; the seqs skipped are settled",
        first);
  }
  life_.numbered(last, numbering);
  high_water_ = last;
  return first;
}

std::uint64_t own_highest(pqxx::connection_base& conn, const std::string& self) {
  pqxx::read_transaction tx(conn, "own highest");
  return tx
      .exec_params1(
          "SELECT greatest("
          " (SELECT coalesce(max(seq), 0) FROM relay_event_log WHERE origin = $1),"
          " (SELECT coalesce(max(pruned_through), 0) FROM relay_watermarks WHERE origin = $1),"
          " (SELECT coalesce(max(last), 0) FROM relay_settled WHERE origin = $1),"
          " (SELECT coalesce(max(next_seq) - 1, 0) FROM relay_node WHERE origin = $1))",
          self)[0]
      .as<std::uint64_t>();
}

}  // namespace relay::store

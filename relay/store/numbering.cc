#include "relay/store/numbering.h"

#include <spdlog/spdlog.h>
#include <pqxx/transaction>

#include "relay/mesh/numbering.h"

namespace relay::store {
namespace {

constexpr const char* kFile = "seq";

}  // namespace

NumberingState::NumberingState(StateDir& dir, std::uint64_t db_highest)
    : dir_(dir), db_highest_(db_highest) {
  const auto mark = dir_.read_counter(kFile);
  state_lost_ = !mark;
  rewound_ = mark && *mark > db_highest;
  start_high_water_ = std::max(mark.value_or(0), db_highest);
  if (state_lost_) {
    spdlog::warn(
        "numbering: no high-water mark in {} (a new node, or its state directory was lost): "
        "asking peers what they hold of this node before numbering normal events; a duress "
        "goes out at once",
        (dir_.path() / kFile).string());
  } else if (rewound_) {
    spdlog::warn(
        "numbering: the database knows own events only up to seq {}, but this node numbered up to "
        "{}: the database was rebuilt or restored from a backup. New events continue at {}; "
        "what peers hold of {}..{} comes back into the log, the rest is settled",
        db_highest, *mark, *mark + 1, db_highest + 1, *mark);
  }
  high_water_ = start_high_water_;
  if (!mark || *mark != high_water_) dir_.write_counter(kFile, high_water_);
  numbering_ = {!state_lost_ && !rewound_, high_water_, state_lost_};
}

void NumberingState::describe(mesh::Snapshot& snapshot) const {
  snapshot.learn = state_lost_ || rewound_;
  snapshot.state_lost = state_lost_;
  snapshot.restored = rewound_;
  snapshot.own_high_water = start_high_water_;
}

void NumberingState::update(const mesh::Numbering& numbering) {
  std::lock_guard lock(mutex_);
  numbering_ = numbering;
}

std::uint64_t NumberingState::next(std::uint64_t db_next, bool urgent,
                                   std::int64_t wall_unix_ms) const {
  std::lock_guard lock(mutex_);
  return mesh::next_own_seq(db_next, high_water_, numbering_, urgent, wall_unix_ms);
}

bool NumberingState::ready() const {
  std::lock_guard lock(mutex_);
  return numbering_.ready;
}

void NumberingState::reserve(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  if (seq <= high_water_) return;
  dir_.write_counter(kFile, seq);
  high_water_ = seq;
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

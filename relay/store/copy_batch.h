#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/dbtransaction>

#include "relay/mesh/store.h"
#include "relay/store/rows.h"

namespace relay::store {

/// The events of the batches written together, each once.
using Writes = std::vector<const mesh::StoreBatch::Write*>;

/// This node owes the origin of `write` a receipt: it is a target of
/// another origin's event. Both ways of writing a batch ask this.
bool owes_receipt(const mesh::StoreBatch::Write& write, const std::string& self);

/// The message_queue data of `write`, delivered here; `event` is its
/// parsed content. Both ways of writing a batch ask this.
std::string queue_data(const mesh::StoreBatch::Write& write, const v1::Event& event);
/// Its message_queue type: the event's (rows.h, queue_type), or relay.policy
/// for an event refused under the mesh policy.
std::string queue_row_type(const mesh::StoreBatch::Write& write, const v1::Event& event);

/// The common case, by COPY: when every event of `writes` is new here (not
/// in the log, not at or below its origin's pruned prefix, not in a settled
/// range, not late), writes its log row, its message_queue row (delivered
/// here), its receipt owed and (own events) its relay_unreplicated row, and
/// returns the number of message_queue rows. Otherwise returns nullopt
/// having written nothing (its savepoint rolled back): the statement that
/// dedupes row by row (write_batch.cc) must write them.
std::optional<std::size_t> copy_new_events(pqxx::dbtransaction& tx, const std::string& self,
                                           const Writes& writes);

}  // namespace relay::store

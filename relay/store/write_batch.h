#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "relay/mesh/store.h"

namespace relay::store {

/// What write_batch did with a batch's events.
struct Written {
  /// Events new to the log.
  std::size_t logged = 0;
  /// Every one was new here, and went in by COPY (copy_batch.h), not by the
  /// statement that dedupes row by row.
  bool copied = false;
};

/// Writes one merged batch in the given transaction; returns the number of
/// message_queue rows inserted, and says (if asked) what it did with the
/// events. Exposed for tests and the benchmark.
std::size_t write_batch(pqxx::transaction_base& tx, const std::string& self,
                        const std::vector<mesh::StoreBatch>& batches, Written* written = nullptr);

/// Folds every settled range that continues its origin's settled prefix
/// into it (relay_watermarks.pruned_through).
void fold_settled(pqxx::transaction_base& tx);

}  // namespace relay::store

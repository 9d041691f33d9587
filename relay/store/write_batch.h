#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "relay/mesh/store.h"

namespace relay::store {

/// Writes one merged batch in the given transaction; returns the number of
/// message_queue rows inserted, and sets `logged` (if given) to the number of
/// events new to the log. Exposed for tests and the benchmark.
std::size_t write_batch(pqxx::transaction_base& tx, const std::string& self,
                        const std::vector<mesh::StoreBatch>& batches,
                        std::size_t* logged = nullptr);

/// Folds every settled range that continues its origin's settled prefix
/// into it (relay_watermarks.pruned_through).
void fold_settled(pqxx::transaction_base& tx);

}  // namespace relay::store

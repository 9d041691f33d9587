#pragma once

#include <pqxx/connection>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace relay::store {

/// One numbered SQL file of relay/store/migrations, compiled in.
struct Migration {
  std::string_view name;  // "001_schema.sql": the number is the version
  std::string_view sql;
};

/// Every migration, in order.
std::span<const Migration> migrations();

/// The version of the last migration this build knows.
int latest_version();

/// Applies the migrations not yet applied, in order, in one transaction
/// under an advisory lock, so two processes starting at once apply each
/// migration once. Returns the names it applied (empty: already current).
std::vector<std::string> migrate(pqxx::connection_base& conn);

/// Call from a catch block: rethrows the current exception. A refusal
/// (SQLSTATE 42501, a role without the right; 42P01, no such table) comes
/// back as the same pqxx type with a sentence naming the role that owns
/// relaymesh's tables and what to do, so that `relayctl migrate` or `prune`
/// run under the wrong account says so instead of printing raw SQL errors.
[[noreturn]] void rethrow_explained(pqxx::connection_base& conn);

}  // namespace relay::store

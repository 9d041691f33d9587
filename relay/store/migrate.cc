#include "relay/store/migrate.h"

#include <pqxx/transaction>

#include <charconv>
#include <stdexcept>

namespace relay::store {
namespace {

// Any fixed number: the transaction-scoped advisory lock that serializes
// schema changes between processes ("relaymsh" in ASCII, read as an integer).
constexpr long long kMigrationLock = 0x72656c61796d7368;

int version_of(std::string_view name) {
  int version = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), version);
  if (ec != std::errc{} || ptr == name.data() || version <= 0) {
    throw std::logic_error("migration file name without a leading number: " + std::string(name));
  }
  return version;
}

}  // namespace

int latest_version() { return version_of(migrations().back().name); }

std::vector<std::string> migrate(pqxx::connection_base& conn) {
  pqxx::work tx(conn, "migrate");
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
  tx.exec(
      "CREATE TABLE IF NOT EXISTS relay_schema_migrations ("
      " version integer PRIMARY KEY, name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  std::vector<std::string> applied;
  for (const Migration& m : migrations()) {
    const int version = version_of(m.name);
    if (!tx.exec_params("SELECT 1 FROM relay_schema_migrations WHERE version = $1", version)
             .empty()) {
      continue;
    }
    tx.exec(std::string(m.sql));
    tx.exec_params("INSERT INTO relay_schema_migrations (version, name) VALUES ($1, $2)", version,
                   std::string(m.name));
    applied.emplace_back(m.name);
  }
  tx.commit();
  return applied;
}

}  // namespace relay::store

#include "relay/store/migrate.h"

#include <pqxx/except>
#include <pqxx/nontransaction>
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

// PostgreSQL's own words without libpq's "ERROR:  " and the lines after.
std::string first_line(std::string text) {
  text = text.substr(0, text.find('\n'));
  if (text.rfind("ERROR:", 0) == 0) text = text.substr(text.find_first_not_of(' ', 6));
  return text;
}

std::vector<std::string> apply(pqxx::connection_base& conn) {
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

}  // namespace

int latest_version() { return version_of(migrations().back().name); }

std::vector<std::string> migrate(pqxx::connection_base& conn) {
  try {
    return apply(conn);
  } catch (const pqxx::sql_error&) {
    rethrow_explained(conn);
  }
}

void rethrow_explained(pqxx::connection_base& conn) {
  try {
    throw;
  } catch (const pqxx::insufficient_privilege& e) {
    // The role that owns the tables: the migrations table's owner, or before
    // the first migration the database's owner, who would create them.
    std::string owner, user;
    try {
      pqxx::nontransaction tx(conn);
      const auto row = tx.exec1(
          "SELECT coalesce((SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()"
          " AND tablename = 'relay_schema_migrations'), pg_get_userbyid(datdba)), current_user"
          " FROM pg_database WHERE datname = current_database()");
      owner = row[0].as<std::string>();
      user = row[1].as<std::string>();
    } catch (const std::exception&) {
      throw e;  // the connection is gone: the original error is all there is
    }
    throw pqxx::insufficient_privilege(
        "database role \"" + user + "\" may not do this (" + first_line(e.what()) +
            "): relaymesh's tables belong to the role \"" + owner +
            "\"; run it as that role (e.g. runuser -u " + owner + " -- relayctl ...)",
        e.query(), e.sqlstate().c_str());
  } catch (const pqxx::undefined_table& e) {
    throw pqxx::undefined_table(
        "relaymesh's tables are not in this database yet (" + first_line(e.what()) +
            "): relayd creates them at its first start, or run relayctl migrate as the role "
            "that is to own them",
        e.query(), e.sqlstate().c_str());
  }
}

}  // namespace relay::store

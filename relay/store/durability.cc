#include "relay/store/durability.h"

#include <stdexcept>

#include <pqxx/nontransaction>

namespace relay::store {

Durability read_durability(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn, "durability");
  const auto row = tx.exec1(
      "SELECT current_setting('fsync'), current_setting('full_page_writes'), "
      "current_setting('synchronous_commit')");
  return {row[0].as<std::string>() == "on", row[1].as<std::string>() == "on",
          row[2].as<std::string>()};
}

std::string durability_refusal(const Durability& settings, bool unsafe_allowed) {
  if (unsafe_allowed) return "";
  for (const auto& [name, on] :
       {std::pair{"fsync", settings.fsync}, std::pair{"full_page_writes", settings.full_page_writes}}) {
    if (on) continue;
    return std::string("the database runs with ") + name +
           " = off: a power cut can lose or corrupt what relayd has acknowledged. Set " + name +
           " = on in postgresql.conf and reload PostgreSQL; or, knowing this, set [store] "
           "unsafe_durability = true";
  }
  return "";
}

void make_commits_durable(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn, "durable commits");
  tx.exec("SET synchronous_commit = on");
  tx.exec("SET statement_timeout = 0");
}

void prepare_for_writes(pqxx::connection_base& conn, bool unsafe_allowed) {
  if (auto why = durability_refusal(read_durability(conn), unsafe_allowed); !why.empty()) {
    throw std::runtime_error(why);
  }
  make_commits_durable(conn);
}

std::string with_connect_timeout(const std::string& dsn, int seconds) {
  if (dsn.find("connect_timeout") != std::string::npos) return dsn;
  const std::string timeout = "connect_timeout=" + std::to_string(seconds);
  if (dsn.starts_with("postgres://") || dsn.starts_with("postgresql://"))
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + timeout;
  return dsn + " " + timeout;
}

}  // namespace relay::store

#pragma once

#include <string>

#include <pqxx/connection>

namespace relay::store {

/// The server settings that decide whether a committed transaction survives
/// a power cut.
struct Durability {
  bool fsync = true;
  bool full_page_writes = true;
  /// The server's default for sessions (relayd sets its own to "on").
  std::string synchronous_commit = "on";
};

Durability read_durability(pqxx::connection_base& conn);

/// Why relayd refuses to use this database, or "" if it does not: fsync or
/// full_page_writes off, which no session can fix, unless the operator
/// accepted that with [store] unsafe_durability.
std::string durability_refusal(const Durability& settings, bool unsafe_allowed);

/// Makes this session's commits durable whatever the server's default
/// (synchronous_commit = on): relayd acknowledges only what is on disk. Its
/// statements may finish too (statement_timeout = 0): a site's timeout
/// would cancel a slow write again at every retry.
void make_commits_durable(pqxx::connection_base& conn);

/// For each connection relayd writes through, not only its first (the
/// server may have been reconfigured or replaced since): throws the
/// refusal if the server cannot keep a commit, else makes the session's
/// commits durable.
void prepare_for_writes(pqxx::connection_base& conn, bool unsafe_allowed);

/// DSN (either form libpq takes) with a connect timeout of SECONDS unless it
/// names one: a watch that checks every few seconds must not hang for
/// minutes of TCP retries on a server that is not there.
std::string with_connect_timeout(const std::string& dsn, int seconds);

}  // namespace relay::store

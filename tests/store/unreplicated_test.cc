// Own events some peer may still lack (relay_unreplicated): what relayd
// resends at start, against a real PostgreSQL.
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <string>

#include "relay/store/migrate.h"
#include "relay/store/pg_store.h"
#include "relay/store/rows.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/store_helpers.h"

using namespace relay;
using relay::test::PgCluster;
using namespace relay::test;
namespace v1 = relaymesh::v1;

namespace {

std::vector<std::uint64_t> seqs_of(const std::vector<mesh::EventPtr>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) out.push_back(e->key.seq);
  return out;
}

}  // namespace

TEST_CASE("a restart after a partial replication resends exactly the own events a peer lacks") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  const auto me = crypto::SigningKey::generate();
  {
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north",
                       {batch_of({event_of("clinic-north", 1, me), event_of("clinic-north", 2, me),
                                  event_of("clinic-north", 3, me)},
                                 false),
                        batch_of({event_of("hq", 1, hq), event_of("hq", 2, hq)}, true)});
    tx.commit();
  }
  {
    // Acks of 1 and 3 commit with the next claim, whose 5 is a duress.
    pqxx::work tx(conn);
    mesh::StoreBatch acked;
    acked.replicated = {{"clinic-north", 1}, {"clinic-north", 3}};
    store::write_batch(
        tx, "clinic-north",
        {batch_of({event_of("clinic-north", 4, me),
                   event_of("clinic-north", 5, me, v1::PRIORITY_DURESS)},
                  false),
         acked});
    tx.commit();
  }
  {
    // 4 is acked; 2 comes back from a peer (a restored site's catch-up):
    // still lacked somewhere, still marked.
    pqxx::work tx(conn);
    mesh::StoreBatch acked;
    acked.replicated = {{"clinic-north", 4}};
    store::write_batch(tx, "clinic-north",
                       {acked, batch_of({event_of("clinic-north", 2, me)}, false)});
    tx.commit();
  }
  // Other origins' events never carry the mark.
  CHECK(count(conn, "SELECT count(*) FROM relay_unreplicated WHERE origin <> 'clinic-north'") == 0);
  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  // The duress first, then in order.
  CHECK(seqs_of(s.unreplicated) == std::vector<std::uint64_t>{5, 2});

  // A forced prune takes the marks of what it removed: nothing left to resend.
  store::PruneRules rules{std::chrono::hours(0), {"hq"}, std::chrono::hours(24 * 60), true};
  store::prune_log(conn, "clinic-north", rules);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 0);
  CHECK(count(conn, "SELECT count(*) FROM relay_unreplicated") == 0);
  CHECK(store::open_database(conn, "clinic-north", 100).unreplicated.empty());
}

TEST_CASE("migration 014 keeps what the replicated flag said: own unflagged events are resent") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  {
    // A database as migration 013 left it, with own and other origins' rows.
    pqxx::work tx(conn);
    tx.exec(
        "CREATE TABLE relay_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : store::migrations()) {
      const int version = std::stoi(std::string(m.name.substr(0, 3)));
      if (version >= 14) break;
      tx.exec(std::string(m.sql));
      tx.exec_params("INSERT INTO relay_schema_migrations (version, name) VALUES ($1, $2)",
                     version, std::string(m.name));
    }
    tx.exec("INSERT INTO relay_node (origin) VALUES ('clinic-north')");
    const auto me = crypto::SigningKey::generate();
    const auto hq = crypto::SigningKey::generate();
    const struct {
      mesh::EventPtr event;
      bool replicated;
    } rows[] = {{event_of("clinic-north", 1, me), true},
                {event_of("clinic-north", 2, me), false},
                {event_of("clinic-north", 3, me), true},
                {event_of("clinic-north", 4, me), false},
                {event_of("hq", 1, hq), false},
                {event_of("hq", 2, hq), true}};
    for (const auto& row : rows) {
      tx.exec_params(
          "INSERT INTO relay_event_log (origin, seq, priority, kind, signed, replicated) "
          "VALUES ($1, $2, 2, 1, decode($3, 'hex'), $4)",
          row.event->key.origin, row.event->key.seq,
          store::to_hex(row.event->signed_event.SerializeAsString()), row.replicated);
    }
    tx.commit();
  }
  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  CHECK(seqs_of(s.unreplicated) == std::vector<std::uint64_t>{2, 4});
  CHECK(count(conn, "SELECT count(*) FROM relay_unreplicated") == 2);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 6);
}

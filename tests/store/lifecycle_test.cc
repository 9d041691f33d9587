// The store's part in the life of a site, against a real PostgreSQL: rows
// that would poison a claim, numbering across a rebuilt or restored
// database, settled history that survives a restart, receipts that say what
// a target did.
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include "common/state_dir.h"
#include "relay/store/numbering.h"
#include "relay/store/outbox.h"
#include "relay/store/pg_store.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/store_helpers.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using namespace relay::test;

namespace {

void exec(pqxx::connection& conn, const std::string& sql) {
  pqxx::work tx(conn);
  tx.exec(sql);
  tx.commit();
}

}  // namespace

TEST_CASE("poison rows go to outbox_rejected and never hold back the duress beside them") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "hq", 100);
  const std::vector<std::pair<std::string, std::string>> poison = {
      {"INSERT INTO outbox (title, expires_at) VALUES ('forever', 'infinity')", "infinite"},
      {"INSERT INTO outbox (title, date_inserted) VALUES ('from the past', '-infinity')",
       "infinite"},
      {"INSERT INTO outbox (title, expires_at) VALUES ('far', '20000-01-01')", "1970 to 9999"},
      {"INSERT INTO outbox (title, body) VALUES ('huge', repeat('x', 20000000))", "too large"},
      {"INSERT INTO outbox (title, data) VALUES ('big data', jsonb_build_object('x', "
       "repeat('y', 100000)))",
       "too large"},
      {"INSERT INTO outbox (title, targets) VALUES ('two-dimensional', '{{hq,all},{hq,all}}')",
       "one-dimensional"},
      {"INSERT INTO outbox (title, targets) VALUES ('a null target', ARRAY['hq', NULL])", "NULL"},
      {"INSERT INTO outbox (title, refs) VALUES ('a null ref', ARRAY[NULL]::text[])", "NULL"},
      {"INSERT INTO outbox (title, expires_at) VALUES ('stale', now() - interval '1 hour')",
       "expired"},
      {"INSERT INTO outbox (title, data) VALUES ('not an object', '\"just text\"')", ""},
  };
  for (const auto& [sql, reason] : poison) exec(conn, sql);
  exec(conn,
       "INSERT INTO outbox (kind, title, location, targets) VALUES ('duress', 'Duress', 'Psych "
       "ward, room 12', '{all}')");
  const auto result = store::claim_outbox(conn, hq_config(), crypto::SigningKey::generate(), 64);
  REQUIRE(result.events.size() == 2);  // the duress first, and the harmless JSON
  CHECK(result.events[0]->priority == v1::PRIORITY_DURESS);
  CHECK(result.rejected == poison.size() - 1);
  CHECK(count(conn, "SELECT count(*) FROM outbox") == 0);
  pqxx::read_transaction tx(conn);
  const auto rejected = tx.exec(
      "SELECT row_data->>'title', reason, length(row_data::text) FROM outbox_rejected "
      "ORDER BY id");
  REQUIRE(rejected.size() == poison.size() - 1);
  for (std::size_t i = 0; i + 1 < poison.size(); ++i) {
    CAPTURE(poison[i].first);
    CHECK(rejected[static_cast<int>(i)][1].as<std::string>().find(poison[i].second) !=
          std::string::npos);
    CHECK(rejected[static_cast<int>(i)][2].as<int>() < 4000);  // a description, not the value
  }
}

TEST_CASE("site software cannot insert a relay.* type, one already waiting is rejected") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "hq", 100);
  CHECK_THROWS_AS(
      exec(conn, "INSERT INTO outbox (title, type) VALUES ('fake', 'relay.supervision')"),
      pqxx::check_violation);
  // A row from before migration 3 (the constraint does not check old rows).
  exec(conn,
       "ALTER TABLE outbox DROP CONSTRAINT outbox_type_not_reserved;"
       "INSERT INTO outbox (title, type) VALUES ('fake', 'relay.supervision');"
       "ALTER TABLE outbox ADD CONSTRAINT outbox_type_not_reserved "
       "CHECK (type NOT LIKE 'relay.%') NOT VALID");
  const auto result = store::claim_outbox(conn, hq_config(), crypto::SigningKey::generate(), 8);
  CHECK(result.events.empty());
  CHECK(result.rejected == 1);
  CHECK(count(conn, "SELECT count(*) FROM outbox_rejected WHERE reason LIKE '%reserved%'") == 1);
}

TEST_CASE("numbering: a rebuilt or restored database never reuses a seq") {
  PgCluster pg;
  TempDir temp;
  StateDir state(temp / "state");
  const auto key = crypto::SigningKey::generate();
  const Config config = hq_config();
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "hq", 100);
  {
    store::NumberingState numbering(state);
    numbering.on_database(store::own_highest(conn, "hq"));
    CHECK(numbering.state_lost());  // a new node: learns first
    numbering.update({true, 0, false});
    exec(conn, "INSERT INTO outbox (title) SELECT 'n' || g FROM generate_series(1, 5) g");
    CHECK(store::claim_outbox(conn, config, key, 64, false, &numbering).events.back()->key.seq ==
          5);
  }
  CHECK(state.read_counter("seq") == 5u);  // durable before the claim committed

  // The database dropped and created again: empty, but the mark remembers.
  exec(conn,
       "DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP TABLE IF EXISTS "
       "relay_schema_migrations");
  store::open_database(conn, "hq", 100);
  store::NumberingState numbering(state);
  numbering.on_database(store::own_highest(conn, "hq"));
  CHECK_FALSE(numbering.state_lost());
  mesh::Snapshot snapshot;
  numbering.describe(snapshot);
  CHECK(snapshot.restored);
  CHECK(snapshot.own_high_water == 5);
  // Before the peers answer: in a block of this life's own, above the mark.
  exec(conn, "INSERT INTO outbox (kind, title) VALUES ('duress', 'at once')");
  const auto duress = store::claim_outbox(conn, config, key, 64, true, &numbering);
  REQUIRE(duress.events.size() == 1);
  const std::uint64_t jumped = duress.events[0]->key.seq;
  CHECK(jumped > 6);
  CHECK(state.read_counter("seq") == jumped);
  exec(conn, "INSERT INTO outbox (kind, title) VALUES ('duress', 'in the same block')");
  CHECK(store::claim_outbox(conn, config, key, 64, true, &numbering).events.at(0)->key.seq ==
        jumped + 1);
  // Every peer answered: numbering continues above what they hold.
  numbering.update({true, jumped + 10, false});
  exec(conn, "INSERT INTO outbox (title) VALUES ('sure')");
  CHECK(store::claim_outbox(conn, config, key, 64, false, &numbering).events.at(0)->key.seq ==
        jumped + 11);
}

TEST_CASE("settled history and receipt outcomes survive a restart") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  {
    pqxx::work tx(conn);
    mesh::StoreBatch batch;
    batch.events.push_back({event_of("hq", 101, hq), true, v1::OUTCOME_TOO_OLD});
    batch.events.push_back({event_of("hq", 102, hq), true, v1::OUTCOME_DELIVERED_LATE});
    batch.settled.push_back({"hq", {1, 100}});    // continues the (empty) prefix
    batch.settled.push_back({"hq", {200, 300}});  // above a hole
    batch.settled.push_back({"clinic-south", {5, 9}});
    store::write_batch(tx, "clinic-north", {batch});
    tx.commit();
  }
  // Only the late one is in message_queue, flagged; both owe a receipt.
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 1);
  CHECK(count(conn, "SELECT count(*) FROM message_queue WHERE (data->>'late')::boolean") == 1);
  CHECK(count(conn, "SELECT count(*) FROM relay_receipts_owed WHERE outcome = 3") == 1);
  CHECK(count(conn, "SELECT pruned_through FROM relay_watermarks WHERE origin = 'hq'") == 100);
  // A settled seq never stored here that arrives later is new: a settled
  // claim only stops pulls. Stored once, delivered once, also below the
  // prefix and after its log row is pruned.
  for (std::uint64_t seq : {250, 50, 250, 50}) {
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north", {batch_of({event_of("hq", seq, hq)}, true)});
    tx.commit();
  }
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log WHERE seq IN (50, 250)") == 2);
  CHECK(count(conn, "SELECT count(*) FROM message_queue WHERE seq IN (50, 250)") == 2);
  exec(conn, "DELETE FROM relay_event_log WHERE seq = 50");  // pruned meanwhile
  {
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north", {batch_of({event_of("hq", 50, hq)}, true)});
    tx.commit();
  }
  CHECK(count(conn, "SELECT count(*) FROM message_queue WHERE seq = 50") == 1);
  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  const auto& seqs = s.stored.at("hq");
  CHECK(seqs.settled_through() == 100);
  CHECK(seqs.watermark() == 102);
  CHECK(seqs.servable(101));
  CHECK(seqs.contains(260));     // settled: not pulled
  CHECK_FALSE(seqs.held(260));   // never stored here: new if it comes
  CHECK_FALSE(seqs.held(10));    // the same below the prefix
  CHECK(seqs.held(250));         // came late: a duplicate from now on
  CHECK(seqs.held(50));
  CHECK_FALSE(seqs.servable(260));
  CHECK_FALSE(seqs.contains(150));
  CHECK(seqs.held_watermark() == 0);  // acks never cover what was never stored
  CHECK(s.stored.at("clinic-south").void_ranges().size() == 1);
  REQUIRE(s.receipts_owed.size() == 4);  // the two that came late too
  CHECK(s.receipts_owed[0].outcome != v1::OUTCOME_DELIVERED);
}

TEST_CASE("one write may carry the same settled range twice, from two digests") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  mesh::StoreBatch first, second;
  first.settled.push_back({"hq", {1, 5}});
  first.settled.push_back({"hq", {20, 30}});
  second.settled.push_back({"hq", {1, 5}});    // the same range again
  second.settled.push_back({"hq", {20, 40}});  // the same start, further on
  {
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north", {first, second});
    tx.commit();
  }
  CHECK(count(conn, "SELECT pruned_through FROM relay_watermarks WHERE origin = 'hq'") == 5);
  CHECK(count(conn, "SELECT last FROM relay_settled WHERE origin = 'hq' AND first = 20") == 40);
}

TEST_CASE("retention moves the settled prefix across settled ranges and reports it") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  {
    pqxx::work tx(conn);
    mesh::StoreBatch batch = batch_of({event_of("hq", 1, hq), event_of("hq", 2, hq)}, false);
    batch.settled.push_back({"hq", {3, 10}});
    batch.events.push_back({event_of("hq", 11, hq), false});
    store::write_batch(tx, "clinic-north", {batch});
    tx.exec("UPDATE relay_event_log SET stored_at = now() - interval '40 days' WHERE seq <= 2");
    tx.commit();
  }
  store::PruneRules rules;
  rules.retention = std::chrono::hours(24 * 30);
  const auto pruned = store::prune_log(conn, "clinic-north", rules);
  CHECK(pruned.rows == 2);
  CHECK(pruned.settled_through.at("hq") == 10);  // 1..2 pruned, 3..10 folded in
  // Still known as never stored here, once the prefix has passed it.
  CHECK(count(conn, "SELECT count(*) FROM relay_settled") == 1);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 1);
  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  CHECK(s.stored.at("hq").held(2));
  CHECK_FALSE(s.stored.at("hq").held(5));
  CHECK(s.stored.at("hq").held(11));
}

TEST_CASE("an all-clear travels at the priority of what it clears, and targets are resolved") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "hq", 100);
  const auto key = crypto::SigningKey::generate();
  exec(conn, "INSERT INTO outbox (kind, title, targets) VALUES ('duress', 'D', '{group:clinics}')");
  const auto duress = store::claim_outbox(conn, hq_config(), key, 8);
  REQUIRE(duress.events.size() == 1);
  CHECK(duress.events[0]->resolved == std::vector<std::string>{"clinic-north", "clinic-south"});
  exec(conn, "INSERT INTO outbox (kind, title, refs) VALUES ('all-clear', 'clear', '{hq:1}')");
  const auto clear = store::claim_outbox(conn, hq_config(), key, 8);
  REQUIRE(clear.events.size() == 1);
  CHECK(clear.events[0]->priority == v1::PRIORITY_DURESS);
}

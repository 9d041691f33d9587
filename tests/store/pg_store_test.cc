// The PostgreSQL store against a real PostgreSQL, started per test.
#include "relay/store/pg_store.h"
#include "relay/store/durability.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "relay/store/migrate.h"
#include "relay/store/outbox.h"
#include "relay/wire/bundle.h"
#include "relay/wire/datagram.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/store_helpers.h"

using namespace relay;
using namespace std::chrono_literals;
using relay::test::PgCluster;
using namespace relay::test;
namespace v1 = relaymesh::v1;

namespace {

store::StoreOptions options_for(const PgCluster& pg) {
  store::StoreOptions options;
  options.dsn = pg.dsn();
  options.self = "clinic-north";
  options.reconnect_first = 50ms;
  return options;
}

/// Collects store completions from the store's threads.
struct Completions {
  std::mutex mutex;
  std::condition_variable changed;
  std::set<std::uint64_t> stored;
  std::set<std::uint64_t> failed;
  std::vector<bool> health;

  store::StoreCallbacks callbacks() {
    return {[this](const mesh::StoreDone& done) {
              std::lock_guard lock(mutex);
              (done.failed ? failed : stored).insert(done.ticket);
              changed.notify_all();
            },
            [](std::uint64_t, std::vector<mesh::EventPtr>) {},
            [this](const std::string&, bool healthy, const std::string&) {
              std::lock_guard lock(mutex);
              health.push_back(healthy);
            }};
  }

  bool wait_for(std::size_t n, std::chrono::seconds limit) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, limit, [&] { return stored.size() + failed.size() >= n; });
  }
};

}  // namespace

TEST_CASE("migrations apply once, also when two processes start at once") {
  PgCluster pg;
  std::vector<std::string> applied[2];
  std::thread a([&] {
    pqxx::connection c(pg.dsn());
    applied[0] = store::migrate(c);
  });
  std::thread b([&] {
    pqxx::connection c(pg.dsn());
    applied[1] = store::migrate(c);
  });
  a.join();
  b.join();
  CHECK(applied[0].size() + applied[1].size() == store::migrations().size());
  pqxx::connection conn(pg.dsn());
  CHECK(count(conn, "SELECT count(*) FROM relay_schema_migrations") ==
        static_cast<std::int64_t>(store::migrations().size()));
  CHECK(store::migrate(conn).empty());
}

TEST_CASE("the same event stored twice gives one log row and one message_queue row") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto key = crypto::SigningKey::generate();
  const auto event = event_of("hq", 1, key);

  SUBCASE("one after the other") {
    for (int i = 0; i < 2; ++i) {
      pqxx::work tx(conn);
      store::write_batch(tx, "clinic-north", {batch_of({event}, true)});
      tx.commit();
    }
  }
  SUBCASE("two transactions racing") {
    // The second insert waits on the first's row lock, then finds the row.
    pqxx::connection other(pg.dsn());
    pqxx::work first(conn);
    store::write_batch(first, "clinic-north", {batch_of({event}, true)});
    std::atomic<bool> second_done{false};
    std::thread racer([&] {
      pqxx::work second(other);
      store::write_batch(second, "clinic-north", {batch_of({event}, true)});
      second.commit();
      second_done = true;
    });
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(second_done.load());  // blocked behind the first
    first.commit();
    racer.join();
  }
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 1);
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 1);
  CHECK(count(conn, "SELECT count(*) FROM relay_receipts_owed") == 1);
  pqxx::read_transaction tx(conn);
  const auto row = tx.exec1(
      "SELECT type, data->>'id', data->>'title', data->'data'->>'floor', data->>'kind' FROM "
      "message_queue");
  CHECK(row[0].as<std::string>() == "notification");
  CHECK(row[1].as<std::string>() == "hq:1");
  CHECK(row[2].as<std::string>() == "Fire \"west\" wing");
  CHECK(row[3].as<std::string>() == "2");
  CHECK(row[4].as<std::string>() == "notification");
}

TEST_CASE("a batch of new events goes in by COPY, one that is not falls back: nothing twice") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  const auto me = crypto::SigningKey::generate();
  auto write = [&](std::vector<mesh::StoreBatch> batches) {
    store::Written written;
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north", batches, &written);
    tx.commit();
    return written;
  };
  auto events = [&](std::initializer_list<std::uint64_t> seqs) {
    std::vector<mesh::EventPtr> out;
    for (const auto seq : seqs) out.push_back(event_of("hq", seq, hq));
    return out;
  };
  auto exec = [&](const std::string& sql) {
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
  };
  auto queued = [&](std::uint64_t seq) {
    return count(conn, "SELECT count(*) FROM message_queue WHERE origin = 'hq' AND seq = " +
                           std::to_string(seq));
  };

  SUBCASE("all new: COPY writes every row the statement would") {
    mesh::StoreBatch batch = batch_of(events({1, 2}), true);
    batch.events.push_back({event_of("hq", 3, hq, v1::PRIORITY_DURESS), true});
    batch.events.push_back({event_of("hq", 4, hq), true, v1::OUTCOME_TOO_OLD});
    batch.events.push_back({event_of("clinic-north", 1, me), false});
    batch.events.back().outbox_id = 7;
    const auto written = write({batch});
    CHECK(written.copied);
    CHECK(written.logged == 5);
    CHECK(count(conn, "SELECT count(*) FROM relay_event_log WHERE stored_xact IS NOT NULL") == 5);
    CHECK(count(conn, "SELECT outbox_id FROM relay_event_log WHERE origin = 'clinic-north'") == 7);
    CHECK(count(conn, "SELECT count(outbox_id) FROM relay_event_log") == 1);
    CHECK(count(conn, "SELECT count(*) FROM message_queue") == 3);
    // The duress, last in the batch, has the first id of its transaction.
    CHECK(count(conn, "SELECT seq FROM message_queue ORDER BY id LIMIT 1") == 3);
    // Owed since the transaction that stored them, as the statement says it.
    CHECK(count(conn,
                "SELECT count(*) FROM relay_receipts_owed o JOIN relay_event_log l "
                "USING (origin, seq) WHERE o.delivered_at = l.stored_at") == 4);
    CHECK(count(conn, "SELECT outcome FROM relay_receipts_owed WHERE seq = 4") ==
          v1::OUTCOME_TOO_OLD);
    CHECK(count(conn, "SELECT count(*) FROM relay_unreplicated WHERE origin = 'clinic-north'") ==
          1);
    const pqxx::binarystring stored(
        pqxx::read_transaction(conn).exec1("SELECT signed FROM relay_event_log WHERE seq = 2")[0]);
    CHECK(stored.str() == batch.events[1].event->signed_event.SerializeAsString());
  }
  SUBCASE("a duplicate among new events: the statement writes the rest, the duplicate nothing") {
    CHECK(write({batch_of(events({3}), true)}).copied);
    const auto written = write({batch_of(events({1, 2, 3, 4, 5}), true)});
    CHECK_FALSE(written.copied);
    CHECK(written.logged == 4);
    for (std::uint64_t seq = 1; seq <= 5; ++seq) CHECK(queued(seq) == 1);
    CHECK(count(conn, "SELECT count(*) FROM relay_receipts_owed") == 5);
    CHECK(write({batch_of(events({1, 2, 3, 4, 5}), true)}).logged == 0);
    CHECK(count(conn, "SELECT count(*) FROM message_queue") == 5);
  }
  SUBCASE("a pruned seq: never delivered again, its neighbours are") {
    CHECK(write({batch_of(events({1, 2}), true)}).copied);
    exec("UPDATE relay_event_log SET stored_at = now() - interval '40 days'");
    exec("DELETE FROM relay_receipts_owed");  // hq confirmed them
    exec("DELETE FROM message_queue");        // consumers took them
    store::PruneRules rules;
    rules.retention = std::chrono::hours(24 * 30);
    CHECK(store::prune_log(conn, "clinic-north", rules).rows == 2);
    const auto written = write({batch_of(events({2, 3}), true)});
    CHECK_FALSE(written.copied);
    CHECK(written.logged == 1);
    CHECK(queued(2) == 0);
    CHECK(queued(3) == 1);
  }
  SUBCASE("a settled seq is new but remembered as late; late, it is a duplicate for ever") {
    mesh::StoreBatch settled;
    settled.settled.push_back({"hq", {10, 20}});
    write({settled});
    const auto written = write({batch_of(events({15, 30}), true)});
    CHECK_FALSE(written.copied);
    CHECK(written.logged == 2);
    CHECK(count(conn, "SELECT seq FROM relay_late WHERE origin = 'hq'") == 15);
    exec("DELETE FROM relay_event_log WHERE seq = 15");  // pruned meanwhile
    CHECK(write({batch_of(events({15, 31}), true)}).logged == 1);
    CHECK(queued(15) == 1);
    CHECK(queued(31) == 1);
  }
}

TEST_CASE("two concurrent claimers never claim one outbox row twice and leave no gap in seq") {
  PgCluster pg;
  const Config config = hq_config();
  const auto key = crypto::SigningKey::generate();
  {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "hq", 100);
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO outbox (title, priority) SELECT 'row ' || g, "
        "CASE WHEN g % 100 = 0 THEN 'duress' ELSE 'bulk' END FROM generate_series(1, 2000) g");
    tx.commit();
  }
  std::mutex mutex;
  std::vector<v1::Event> claimed;
  auto claimer = [&] {
    pqxx::connection conn(pg.dsn());
    while (true) {
      auto result = store::claim_outbox(conn, config, key, 37);
      std::lock_guard lock(mutex);
      for (const auto& e : result.events)
        claimed.emplace_back().ParseFromString(e->signed_event.event());
      if (result.events.empty() && !result.full) return;
    }
  };
  std::thread a(claimer);
  std::thread b(claimer);
  a.join();
  b.join();
  REQUIRE(claimed.size() == 2000);
  std::set<std::string> titles;
  std::set<std::uint64_t> seqs;
  for (const auto& e : claimed) {
    titles.insert(e.title());
    seqs.insert(e.seq());
  }
  CHECK(titles.size() == 2000);
  CHECK(seqs.size() == 2000);
  CHECK(*seqs.begin() == 1);
  CHECK(*seqs.rbegin() == 2000);
  pqxx::connection conn(pg.dsn());
  CHECK(count(conn, "SELECT count(*) FROM outbox") == 0);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'") == 2000);
  // hq is a target of "all": each is delivered here once, with its receipt.
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 2000);
  CHECK(count(conn, "SELECT count(*) FROM relay_receipts WHERE target = 'hq'") == 2000);
  CHECK(count(conn, "SELECT next_seq FROM relay_node WHERE origin = 'hq'") == 2001);
}

TEST_CASE("a claim takes duress first, signs it, and keeps unusable rows with the reason") {
  PgCluster pg;
  const Config config = hq_config();
  const auto key = crypto::SigningKey::generate();
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "hq", 100);
  {
    pqxx::work tx(conn);
    tx.exec("INSERT INTO outbox (title) VALUES ('routine')");
    tx.exec(
        "INSERT INTO outbox (kind, title, location, targets) VALUES ('duress', 'Duress', 'Psych "
        "ward, room 12', '{group:clinics}')");
    tx.exec("INSERT INTO outbox (title, targets) VALUES ('nowhere', '{clinic-east}')");
    tx.exec("INSERT INTO outbox (title, body) VALUES ('huge', repeat('x', 2000))");
    tx.exec("INSERT INTO outbox (kind, title) VALUES ('all-clear', 'clear of nothing')");
    tx.commit();
  }
  const auto result = store::claim_outbox(conn, config, key, 10);
  REQUIRE(result.events.size() == 2);
  CHECK(result.rejected == 3);
  CHECK_FALSE(result.full);
  v1::Event first;
  REQUIRE(first.ParseFromString(result.events[0]->signed_event.event()));
  CHECK(first.title() == "Duress");
  CHECK(first.priority() == v1::PRIORITY_DURESS);
  CHECK(first.seq() == 1);
  CHECK(wire::verify_signed_event(result.events[0]->signed_event, key.verify_key()));
  CHECK(wire::verify_signed_event(result.events[1]->signed_event, key.verify_key()));
  CHECK(result.events[0]->signed_event.path_size() == 1);  // the two were signed as one bundle
  // The duress targets the clinics, not hq: only the routine one is delivered here.
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 1);
  pqxx::read_transaction tx(conn);
  const auto reasons =
      tx.exec("SELECT row_data->>'title', reason FROM outbox_rejected ORDER BY id");
  REQUIRE(reasons.size() == 3);
  CHECK(reasons[0][1].as<std::string>().find("clinic-east") != std::string::npos);
  CHECK(reasons[1][1].as<std::string>().find("at most 1000") != std::string::npos);
  CHECK(reasons[2][1].as<std::string>().find("must reference") != std::string::npos);
}

TEST_CASE("the store resumes: watermarks, unreplicated own events, receipts owed") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  const auto me = crypto::SigningKey::generate();
  {
    pqxx::work tx(conn);
    store::write_batch(
        tx, "clinic-north",
        {batch_of({event_of("hq", 1, hq), event_of("hq", 2, hq), event_of("hq", 4, hq)}, true),
         batch_of({event_of("clinic-north", 1, me), event_of("clinic-north", 2, me)}, false)});
    mesh::StoreBatch done;
    done.replicated = {{"clinic-north", 1}};
    done.receipts_confirmed = {{{"hq", 2}, "clinic-north", 0}};
    store::write_batch(tx, "clinic-north", {done});
    tx.commit();
  }
  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  CHECK(s.stored.at("hq").watermark() == 2);
  CHECK(s.stored.at("hq").contains(4));
  CHECK_FALSE(s.stored.at("hq").contains(3));
  REQUIRE(s.unreplicated.size() == 1);
  CHECK(s.unreplicated[0]->key.seq == 2);
  REQUIRE(s.receipts_owed.size() == 2);  // hq:1 and hq:4; hq:2 was confirmed
}

TEST_CASE("PostgreSQL restarted in the middle of a stream: nothing lost, nothing twice") {
  PgCluster pg;
  {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "clinic-north", 100);
  }
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  const auto hq = crypto::SigningKey::generate();
  constexpr std::uint64_t kEvents = 1500;
  for (std::uint64_t seq = 1; seq <= kEvents; ++seq) {
    auto priority = seq % 50 == 0 ? v1::PRIORITY_DURESS : v1::PRIORITY_BULK;
    auto b = batch_of({event_of("hq", seq, hq, priority)}, true, seq);
    b.priority = priority;
    store.persist(std::move(b));
    if (seq == kEvents / 2) pg.restart();
    if (seq % 100 == 0) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(done.wait_for(kEvents, 60s));
  store.stop();
  pqxx::connection conn(pg.dsn());
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == static_cast<std::int64_t>(kEvents));
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == static_cast<std::int64_t>(kEvents));
  CHECK(count(conn, "SELECT count(DISTINCT (origin, seq)) FROM message_queue") ==
        static_cast<std::int64_t>(kEvents));
  std::lock_guard lock(done.mutex);
  // The restart was noticed and recovered from.
  CHECK(std::find(done.health.begin(), done.health.end(), false) != done.health.end());
  CHECK(done.health.back());
}

TEST_CASE("killed with SIGKILL between commit and ack: the redelivery is deduplicated") {
  PgCluster pg;
  {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "clinic-north", 100);
  }
  const auto hq = crypto::SigningKey::generate();
  const auto event = event_of("hq", 7, hq, v1::PRIORITY_DURESS);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The receiving process: commits, says so, and dies before it can ack.
    pqxx::connection conn(pg.dsn());
    pqxx::work tx(conn);
    store::write_batch(tx, "clinic-north", {batch_of({event}, true)});
    tx.commit();
    (void)!::write(pipe_fds[1], "c", 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(pipe_fds[0], &c, 1) == 1);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));

  // The sender never saw an ack and sends again; the restarted node stores it.
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  store.persist(batch_of({event}, true, 1));
  REQUIRE(done.wait_for(1, 30s));
  store.stop();
  pqxx::connection conn(pg.dsn());
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 1);
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 1);
}

TEST_CASE("retention prunes old rows and a pruned event is never delivered again") {
  PgCluster pg;
  pqxx::connection conn(pg.dsn());
  store::open_database(conn, "clinic-north", 100);
  const auto hq = crypto::SigningKey::generate();
  const auto me = crypto::SigningKey::generate();
  {
    pqxx::work tx(conn);
    // hq 1, 2, 3, 5 (4 is missing) and own events 1, 2 (2 not yet stored at
    // clinic-south; hq has both).
    store::write_batch(
        tx, "clinic-north",
        {batch_of({event_of("hq", 1, hq), event_of("hq", 2, hq), event_of("hq", 3, hq),
                   event_of("hq", 5, hq)},
                  true),
         batch_of({event_of("clinic-north", 1, me), event_of("clinic-north", 2, me)}, false)});
    mesh::StoreBatch held;
    held.peer_held = {{"hq", 2}, {"clinic-south", 1}};
    store::write_batch(tx, "clinic-north", {held});
    tx.exec(
        "UPDATE relay_event_log SET stored_at = now() - interval '40 days' WHERE seq <> 3 OR "
        "origin <> 'hq'");
    tx.commit();
  }
  // hq:3 is young, so hq stops at 2; 5 lies beyond the hole at 4 anyway.
  // clinic-south lacks own 2, so clinic-north stops at 1, and says so.
  store::PruneRules rules{std::chrono::hours(24 * 30), {"hq", "clinic-south"},
                          std::chrono::hours(24 * 60)};
  const auto pruned = store::prune_log(conn, "clinic-north", rules);
  CHECK(pruned.rows == 3);
  REQUIRE(pruned.kept.size() == 1);
  CHECK(pruned.kept[0].peer == "clinic-south");
  CHECK(pruned.kept[0].first == 2);
  CHECK(pruned.kept[0].count == 1);
  CHECK(count(conn, "SELECT pruned_through FROM relay_watermarks WHERE origin = 'hq'") == 2);
  CHECK(count(conn, "SELECT pruned_through FROM relay_watermarks WHERE origin = 'clinic-north'") ==
        1);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 3);

  const mesh::Snapshot s = store::open_database(conn, "clinic-north", 100);
  CHECK(s.stored.at("hq").watermark() == 3);
  CHECK(s.stored.at("hq").contains(5));
  CHECK(s.stored.at("clinic-north").watermark() == 2);

  // hq:1 arrives again months later: consumers deleted its row long ago, and
  // it must not come back.
  pqxx::work tx(conn);
  tx.exec("DELETE FROM message_queue");
  store::write_batch(tx, "clinic-north", {batch_of({event_of("hq", 1, hq)}, true)});
  tx.commit();
  CHECK(count(conn, "SELECT count(*) FROM message_queue") == 0);
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log WHERE origin = 'hq' AND seq = 1") == 0);

  // Past max_age a peer's lack no longer keeps it; nor does --force.
  rules.max_age = std::chrono::hours(24);
  CHECK(store::prune_log(conn, "clinic-north", rules).kept.empty());
  CHECK(count(conn, "SELECT pruned_through FROM relay_watermarks WHERE origin = 'clinic-north'") ==
        2);
}

TEST_CASE("a batch the database refuses does not block the others in its lane") {
  PgCluster pg;
  {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "clinic-north", 100);
  }
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  const auto hq = crypto::SigningKey::generate();
  // A NUL in the title passes protobuf but not PostgreSQL's jsonb: the
  // wire rejects such events; here one reaches the store directly.
  v1::Event bad;
  bad.set_origin("hq");
  bad.set_seq(2);
  bad.set_priority(v1::PRIORITY_NORMAL);
  bad.add_targets("all");
  bad.set_title(std::string("a\0b", 3));
  store.persist(batch_of({event_of("hq", 1, hq)}, true, 1));
  store.persist(batch_of({mesh::make_event(wire::sign_event(bad, hq), bad)}, true, 2));
  store.persist(batch_of({event_of("hq", 3, hq)}, true, 3));
  REQUIRE(done.wait_for(3, 30s));
  store.stop();
  std::lock_guard lock(done.mutex);
  CHECK(done.stored == std::set<std::uint64_t>{1, 3});
  CHECK(done.failed == std::set<std::uint64_t>{2});
  pqxx::connection conn(pg.dsn());
  CHECK(count(conn, "SELECT count(*) FROM relay_event_log") == 2);
}

TEST_CASE("a read-only database is an outage: the work waits and the lane says so") {
  PgCluster pg;
  pqxx::connection admin(pg.dsn());
  store::open_database(admin, "clinic-north", 100);
  const auto set_read_only = [&](bool on) {
    pqxx::work tx(admin);
    tx.exec(
        "ALTER DATABASE " + tx.quote_name(admin.dbname()) +
        (on ? " SET default_transaction_read_only = on" : " RESET default_transaction_read_only"));
    tx.commit();
  };
  set_read_only(true);  // a standby, or a server put read-only: SQLSTATE 25006
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  store.persist(batch_of({event_of("hq", 1, crypto::SigningKey::generate())}, true, 1));
  const auto lane_down = [&] {
    std::lock_guard lock(done.mutex);
    return !done.health.empty() && !done.health.back();
  };
  for (int i = 0; i < 100 && !lane_down(); ++i) std::this_thread::sleep_for(50ms);
  REQUIRE(lane_down());
  {
    std::lock_guard lock(done.mutex);
    CHECK(done.failed.empty());  // not refused: kept for when the database writes again
    CHECK(done.stored.empty());
  }
  set_read_only(false);
  REQUIRE(done.wait_for(1, 30s));
  store.stop();
  std::lock_guard lock(done.mutex);
  CHECK(done.stored == std::set<std::uint64_t>{1});
  CHECK(done.health.back());
}

TEST_CASE(
    "a site's trigger that raises refuses its batch alone, refusal after refusal marks the lane") {
  PgCluster pg;
  pqxx::connection admin(pg.dsn());
  store::open_database(admin, "clinic-north", 100);
  {
    pqxx::work tx(admin);
    tx.exec(R"sql(
      CREATE FUNCTION even_refused() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.seq % 2 = 0 THEN RAISE EXCEPTION 'no even seqs here'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER even_refused BEFORE INSERT ON message_queue
        FOR EACH ROW EXECUTE FUNCTION even_refused())sql");
    tx.commit();
  }
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  const auto hq = crypto::SigningKey::generate();
  for (std::uint64_t seq = 1; seq <= 3; ++seq)
    store.persist(batch_of({event_of("hq", seq, hq)}, true, seq));
  REQUIRE(done.wait_for(3, 30s));
  {
    std::lock_guard lock(done.mutex);
    CHECK(done.stored == std::set<std::uint64_t>{1, 3});  // P0001: refused, not an outage
    CHECK(done.failed == std::set<std::uint64_t>{2});
    CHECK(std::ranges::count(done.health, false) == 0);
  }
  // One at a time, so that they are refusals in a row.
  std::uint64_t ticket = 10;
  const auto refuse = [&](std::uint64_t seq) {
    store.persist(batch_of({event_of("hq", seq, hq)}, true, ticket++));
    REQUIRE(done.wait_for(ticket - 7, 30s));
  };
  for (int resend = 0; resend < 3; ++resend) refuse(2);
  {
    std::lock_guard lock(done.mutex);
    CHECK(std::ranges::count(done.health, false) == 0);  // one event resent: not the lane
  }
  refuse(4);
  refuse(6);
  {
    std::lock_guard lock(done.mutex);
    CHECK(done.health.back() == false);  // nothing taken lately: the lane says so
  }
  store.persist(batch_of({event_of("hq", 9, hq)}, true, 9));
  REQUIRE(done.wait_for(ticket - 6, 30s));
  store.stop();
  std::lock_guard lock(done.mutex);
  CHECK(done.stored.contains(9));
  CHECK(done.health.back() == true);
}

TEST_CASE("a site's statement_timeout does not cancel relayd's slow writes") {
  PgCluster pg;
  pqxx::connection admin(pg.dsn());
  store::open_database(admin, "clinic-north", 100);
  {
    pqxx::work tx(admin);
    tx.exec("ALTER DATABASE " + tx.quote_name(admin.dbname()) + " SET statement_timeout = '100ms'");
    tx.exec(R"sql(
      CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;
      CREATE TRIGGER slowly BEFORE INSERT ON message_queue
        FOR EACH STATEMENT EXECUTE FUNCTION slowly())sql");
    tx.commit();
  }
  Completions done;
  store::PgStore store(options_for(pg), done.callbacks());
  store.persist(batch_of({event_of("hq", 1, crypto::SigningKey::generate())}, true, 1));
  REQUIRE(done.wait_for(1, 30s));
  store.stop();
  std::lock_guard lock(done.mutex);
  CHECK(done.stored == std::set<std::uint64_t>{1});
  CHECK(std::ranges::count(done.health, false) == 0);
}

TEST_CASE("a watch's DSN gets a connect timeout in either form libpq takes, unless it has one") {
  CHECK(store::with_connect_timeout("host=/tmp dbname=hq", 3) == "host=/tmp dbname=hq connect_timeout=3");
  CHECK(store::with_connect_timeout("postgres://u@db/hq", 3) == "postgres://u@db/hq?connect_timeout=3");
  CHECK(store::with_connect_timeout("postgresql://db/hq?sslmode=require", 5) ==
        "postgresql://db/hq?sslmode=require&connect_timeout=5");
  CHECK(store::with_connect_timeout("host=db connect_timeout=10", 3) == "host=db connect_timeout=10");
}

// Consumer groups, leases and dead letters against a real PostgreSQL.
#include "relay/runner/queue.h"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <set>
#include <thread>

#include "relay/store/migrate.h"
#include "tests/support/pg_cluster.h"

using namespace relay::runner;
using namespace std::chrono_literals;
using relay::test::PgCluster;

namespace {

/// A migrated database and helpers to fill message_queue as relayd does.
struct Db {
  PgCluster pg;
  pqxx::connection conn{pg.dsn()};
  Db() { relay::store::migrate(conn); }

  std::int64_t insert(const std::string& type, int priority = 2) {
    pqxx::work tx(conn);
    auto id = tx.exec_params1(
                    "INSERT INTO message_queue (type, data, priority, origin, seq) "
                    "VALUES ($1, '{\"title\": \"t\"}', $2, 'hq', "
                    "(SELECT count(*) + 1 FROM message_queue)) RETURNING id",
                    type, priority)[0]
                  .as<std::int64_t>();
    tx.commit();
    return id;
  }
  std::int64_t count(const std::string& sql) {
    pqxx::work tx(conn);
    return tx.exec1(sql)[0].as<std::int64_t>();
  }
};

std::vector<std::int64_t> ids(const std::vector<Row>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.queue_id);
  return out;
}

const Consumer popup{"popup", {"duress", "notification"}, "popup-1"};
const Consumer popup2{"popup", {"duress", "notification"}, "popup-2"};
const Consumer sms{"sms", {"duress"}, "sms-1"};

}  // namespace

TEST_CASE("rows are taken duress first, then oldest first, each by one runner of a group") {
  Db db;
  register_group(db.conn, popup);
  const auto n1 = db.insert("notification");
  const auto n2 = db.insert("notification");
  const auto d = db.insert("duress", kDuressPriority);
  db.insert("email");  // no group consumes it: never touched
  CHECK(ingest(db.conn, popup) == 3);
  CHECK(ingest(db.conn, popup) == 0);
  auto first = claim(db.conn, popup, 2, 30s);
  CHECK(ids(first) == std::vector<std::int64_t>{d, n1});
  CHECK(first[0].event_id == "hq:3");
  CHECK(first[0].attempts == 1);
  // The other runner of the group gets what is left, not what is leased.
  CHECK(ids(claim(db.conn, popup2, 10, 30s)) == std::vector<std::int64_t>{n2});
  CHECK(claim(db.conn, popup2, 10, 30s).empty());
  CHECK(db.count("SELECT count(*) FROM runner_rows WHERE queue_id IN (SELECT id FROM "
                 "message_queue WHERE type = 'email')") == 0);
}

TEST_CASE("a duress row is taken as a duress whatever its priority column says") {
  Db db;
  const auto n = db.insert("notification");
  std::int64_t d = 0;
  {
    pqxx::work tx(db.conn);
    d = tx.exec1(
              "INSERT INTO message_queue (type, data, priority, origin, seq) VALUES "
              "('alarm', '{\"kind\": \"duress\"}', 1, 'hq', 9) RETURNING id")[0]
            .as<std::int64_t>();
    tx.exec("INSERT INTO message_queue (type, data, priority) VALUES ('alarm', '[1]', 1)");
    tx.commit();
  }
  const Consumer alarms{"popup", {"notification", "alarm"}, "popup-1"};
  register_group(db.conn, alarms);
  CHECK(ingest(db.conn, alarms) == 3);
  // First, and at duress priority: the retry policy never dead-letters it.
  const auto rows = claim(db.conn, alarms, 1, 30s);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].queue_id == d);
  CHECK(rows[0].priority == kDuressPriority);
  CHECK(db.count("SELECT priority FROM runner_rows WHERE queue_id = " + std::to_string(n)) == 2);
}

TEST_CASE("a lease that runs out makes the row available again, with the attempt counted") {
  Db db;
  register_group(db.conn, popup);
  const auto id = db.insert("notification");
  ingest(db.conn, popup);
  CHECK(claim(db.conn, popup, 1, 1ms).size() == 1);
  std::this_thread::sleep_for(20ms);
  auto again = claim(db.conn, popup2, 1, 30s);
  REQUIRE(again.size() == 1);
  CHECK(again[0].queue_id == id);
  CHECK(again[0].attempts == 2);
}

TEST_CASE("a restarted runner takes back its own leases at once") {
  Db db;
  register_group(db.conn, popup);
  db.insert("notification");
  ingest(db.conn, popup);
  CHECK(claim(db.conn, popup, 1, 1h).size() == 1);
  CHECK(release_leases(db.conn, popup2) == 0);  // not popup-2's
  CHECK(release_leases(db.conn, popup) == 1);
  CHECK(claim(db.conn, popup, 1, 1h).size() == 1);
}

TEST_CASE("a row leaves message_queue only when every group of its type is done") {
  Db db;
  register_group(db.conn, popup);
  register_group(db.conn, sms);
  const auto d = db.insert("duress", kDuressPriority);
  const auto n = db.insert("notification");
  ingest(db.conn, popup);
  ingest(db.conn, sms);
  for (const auto& row : claim(db.conn, popup, 10, 30s)) complete(db.conn, popup, row.queue_id);
  // The notification had popup alone to wait for; the duress waits for sms.
  CHECK(db.count("SELECT count(*) FROM message_queue WHERE id = " + std::to_string(n)) == 0);
  CHECK(db.count("SELECT count(*) FROM message_queue WHERE id = " + std::to_string(d)) == 1);
  auto rows = claim(db.conn, sms, 10, 30s);
  CHECK(ids(rows) == std::vector<std::int64_t>{d});
  complete(db.conn, sms, d);
  CHECK(db.count("SELECT count(*) FROM message_queue") == 0);
  CHECK(db.count("SELECT count(*) FROM runner_rows") == 0);
}

TEST_CASE("two groups finishing the same row at once still remove it") {
  Db db;
  register_group(db.conn, popup);
  register_group(db.conn, sms);
  for (int i = 0; i < 200; ++i) db.insert("duress", kDuressPriority);
  ingest(db.conn, popup);
  ingest(db.conn, sms);
  auto finish = [&](const Consumer& who) {
    pqxx::connection conn(db.pg.dsn());
    for (auto rows = claim(conn, who, 20, 30s); !rows.empty(); rows = claim(conn, who, 20, 30s)) {
      for (const auto& row : rows) complete(conn, who, row.queue_id);
    }
  };
  std::thread a(finish, popup), b(finish, sms);
  a.join();
  b.join();
  CHECK(db.count("SELECT count(*) FROM message_queue") == 0);
}

TEST_CASE("a failed row waits for its backoff, a dead letter keeps the row and the error") {
  Db db;
  register_group(db.conn, popup);
  const auto id = db.insert("notification");
  ingest(db.conn, popup);
  claim(db.conn, popup, 1, 30s);
  RetryDecision retry;
  retry.delay = 200ms;
  fail(db.conn, popup, id, "gateway down", retry);
  CHECK(claim(db.conn, popup, 1, 30s).empty());
  const auto due = next_due(db.conn, popup);
  REQUIRE(due);
  CHECK(*due <= 200ms);
  std::this_thread::sleep_for(250ms);
  REQUIRE(claim(db.conn, popup, 1, 30s).size() == 1);
  RetryDecision dead;
  dead.action = RetryDecision::Action::dead_letter;
  fail(db.conn, popup, id, "gateway still down", dead);
  CHECK(db.count("SELECT count(*) FROM message_queue") == 0);
  pqxx::work tx(db.conn);
  auto r = tx.exec1("SELECT queue_id, attempts, last_error, type FROM runner_dead_letters");
  CHECK(r[0].as<std::int64_t>() == id);
  CHECK(r[1].as<int>() == 2);
  CHECK(r[2].as<std::string>() == "gateway still down");
  CHECK(r[3].as<std::string>() == "notification");
}

TEST_CASE("a failing duress raises an alarm that relayd's page can read, cleared once handled") {
  Db db;
  register_group(db.conn, sms);
  const auto id = db.insert("duress", kDuressPriority);
  ingest(db.conn, sms);
  claim(db.conn, sms, 1, 30s);
  RetryDecision retry;
  retry.delay = 0ms;
  retry.alarm = true;
  fail(db.conn, sms, id, "modem unplugged", retry);
  auto all = alarms(db.conn);
  REQUIRE(all.size() == 1);
  CHECK(all[0].group == "sms");
  CHECK(all[0].event_id == "hq:1");
  CHECK(all[0].last_error == "modem unplugged");
  CHECK(backlog(db.conn, sms).alarms.size() == 1);
  claim(db.conn, sms, 1, 30s);
  complete(db.conn, sms, id);
  CHECK(alarms(db.conn).empty());
}

TEST_CASE("a plain consumer deleting a row takes the groups' state with it") {
  Db db;
  register_group(db.conn, popup);
  db.insert("notification");
  ingest(db.conn, popup);
  auto rows = claim(db.conn, popup, 1, 30s);
  {
    pqxx::work tx(db.conn);
    tx.exec("DELETE FROM message_queue");
    tx.commit();
  }
  CHECK(db.count("SELECT count(*) FROM runner_rows") == 0);
  complete(db.conn, popup, rows[0].queue_id);  // the runner finishing late changes nothing
  CHECK(db.count("SELECT count(*) FROM message_queue") == 0);
}

TEST_CASE("the backlog counts what the group has not finished and how old it is") {
  Db db;
  register_group(db.conn, popup);
  register_group(db.conn, sms);
  db.insert("duress", kDuressPriority);
  db.insert("notification");
  std::this_thread::sleep_for(50ms);
  auto b = backlog(db.conn, popup);
  CHECK(b.pending == 2);
  CHECK(b.lag >= 50ms);
  ingest(db.conn, popup);
  for (const auto& row : claim(db.conn, popup, 10, 30s)) complete(db.conn, popup, row.queue_id);
  CHECK(backlog(db.conn, popup).pending == 0);
  CHECK(backlog(db.conn, sms).pending == 1);
}

TEST_CASE("a group's types are replaced on registration, and the change is reported") {
  Db db;
  CHECK_FALSE(register_group(db.conn, popup));
  CHECK_FALSE(register_group(db.conn, popup));
  Consumer narrower = popup;
  narrower.types = {"duress"};
  auto before = register_group(db.conn, narrower);
  REQUIRE(before);
  CHECK(*before == "duress, notification");
}

TEST_CASE("retiring a group removes the rows only it still owed, and nothing else") {
  Db db;
  const Consumer sms_only{"sms", {"duress", "sms-only"}, "sms-1"};
  const Consumer pager{"pager", {"duress"}, "pager-1"};
  register_group(db.conn, popup);
  register_group(db.conn, sms_only);
  register_group(db.conn, pager);
  const auto owed_by_sms = db.insert("duress", kDuressPriority);
  const auto owed_by_pager = db.insert("duress", kDuressPriority);
  const auto notification = db.insert("notification");
  const auto only_sms = db.insert("sms-only");
  const auto email = db.insert("email");
  ingest(db.conn, popup);
  ingest(db.conn, pager);
  for (const auto& row : claim(db.conn, popup, 2, 30s, kDuressPriority))
    complete(db.conn, popup, row.queue_id);
  auto rows = claim(db.conn, pager, 1, 30s);
  REQUIRE(ids(rows) == std::vector<std::int64_t>{owed_by_sms});
  fail(db.conn, pager, owed_by_sms, "down", {RetryDecision::Action::dead_letter});

  SUBCASE("a group that does not exist") {
    const auto r = retire_group(db.conn, "smss");
    CHECK(r.outcome == Retirement::Outcome::no_such_group);
    CHECK(r.groups == std::vector<std::string>{"pager", "popup", "sms"});
    CHECK(db.count("SELECT count(*) FROM message_queue") == 5);
  }
  SUBCASE("while one of its runners holds a lease") {
    ingest(db.conn, sms_only);
    REQUIRE(claim(db.conn, sms_only, 1, 30s).size() == 1);
    const auto r = retire_group(db.conn, "sms");
    CHECK(r.outcome == Retirement::Outcome::leased);
    REQUIRE(r.leases.size() == 1);
    CHECK(r.leases[0].runner == "sms-1");
    CHECK(r.leases[0].remaining > 20s);
    CHECK(db.count("SELECT count(*) FROM runner_groups") == 3);
    CHECK(db.count("SELECT count(*) FROM message_queue") == 5);
  }
  SUBCASE("retired") {
    const auto r = retire_group(db.conn, "sms");
    REQUIRE(r.outcome == Retirement::Outcome::retired);
    CHECK(r.types == std::vector<std::string>{"duress", "sms-only"});
    // popup handled it and pager dead-lettered it: sms alone owed it.
    CHECK(r.removed == 1);
    CHECK(db.count("SELECT count(*) FROM message_queue WHERE id = " +
                   std::to_string(owed_by_sms)) == 0);
    // Still owed by pager, by popup, and by nobody (a type no group consumes now).
    for (const auto id : {owed_by_pager, notification, only_sms, email})
      CHECK(db.count("SELECT count(*) FROM message_queue WHERE id = " + std::to_string(id)) == 1);
    CHECK(r.unconsumed == std::vector<std::pair<std::string, std::int64_t>>{{"sms-only", 1}});
    CHECK(db.count("SELECT count(*) FROM runner_groups WHERE name = 'sms'") == 0);
    CHECK(retire_group(db.conn, "sms").outcome == Retirement::Outcome::no_such_group);
  }
}

TEST_CASE("a group retired while another finishes its rows leaves none of them behind") {
  Db db;
  register_group(db.conn, popup);
  register_group(db.conn, sms);
  for (int i = 0; i < 200; ++i) db.insert("duress", kDuressPriority);
  ingest(db.conn, popup);
  std::thread finish([&] {
    pqxx::connection conn(db.pg.dsn());
    for (auto rows = claim(conn, popup, 1, 30s); !rows.empty(); rows = claim(conn, popup, 1, 30s))
      complete(conn, popup, rows.front().queue_id);
  });
  // Mid-way: some rows done by popup (retire removes them), some not yet
  // (popup's complete removes them, sms being gone).
  while (db.count("SELECT count(*) FROM runner_rows WHERE done_at IS NOT NULL") < 50)
    std::this_thread::sleep_for(1ms);
  pqxx::connection conn(db.pg.dsn());
  CHECK(retire_group(conn, "sms").outcome == Retirement::Outcome::retired);
  finish.join();
  CHECK(db.count("SELECT count(*) FROM message_queue") == 0);
}

// The outbox wake-up path with a real PostgreSQL and real UDP sockets.
#include "relay/net/outbox_watch.h"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include "relay/net/consumer_kicks.h"
#include "relay/store/pg_store.h"
#include "tests/support/pg_cluster.h"

using namespace relay;
using namespace std::chrono_literals;
using relay::test::PgCluster;

namespace {

Config hq_config() {
  Config c;
  c.node.id = "hq";
  c.node.groups = {"hq"};
  return c;
}

/// A watch on a fresh database, and what it claimed.
struct Fixture {
  PgCluster pg;
  Config config = hq_config();
  asio::io_context io;
  std::vector<store::ClaimResult> claims;
  std::unique_ptr<net::OutboxWatch> watch;

  explicit Fixture(net::OutboxOptions options) {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "hq", 100);
    options.dsn = pg.dsn();
    options.kick = {"127.0.0.1", 0};
    watch = std::make_unique<net::OutboxWatch>(
        io, options, config, crypto::SigningKey::generate(),
        [this](store::ClaimResult r) { claims.push_back(std::move(r)); });
    watch->start();
    io.run_for(300ms);  // the claim at start finds nothing
  }
  ~Fixture() {
    watch->stop();
    io.restart();
    io.poll();  // let the cancelled loops finish before the watch goes
  }

  void insert(const std::string& extra_sql = "") {
    pqxx::connection conn(pg.dsn());
    pqxx::work tx(conn);
    tx.exec("INSERT INTO outbox (title) VALUES ('fresh')");
    if (!extra_sql.empty()) tx.exec(extra_sql);
    tx.commit();
  }

  /// Runs the io_context until a claim arrives; returns how long it took.
  std::optional<std::chrono::milliseconds> wait_claim(std::chrono::milliseconds limit) {
    const auto start = std::chrono::steady_clock::now();
    while (claims.empty() && std::chrono::steady_clock::now() - start < limit) io.run_for(5ms);
    if (claims.empty()) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }
};

net::OutboxOptions options(bool listen, std::chrono::milliseconds poll) {
  net::OutboxOptions o;
  o.listen = listen;
  o.poll_interval = poll;
  return o;
}

}  // namespace

TEST_CASE("a kick makes a fresh outbox row claimed at once") {
  Fixture f(options(false, 1h));
  f.insert();
  CHECK_FALSE(f.wait_claim(300ms));  // no poll for an hour, no NOTIFY: nothing yet
  asio::ip::udp::socket producer(f.io, asio::ip::udp::v4());
  producer.send_to(asio::buffer("kick", 4),
                   {asio::ip::make_address("127.0.0.1"), f.watch->kick_port()});
  const auto took = f.wait_claim(2s);
  REQUIRE(took);
  MESSAGE("kick to claim: ", took->count(), " ms");
  CHECK(f.claims[0].events.size() == 1);
  CHECK(f.watch->kicks() == 1);
}

TEST_CASE("a NOTIFY on channel outbox makes the row claimed at once") {
  Fixture f(options(true, 1h));
  f.insert("NOTIFY outbox");
  const auto took = f.wait_claim(2s);
  REQUIRE(took);
  CHECK(f.claims[0].events.size() == 1);
  CHECK(f.watch->notifies() >= 1);
}

TEST_CASE("with kicks and NOTIFY both missing, the poll still claims the row") {
  Fixture f(options(false, 200ms));
  f.insert();
  const auto took = f.wait_claim(3s);
  REQUIRE(took);
  CHECK(f.claims[0].events.size() == 1);
  CHECK(f.watch->kicks() == 0);
}

TEST_CASE("after PostgreSQL restarts, the LISTEN reconnect brings a full claim") {
  Fixture f(options(true, 1h));
  f.insert();  // no NOTIFY, no kick, no poll for an hour
  CHECK_FALSE(f.wait_claim(300ms));
  f.pg.restart();
  const auto took = f.wait_claim(10s);
  REQUIRE(took);
  CHECK(f.claims[0].events.size() == 1);
}

TEST_CASE("a full claim is followed by another at once") {
  Fixture f(options(false, 1h));
  {
    pqxx::connection conn(f.pg.dsn());
    pqxx::work tx(conn);
    tx.exec("INSERT INTO outbox (title) SELECT 'row ' || g FROM generate_series(1, 1000) g");
    tx.commit();
  }
  f.watch->wake();
  std::size_t claimed = 0;
  const auto start = std::chrono::steady_clock::now();
  while (claimed < 1000 && std::chrono::steady_clock::now() - start < 10s) {
    f.io.run_for(10ms);
    claimed = 0;
    for (const auto& c : f.claims) claimed += c.events.size();
  }
  CHECK(claimed == 1000);
  CHECK(f.claims.size() >= 4);  // batches of 256
}

TEST_CASE("consumers get a datagram on their kick port") {
  asio::io_context io;
  asio::ip::udp::socket consumer(io, {asio::ip::make_address("127.0.0.1"), 0});
  net::ConsumerKicks kicks(io, {{"127.0.0.1", consumer.local_endpoint().port()}});
  kicks.kick();
  std::array<char, 64> buffer{};
  consumer.non_blocking(false);
  const auto n = consumer.receive(asio::buffer(buffer));
  CHECK(std::string(buffer.data(), n) == "message_queue");
  CHECK(kicks.failures() == 0);
}

TEST_CASE("while back-pressure pauses claims, duress and emergency rows are still claimed") {
  Fixture f(options(false, 1h));
  f.watch->set_paused(true);
  {
    pqxx::connection conn(f.pg.dsn());
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO outbox (title, priority) SELECT 'bulk ' || g, 'bulk' FROM generate_series(1, "
        "50) g");
    tx.exec("INSERT INTO outbox (kind, title) VALUES ('duress', 'Duress')");
    tx.exec("INSERT INTO outbox (title, priority) VALUES ('Fire', 'emergency')");
    tx.commit();
  }
  f.watch->wake();
  REQUIRE(f.wait_claim(2s));
  f.io.run_for(300ms);
  std::size_t claimed = 0;
  for (const auto& c : f.claims) claimed += c.events.size();
  CHECK(claimed == 2);
  CHECK(f.claims[0].events[0]->priority == relaymesh::v1::PRIORITY_DURESS);
  CHECK(f.claims[0].events[1]->priority == relaymesh::v1::PRIORITY_EMERGENCY);
  f.watch->set_paused(false);
  const auto start = std::chrono::steady_clock::now();
  while (claimed < 52 && std::chrono::steady_clock::now() - start < 5s) {
    f.io.run_for(10ms);
    claimed = 0;
    for (const auto& c : f.claims) claimed += c.events.size();
  }
  CHECK(claimed == 52);
}

TEST_CASE("events of a claim whose connection broke after its commit are still handed over") {
  Fixture f(options(false, 1h));
  // A claim that committed while the watch never heard back: made here on a
  // connection of our own, standing in for one that broke during COMMIT.
  f.insert();
  {
    pqxx::connection conn(f.pg.dsn());
    REQUIRE(store::claim_outbox(conn, f.config, crypto::SigningKey::generate(), 10).events.size() ==
            1);
  }
  f.pg.restart();  // the watch's connection breaks: its next claim fails
  f.watch->wake();
  const auto took = f.wait_claim(10s);
  REQUIRE(took);
  REQUIRE(f.claims[0].events.size() == 1);
  CHECK(f.claims[0].events[0]->key.seq == 1);
}

TEST_CASE("a NOTIFY on relay_retention calls retention_changed and claims nothing") {
  int changed = 0;
  auto o = options(true, 1h);
  o.retention_changed = [&] { ++changed; };
  Fixture f(o);
  f.insert("NOTIFY relay_retention");
  const auto start = std::chrono::steady_clock::now();
  while (changed == 0 && std::chrono::steady_clock::now() - start < 2s) f.io.run_for(5ms);
  CHECK(changed == 1);
  CHECK(f.claims.empty());  // a hint for the core, not for the claim
  CHECK(f.watch->notifies() == 0);
}

TEST_CASE("the claim and the LISTEN connection report to Health, ok and failing") {
  net::Health health;
  {
    auto o = options(true, 1h);
    o.health = &health;
    Fixture f(o);
    const auto ok = [&](std::string_view part) {
      return health.part(part).state == net::ComponentHealth::State::ok;
    };
    const auto start = std::chrono::steady_clock::now();
    while (!(ok(net::Health::kOutboxClaim) && ok(net::Health::kOutboxListen)) &&
           std::chrono::steady_clock::now() - start < 5s) {
      f.io.run_for(10ms);
    }
    CHECK(ok(net::Health::kOutboxClaim));
    CHECK(ok(net::Health::kOutboxListen));
  }
  net::Health away;
  asio::io_context io;
  auto o = options(true, 1h);
  o.health = &away;
  o.dsn = "host=/nonexistent-relaymesh user=postgres connect_timeout=1";
  o.kick = {"127.0.0.1", 0};
  net::OutboxWatch watch(io, o, hq_config(), crypto::SigningKey::generate(),
                         [](store::ClaimResult) {});
  watch.start();
  const auto failing = [&](std::string_view part) {
    return away.part(part).state == net::ComponentHealth::State::failing &&
           !away.part(part).error.empty();
  };
  const auto start = std::chrono::steady_clock::now();
  while (!(failing(net::Health::kOutboxClaim) && failing(net::Health::kOutboxListen)) &&
         std::chrono::steady_clock::now() - start < 5s) {
    io.run_for(10ms);
  }
  CHECK(failing(net::Health::kOutboxClaim));
  CHECK(failing(net::Health::kOutboxListen));
  watch.stop();
  io.restart();
  io.poll();
}

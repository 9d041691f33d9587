// relay/wake's roles with real UDP sockets and a real PostgreSQL: what
// relayd's outbox watch (tests/net/outbox_watch_test.cc) and relay-runner
// (tests/runner/runner_test.sh) rely on.
#include "relay/wake/wake.h"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include "tests/support/pg_cluster.h"

using namespace relay;
using namespace std::chrono_literals;
using relay::test::PgCluster;

namespace {

/// Runs `io` until `done` or `limit`; true if done.
template <typename Done>
bool run_until(asio::io_context& io, Done done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) io.run_for(5ms);
  return done();
}

void notify(const PgCluster& pg, const std::string& channel) {
  pqxx::connection conn(pg.dsn());
  pqxx::nontransaction tx(conn);
  tx.exec("NOTIFY " + channel);
}

}  // namespace

TEST_CASE("any datagram on the kick port wakes, and is counted") {
  asio::io_context io;
  int wakes = 0;
  wake::KickListener kick(io, {"127.0.0.1", 0}, [&] { ++wakes; });
  kick.start();
  asio::ip::udp::socket producer(io, asio::ip::udp::v4());
  producer.send_to(asio::buffer("x", 1), {asio::ip::make_address("127.0.0.1"), kick.port()});
  CHECK(run_until(
      io, [&] { return wakes == 1; }, 2s));
  CHECK(kick.kicks() == 1);
  kick.stop();
  io.restart();
  io.poll();
}

TEST_CASE("the poll is jittered a quarter either way around its interval") {
  asio::io_context io;
  std::vector<std::chrono::steady_clock::time_point> ticks;
  wake::PollTimer poll(io, 100ms, [&] { ticks.push_back(std::chrono::steady_clock::now()); });
  auto previous = std::chrono::steady_clock::now();
  poll.start();
  REQUIRE(run_until(
      io, [&] { return ticks.size() == 20; }, 10s));
  poll.stop();
  io.restart();
  io.poll();
  int early = 0;
  for (auto t : ticks) {
    const auto gap = t - previous;
    previous = t;
    // A timer never fires early: a gap below 75 ms is more than a quarter.
    CHECK(gap >= 75ms);
    if (gap < 100ms) ++early;
  }
  // Without jitter no gap would be under the interval (load only lengthens
  // them); with it about half are, and none at all in 20 is 1 in 2^20.
  CHECK(early >= 1);
}

TEST_CASE("NOTIFY wakes and is counted, and the second channel calls its own callback only") {
  PgCluster pg;
  asio::io_context io;
  int wakes = 0, pruned = 0, up = 0;
  wake::NotifyListener listener(io, pg.dsn(), "outbox", [&] { ++wakes; });
  listener.also_listen("relay_retention", [&] { ++pruned; });
  listener.report_to([&] { ++up; }, [](const std::string&) {});
  listener.start();
  // Connected: told so, and a wake-up, since NOTIFYs before it were lost.
  REQUIRE(run_until(
      io, [&] { return wakes == 1; }, 10s));
  CHECK(up == 1);
  CHECK(listener.listening());
  notify(pg, "relay_retention");
  REQUIRE(run_until(
      io, [&] { return pruned == 1; }, 2s));
  CHECK(wakes == 1);
  CHECK(listener.notifies() == 0);
  notify(pg, "outbox");
  REQUIRE(run_until(
      io, [&] { return wakes == 2; }, 2s));
  CHECK(listener.notifies() == 1);
  CHECK(pruned == 1);
  listener.stop();
  io.restart();
  io.poll();
}

TEST_CASE("a broken LISTEN connection is reported, reconnected, and woken after") {
  PgCluster pg;
  asio::io_context io;
  int wakes = 0, up = 0;
  std::vector<std::string> failures;
  wake::NotifyListener listener(io, pg.dsn(), "message_queue", [&] { ++wakes; });
  listener.report_to([&] { ++up; }, [&](const std::string& error) { failures.push_back(error); });
  listener.start();
  REQUIRE(run_until(
      io, [&] { return up == 1; }, 10s));
  pg.restart();
  // The restart is seen (the connection breaks), then the listener is back.
  REQUIRE(run_until(
      io, [&] { return up == 2; }, 15s));
  CHECK(failures.size() >= 1);
  CHECK(wakes == 2);
  CHECK(listener.listening());
  notify(pg, "message_queue");
  CHECK(run_until(
      io, [&] { return wakes == 3; }, 2s));
  listener.stop();
  io.restart();
  io.poll();
}

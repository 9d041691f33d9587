// Store throughput and outbox latency against a real PostgreSQL, started
// here, beside the raw limits of the same database measured in the same run:
// a single-row commit loop (the fsync rate) and COPY of the same rows into
// tables of the same shape. synchronous_commit stays on throughout.
#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "relay/net/outbox_watch.h"
#include "relay/store/pg_store.h"
#include "relay/store/rows.h"
#include "relay/wire/datagram.h"
#include "tests/support/pg_cluster.h"

using namespace relay;
using WallClock = std::chrono::steady_clock;
namespace v1 = relaymesh::v1;

namespace {

double seconds_since(WallClock::time_point start) {
  return std::chrono::duration<double>(WallClock::now() - start).count();
}

std::vector<mesh::EventPtr> make_events(std::size_t n) {
  const auto key = crypto::SigningKey::generate();
  std::vector<mesh::EventPtr> events;
  for (std::size_t i = 1; i <= n; ++i) {
    v1::Event e;
    e.set_origin("hq");
    e.set_seq(i);
    e.set_kind(v1::KIND_NOTIFICATION);
    e.set_priority(v1::PRIORITY_NORMAL);
    e.add_targets("all");
    e.set_title("Fire in the west wing");
    e.set_body("Evacuate through the east stairs; do not use the lifts. Assemble in car park B.");
    e.set_location("West wing, level 2");
    e.set_sender("HQ operator 4");
    e.set_data(R"({"floor": 2})");
    events.push_back(mesh::make_event(wire::sign_event(e, key), e));
  }
  return events;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("model name")) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

/// Single-row commits for a second: what one fsync-bound writer can do.
double commit_rate(const std::string& dsn) {
  pqxx::connection conn(dsn);
  {
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE fsync_probe (x int)");
    tx.commit();
  }
  const auto start = WallClock::now();
  int n = 0;
  while (seconds_since(start) < 1.0) {
    pqxx::work tx(conn);
    tx.exec("INSERT INTO fsync_probe VALUES (1)");
    tx.commit();
    ++n;
  }
  return n / seconds_since(start);
}

/// COPY of the rows the store writes per delivered event (log row,
/// message_queue row, receipt owed) into tables of the same shape, in one
/// transaction: the raw rate of getting these bytes durable.
double copy_rate(const std::string& dsn, const std::vector<mesh::EventPtr>& events) {
  pqxx::connection conn(dsn);
  {
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE copy_log (LIKE relay_event_log INCLUDING ALL)");
    tx.exec("CREATE TABLE copy_mq (LIKE message_queue INCLUDING ALL)");
    tx.exec("CREATE TABLE copy_owed (LIKE relay_receipts_owed INCLUDING ALL)");
    tx.commit();
  }
  const auto start = WallClock::now();
  pqxx::work tx(conn);
  {
    pqxx::stream_to log(tx, "copy_log",
                        std::vector<std::string>{"origin", "seq", "priority", "kind", "signed"});
    for (const auto& e : events) {
      log << std::make_tuple(e->key.origin, e->key.seq, static_cast<int>(e->priority), 1,
                             "\\x" + store::to_hex(e->signed_event.SerializeAsString()));
    }
    log.complete();
  }
  {
    pqxx::stream_to mq(tx, "copy_mq",
                       std::vector<std::string>{"type", "data", "origin", "seq", "priority"});
    for (const auto& e : events) {
      v1::Event parsed;
      parsed.ParseFromString(e->signed_event.event());
      mq << std::make_tuple(store::queue_type(parsed), store::queue_json(parsed), e->key.origin,
                            e->key.seq, static_cast<int>(e->priority));
    }
    mq.complete();
  }
  {
    pqxx::stream_to owed(tx, "copy_owed",
                         std::vector<std::string>{"origin", "seq", "delivered_at"});
    for (const auto& e : events)
      owed << std::make_tuple(e->key.origin, e->key.seq, std::string("now"));
    owed.complete();
  }
  tx.commit();
  return events.size() / seconds_since(start);
}

/// Events through PgStore, one per batch as the core hands them over,
/// until every completion is back.
double store_rate(const std::string& dsn, const std::vector<mesh::EventPtr>& events) {
  std::mutex mutex;
  std::condition_variable done;
  std::size_t stored = 0;
  store::StoreOptions options;
  options.dsn = dsn;
  options.self = "clinic-north";
  store::PgStore pg(options, {[&](const mesh::StoreDone&) {
                                std::lock_guard lock(mutex);
                                if (++stored == events.size()) done.notify_all();
                              },
                              [](std::uint64_t, std::vector<mesh::EventPtr>) {},
                              [](const std::string&, bool, const std::string&) {}});
  const auto start = WallClock::now();
  std::uint64_t ticket = 0;
  for (const auto& e : events) {
    mesh::StoreBatch b;
    b.ticket = ++ticket;
    b.priority = e->priority;
    b.events.push_back({e, true});
    pg.persist(std::move(b));
  }
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return stored == events.size(); });
  return events.size() / seconds_since(start);
}

/// Kick to claim: insert a row, send a kick, time until the claim is back.
std::vector<double> kick_latencies(const std::string& dsn, int rounds) {
  // The database's own node claims from its outbox (the events stored
  // above are hq's: a claim numbering as hq would collide with them).
  Config config;
  config.node.id = "clinic-north";
  asio::io_context io;
  int claimed = 0;
  net::OutboxOptions options;
  options.dsn = dsn;
  options.kick = {"127.0.0.1", 0};
  options.listen = false;
  options.poll_interval = std::chrono::hours(1);
  net::OutboxWatch watch(
      io, options, config, crypto::SigningKey::generate(),
      [&](store::ClaimResult r) { claimed += static_cast<int>(r.events.size()); });
  watch.start();
  io.run_for(std::chrono::milliseconds(200));
  asio::ip::udp::socket producer(io, asio::ip::udp::v4());
  const asio::ip::udp::endpoint kick(asio::ip::make_address("127.0.0.1"), watch.kick_port());
  pqxx::connection conn(dsn);
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO outbox (title) VALUES ('bench')");
      tx.commit();
    }
    const auto start = WallClock::now();
    producer.send_to(asio::buffer("k", 1), kick);
    const int target = i + 1;
    while (claimed < target) io.run_one_for(std::chrono::milliseconds(100));
    ms.push_back(seconds_since(start) * 1000);
  }
  watch.stop();
  io.restart();
  io.poll();
  return ms;
}

}  // namespace

int main() {
  constexpr std::size_t kEvents = 20'000;
  test::PgCluster pg;
  {
    pqxx::connection conn(pg.dsn());
    store::open_database(conn, "clinic-north", 100);
  }
  std::printf("machine: %u cores, %s; PostgreSQL in a temp dir, synchronous_commit on\n",
              std::thread::hardware_concurrency(), cpu_model().c_str());
  const auto events = make_events(kEvents);
  const double commits = commit_rate(pg.dsn());
  std::printf("raw: single-row commits            %8.0f /s (fsync-bound)\n", commits);
  const double copy = copy_rate(pg.dsn(), events);
  std::printf(
      "raw: COPY of the same rows          %8.0f events/s (log + message_queue + receipt rows)\n",
      copy);
  const double through_store = store_rate(pg.dsn(), events);
  std::printf(
      "store: durable through PgStore      %8.0f events/s (%.0f%% of raw COPY), %zu events one per "
      "batch\n",
      through_store, 100 * through_store / copy, kEvents);
  auto ms = kick_latencies(pg.dsn(), 300);
  std::sort(ms.begin(), ms.end());
  std::printf("kick to claim (300 rounds): p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
              ms[ms.size() / 2], ms[ms.size() * 99 / 100], ms.back());
  return 0;
}

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "relay/status/database_watch.h"
#include "relay/status/render.h"
#include "relay/status/status_server.h"
#include "relay/status/verdict.h"

using namespace relay;
using namespace std::chrono_literals;
using status::Verdict;

namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;

mesh::PeerStatus peer(std::string id, bool heard, bool suspect = false, bool down = false,
                      bool alarmed = false) {
  mesh::PeerStatus p;
  p.id = std::move(id);
  p.heard = heard;
  p.suspect = suspect;
  p.down = down;
  p.alarmed = alarmed;
  p.srtt = 12ms;
  p.queued = 3;
  p.in_flight = 4;
  return p;
}

/// A node where everything is fine: two peers alive, the database up.
status::Snapshot healthy() {
  status::Snapshot s;
  s.now_unix_ms = kNow;
  s.process = {"hq", "0.1.0", "/etc/relaymesh/relayd.toml", 42, kNow - 60'000, ""};
  net::DaemonStatus d;
  d.node = "hq";
  d.taken_at = std::chrono::steady_clock::now();
  for (auto p : {peer("clinic-north", true), peer("clinic-<south>", true)}) {
    p.last_heard = d.taken_at - 2s;
    d.peers.push_back(p);
  }
  d.rejected["bad_tag"] = 7;
  d.stats.datagrams_sent = 42;
  s.daemon = d;
  net::Health health;
  for (auto part : {net::Health::kDatabase, net::Health::kCore, net::Health::kOutboxClaim})
    health.ok(part);
  s.health = health.parts();
  s.database.state = status::DatabaseState::State::up;
  s.database.last_ok_unix_ms = kNow - 1000;
  s.database.view.emplace();
  s.logs.captured = true;
  s.logs.stderr_lines = {"2026-01-01T03:00:00.000 info relayd hq: mesh on 7400",
                         "libpq: a <library> line"};
  return s;
}

store::ConsoleView::Event duress(std::string id) {
  store::ConsoleView::Event e;
  e.id = std::move(id);
  e.origin = "hq";
  e.seq = 5;
  e.kind = "duress";
  e.priority = "duress";
  e.title = "Duress";
  e.location = "Psych ward, room 12";
  e.sender = "nurse station 3";
  e.own = true;
  e.receipts = {{"hq", kNow - 5000}, {"clinic-north", 0}};
  return e;
}

bool has(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("the verdict: OK only when nothing is wrong") {
  auto s = healthy();
  auto v = status::judge(s);
  CHECK(v.level == Verdict::Level::ok);
  CHECK(v.reasons.empty());
  CHECK(status::health_problems(s).empty());
}

TEST_CASE("the verdict: peers' trouble degrades or alarms, but is not /healthz's business") {
  auto s = healthy();
  SUBCASE("not heard yet") {
    s.daemon->peers[0].heard = false;
    const auto v = status::judge(s);
    CHECK(v.level == Verdict::Level::degraded);
    CHECK(has(v.reasons.at(0), "clinic-north not heard yet"));
  }
  SUBCASE("suspect") {
    s.daemon->peers[0].suspect = true;
    CHECK(status::judge(s).level == Verdict::Level::degraded);
  }
  SUBCASE("supervision alarm") {
    s.daemon->peers[1].down = true;
    s.daemon->peers[1].alarmed = true;
    const auto v = status::judge(s);
    CHECK(v.level == Verdict::Level::alarm);
    CHECK(has(v.reasons.at(0), "supervision alarm: clinic-<south>"));
  }
  CHECK(status::health_problems(s).empty());
}

TEST_CASE("the verdict: this node's own job failing is ALARM and /healthz's reason") {
  auto s = healthy();
  SUBCASE("database down") {
    s.database.state = status::DatabaseState::State::down;
    s.database.error = "connection refused";
    s.database.down_since_unix_ms = kNow - 30'000;
    const auto problems = status::health_problems(s);
    REQUIRE(problems.size() == 1);
    CHECK(has(problems[0], "database: down for 30 s"));
    CHECK(has(problems[0], "connection refused"));
  }
  SUBCASE("never reached") {
    s.database = {};
    s.daemon.reset();
    s.daemon_missing = "not running yet: waiting for the database";
    const auto problems = status::health_problems(s);
    REQUIRE(problems.size() == 2);
    CHECK(has(problems[0], "never reached"));
    CHECK(has(problems[1], "relay core: not running yet"));
  }
  SUBCASE("a store lane") {
    net::Health health;
    health.failing(net::Health::kUrgentLane, "server closed the connection");
    s.health = health.parts();
    CHECK(has(status::health_problems(s).at(0), "store lane urgent: failing"));
    CHECK(has(status::health_problems(s).at(0), "database unreachable (library: server closed"));
  }
  CHECK(status::judge(s).level == Verdict::Level::alarm);
}

TEST_CASE("the verdict: one database failure is said once, in plain words, with the next step") {
  auto s = healthy();
  s.database.state = status::DatabaseState::State::down;
  s.database.error = "database unreachable";
  s.database.detail = "Could not obtain client encoding: not connected.";
  s.database.host = "/run/postgresql";
  s.database.down_since_unix_ms = kNow - 30'000;
  net::Health health;
  health.failing(net::Health::kDatabase, "database unreachable");
  for (auto part : {net::Health::kUrgentLane, net::Health::kBulkLane, net::Health::kOutboxClaim,
                    net::Health::kOutboxListen})
    health.failing(part, "Could not obtain client encoding: not connected.");
  s.health = health.parts();
  const auto problems = status::health_problems(s);
  REQUIRE(problems.size() == 1);
  CHECK(has(problems[0], "database: down for 30 s"));
  CHECK(problems[0].find("database unreachable at host /run/postgresql port 5432") <
        problems[0].find("Could not obtain"));
  CHECK(has(problems[0], "pg_isready -h /run/postgresql -p 5432"));
  CHECK(has(problems[0], "store lane urgent, store lane bulk, outbox claim, outbox LISTEN wait"));
  SUBCASE("the same failure of two lanes, with the database's check still passing") {
    s.database.state = status::DatabaseState::State::up;
    const auto lanes = status::health_problems(s);
    REQUIRE(lanes.size() == 1);
    CHECK(
        has(lanes[0], "store lane urgent, store lane bulk, outbox claim, outbox LISTEN: failing"));
  }
}

TEST_CASE("the database watch: a database that is not there, in plain words") {
  net::Health health;
  Config config;
  config.store.dsn = "host=/nonexistent port=6543 dbname=none connect_timeout=2";
  status::DatabaseWatch database(config, health, 50ms);
  database.start();
  for (int i = 0; i < 100 && database.state().error.empty(); ++i) std::this_thread::sleep_for(20ms);
  database.stop();
  const auto state = database.state();
  CHECK(state.error == "database unreachable");
  CHECK_FALSE(state.detail.empty());
  CHECK(state.host == "/nonexistent");
  CHECK(state.port == "6543");
}

TEST_CASE("the verdict: an open duress, an untaken duress, a backlog, rejected rows") {
  auto s = healthy();
  auto& view = *s.database.view;
  SUBCASE("open duress") {
    view.open_duress.push_back(duress("hq:5"));
    const auto v = status::judge(s);
    CHECK(v.level == Verdict::Level::alarm);
    CHECK(has(v.reasons.at(0), "duress hq:5 open"));
    CHECK(has(v.reasons.at(0), "Psych ward, room 12"));
  }
  SUBCASE("a duress no consumer takes") {
    view.queue.oldest_duress = store::ConsoleView::QueueRow{7, "duress", 31'000, 4, "hq:5"};
    CHECK(status::judge(s).level == Verdict::Level::alarm);
    view.queue.oldest_duress->age_ms = 5'000;  // consumers poll; not yet a problem
    CHECK(status::judge(s).level == Verdict::Level::ok);
  }
  SUBCASE("a duress one group has handled and another has not") {
    view.queue.oldest_duress = store::ConsoleView::QueueRow{7, "duress", 31'000, 4, "hq:5"};
    view.queue.oldest_duress->groups_pending = {"sms"};
    view.queue.oldest_duress->groups_done = {"pager", "popup"};
    auto v = status::judge(s);
    CHECK(v.level == Verdict::Level::alarm);
    CHECK(has(v.reasons.at(0), "duress hq:5 (row 7) waits in message_queue for 31 s: relay-runner "
                               "group \"sms\" has not finished it (\"pager\", \"popup\" have)"));
    CHECK(has(v.reasons.at(0), "relay-runner retire-group sms"));
    CHECK_FALSE(has(v.reasons.at(0), "no consumer"));
    view.queue.oldest_duress->groups_pending = {};
    CHECK(has(status::judge(s).reasons.at(0), "has finished it (\"pager\", \"popup\"), yet it "
                                              "stays"));
    view.queue.oldest_duress->groups_done = {};
    CHECK(has(status::judge(s).reasons.at(0), "no consumer has taken it"));
  }
  SUBCASE("outbox backlog") {
    view.outbox.backlog = 12;
    view.outbox.oldest_age_ms = 11'000;
    CHECK(status::judge(s).level == Verdict::Level::degraded);
  }
  SUBCASE("rejected rows") {
    view.outbox.rejected_last_hour = 2;
    CHECK(has(status::judge(s).reasons.at(0), "2 outbox rows rejected"));
  }
}

TEST_CASE("JSON: keys in a fixed order, integers as integers") {
  auto s = healthy();
  s.database.view->open_duress.push_back(duress("hq:5"));
  const auto status = nlohmann::ordered_json::parse(status::status_json(s));
  std::vector<std::string> keys;
  for (const auto& [k, v] : status.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"node", "verdict", "healthy", "process", "state_dir",
                                         "database", "own_job", "core", "spool", "outbox",
                                         "message_queue", "runner_alarms", "as_of_unix_ms", "peers",
                                         "drills", "counters", "rejected"});
  CHECK(status["verdict"]["level"] == "ALARM");
  CHECK(status["process"]["pid"].is_number_integer());
  CHECK(status["peers"][0]["queued"].is_number_integer());
  CHECK(status["peers"][0]["state"] == "alive");
  CHECK(status["peers"][0]["last_heard_ms_ago"].get<std::int64_t>() >= 2000);
  CHECK(status["counters"]["datagrams_sent"].get<std::int64_t>() == 42);
  CHECK(status["rejected"]["bad_tag"] == 7);
  // The same snapshot gives the same bytes.
  CHECK(status::status_json(s) == status::status_json(s));

  const auto alarms = nlohmann::ordered_json::parse(status::alarms_json(s));
  CHECK(alarms["open_duress"][0]["id"] == "hq:5");
  CHECK(alarms["open_duress"][0]["receipts"][1]["state"] == "pending");
  CHECK(alarms["open_duress"][0]["receipts"][0]["delivered_unix_ms"].is_number_integer());
  const auto logs = nlohmann::ordered_json::parse(status::logs_json(s));
  CHECK(logs["stderr"][1] == "libpq: a <library> line");
}

TEST_CASE("the verdict: a full state directory is DEGRADED naming it, not a /healthz failure") {
  auto s = healthy();
  s.process.state_dir = "/var/lib/relaymesh/hq";
  s.state_disk = {true, "", 1 << 30, 1ull << 34};
  CHECK(status::judge(s).level == Verdict::Level::ok);
  s.state_disk.free_bytes = 4096;
  const auto v = status::judge(s);
  CHECK(v.level == Verdict::Level::degraded);
  REQUIRE(v.reasons.size() == 1);
  CHECK(has(v.reasons[0], "state directory /var/lib/relaymesh/hq is full (4 KiB free"));
  CHECK(status::health_problems(s).empty());  // duress still goes out: /healthz stays 200
  CHECK(has(status::metrics_text(s), "relay_state_dir_full{path=\"/var/lib/relaymesh/hq\"} 1"));
  const auto json = nlohmann::ordered_json::parse(status::status_json(s));
  CHECK(json["state_dir"]["full"] == true);
  CHECK(json["state_dir"]["free_bytes"] == 4096);
  s.state_disk = {false, "Permission denied", 0, 0};
  CHECK(has(status::judge(s).reasons[0], "cannot be checked: Permission denied"));
}

TEST_CASE("metrics: never-heard peers are not up, backlog, rejected rows, build info") {
  auto s = healthy();
  s.daemon->peers[0].heard = false;
  s.database.view->outbox.backlog = 3;
  s.database.view->outbox.rejected_total = 2;
  const std::string m = status::metrics_text(s);
  CHECK(has(m, "relay_build_info{version=\"0.1.0\"} 1\n"));
  CHECK(has(m, "relay_peer_up{peer=\"clinic-north\"} 0\n"));
  CHECK(has(m, "relay_peer_heard{peer=\"clinic-north\"} 0\n"));
  CHECK(has(m, "relay_peer_up{peer=\"clinic-<south>\"} 1\n"));
  CHECK(has(m, "relay_outbox_backlog 3\n"));
  CHECK(has(m, "relay_outbox_rejected_rows 2\n"));
  CHECK(has(m, "relay_database_last_ok_timestamp_seconds 1799999999\n"));
  CHECK(has(m, "relay_datagrams_rejected_total{reason=\"bad_tag\"} 7\n"));
  CHECK(has(m, "relay_peer_queued{peer=\"clinic-north\"} 7\n"));
  CHECK(has(m, "relay_verdict 1\n"));
}

TEST_CASE("metrics: whether a person answered the open duress alarms") {
  auto s = healthy();
  auto answered = duress("hq:5");
  answered.created_unix_ms = kNow - 60'000;
  answered.acks.push_back({"guard 3", "clinic-north", "responding", kNow - 48'000});
  auto waiting = duress("hq:6");
  waiting.created_unix_ms = kNow + 3'600'000;  // its origin's clock an hour ahead
  waiting.stored_unix_ms = kNow - 30'000;      // what counts: stored here 30 s ago
  s.database.view->open_duress = {answered, waiting};
  const std::string m = status::metrics_text(s);
  CHECK(has(m, "relay_duress_open 2\n"));
  CHECK(has(m, "relay_duress_unacknowledged 1\n"));
  CHECK(has(m, "relay_duress_unacknowledged_oldest_seconds 30\n"));
  CHECK(has(m, "relay_duress_time_to_ack_seconds 12\n"));
  // Nobody answered: no time to show.
  s.database.view->open_duress = {waiting};
  CHECK_FALSE(has(status::metrics_text(s), "relay_duress_time_to_ack_seconds"));
}

TEST_CASE("the page: verdict first, every panel, everything escaped") {
  auto s = healthy();
  s.daemon->peers[1].alarmed = true;
  s.database.view->open_duress.push_back(duress("hq:5"));
  const std::string html = status::status_html(s);
  CHECK(has(html, "data-verdict=\"ALARM\""));
  CHECK(html.find("id=verdict") < html.find("id=peers"));
  for (auto panel : {"id=alarms", "id=peers", "id=events", "id=database", "id=process", "id=logs"})
    CHECK(has(html, panel));
  CHECK(has(html, "data-peer=\"clinic-&lt;south&gt;\""));
  CHECK_FALSE(has(html, "<south>"));
  CHECK(has(html, "libpq: a &lt;library&gt; line"));
  CHECK(has(html, "data-target=\"clinic-north\" data-state=\"pending\""));
  CHECK_FALSE(has(html, "http://"));  // nothing from elsewhere
  CHECK_FALSE(has(html, "https://"));
}

TEST_CASE("routes: a token when configured, /healthz 503 with reasons before the database") {
  net::Health health;
  Config config;
  config.store.dsn = "host=/nonexistent dbname=none";
  status::DatabaseWatch database(config, health);  // never started: never reached
  status::Console console({"hq", "0.1.0", "relayd.toml", 1, net::unix_ms_now(), ""}, health,
                          database, {});
  net::HttpRequest get;
  get.method = "GET";
  get.path = "/healthz";
  auto r = status::route(get, console, "a-long-enough-secret");
  CHECK(r.status == 401);
  get.headers["authorization"] = "Bearer a-long-enough-secret";
  r = status::route(get, console, "a-long-enough-secret");
  CHECK(r.status == 503);
  CHECK(has(r.body, "database: never reached since start"));
  CHECK(has(r.body, "relay core: not running yet"));
  get.headers.clear();
  get.query["token"] = "a-long-enough-secret";
  get.path = "/api/status";
  r = status::route(get, console, "a-long-enough-secret");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  get.query["token"] = "a-long-enough-secreT";
  CHECK(status::route(get, console, "a-long-enough-secret").status == 401);
  get.query.clear();
  get.path = "/nowhere";
  CHECK(status::route(get, console, "").status == 404);
}

TEST_CASE("a spooled duress is an open alarm at its origin with its database down") {
  net::Health health;
  Config config;
  config.store.dsn = "host=/nonexistent dbname=none";
  status::DatabaseWatch database(config, health);  // never started: never reached
  status::Console console({"clinic-north", "0.1.0", "relayd.toml", 1, net::unix_ms_now(), ""},
                          health, database, {});
  console.set_daemon([] {
    net::DaemonStatus d;
    d.node = "clinic-north";
    d.taken_at = std::chrono::steady_clock::now();
    relaymesh::v1::Event e;
    e.set_origin("clinic-north");
    e.set_seq(41);
    e.set_kind(relaymesh::v1::KIND_DURESS);
    e.set_priority(relaymesh::v1::PRIORITY_DURESS);
    e.set_title("Duress");
    e.set_location("Psych ward, room 12");
    e.set_sender("nurse station 3");
    e.add_targets("hq");
    d.spooled.push_back(e);
    d.spool_depth = 1;
    return std::optional(d);
  });
  net::HttpRequest get;
  get.method = "GET";
  get.path = "/api/alarms";
  const auto alarms = nlohmann::json::parse(status::route(get, console, "").body);
  REQUIRE(alarms["open_duress"].size() == 1);
  CHECK(alarms["open_duress"][0]["id"] == "clinic-north:41");
  CHECK(alarms["open_duress"][0]["location"] == "Psych ward, room 12");
  CHECK(alarms["open_duress"][0]["sender"] == "nurse station 3");
  CHECK(alarms["open_duress"][0]["spooled"] == true);
  get.path = "/metrics";
  CHECK(has(status::route(get, console, "").body, "relay_duress_open 1\n"));
  get.path = "/";
  const auto page = status::route(get, console, "").body;
  CHECK(has(
      page,
      "data-event=\"clinic-north:41\" data-kind=\"duress\" data-state=\"open\" data-spooled=yes"));
  CHECK_FALSE(has(page, "none in the last 24 h"));
  const auto v = status::judge(console.snapshot(false));
  CHECK(v.level == Verdict::Level::alarm);
  CHECK(std::any_of(v.reasons.begin(), v.reasons.end(), [](const auto& r) {
    return has(r, "duress clinic-north:41 open (no all-clear; in the spool") &&
           has(r, "by \"nurse station 3\"");
  }));
}

TEST_CASE("the page: a panel read from a database that is down says as of when") {
  auto s = healthy();
  s.database.state = status::DatabaseState::State::down;
  s.database.error = "database unreachable";
  s.database.view->queue.rows = 1;
  s.database.view->queue.oldest_duress =
      store::ConsoleView::QueueRow{7, "duress", 5'000, 4, "hq:5"};
  const auto html = status::status_html(s);
  CHECK(has(html, "<section id=alarms><h2>Open duress alarms</h2><p class=as-of>as of "));
  CHECK(has(html, "<section id=events><h2>Recent events</h2><p class=as-of>as of "));
  CHECK(has(html, "<tr class=as-of><th>as of</th>"));
  // An untaken duress is listed: the panel does not say "none" above it.
  CHECK(has(html, "id=untaken-duress"));
  CHECK_FALSE(has(html, "none in the last 24 h"));
}

// relayctl migrate, status, events, receipts and tail.
#include <httplib.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <thread>

#include "common/log.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/console.h"
#include "relay/store/migrate.h"
#include "relay/store/pg_store.h"
#include "relay/store/rows.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;

std::unique_ptr<pqxx::connection> connect(const Config& config) {
  try {
    return std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception& e) {
    throw Failure(kFailure, unreachable(config, e));
  }
}

struct LoggedEvent {
  v1::Event event;
  std::int64_t stored_us = 0;
};

std::vector<LoggedEvent> parse_rows(const pqxx::result& rows) {
  std::vector<LoggedEvent> out;
  for (const auto& row : rows) {
    const pqxx::binarystring bytes(row[0]);
    v1::SignedEvent signed_event;
    LoggedEvent e;
    if (!signed_event.ParseFromString(bytes.str()) ||
        !e.event.ParseFromString(signed_event.event()))
      continue;
    e.stored_us = row[1].as<std::int64_t>();
    out.push_back(std::move(e));
  }
  return out;
}

Json event_json(const LoggedEvent& e) {
  const auto& ev = e.event;
  Json refs = Json::array();
  for (const auto& r : ev.references()) refs.push_back(r.origin() + ":" + std::to_string(r.seq()));
  Json j;
  j["id"] = ev.origin() + ":" + std::to_string(ev.seq());
  j["origin"] = ev.origin();
  j["seq"] = ev.seq();
  j["kind"] = store::kind_name(ev.kind());
  j["priority"] = store::priority_name(ev.priority());
  j["title"] = ev.title();
  j["body"] = ev.body();
  j["location"] = ev.location();
  j["sender"] = ev.sender();
  j["targets"] = Json(std::vector<std::string>(ev.targets().begin(), ev.targets().end()));
  j["references"] = refs;
  j["exercise"] = ev.exercise();
  j["created_unix_ms"] = ev.created_unix_ms();
  j["stored_unix_ms"] = e.stored_us / 1000;
  return j;
}

void print_event(const LoggedEvent& e) {
  std::printf("%-20s %-12s %-9s %s  %s%s%s\n",
              (e.event.origin() + ":" + std::to_string(e.event.seq())).c_str(),
              store::kind_name(e.event.kind()).c_str(),
              store::priority_name(e.event.priority()).c_str(),
              local_time(e.stored_us / 1000).c_str(), e.event.exercise() ? "[EXERCISE] " : "",
              e.event.title().c_str(),
              e.event.location().empty() ? "" : (" @ " + e.event.location()).c_str());
}

constexpr const char* kEventColumns = "signed, (extract(epoch from stored_at) * 1000000)::bigint";

}  // namespace

int migrate(const Config& config, bool json) {
  auto conn = connect(config);
  const auto applied = store::migrate(*conn);
  if (json) {
    print_json({{"ok", true}, {"applied", applied}, {"migrations", store::migrations().size()}});
  } else if (applied.empty()) {
    std::printf("the schema is current (%zu migrations)\n", store::migrations().size());
  } else {
    for (const auto& name : applied) std::printf("applied %s\n", name.c_str());
  }
  return kOk;
}

namespace {

/// relayd's /api/status, or a Failure saying why not.
Json fetch_status(const Config& config) {
  httplib::Client client(config.status.listen.host, config.status.listen.port);
  client.set_connection_timeout(std::chrono::seconds(3));
  client.set_read_timeout(std::chrono::seconds(5));
  httplib::Headers headers;
  if (!config.status.token.empty())
    headers.emplace("Authorization", "Bearer " + config.status.token);
  auto res = client.Get("/api/status", headers);
  if (!res) {
    throw Failure(kFailure, "relayd does not answer on http://" + config.status.listen.to_string() +
                                "/ (is it running?)");
  }
  Json s = Json::parse(res->body, nullptr, false);
  if (res->status != 200 || s.is_discarded() || !s.contains("verdict")) {
    throw Failure(kFailure, "unreadable status from http://" + config.status.listen.to_string() +
                                "/api/status (HTTP " + std::to_string(res->status) + ")");
  }
  return s;
}

std::int64_t checked_at(const Json& s) {
  const auto& at = s["database"]["checked_unix_ms"];
  return at.is_number() ? at.get<std::int64_t>() : 0;
}

}  // namespace

int status(const Config& config, bool json) {
  // What the verdict says of the database (open duress alarms, queues) is
  // what relayd's periodic check last read, up to 2 s before: a duress
  // confirmed a moment ago could still read OK. So status waits for a check
  // that ended after its first read (relayd's own clock on both sides; a
  // check reads for milliseconds), for kFresh at most, and judges by that.
  constexpr auto kFresh = std::chrono::seconds(4);
  Json s = fetch_status(config);
  const std::int64_t asked = s["process"].value("now_unix_ms", std::int64_t{0});
  const auto deadline = std::chrono::steady_clock::now() + kFresh;
  while (checked_at(s) <= asked && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s = fetch_status(config);
  }
  const std::string level = s["verdict"].value("level", "");
  const int code = level == "OK"         ? kOk
                   : level == "DEGRADED" ? kDegraded
                   : level == "ALARM"    ? kAlarm
                                         : kFailure;  // no verdict we know
  if (json) {
    s["ok"] = code == kOk;
    s["exit_code"] = code;
    print_json(s);
    return code;
  }
  if (checked_at(s) <= asked) {
    std::fprintf(stderr,
                 "relayctl: relayd has not checked its database since this request: what the "
                 "verdict says of it may be older\n");
  }
  std::printf("%s: %s\n", s["node"].get<std::string>().c_str(),
              s["verdict"]["level"].get<std::string>().c_str());
  for (const auto& reason : s["verdict"]["reasons"])
    std::printf("  - %s\n", reason.get<std::string>().c_str());
  std::printf("relayd %s, pid %lld, up %lld s; database %s\n",
              s["process"]["version"].get<std::string>().c_str(),
              s["process"]["pid"].get<long long>(), s["process"]["uptime_seconds"].get<long long>(),
              s["database"]["state"].get<std::string>().c_str());
  std::printf("%-24s %-14s %10s %8s %7s %9s %8s\n", "peer", "state", "heard", "rtt", "queued",
              "in flight", "receipts");
  for (const auto& p : s["peers"]) {
    const auto heard = p["last_heard_ms_ago"];
    std::printf(
        "%-24s %-14s %10s %8s %7lld %9lld %8lld%s\n", p["id"].get<std::string>().c_str(),
        p["state"].get<std::string>().c_str(),
        heard.is_null() ? "never"
                        : (std::to_string(heard.get<long long>() / 1000) + " s ago").c_str(),
        p["rtt_ms"].is_null() ? "-"
                              : (std::to_string(p["rtt_ms"].get<long long>()) + " ms").c_str(),
        p["queued"].get<long long>(), p["in_flight"].get<long long>(),
        p["receipts_pending"].get<long long>(),
        p["alarm"].get<bool>() ? "  SUPERVISION ALARM" : "");
  }
  return code;
}

int events(const Config& config, int limit, const std::string& kind, const std::string& origin,
           bool json) {
  // A filter that can match nothing is a mistake, said as send says one.
  const bool known_origin =
      origin.empty() || origin == config.node.id ||
      std::any_of(config.peers.begin(), config.peers.end(),
                  [&](const auto& p) { return p.id == origin; });
  if (!known_origin) {
    throw UsageError("--origin " + origin + ": not this node nor a configured peer");
  }
  if (!kind.empty() && kind != "notification" && kind != "duress" && kind != "all-clear" &&
      kind != "test" && kind != "supervision") {
    throw UsageError("--kind " + kind +
                     ": expected notification, duress, all-clear, test or supervision");
  }
  auto conn = connect(config);
  pqxx::read_transaction tx(*conn);
  // Kind is inside the signed bytes; filter it here, over a bounded scan.
  const auto rows = tx.exec_params(std::string("SELECT ") + kEventColumns +
                                       " FROM relay_event_log WHERE ($1 = '' OR origin = $1) "
                                       "ORDER BY stored_at DESC, origin, seq DESC LIMIT $2",
                                   origin, kind.empty() ? limit : limit * 20);
  Json list = Json::array();
  int shown = 0;
  for (const auto& e : parse_rows(rows)) {
    if (!kind.empty() && store::kind_name(e.event.kind()) != kind) continue;
    if (shown++ == limit) break;
    if (json) {
      list.push_back(event_json(e));
    } else {
      print_event(e);
    }
  }
  if (json) print_json({{"ok", true}, {"events", list}});
  return kOk;
}

int prune(const Config& config, std::chrono::milliseconds older_than, bool force, bool json) {
  auto conn = connect(config);
  store::PruneRules rules = store::prune_rules(config);
  rules.retention = std::chrono::duration_cast<std::chrono::seconds>(older_than);
  rules.force = force;
  const auto pruned = store::prune_log(*conn, config.node.id, rules);
  // Own events a peer has not stored are refused (kept), naming them.
  const std::string self = config.node.id;
  auto range = [&](const store::Kept& k) {
    return self + ":" + std::to_string(k.first) + ".." + self + ":" + std::to_string(k.last);
  };
  if (json) {
    Json settled = Json::object();
    for (const auto& [origin, through] : pruned.settled_through) settled[origin] = through;
    Json kept = Json::array();
    for (const auto& k : pruned.kept) {
      kept.push_back({{"peer", k.peer}, {"first", self + ":" + std::to_string(k.first)},
                      {"last", self + ":" + std::to_string(k.last)}, {"count", k.count}});
    }
    Json doc = {{"ok", pruned.kept.empty()},
                {"exit_code", pruned.kept.empty() ? kOk : kFailure},
                {"rows", pruned.rows},
                {"settled_through", settled},
                {"kept", kept}};
    if (!pruned.kept.empty()) doc["error"] = "own events a peer lacks were kept (--force prunes them)";
    print_json(doc);
    return pruned.kept.empty() ? kOk : kFailure;
  }
  std::printf("pruned %zu log rows\n", pruned.rows);
  for (const auto& [origin, through] : pruned.settled_through)
    std::printf("  %-24s settled through seq %llu\n", origin.c_str(),
                static_cast<unsigned long long>(through));
  for (const auto& k : pruned.kept) {
    std::fprintf(stderr, "kept %zu own events (%s): %s has not stored them\n", k.count,
                 range(k).c_str(), k.peer.c_str());
  }
  if (!pruned.kept.empty()) {
    std::fprintf(stderr,
                 "refused to prune own events a peer lacks (they are still sent to it when it "
                 "returns); the rest is pruned. --force prunes them anyway.\n");
    return kFailure;
  }
  return kOk;
}

int receipts(const Config& config, const std::string& text, bool json) {
  const EventId id = parse_event_id(text);
  if (id.origin != config.node.id) {
    throw UsageError("receipts of " + id.text() + " are kept at its origin, " + id.origin +
                     "; ask relayctl there");
  }
  auto conn = connect(config);
  pqxx::read_transaction tx(*conn);
  const auto rows =
      parse_rows(tx.exec_params(std::string("SELECT ") + kEventColumns +
                                    " FROM relay_event_log WHERE origin = $1 AND seq = $2",
                                id.origin, id.seq));
  if (rows.empty()) throw missing_event(id);
  const auto& event = rows.front().event;
  const auto delivered = store::receipts_of(tx, id.origin, id.seq);
  const auto targets = resolve_targets(config, {event.targets().begin(), event.targets().end()});
  // Past max_age an unconfirmed target will not deliver it any more (a
  // duress excepted), and retention no longer keeps it for that target.
  const auto age = std::chrono::system_clock::now().time_since_epoch() -
                   std::chrono::milliseconds(event.created_unix_ms());
  const bool too_old = event.kind() != relaymesh::v1::KIND_DURESS && age > config.delivery.max_age;
  const auto acks = store::acks_of(tx, id.origin, id.seq);
  if (json) {
    print_json({{"ok", true},
                {"id", id.text()},
                {"receipts", receipts_json(targets, delivered, too_old)},
                {"acknowledgements", acks_json(acks, event.created_unix_ms())}});
    return kOk;
  }
  std::printf("%s  %s\n", id.text().c_str(), event.title().c_str());
  print_acks(acks, event.created_unix_ms());
  for (const auto& t : targets) {
    auto it = delivered.find(t);
    std::printf(
        "  %-24s %s\n", t.c_str(),
        it == delivered.end()
            ? (too_old ? "expired, unseen (older than max_age, never confirmed)" : "pending")
            : (store::outcome_text(it->second.outcome) + " " + local_time(it->second.at)).c_str());
  }
  return kOk;
}

namespace {

/// When events committed after transaction XMIN wait for it to end, says
/// which session holds it (any database of the server counts) and returns
/// true; false when nothing waits.
bool say_held_back(pqxx::transaction_base& tx, const std::string& xmin) {
  const auto waiting =
      tx.exec_params1("SELECT count(*) FROM relay_event_log WHERE stored_xact >= $1::xid8", xmin)[0]
          .as<long long>();
  if (waiting == 0) return false;
  // The oldest transaction still open: a session's, or a prepared one.
  const auto holder = tx.exec_params(
      "SELECT 'session pid ' || pid || ' in database ' || coalesce(datname, '?') || ', ' || "
      "coalesce(state, '?') || ' since ' || coalesce(xact_start::text, '?') "
      "FROM pg_stat_activity WHERE backend_xid::text::bigint = $1::xid8::text::bigint % 4294967296 "
      "UNION ALL SELECT 'prepared transaction ' || quote_literal(gid) || ' in database ' || "
      "database FROM pg_prepared_xacts "
      "WHERE transaction::text::bigint = $1::xid8::text::bigint % 4294967296",
      xmin);
  std::fprintf(stderr,
               "relayctl tail: %lld events committed after transaction %s wait for it to end "
               "(%s): tail shows events in commit order and skips none, so it waits; end that "
               "transaction (pg_stat_activity, pg_prepared_xacts) and they follow\n",
               waiting, xmin.c_str(),
               holder.empty() ? "not found in pg_stat_activity" : holder[0][0].c_str());
  return true;
}

}  // namespace

int tail(const Config& config, bool json) {
  // Follows the log by the transaction that stored each row (stored_xact,
  // migration 013), not by stored_at: stored_at is when its transaction
  // began, so a bulk batch that began before an urgent one and committed
  // after it carries the earlier time, and a cursor on time skips it. A
  // transaction id below the snapshot's xmin belongs to a transaction that
  // has ended: its rows are all visible by now or never will be. Each poll
  // reads the rows of the transactions in [done, xmin), those that ended
  // since the last poll, page by page (one transaction may store thousands),
  // and moves `done` to xmin. A transaction still open holds xmin back:
  // tail waits for it (later, never skipped). What was already visible when
  // tail started is not new, and is left out.
  auto conn = connect(config);
  std::string done, started;
  {
    pqxx::read_transaction tx(*conn);
    const auto row = tx.exec1(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, pg_current_snapshot()::text");
    done = row[0].as<std::string>();
    started = row[1].as<std::string>();
  }
  constexpr int kPage = 1000;
  std::fprintf(stderr, "following new events at %s (Ctrl-C to stop)\n", config.node.id.c_str());
  std::string last_ended = done;
  auto moved = std::chrono::steady_clock::now();
  bool said = false;
  while (true) {
    pqxx::read_transaction tx(*conn);
    const std::string ended =
        tx.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0].as<std::string>();
    if (ended != last_ended) {
      last_ended = ended;
      moved = std::chrono::steady_clock::now();
      said = false;
    } else if (!said && std::chrono::steady_clock::now() - moved > std::chrono::seconds(5)) {
      said = say_held_back(tx, ended);
    }
    // The last row printed, as (stored_xact, origin, seq): the next page starts after it.
    std::string after_xact = done, after_origin;
    std::int64_t after_seq = 0;
    while (true) {
      const auto rows = tx.exec_params(
          std::string("SELECT ") + kEventColumns +
              ", stored_xact::text, origin, seq FROM relay_event_log "
              "WHERE stored_xact >= $1::xid8 AND stored_xact < $2::xid8 "
              "AND (stored_xact, origin, seq) > ($3::xid8, $4, $5) "
              "AND NOT pg_visible_in_snapshot(stored_xact, $6::pg_snapshot) "
              "ORDER BY stored_xact, origin, seq LIMIT $7",
          done, ended, after_xact, after_origin, after_seq, started, kPage);
      for (const auto& e : parse_rows(rows)) {
        // A stream: one JSON document per line (JSON Lines), as events come.
        if (json) {
          print_json(event_json(e));
        } else {
          print_event(e);
        }
      }
      if (!rows.empty()) {
        const auto last = rows[rows.size() - 1];
        after_xact = last[2].as<std::string>();
        after_origin = last[3].as<std::string>();
        after_seq = last[4].as<std::int64_t>();
      }
      if (rows.size() < static_cast<std::size_t>(kPage)) break;
    }
    tx.commit();
    done = ended;
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

Failure missing_event(const EventId& id) {
  return Failure(kFailure,
                 "no event " + id.text() + " in this node's log (relayctl events lists them)");
}

std::string unreachable(const Config& config, const std::exception& e) {
  return "cannot reach the database (" + config.store.dsn + "): " + one_line(e.what());
}

}  // namespace relay::ctl

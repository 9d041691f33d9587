// relayctl migrate, status, events, receipts and tail.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <pqxx/pqxx>

#include <cstdio>
#include <ctime>
#include <thread>

#include "relay/relayctl/relayctl.h"
#include "relay/store/migrate.h"
#include "relay/store/pg_store.h"
#include "relay/store/rows.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;
namespace pb = google::protobuf;

std::unique_ptr<pqxx::connection> connect(const Config& config) {
  try {
    return std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot reach the database (" + config.store.dsn + "): " + e.what());
  }
}

std::string iso_time(std::int64_t unix_ms) {
  const std::time_t t = unix_ms / 1000;
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

std::string to_json(const pb::Message& m) {
  std::string out;
  (void)pb::util::MessageToJsonString(m, &out);
  return out;
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

void print_event(const LoggedEvent& e, bool json) {
  if (json) {
    std::string data = store::queue_json(e.event);
    std::printf("%s\n", data.c_str());
    return;
  }
  std::printf("%-20s %-12s %-9s %s  %s%s%s\n",
              (e.event.origin() + ":" + std::to_string(e.event.seq())).c_str(),
              store::kind_name(e.event.kind()).c_str(),
              store::priority_name(e.event.priority()).c_str(),
              iso_time(e.stored_us / 1000).c_str(), e.event.exercise() ? "[EXERCISE] " : "",
              e.event.title().c_str(),
              e.event.location().empty() ? "" : (" @ " + e.event.location()).c_str());
}

constexpr const char* kEventColumns = "signed, (extract(epoch from stored_at) * 1000000)::bigint";

}  // namespace

int migrate(const Config& config, bool json) {
  auto conn = connect(config);
  const auto applied = store::migrate(*conn);
  if (json) {
    pb::Struct out;
    auto* list = (*out.mutable_fields())["applied"].mutable_list_value();
    for (const auto& name : applied) list->add_values()->set_string_value(name);
    std::printf("%s\n", to_json(out).c_str());
  } else if (applied.empty()) {
    std::printf("the schema is current (%zu migrations)\n", store::migrations().size());
  } else {
    for (const auto& name : applied) std::printf("applied %s\n", name.c_str());
  }
  return kOk;
}

int status(const Config& config, bool json) {
  httplib::Client client(config.status.listen.host, config.status.listen.port);
  client.set_connection_timeout(std::chrono::seconds(3));
  auto res = client.Get("/api/status");
  if (!res) {
    throw std::runtime_error("relayd does not answer on http://" +
                             config.status.listen.to_string() + "/ (is it running?)");
  }
  if (json) {
    std::printf("%s", res->body.c_str());
    return kOk;
  }
  pb::Struct s;
  if (!pb::util::JsonStringToMessage(res->body, &s).ok())
    throw std::runtime_error("unreadable status");
  const auto& f = s.fields();
  const auto& db = f.at("database").struct_value().fields();
  std::printf("node %s, up %.0f s, database %s%s\n", f.at("node").string_value().c_str(),
              f.at("uptime_seconds").number_value(), db.at("up").bool_value() ? "up" : "DOWN: ",
              db.at("up").bool_value() ? "" : db.at("error").string_value().c_str());
  std::printf("%-24s %-13s %8s %9s %7s\n", "peer", "state", "rtt", "in flight", "queued");
  for (const auto& p : f.at("peers").list_value().values()) {
    const auto& pf = p.struct_value().fields();
    std::printf("%-24s %-13s %6.1f ms %9.0f %7.0f%s\n", pf.at("id").string_value().c_str(),
                pf.at("state").string_value().c_str(), pf.at("rtt_ms").number_value(),
                pf.at("in_flight").number_value(), pf.at("queued").number_value(),
                pf.at("alarm").bool_value() ? "  SUPERVISION ALARM" : "");
  }
  return kOk;
}

int events(const Config& config, int limit, const std::string& kind, const std::string& origin,
           bool json) {
  auto conn = connect(config);
  pqxx::read_transaction tx(*conn);
  // Kind is inside the signed bytes; filter it here, over a bounded scan.
  const auto rows = tx.exec_params(std::string("SELECT ") + kEventColumns +
                                       " FROM relay_event_log WHERE ($1 = '' OR origin = $1) "
                                       "ORDER BY stored_at DESC, origin, seq DESC LIMIT $2",
                                   origin, kind.empty() ? limit : limit * 20);
  int shown = 0;
  for (const auto& e : parse_rows(rows)) {
    if (!kind.empty() && store::kind_name(e.event.kind()) != kind) continue;
    if (shown++ == limit) break;
    print_event(e, json);
  }
  return kOk;
}

std::string outcome_text(int outcome) {
  switch (outcome) {
    case v1::OUTCOME_DELIVERED:
      return "delivered";
    case v1::OUTCOME_DELIVERED_LATE:
      return "delivered late";
    case v1::OUTCOME_EXPIRED:
      return "not delivered: expired before it arrived";
    case v1::OUTCOME_TOO_OLD:
      return "not delivered: older than [delivery] max_age there";
    case v1::OUTCOME_CLEARED:
      return "not delivered: its all-clear was there first";
    default:
      return "outcome " + std::to_string(outcome);
  }
}

int prune(const Config& config, std::chrono::milliseconds older_than, bool json) {
  auto conn = connect(config);
  const auto pruned = store::prune_log(
      *conn, config.node.id, std::chrono::duration_cast<std::chrono::seconds>(older_than));
  if (json) {
    pb::Struct out;
    auto& f = *out.mutable_fields();
    f["rows"].set_number_value(static_cast<double>(pruned.rows));
    auto& settled = *f["settled_through"].mutable_struct_value()->mutable_fields();
    for (const auto& [origin, through] : pruned.settled_through)
      settled[origin].set_number_value(static_cast<double>(through));
    std::printf("%s\n", to_json(out).c_str());
    return kOk;
  }
  std::printf("pruned %zu log rows\n", pruned.rows);
  for (const auto& [origin, through] : pruned.settled_through)
    std::printf("  %-24s settled through seq %llu\n", origin.c_str(),
                static_cast<unsigned long long>(through));
  return kOk;
}

int receipts(const Config& config, const std::string& id, bool json) {
  const auto colon = id.rfind(':');
  if (colon == std::string::npos)
    throw UsageError("event \"" + id + "\": expected ORIGIN:SEQ, such as hq:42");
  const std::string origin = id.substr(0, colon);
  std::uint64_t seq = 0;
  try {
    seq = std::stoull(id.substr(colon + 1));
  } catch (const std::exception&) {
    throw UsageError("event \"" + id + "\": expected ORIGIN:SEQ, such as hq:42");
  }
  if (origin != config.node.id) {
    throw UsageError("receipts of " + id + " are kept at its origin, " + origin +
                     "; ask relayctl there");
  }
  auto conn = connect(config);
  pqxx::read_transaction tx(*conn);
  const auto rows =
      parse_rows(tx.exec_params(std::string("SELECT ") + kEventColumns +
                                    " FROM relay_event_log WHERE origin = $1 AND seq = $2",
                                origin, seq));
  if (rows.empty()) throw std::runtime_error("no event " + id + " in this node's log");
  const auto& event = rows.front().event;
  std::map<std::string, std::pair<std::int64_t, int>> delivered;  // at, outcome
  for (const auto& r :
       tx.exec_params("SELECT target, (extract(epoch from delivered_at) * 1000)::bigint, outcome "
                      "FROM relay_receipts WHERE origin = $1 AND seq = $2",
                      origin, seq)) {
    delivered[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<int>()};
  }
  const auto targets = resolve_targets(config, {event.targets().begin(), event.targets().end()});
  pb::Struct out;
  auto& f = *out.mutable_fields();
  f["id"].set_string_value(id);
  auto& per_target = *f["targets"].mutable_struct_value()->mutable_fields();
  if (!json) std::printf("%s  %s\n", id.c_str(), event.title().c_str());
  for (const auto& t : targets) {
    auto it = delivered.find(t);
    if (json) {
      if (it == delivered.end()) {
        per_target[t].set_null_value(pb::NULL_VALUE);
      } else {
        auto& r = *per_target[t].mutable_struct_value()->mutable_fields();
        r["at"].set_number_value(static_cast<double>(it->second.first));
        r["outcome"].set_string_value(outcome_text(it->second.second));
      }
    } else {
      std::printf(
          "  %-24s %s\n", t.c_str(),
          it == delivered.end()
              ? "pending"
              : (outcome_text(it->second.second) + " " + iso_time(it->second.first)).c_str());
    }
  }
  if (json) std::printf("%s\n", to_json(out).c_str());
  return kOk;
}

int tail(const Config& config, bool json) {
  auto conn = connect(config);
  std::int64_t since = 0;
  {
    pqxx::read_transaction tx(*conn);
    since = tx.exec1("SELECT (extract(epoch from now()) * 1000000)::bigint")[0].as<std::int64_t>();
  }
  std::fprintf(stderr, "following new events at %s (Ctrl-C to stop)\n", config.node.id.c_str());
  while (true) {
    {
      pqxx::read_transaction tx(*conn);
      const auto rows =
          tx.exec_params(std::string("SELECT ") + kEventColumns +
                             " FROM relay_event_log WHERE stored_at > to_timestamp($1 / 1000000.0) "
                             "ORDER BY stored_at, origin, seq LIMIT 1000",
                         since);
      for (const auto& e : parse_rows(rows)) {
        print_event(e, json);
        since = std::max(since, e.stored_us);
      }
    }
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace relay::ctl

// relayctl send, duress and all-clear: one outbox insert, a kick, and
// optionally following the event until every target confirms.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <asio.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "common/toml_section.h"
#include "relay/mesh/types.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/outbox.h"
#include "relay/store/rows.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;
namespace pb = google::protobuf;
using SteadyClock = std::chrono::steady_clock;

v1::Kind kind_of(const std::string& name) {
  if (name == "notification") return v1::KIND_NOTIFICATION;
  if (name == "duress") return v1::KIND_DURESS;
  if (name == "all-clear") return v1::KIND_ALL_CLEAR;
  if (name == "test") return v1::KIND_TEST;
  throw UsageError("--kind \"" + name + "\": expected notification, duress, all-clear or test");
}

/// The event as the relay will build it from the outbox row, for checking
/// before anything is inserted.
v1::Event draft(const Config& config, const SendOptions& o,
                const std::vector<std::string>& targets) {
  v1::Event e;
  e.set_kind(kind_of(o.kind));
  for (const auto& t : targets) e.add_targets(t);
  e.set_title(o.title);
  e.set_body(o.body);
  e.set_location(o.location);
  e.set_sender(o.sender);
  e.set_type(o.type);
  e.set_exercise(o.exercise || o.kind == "test");
  if (!o.data.empty()) {
    pb::Value parsed;
    if (!pb::util::JsonStringToMessage(o.data, &parsed).ok()) {
      throw UsageError("--data is not JSON: " + o.data);
    }
    e.set_data(o.data);
  }
  for (const auto& ref : o.refs) {
    const auto colon = ref.rfind(':');
    if (colon == std::string::npos || !valid_node_id(std::string_view(ref).substr(0, colon))) {
      throw UsageError("event \"" + ref + "\": expected ORIGIN:SEQ, such as hq:42");
    }
    auto* r = e.add_references();
    r->set_origin(ref.substr(0, colon));
    r->set_seq(std::stoull(ref.substr(colon + 1)));
  }
  e.set_created_unix_ms(1);  // any value: only its size matters for the check
  if (auto why = store::check_event(e, config); !why.empty()) throw UsageError(why);
  return e;
}

void kick(const Config& config) {
  // A hint: if it is lost, NOTIFY or the relay's poll finds the row.
  try {
    asio::io_context io;
    asio::ip::udp::socket socket(io, asio::ip::udp::v4());
    const asio::ip::udp::endpoint to(asio::ip::make_address(config.kick.listen.host),
                                     config.kick.listen.port);
    socket.send_to(asio::buffer("relayctl", 8), to);
  } catch (const std::exception&) {
  }
}

std::string print_json(const pb::Struct& s) {
  std::string out;
  (void)pb::util::MessageToJsonString(s, &out);
  return out;
}

struct Sent {
  std::string origin;
  std::uint64_t seq = 0;
  std::string id() const { return origin + ":" + std::to_string(seq); }
};

/// Waits for the relay to claim the outbox row; says why if it refused it.
std::optional<Sent> await_claim(pqxx::connection& conn, const Config& config,
                                std::int64_t outbox_id, SteadyClock::time_point deadline) {
  while (SteadyClock::now() < deadline) {
    pqxx::read_transaction tx(conn);
    auto claimed =
        tx.exec_params("SELECT seq FROM relay_event_log WHERE origin = $1 AND outbox_id = $2",
                       config.node.id, outbox_id);
    if (!claimed.empty()) return Sent{config.node.id, claimed[0][0].as<std::uint64_t>()};
    auto rejected = tx.exec_params("SELECT reason FROM outbox_rejected WHERE id = $1", outbox_id);
    if (!rejected.empty())
      throw std::runtime_error("the relay rejected it: " + rejected[0][0].as<std::string>());
    tx.commit();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

int wait_for_receipts(pqxx::connection& conn, const Sent& sent,
                      const std::vector<std::string>& targets, SteadyClock::time_point deadline,
                      bool json) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  std::vector<std::string> pending = targets;
  std::map<std::string, int> withheld;  // target -> outcome: answered, not delivered
  while (true) {
    {
      pqxx::read_transaction tx(conn);
      std::set<std::string> done;
      for (const auto& row : tx.exec_params(
               "SELECT target, outcome FROM relay_receipts WHERE origin = $1 AND seq = $2",
               sent.origin, sent.seq)) {
        done.insert(row[0].as<std::string>());
        const int outcome = row[1].as<int>();
        if (outcome > relaymesh::v1::OUTCOME_DELIVERED_LATE)
          withheld[row[0].as<std::string>()] = outcome;
      }
      std::erase_if(pending, [&](const std::string& t) { return done.contains(t); });
    }
    const std::size_t confirmed = targets.size() - pending.size();
    if (!json) {
      std::string waiting;
      for (const auto& p : pending) waiting += (waiting.empty() ? "" : ", ") + p;
      std::string not_delivered;
      for (const auto& [t, outcome] : withheld)
        not_delivered += "; " + t + " " + outcome_text(outcome);
      std::fprintf(stderr, "%s%zu of %zu targets confirmed%s%s%s%s", tty ? "\r\033[K" : "",
                   confirmed, targets.size(), not_delivered.c_str(),
                   pending.empty() ? "" : "; waiting for ", waiting.c_str(), tty ? "" : "\n");
    }
    if (pending.empty()) {
      if (!json && tty) std::fprintf(stderr, "\n");
      return kOk;
    }
    if (SteadyClock::now() >= deadline) {
      if (!json && tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "timed out: %zu of %zu targets have not confirmed %s\n", pending.size(),
                   targets.size(), sent.id().c_str());
      return kWaitTimedOut;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 100 : 500));
  }
}

}  // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<std::string> resolve_targets(const Config& config,
                                         const std::vector<std::string>& targets) {
  std::vector<std::string> nodes;
  if (mesh::targets_node(targets, config.node.id, config.node.groups))
    nodes.push_back(config.node.id);
  for (const auto& p : config.peers) {
    if (mesh::targets_node(targets, p.id, p.groups)) nodes.push_back(p.id);
  }
  return nodes;
}

int send(const Config& config, SendOptions o) {
  const auto targets = split_list(o.targets);
  const v1::Event event = draft(config, o, targets);
  std::string expires = "NULL";
  if (!o.expires.empty()) {
    auto d = parse_duration(o.expires);
    if (!d)
      throw UsageError("--expires \"" + o.expires + "\": expected a duration such as 30m or 2h");
    expires = "now() + interval '" + std::to_string(d->count()) + " milliseconds'";
  }
  if (!o.priority.empty() && o.priority != "duress" && o.priority != "emergency" &&
      o.priority != "normal" && o.priority != "bulk") {
    throw UsageError("--priority \"" + o.priority +
                     "\": expected duress, emergency, normal or bulk");
  }

  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot reach the database (" + config.store.dsn + "): " + e.what() +
                             "; nothing was sent");
  }
  std::int64_t outbox_id = 0;
  {
    pqxx::work tx(*conn);
    outbox_id = tx.exec_params1(
                      "INSERT INTO outbox (kind, priority, targets, title, body, location, sender, "
                      "type, data, "
                      "expires_at, refs, exercise) VALUES ($1, nullif($2, ''), $3::text[], $4, $5, "
                      "$6, $7, $8, "
                      "coalesce(nullif($9, ''), '{}')::jsonb, " +
                          expires + ", $10::text[], $11) RETURNING id",
                      o.kind, o.priority, store::text_array(targets), o.title, o.body, o.location,
                      o.sender, o.type, o.data, store::text_array(o.refs), event.exercise())[0]
                    .as<std::int64_t>();
    tx.exec("NOTIFY outbox");
    tx.commit();
  }
  kick(config);

  const auto start = SteadyClock::now();
  const auto wait = o.wait.value_or(std::chrono::milliseconds(5000));
  const auto sent = await_claim(*conn, config, outbox_id, start + wait);
  if (!sent) {
    std::fprintf(
        stderr,
        "queued as outbox row %lld, but relayd has not claimed it yet: is relayd running for %s?\n",
        static_cast<long long>(outbox_id), config.node.id.c_str());
    return o.wait ? kWaitTimedOut : kOk;
  }
  pb::Struct out;
  auto& f = *out.mutable_fields();
  f["id"].set_string_value(sent->id());
  f["origin"].set_string_value(sent->origin);
  f["seq"].set_number_value(static_cast<double>(sent->seq));
  f["outbox_id"].set_number_value(static_cast<double>(outbox_id));
  const auto nodes = resolve_targets(config, targets);
  auto* list = f["targets"].mutable_list_value();
  for (const auto& n : nodes) list->add_values()->set_string_value(n);
  if (o.json) {
    std::printf("%s\n", print_json(out).c_str());
  } else {
    std::printf("%s\n", sent->id().c_str());
  }
  if (!o.wait) return kOk;
  return wait_for_receipts(*conn, *sent, nodes, start + *o.wait, o.json);
}

}  // namespace relay::ctl

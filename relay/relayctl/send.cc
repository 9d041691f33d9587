// relayctl send, duress and all-clear: one outbox insert, a kick, and
// following the event until relayd claims it (and, with --wait, until every
// target confirms).
#include <unistd.h>
#include <pqxx/pqxx>

#include <asio.hpp>
#include <httplib.h>
#include <charconv>
#include <cstdio>
#include <thread>

#include "common/log.h"
#include "common/toml_section.h"
#include "relay/mesh/types.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/console.h"
#include "relay/store/outbox.h"
#include "relay/store/rows.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;
using SteadyClock = std::chrono::steady_clock;

v1::Kind kind_of(const std::string& name) {
  if (name == "notification") return v1::KIND_NOTIFICATION;
  if (name == "duress") return v1::KIND_DURESS;
  if (name == "all-clear") return v1::KIND_ALL_CLEAR;
  if (name == "test") return v1::KIND_TEST;
  if (name == "ack") return v1::KIND_ACK;        // relayctl ack
  if (name == "update") return v1::KIND_UPDATE;  // relayctl update
  if (name == "cancel") return v1::KIND_CANCEL;  // relayctl cancel
  throw UsageError("--kind \"" + name + "\": expected notification, duress, all-clear or test");
}

/// The event as the relay will build it from the outbox row, for checking
/// before anything is inserted.
v1::Event draft(const Config& config, const SendOptions& o) {
  v1::Event e;
  e.set_kind(kind_of(o.kind));
  for (const auto& t : o.targets) e.add_targets(t);
  e.set_title(o.title);
  e.set_body(o.body);
  e.set_location(o.location);
  e.set_sender(o.sender);
  e.set_type(o.type);
  e.set_exercise(o.exercise || o.kind == "test");
  if (o.kind == "ack") e.set_ack(o.ack == "resolved" ? v1::ACK_RESOLVED : v1::ACK_RESPONDING);
  if (!o.data.empty()) {
    if (!Json::accept(o.data)) throw UsageError("--data is not JSON: " + o.data);
    e.set_data(o.data);
  }
  for (const auto& ref : o.refs) {
    const EventId id = parse_event_id(ref);
    auto* r = e.add_references();
    r->set_origin(id.origin);
    r->set_seq(static_cast<std::uint64_t>(id.seq));
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

std::unique_ptr<pqxx::connection> connect(const Config& config) {
  try {
    return std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception& e) {
    throw Failure(
        kFailure,
        unreachable(config, e) + "; nothing was sent",
        {{"state", "not sent"}});
  }
}

/// Waits for the relay to claim the outbox row; throws if it rejected it.
std::optional<std::int64_t> await_claim(pqxx::connection& conn, const Config& config,
                                        std::int64_t outbox_id, SteadyClock::time_point deadline) {
  while (true) {
    pqxx::read_transaction tx(conn);
    auto claimed =
        tx.exec_params("SELECT seq FROM relay_event_log WHERE origin = $1 AND outbox_id = $2",
                       config.node.id, outbox_id);
    if (!claimed.empty()) return claimed[0][0].as<std::int64_t>();
    auto rejected = tx.exec_params("SELECT reason FROM outbox_rejected WHERE id = $1", outbox_id);
    if (!rejected.empty()) {
      throw Failure(kFailure, "the relay rejected it: " + rejected[0][0].as<std::string>(),
                    {{"state", "rejected"}, {"outbox_id", outbox_id}});
    }
    tx.commit();
    if (SteadyClock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

/// Per target: its receipt, absent while pending.
using Receipts = std::map<std::string, store::TargetReceipt>;

Receipts delivered(pqxx::connection& conn, const EventId& id) {
  pqxx::read_transaction tx(conn);
  return store::receipts_of(tx, id.origin, id.seq);
}

/// Reads the receipts of one event from the database, and from relayd's
/// memory (the control socket's "receipts" verb) for what the database
/// does not say: while it is down receipts reach relayd but are written
/// only once it answers again.
class ReceiptReader {
 public:
  ReceiptReader(const Config& config, EventId id, std::unique_ptr<pqxx::connection> conn)
      : config_(config), id_(std::move(id)), conn_(std::move(conn)) {}

  /// The receipts as they stand; nullopt (and why()) when neither answers.
  std::optional<Receipts> read(const std::vector<std::string>& targets) {
    std::optional<Receipts> out;
    if (!conn_ && SteadyClock::now() >= next_connect_) {
      try {
        conn_ = std::make_unique<pqxx::connection>(config_.store.dsn);
      } catch (const std::exception& e) {
        database_why_ = one_line(e.what());
      }
    }
    if (conn_) {
      try {
        out = delivered(*conn_, id_);
      } catch (const std::exception& e) {
        database_why_ = one_line(e.what());
        conn_.reset();
      }
      // A dead server refuses at once; one that hangs is not tried on every poll.
      if (!conn_) next_connect_ = SteadyClock::now() + std::chrono::seconds(1);
    }
    if (out && std::all_of(targets.begin(), targets.end(),
                           [&](const std::string& t) { return out->contains(t); })) {
      return out;
    }
    std::string why;
    const auto answer = control_request(config_, {{"verb", "receipts"}, {"id", id_.text()}},
                                        std::chrono::seconds(2), &why);
    if (!answer || !answer->value("ok", false)) {
      relayd_why_ = answer ? answer->value("error", "refused") : why;
      return out;
    }
    if (!out) out.emplace();
    const auto confirmed = answer->find("confirmed");
    if (confirmed == answer->end() || !confirmed->is_object()) return out;
    for (const auto& [target, r] : confirmed->items()) {
      out->try_emplace(target, store::TargetReceipt{r.value("delivered_unix_ms", std::int64_t{0}),
                                                    r.value("outcome", 0)});
    }
    return out;
  }
  std::string why() const {
    return "the database: " + database_why_ + "; relayd: " + relayd_why_;
  }

 private:
  const Config& config_;
  EventId id_;
  std::unique_ptr<pqxx::connection> conn_;
  SteadyClock::time_point next_connect_{};
  std::string database_why_, relayd_why_;
};

/// Follows the receipts until every target confirmed or the deadline, and
/// returns the last that were read. On a terminal the progress line is
/// redrawn; elsewhere (a log, a pipe) a line is printed only when it changes.
Receipts wait_for_receipts(ReceiptReader& reader, const std::vector<std::string>& targets,
                           SteadyClock::time_point deadline, bool json) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  Receipts done;
  std::string shown;
  while (true) {
    std::string line;
    std::string waiting;
    if (auto now = reader.read(targets)) {
      done = std::move(*now);
      std::string not_delivered;  // answered, but withheld there, and why
      for (const auto& t : targets) {
        auto it = done.find(t);
        if (it == done.end()) {
          waiting += (waiting.empty() ? "" : ", ") + t;
        } else if (it->second.outcome > relaymesh::v1::OUTCOME_DELIVERED_LATE) {
          not_delivered += "; " + t + " " + store::outcome_text(it->second.outcome);
        }
      }
      const auto confirmed = std::count_if(targets.begin(), targets.end(),
                                           [&](const std::string& t) { return done.contains(t); });
      line = std::to_string(confirmed) + " of " + std::to_string(targets.size()) +
             " targets confirmed" + not_delivered + (waiting.empty() ? "" : "; waiting for ") +
             waiting;
    } else {
      waiting = "?";
      line = "receipts cannot be read now (" + reader.why() + "); trying again";
    }
    if (!json && (tty || line != shown)) {
      std::fprintf(stderr, "%s%s%s", tty ? "\r\033[K" : "", line.c_str(), tty ? "" : "\n");
    }
    shown = line;
    if (waiting.empty() || SteadyClock::now() >= deadline) {
      if (!json && tty) std::fprintf(stderr, "\n");
      return done;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 100 : 250));
  }
}

}  // namespace

Json receipts_json(const std::vector<std::string>& targets,
                   const std::map<std::string, store::TargetReceipt>& done, bool too_old) {
  Json list = Json::array();
  for (const auto& t : targets) {
    auto it = done.find(t);
    const bool answered = it != done.end();
    list.push_back(
        {{"target", t},
         {"state", !answered ? (too_old ? "expired_unseen" : "pending")
                   : it->second.outcome > 1 ? "withheld"
                                            : "delivered"},
         {"outcome", answered ? Json(store::outcome_text(it->second.outcome)) : Json(nullptr)},
         {"delivered_unix_ms", answered ? Json(it->second.at) : Json(nullptr)}});
  }
  return list;
}

EventId parse_event_id(const std::string& text) {
  const std::string expected = "event \"" + text +
                               "\": expected ORIGIN:SEQ such as hq:42 (a node id, a colon, and "
                               "a number from 1 to 9223372036854775807)";
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || !valid_node_id(std::string_view(text).substr(0, colon)))
    throw UsageError(expected);
  EventId id{text.substr(0, colon), 0};
  const char* begin = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  if (begin == end || *begin == '+' || *begin == '-') throw UsageError(expected);
  const auto [ptr, ec] = std::from_chars(begin, end, id.seq);
  if (ec != std::errc() || ptr != end || id.seq < 1) throw UsageError(expected);
  return id;
}

std::vector<std::string> split_targets(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item.empty()) {
      throw UsageError("--target \"" + text +
                       "\": an empty target; name them: all, node ids or group:NAME, "
                       "comma-separated");
    }
    out.push_back(item);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::vector<std::string> resolve_targets(const Config& config,
                                         const std::vector<std::string>& targets) {
  return store::target_nodes(config, targets);
}

std::vector<std::string> all_clear_targets(const Config& config, const EventId& cleared) {
  auto conn = connect(config);
  pqxx::read_transaction tx(*conn);
  const auto rows =
      tx.exec_params("SELECT signed FROM relay_event_log WHERE origin = $1 AND seq = $2",
                     cleared.origin, cleared.seq);
  if (rows.empty()) throw missing_event(cleared);
  const pqxx::binarystring bytes(rows[0][0]);
  v1::SignedEvent signed_event;
  v1::Event e;
  if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()))
    throw Failure(kFailure, "event " + cleared.text() + " is unreadable in the log");
  return {e.targets().begin(), e.targets().end()};
}

namespace {

/// A duress through relayd's control socket: spooled and sent by relayd
/// without the database. The accepted id, or nullopt when relayd does not
/// answer (the caller falls back to the outbox). A refusal throws.
///
/// When relayd got the request but gave no answer, it may have spooled the
/// duress all the same: the fallback then risks one press arriving as two
/// alarms, which is the lesser failure than one that never arrives.
std::optional<EventId> raise_through_relayd(const Config& config, const SendOptions& o,
                                            bool& reached) {
  Json request{{"verb", "duress"}, {"targets", o.targets}, {"title", o.title}};
  if (!o.body.empty()) request["body"] = o.body;
  if (!o.location.empty()) request["location"] = o.location;
  if (!o.sender.empty()) request["by"] = o.sender;
  if (!o.type.empty()) request["type"] = o.type;
  if (!o.data.empty()) {
    try {
      request["data"] = Json::parse(o.data);
      request["data_text"] = o.data;  // exact numbers; "data" for an older relayd
    } catch (const Json::exception&) {
      throw UsageError("--data is not JSON: " + o.data);
    }
  }
  if (o.exercise) request["exercise"] = true;
  std::string why;
  const auto answer = control_request(config, request, std::chrono::seconds(3), &why, &reached);
  if (!answer) {
    std::fprintf(stderr,
                 "relayctl: relayd does not answer on its control socket (%s); queueing the duress "
                 "in the outbox instead, which needs the database%s\n",
                 why.c_str(),
                 reached ? " (relayd got the request and may send it too: the alarm may then "
                           "arrive twice, under two ids)"
                         : "");
    return std::nullopt;
  }
  if (!answer->value("ok", false)) {
    const std::string error = answer->value("error", "refused");
    // Bad input is the caller's; anything else (a full spool) is relayd's.
    if (error.starts_with("not accepted")) {
      throw Failure(kFailure, "relayd refused the duress: " + error + "; nothing was sent",
                    {{"state", "refused"}});
    }
    throw UsageError(error);
  }
  return EventId{answer->value("origin", ""), answer->value("seq", std::int64_t{0})};
}

/// Per peer, as relayd's status says: its state (alive, down, ...) and where
/// its configuration and this node's disagree. Empty when relayd does not answer.
Json peer_view(const Config& config) {
  Json out = Json::object();
  httplib::Client client(config.status.listen.host, config.status.listen.port);
  client.set_connection_timeout(std::chrono::seconds(2));
  if (!config.status.token.empty()) client.set_bearer_token_auth(config.status.token);
  auto res = client.Get("/api/status");
  if (!res || res->status != 200) return out;
  try {
    for (const auto& p : Json::parse(res->body).value("peers", Json::array())) {
      out[p.value("id", "")] = {{"state", p.value("state", "unknown")},
                                {"drift", p.value("drift", Json::array())}};
    }
  } catch (const Json::exception&) {
  }
  return out;
}

/// What a sending verb prints once relayd took its event, and the wait for
/// receipts with --wait. The event is sent: whatever happens next, it never
/// says otherwise (exit 3 when not every target confirmed in time).
int report(const Config& config, const SendOptions& o, const EventId& id,
           std::unique_ptr<pqxx::connection> conn, SteadyClock::time_point start, Json extra) {
  const auto nodes = resolve_targets(config, o.targets);
  if (!o.json) std::printf("%s\n", id.text().c_str());
  std::fflush(stdout);
  if (o.wait && o.until == "acknowledged") return until_acknowledged(config, o, id, start);
  ReceiptReader reader(config, id, std::move(conn));
  std::optional<Receipts> done;
  if (o.wait) {
    done = wait_for_receipts(reader, nodes, start + *o.wait, o.json);
  } else if (o.json) {
    done = reader.read(nodes);
  }
  const bool confirmed =
      done && std::all_of(nodes.begin(), nodes.end(),
                          [&](const std::string& t) { return done->contains(t); });
  // Each target that has not confirmed, with its peer's state: a target
  // that is down, or disagrees with this node about the two of them, says why.
  Json pending = Json::array();
  if (o.wait && !confirmed) {
    const Json peers = peer_view(config);
    for (const auto& t : nodes) {
      if (done && done->contains(t)) continue;
      const Json none = Json::object();
      const Json& peer = peers.contains(t) ? peers[t] : none;
      pending.push_back({{"target", t},
                         {"peer", t == config.node.id ? "this node"
                                  : peers.empty()     ? "unknown (relayd's status does not answer)"
                                                      : peer.value("state", "unknown")},
                         {"drift", peer.value("drift", Json::array())}});
    }
  }
  if (o.json) {
    Json doc;
    doc["ok"] = !o.wait || confirmed;
    doc["exit_code"] = !o.wait || confirmed ? kOk : kWaitTimedOut;
    doc["state"] = !o.wait ? "sent" : confirmed ? "confirmed" : "sent, not every target confirmed";
    doc["id"] = id.text();
    doc["origin"] = id.origin;
    doc["seq"] = id.seq;
    doc.update(extra);
    doc["targets"] = nodes;
    if (done) doc["receipts"] = receipts_json(nodes, *done, false);
    if (o.wait && !confirmed) doc["pending"] = pending;
    print_json(doc);
  }
  if (o.wait && !confirmed) {
    std::fprintf(stderr,
                 "timed out: %s was sent, but not every target has confirmed it yet (relayctl "
                 "receipts %s)\n",
                 id.text().c_str(), id.text().c_str());
    for (const auto& p : pending) {
      std::fprintf(stderr, "  %s: pending; peer %s\n", p["target"].get<std::string>().c_str(),
                   p["peer"].get<std::string>().c_str());
      for (const auto& line : p["drift"]) {
        std::fprintf(stderr, "  %s: configuration drift: %s\n",
                     p["target"].get<std::string>().c_str(), line.get<std::string>().c_str());
      }
    }
    return kWaitTimedOut;
  }
  return kOk;
}

}  // namespace

int send(const Config& config, SendOptions o) {
  const v1::Event event = draft(config, o);
  const auto start = SteadyClock::now();
  bool reached_relayd = false;  // and got no answer: it may send this duress too
  if (o.kind == "duress") {
    // The local raise path first: it needs relayd, not the database.
    if (auto id = raise_through_relayd(config, o, reached_relayd)) {
      return report(config, o, *id, nullptr, start, {{"path", "control socket"}});
    }
  }
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
    conn = connect(config);
  } catch (const Failure&) {
    if (!reached_relayd) throw;
    // relayd read the request and may have spooled it already: not "nothing
    // was sent", or a nurse presses again for an alarm that is on its way.
    throw Failure(kWaitTimedOut,
                  "relayd took the duress but did not answer, and the database does not answer "
                  "either: it may be in relayd's spool and sent from there; do not press again, "
                  "check with relayctl status",
                  {{"state", "may be spooled, unconfirmed"}, {"path", "control socket"}});
  }
  std::int64_t outbox_id = 0;
  {
    pqxx::work tx(*conn);
    outbox_id = tx.exec_params1(
                      "INSERT INTO outbox (kind, priority, targets, title, body, location, sender, "
                      "type, data, expires_at, refs, exercise, ack) VALUES ($1, nullif($2, ''), "
                      "$3::text[], $4, $5, $6, $7, $8, coalesce(nullif($9, ''), '{}')::jsonb, " +
                          expires + ", $10::text[], $11, nullif($12, '')) RETURNING id",
                      o.kind, o.priority, store::text_array(o.targets), o.title, o.body, o.location,
                      o.sender, o.type, o.data, store::text_array(o.refs), event.exercise(),
                      o.ack)[0]
                    .as<std::int64_t>();
    tx.exec("NOTIFY outbox");
    tx.commit();
  }
  kick(config);

  const auto claim_wait = o.wait.value_or(kClaimWait);
  const auto seq = await_claim(*conn, config, outbox_id, start + claim_wait);
  if (!seq) {
    throw Failure(kNotClaimed,
                  "queued as outbox row " + std::to_string(outbox_id) +
                      ", but relayd has not claimed it within " +
                      std::to_string(claim_wait.count()) +
                      " ms: it is NOT sent yet (is relayd "
                      "running for " +
                      config.node.id + "? relayd sends it when it claims it)",
                  {{"state", "queued"}, {"outbox_id", outbox_id}});
  }
  Json extra{{"path", "outbox"}, {"outbox_id", outbox_id}};
  if (reached_relayd) extra["may_also_be_spooled"] = true;
  return report(config, o, EventId{config.node.id, *seq}, std::move(conn), start,
                std::move(extra));
}

int report_sent(const Config& config, const SendOptions& o, const EventId& id, Json extra) {
  return report(config, o, id, nullptr, SteadyClock::now(), std::move(extra));
}

}  // namespace relay::ctl

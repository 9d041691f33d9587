// relayctl ack: a person's acknowledgement of an event, through the outbox
// like every alert, or through relayd's control socket while the database
// does not answer (spooled and sent as a duress is); and the
// acknowledgements that receipts and send --until acknowledged show.
// relayctl update and cancel: the origin revises its own alert, through the
// outbox.
#include <pqxx/pqxx>

#include <cstdio>
#include <thread>

#include "common/log.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/answer.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;

/// What `id`'s origin or a site says about it, as the claim will make it
/// from the event in this node's log (by `make`, which says why it cannot
/// be); nullopt when the database does not answer. A missing event, or one
/// that cannot be answered so, throws: nothing is sent.
std::optional<std::vector<std::string>> targets_from_log(
    const Config& config, v1::Kind kind, const EventId& id, const SendOptions& o,
    std::string (*make)(pqxx::transaction_base&, const Config&, v1::Event&)) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  pqxx::read_transaction tx(*conn);
  v1::Event e;
  e.set_kind(kind);
  e.set_origin(config.node.id);
  if (kind == v1::KIND_ACK) e.set_ack(o.ack == "resolved" ? v1::ACK_RESOLVED : v1::ACK_RESPONDING);
  e.set_sender(o.sender);
  e.set_title(o.title);
  e.set_body(o.body);
  e.set_location(o.location);
  auto* r = e.add_references();
  r->set_origin(id.origin);
  r->set_seq(static_cast<std::uint64_t>(id.seq));
  if (auto why = make(tx, config, e); !why.empty()) {
    throw Failure(kFailure, why + "; nothing was sent", {{"state", "not sent"}});
  }
  return std::vector<std::string>(e.targets().begin(), e.targets().end());
}

}  // namespace

int revise(const Config& config, SendOptions o, const EventId& id) {
  const auto kind = o.kind == "update" ? v1::KIND_UPDATE : v1::KIND_CANCEL;
  auto targets = targets_from_log(config, kind, id, o, store::revise_from_log);
  if (!targets) {
    // Unlike an acknowledgement it has no spool path: an alert is revised
    // from the log that holds it, and a wrong revision is worse than a late one.
    throw Failure(kFailure,
                  "the database does not answer, and an " + o.kind +
                      " is made from the alert in it; nothing was sent",
                  {{"state", "not sent"}});
  }
  o.targets = *targets;
  return send(config, o);
}

int ack(const Config& config, SendOptions o, const EventId& id) {
  if (auto targets = targets_from_log(config, v1::KIND_ACK, id, o, store::answer_from_log)) {
    o.targets = *targets;
    return send(config, o);
  }
  // The database does not answer: relayd signs and spools it, as a duress,
  // if it holds the event in memory.
  std::fprintf(stderr,
               "relayctl: the database does not answer; acknowledging through relayd's control "
               "socket\n");
  Json request{{"verb", "ack"},
               {"id", id.text()},
               {"state", o.ack.empty() ? "responding" : o.ack},
               {"by", o.sender}};
  if (!o.body.empty()) request["note"] = o.body;
  std::string why;
  const auto answer = control_request(config, request, std::chrono::seconds(3), &why);
  if (!answer) {
    throw Failure(kFailure,
                  "neither the database nor relayd (" + why + ") answers; nothing was sent",
                  {{"state", "not sent"}});
  }
  if (!answer->value("ok", false)) {
    throw Failure(kFailure,
                  "relayd refused the acknowledgement: " + answer->value("error", "refused") +
                      "; nothing was sent",
                  {{"state", "refused"}});
  }
  o.targets = answer->value("targets", std::vector<std::string>{});
  return report_sent(config, o,
                     EventId{answer->value("origin", ""), answer->value("seq", std::int64_t{0})},
                     {{"path", "control socket"}});
}

std::vector<store::Acknowledgement> acknowledgements(pqxx::connection& conn, const EventId& id) {
  pqxx::read_transaction tx(conn);
  return store::acks_of(tx, id.origin, id.seq);
}

Json acks_json(const std::vector<store::Acknowledgement>& acks, std::int64_t raised_unix_ms) {
  Json list = Json::array();
  for (const auto& a : acks) {
    list.push_back({{"id", a.id},
                    {"by", a.by},
                    {"site", a.site},
                    {"state", a.state},
                    {"note", a.note},
                    {"created_unix_ms", a.created_unix_ms},
                    {"seconds_after", (a.created_unix_ms - raised_unix_ms) / 1000.0}});
  }
  return list;
}

void print_acks(const std::vector<store::Acknowledgement>& acks, std::int64_t raised_unix_ms) {
  for (const auto& a : acks) {
    std::printf("  acknowledged by %s at %s, %s, %.0f s after it was raised (%s)%s%s\n",
                a.by.c_str(), a.site.c_str(), a.state.c_str(),
                (a.created_unix_ms - raised_unix_ms) / 1000.0, a.id.c_str(),
                a.note.empty() ? "" : ": ", a.note.c_str());
  }
}

std::optional<store::Acknowledgement> wait_for_ack(const Config& config, const EventId& id,
                                                   std::chrono::steady_clock::time_point deadline,
                                                   bool json) {
  std::string shown;
  while (true) {
    std::string line;
    try {
      pqxx::connection conn(config.store.dsn);
      const auto acks = acknowledgements(conn, id);
      if (!acks.empty()) return acks.front();
      line = "waiting for a person to acknowledge " + id.text();
    } catch (const std::exception& e) {
      line = "acknowledgements cannot be read now (" + one_line(e.what()) + "); trying again";
    }
    if (!json && line != shown) std::fprintf(stderr, "%s\n", line.c_str());
    shown = line;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

int until_acknowledged(const Config& config, const SendOptions& o, const EventId& id,
                       std::chrono::steady_clock::time_point start) {
  const auto got = wait_for_ack(config, id, start + *o.wait, o.json);
  if (o.json) {
    Json doc{{"ok", got.has_value()},
             {"exit_code", got ? kOk : kWaitTimedOut},
             {"state", got ? "acknowledged" : "sent, nobody acknowledged it in time"},
             {"id", id.text()},
             {"origin", id.origin},
             {"seq", id.seq}};
    doc["acknowledged"] = got ? Json{{"id", got->id},     {"by", got->by},
                                     {"site", got->site}, {"state", got->state},
                                     {"note", got->note}, {"created_unix_ms", got->created_unix_ms}}
                              : Json(nullptr);
    print_json(doc);
  }
  if (!got) {
    std::fprintf(stderr,
                 "timed out: %s was sent, but no person has acknowledged it yet (relayctl "
                 "receipts %s)\n",
                 id.text().c_str(), id.text().c_str());
    return kWaitTimedOut;
  }
  if (!o.json) {
    std::fprintf(stderr, "acknowledged by %s at %s (%s)\n", got->by.c_str(), got->site.c_str(),
                 got->state.c_str());
  }
  return kOk;
}

}  // namespace relay::ctl

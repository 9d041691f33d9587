// relayctl ack: a person's acknowledgement of an event, through the outbox
// like every alert, or through relayd's control socket while the database
// does not answer (spooled and sent as a duress is); and the
// acknowledgements that receipts and send --until acknowledged show.
#include <pqxx/pqxx>

#include <cstdio>
#include <thread>

#include "common/log.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/answer.h"

namespace relay::ctl {
namespace {

namespace v1 = relaymesh::v1;

/// The acknowledgement's targets, as the claim will make them from the event
/// in this node's log; nullopt when the database does not answer. A missing
/// event, or one that cannot be acknowledged, throws: nothing is sent.
std::optional<std::vector<std::string>> ack_targets(const Config& config, const EventId& id,
                                                    const SendOptions& o) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(config.store.dsn);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  pqxx::read_transaction tx(*conn);
  v1::Event ack;
  ack.set_kind(v1::KIND_ACK);
  ack.set_origin(config.node.id);
  ack.set_ack(o.ack == "resolved" ? v1::ACK_RESOLVED : v1::ACK_RESPONDING);
  ack.set_sender(o.sender);
  ack.set_body(o.body);
  auto* r = ack.add_references();
  r->set_origin(id.origin);
  r->set_seq(static_cast<std::uint64_t>(id.seq));
  if (auto why = store::answer_from_log(tx, config, ack); !why.empty()) {
    throw Failure(kFailure, why + "; nothing was sent", {{"state", "not sent"}});
  }
  return std::vector<std::string>(ack.targets().begin(), ack.targets().end());
}

}  // namespace

int ack(const Config& config, SendOptions o, const EventId& id) {
  if (auto targets = ack_targets(config, id, o)) {
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
    doc["acknowledged"] = got ? Json{{"id", got->id},
                                     {"by", got->by},
                                     {"site", got->site},
                                     {"state", got->state},
                                     {"note", got->note},
                                     {"created_unix_ms", got->created_unix_ms}}
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

// The local raise path. A duress handed to relayd through its control
// socket does not need PostgreSQL: it is numbered above the state
// directory's high-water mark, signed, appended to the spool and fsynced
// before it is accepted; it goes out at once, and it drains into the log
// (and message_queue, where this node is a target) when the database takes
// it. A restart at any point sends what the spool holds again; the drain is
// idempotent, so nothing is lost or doubled.
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

#include "common/failpoint.h"
#include "relay/net/daemon.h"
#include "relay/mesh/response.h"
#include "relay/store/answer.h"
#include "relay/store/outbox.h"
#include "relay/store/rows.h"

namespace relay::net {
namespace {

using Json = nlohmann::ordered_json;

mesh::Time now() {
  return std::chrono::steady_clock::now();
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// How the log names a control socket request's sender.
std::string via_socket(const Caller& caller) {
  return "the control socket (pid " + std::to_string(caller.pid) + ", uid " +
         std::to_string(caller.uid) + ")";
}

std::string refusal(const std::string& why) {
  return Json{{"ok", false}, {"error", why}}.dump();
}

/// A spooled record: the signed event as it travels.
mesh::EventPtr parse_record(const std::string& payload) {
  v1::SignedEvent signed_event;
  v1::Event event;
  if (!signed_event.ParseFromString(payload) || !event.ParseFromString(signed_event.event())) {
    return nullptr;
  }
  return mesh::make_event(signed_event, event);
}

/// The duress a request describes; throws std::invalid_argument saying what is wrong.
v1::Event duress_of(const Json& r, const Config& config) {
  v1::Event e;
  e.set_origin(config.node.id);
  e.set_kind(v1::KIND_DURESS);
  e.set_priority(v1::PRIORITY_DURESS);
  auto text = [&](const char* key, const std::string& fallback = "") {
    if (!r.contains(key)) return fallback;
    if (!r[key].is_string()) throw std::invalid_argument(std::string(key) + ": expected a string");
    return r[key].get<std::string>();
  };
  if (r.contains("targets")) {
    if (!r["targets"].is_array() || r["targets"].empty())
      throw std::invalid_argument("targets: expected a non-empty array of strings");
    for (const auto& t : r["targets"]) {
      if (!t.is_string()) throw std::invalid_argument("targets: expected strings");
      e.add_targets(t.get<std::string>());
    }
  } else {
    for (const auto& t : config.duress.targets) e.add_targets(t);
  }
  e.set_title(text("title", "Duress"));
  if (e.title().empty()) throw std::invalid_argument("title: must not be empty");
  e.set_body(text("body"));
  e.set_location(text("location"));
  e.set_sender(text("by"));
  e.set_type(text("type"));
  // data_text, the JSON as the producer wrote it, keeps its numbers exact
  // (a parsed "data" holds them as doubles); "data" is for older callers.
  if (r.contains("data_text")) {
    if (!r["data_text"].is_string() || !store::jsonb_safe(r["data_text"].get<std::string>()))
      throw std::invalid_argument("data_text: expected JSON text that PostgreSQL's jsonb takes");
    e.set_data(r["data_text"].get<std::string>());
  } else if (r.contains("data")) {
    e.set_data(r["data"].dump());
  }
  if (r.contains("exercise"))
    e.set_exercise(r["exercise"].is_boolean() && r["exercise"].get<bool>());
  e.set_created_unix_ms(wall_ms());
  store::resolve_targets(e, config);
  if (auto why = store::check_event(e, config); !why.empty()) throw std::invalid_argument(why);
  return e;
}

/// The acknowledgement a request describes ({"verb": "ack", "id":
/// "origin:seq", "state": "responding" or "resolved", "by", "note"}), of
/// an event this relayd holds in memory; throws std::invalid_argument
/// saying what is wrong.
v1::Event ack_of(const Json& r, const Config& config, const mesh::Node& node) {
  auto text = [&](const char* key) {
    if (!r.contains(key)) return std::string();
    if (!r[key].is_string()) throw std::invalid_argument(std::string(key) + ": expected a string");
    return r[key].get<std::string>();
  };
  const std::string id = text("id");
  const auto colon = id.rfind(':');
  std::uint64_t seq = 0;
  const char* end = id.data() + id.size();
  if (colon == std::string::npos || std::from_chars(id.data() + colon + 1, end, seq).ptr != end ||
      seq == 0) {
    throw std::invalid_argument("id: expected \"origin:seq\", the event to acknowledge");
  }
  v1::Event e;
  e.set_origin(config.node.id);
  e.set_kind(v1::KIND_ACK);
  const std::string state = r.contains("state") ? text("state") : "responding";
  e.set_ack(mesh::ack_state_of(state));
  if (e.ack() == v1::ACK_UNSPECIFIED)
    throw std::invalid_argument("state \"" + state + "\": expected responding or resolved");
  e.set_sender(text("by"));
  if (e.sender().empty()) throw std::invalid_argument("by: who acknowledges, e.g. \"guard 3\"");
  e.set_body(text("note"));
  e.set_created_unix_ms(wall_ms());
  // Only what this relayd holds in memory (recent events): the database,
  // which holds the rest, may be the reason this path is taken.
  const auto held = node.recent_event({id.substr(0, colon), seq});
  v1::Event referenced;
  if (!held || !referenced.ParseFromString(held->signed_event.event())) {
    throw std::invalid_argument("event " + id + " is not among the events relayd holds in " +
                                "memory: " + config.node.id + " has not received it, or not " +
                                "lately (acknowledge it through the outbox once the database " +
                                "answers)");
  }
  if (auto why = store::answer(config, e, referenced); !why.empty())
    throw std::invalid_argument(why);
  return e;
}

}  // namespace

std::string Daemon::on_control(const std::string& request, const Caller& caller) {
  if (stopped_) return refusal("relayd is stopping");
  Json r;
  try {
    r = Json::parse(request);
  } catch (const Json::exception&) {
    return refusal("the request is not one JSON object on one line");
  }
  const std::string verb = r.is_object() ? r.value("verb", "") : "";
  if (verb == "duress") return raise_duress(request, caller);
  if (verb == "ack") return raise_ack(request, caller);
  if (verb == "ping") return Json{{"ok", true}, {"node", config_.node.id}}.dump();
  if (verb == "reload" && reload_) {
    spdlog::info("reload asked through the control socket (pid {}, uid {})", caller.pid,
                 caller.uid);
    const auto [ok, message] = reload_();
    return ok ? Json{{"ok", true}, {"message", message}}.dump() : refusal(message);
  }
  return refusal("verb \"" + verb + "\": expected duress, ack, reload or ping");
}

std::string Daemon::raise_duress(const std::string& request, const Caller& caller) {
  v1::Event e;
  try {
    e = duress_of(Json::parse(request), config_);
  } catch (const std::exception& bad) {
    return refusal(bad.what());
  }
  return spool_and_send(std::move(e), via_socket(caller));
}

std::string Daemon::raise_ack(const std::string& request, const Caller& caller) {
  v1::Event e;
  try {
    e = ack_of(Json::parse(request), config_, *node_);
  } catch (const std::exception& bad) {
    return refusal(bad.what());
  }
  return spool_and_send(std::move(e), via_socket(caller));
}

std::string Daemon::spool_and_send(v1::Event e, const std::string& via) {
  const std::string what = e.kind() == v1::KIND_ACK          ? "acknowledgement"
                           : e.kind() == v1::KIND_ESCALATION ? "escalation"
                                                             : "duress";
  // The spool is for alarms: acknowledgements may fill half of it at most,
  // so that people answering never leave the next duress without a slot.
  if (e.kind() == v1::KIND_ACK && spool_.depth() * 2 >= spool_.capacity()) {
    spdlog::error("acknowledgement refused: the spool {} is half full ({} wait for the database); "
                  "its other half is kept for duress alarms",
                  spool_.file().string(), spool_.depth());
    return refusal("not accepted: the spool is half full (" + std::to_string(spool_.depth()) +
                   " wait for the database to come back); the rest is kept for duress alarms");
  }
  std::string payload;
  std::optional<std::uint64_t> record;
  try {
    // Above everything this node may ever have numbered, whatever the
    // database says or whether it answers at all.
    e.set_seq(numbering_.allocate(0, 1));
    payload = wire::sign_event(e, keys_.identity).SerializeAsString();
    record = spool_.append(payload);
  } catch (const std::exception& failed) {
    spdlog::error("{} refused: {} (nothing was accepted)", what, failed.what());
    return refusal(std::string("not accepted: ") + failed.what());
  }
  if (!record) {
    spdlog::error("{} refused: the spool {} is full ({} alarms wait for the database)", what,
                  spool_.file().string(), spool_.depth());
    return refusal("not accepted: the spool is full (" + std::to_string(spool_.depth()) +
                   " alarms wait for the database to come back)");
  }
  failpoint("spool-appended");
  auto event = parse_record(payload);
  // Not in message_queue yet: the drain's commit logs its delivery here.
  incidents_.claimed({event}, config_, false);
  spdlog::info("{} {}:{} accepted through {} and spooled", what, e.origin(), e.seq(), via);
  report_health();  // peers see the spool in their next probe answer
  node_->on_local_event(now(), event);
  drain_spool();
  after_input();
  return Json{{"ok", true},           {"id", e.origin() + ":" + std::to_string(e.seq())},
              {"origin", e.origin()}, {"seq", e.seq()},
              {"state", "accepted"},  {"spool_depth", spool_.depth()},
              {"targets", std::vector<std::string>(e.targets().begin(), e.targets().end())}}
      .dump();
}

void Daemon::send_spooled() {
  // Accepted before a crash or a restart: they go out again (peers dedupe).
  for (const auto& [number, payload] : spool_.records()) {
    if (auto event = parse_record(payload)) {
      node_->on_local_event(now(), event);
    } else {
      spdlog::error("spool record {} does not parse; kept, not sent (a bug)", number);
    }
  }
  if (spool_.torn_at_open() > 0) {
    spdlog::warn(
        "spool {}: {} torn or damaged slots dropped at start (a crash mid-append: "
        "that alarm was never accepted)",
        spool_.file().string(), spool_.torn_at_open());
  }
  after_input();
}

void Daemon::drain_spool() {
  if (!node_->has_store()) return;
  for (const auto& [number, payload] : spool_.records()) {
    const auto record = number;
    if (std::any_of(draining_.begin(), draining_.end(),
                    [&](const auto& entry) { return entry.second == record; })) {
      continue;
    }
    auto event = parse_record(payload);
    if (!event) continue;
    // Into the log, and message_queue where this node is a target, with its
    // own receipt: the same rows a claim writes, idempotently.
    mesh::StoreBatch batch;
    batch.ticket = next_drain_ticket_++;
    batch.priority = v1::PRIORITY_DURESS;
    const bool here = mesh::targets_node(*event, config_.node.id, config_.node.groups);
    batch.events.push_back({event, here});
    if (here) batch.receipts.push_back({event->key, config_.node.id, wall_ms()});
    draining_[batch.ticket] = record;
    tap_->persist(std::move(batch));  // the incident log sees the delivery
  }
}

bool Daemon::drained(const mesh::StoreDone& done) {
  if (done.ticket < kSpoolTickets) return false;
  auto it = draining_.find(done.ticket);
  if (it == draining_.end()) return true;
  const std::uint64_t record = it->second;
  draining_.erase(it);
  if (done.failed) {
    spdlog::error("spool record {}: the database refused it; kept in the spool, tried again in "
                  "{} s",
                  record, drain_backoff_.count());
    drain_retry_ = now() + drain_backoff_;
    drain_backoff_ = std::min(drain_backoff_ * 2, kDrainRetryCap);
    return true;
  }
  drain_backoff_ = kDrainRetry;
  failpoint("spool-drained");
  if (const auto payload = spool_.records().find(record); payload != spool_.records().end()) {
    v1::SignedEvent signed_event;
    DaemonStatus::Drained drained{{}, wall_ms()};
    if (signed_event.ParseFromString(payload->second) &&
        drained.event.ParseFromString(signed_event.event())) {
      drained_.push_back(std::move(drained));
      if (drained_.size() > kDrainedKept) drained_.pop_front();
    }
  }
  spool_.release(record);
  report_health();
  if (done.delivered) consumer_kicks_.kick();
  return true;
}

std::int64_t Daemon::spool_oldest_ms() const {
  if (spool_.records().empty()) return 0;
  auto oldest = parse_record(spool_.records().begin()->second);
  return oldest ? std::max<std::int64_t>(0, wall_ms() - oldest->created_unix_ms) : 0;
}

}  // namespace relay::net

// Escalation at the origin (issue 21): an own event nobody acknowledged
// within its rule's `after` goes to the rule's targets as a KIND_ESCALATION
// of this node, again every `repeat`, at most `max` times, until a person
// acknowledges it anywhere or its origin clears it. The timers are derived,
// never kept: the event's created time, and the rounds already made, which
// are KIND_ESCALATION events in the log or in the spool. So a kill -9
// neither loses nor repeats a round, and with the database down the spool
// alone carries on for the duress alarms it holds.
#include "relay/net/escalation.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <pqxx/except>
#include <pqxx/transaction>

#include <unistd.h>

#include "common/log.h"
#include "relay/mesh/response.h"
#include "relay/net/daemon.h"
#include "relay/store/outbox.h"

namespace relay::net {
namespace {

/// A reference time further ahead than this is a clock that stepped back,
/// not the ordinary skew between relayd's and the database's reads.
constexpr std::chrono::milliseconds kClockBackSlack{60'000};

}  // namespace

EscalationWatch::EscalationWatch(Config config, Found found, std::chrono::milliseconds interval)
    : config_(std::move(config)),
      found_(std::move(found)),
      thread_(interval, [this] { check(); }) {}

void EscalationWatch::start() {
  if (!config_.escalations.empty()) thread_.start();
}

void EscalationWatch::stop() {
  thread_.stop();
}

void EscalationWatch::check() {
  std::optional<std::vector<store::Unanswered>> found;
  try {
    // A short connect timeout: the spool's escalations must not wait long
    // for a server that is not there.
    pqxx::read_transaction tx(watch_connection(conn_, config_.store.dsn));
    tx.exec("SET LOCAL statement_timeout = 3000");
    found = store::unanswered(tx, config_);
    tx.commit();
  } catch (const pqxx::undefined_table&) {
    found.emplace();  // relayd has not migrated yet: nothing is logged
  } catch (const std::exception& e) {
    // The database watch logs the outage; the spool takes over here.
    spdlog::debug("escalation: database read failed: {}", one_line(e.what()));
    conn_.reset();
  }
  found_(std::move(found));
}

void Daemon::start_escalation() {
  // The watch reads on its thread; rounds are made on this one, which owns
  // the spool and the core.
  escalation_ = std::make_unique<EscalationWatch>(
      config_, [this](std::optional<std::vector<store::Unanswered>> found) {
        asio::post(io_, [this, found = std::move(found)]() mutable { escalate(std::move(found)); });
      });
  escalation_->start();
}

void Daemon::escalate(std::optional<std::vector<store::Unanswered>> found) {
  if (stopped_) return;
  // With the database down, the alarms it cannot list are those the spool
  // holds (raised through the control socket meanwhile).
  std::vector<store::Unanswered> candidates;
  std::set<std::string> answered;
  for (const auto& [number, payload] : spool_.records()) {
    v1::SignedEvent signed_event;
    v1::Event e;
    if (!signed_event.ParseFromString(payload) || !e.ParseFromString(signed_event.event()))
      continue;
    if (e.kind() == v1::KIND_ACK || e.kind() == v1::KIND_ALL_CLEAR) {
      for (const auto& r : e.references()) answered.insert(r.origin() + ":" + std::to_string(r.seq()));
    } else if (e.kind() == v1::KIND_ESCALATION && e.references_size() == 1) {
      // Made and fsynced, maybe not in the log yet: it counts.
      const auto& r = e.references(0);
      auto& made = escalated_[r.origin() + ":" + std::to_string(r.seq())];
      if (e.escalation_round() > made.first) made = {e.escalation_round(), e.created_unix_ms()};
    } else if (!found && e.origin() == config_.node.id) {
      candidates.push_back({e, 0, 0});
    }
  }
  // The database's last word stands while it does not answer: an alarm
  // logged before the outage keeps escalating (an acknowledgement cannot
  // be stored meanwhile either; it stops the rounds once it is).
  if (found) last_found_ = std::move(*found);
  candidates.insert(candidates.end(), last_found_.begin(), last_found_.end());
  std::map<std::string, std::pair<std::uint32_t, std::int64_t>> kept;
  const std::int64_t now_ms = unix_ms_now();
  for (const auto& u : candidates) {
    const std::string id = u.event.origin() + ":" + std::to_string(u.event.seq());
    const EscalationRule* rule = store::escalation_rule(config_, u.event);
    // Listed twice (spooled, and in the database's last list): once is enough.
    if (rule == nullptr || answered.contains(id) || kept.contains(id)) continue;
    // The most any record says: the log (as read), the spool, and what this
    // boot made since (drained into the log after the read began).
    auto made = escalated_.contains(id) ? escalated_[id] : std::pair<std::uint32_t, std::int64_t>{};
    if (u.rounds > made.first) made = {u.rounds, u.last_round_unix_ms};
    kept[id] = made;
    if (made.first >= rule->max) continue;
    const std::int64_t since = made.first == 0 ? u.event.created_unix_ms() : made.second;
    const std::int64_t due = since + (made.first == 0 ? rule->after : rule->repeat).count();
    // A clock stepped back (a power cut) would put the round an hour off:
    // the round goes now, and the next is timed from it, on the new clock.
    const bool clock_back = now_ms + kClockBackSlack.count() < since;
    if (now_ms < due && !clock_back) continue;
    // Rounds take the spool's answer half at most, as acknowledgements do: a
    // long outage's rounds never leave the next duress without a slot. The
    // round is made once the drain frees room.
    if (spool_.depth() * 2 >= spool_.capacity()) {
      if (!escalations_held_) {
        spdlog::error("escalation rounds wait: the spool {} is half full ({} wait for the "
                      "database); its other half is kept for duress alarms",
                      spool_.file().string(), spool_.depth());
      }
      escalations_held_ = true;
      continue;
    }
    escalations_held_ = false;
    v1::Event e;
    e.set_origin(config_.node.id);
    e.set_created_unix_ms(now_ms);
    for (const auto& t : rule->to) e.add_targets(t);
    mesh::make_escalation(e, u.event, made.first + 1, rule->max);
    store::resolve_targets(e, config_);
    if (auto why = store::check_event(e, config_); !why.empty()) {
      spdlog::error("escalation of {} not made: {}", id, why);
      continue;
    }
    spdlog::warn("{} not acknowledged: escalation round {} of {} to {}{}", id, made.first + 1,
                 rule->max, fmt::join(rule->to, ", "),
                 made.first + 1 == rule->max ? " (the last: nobody acknowledged)" : "");
    // Counted only once spooled: a round the spool refused (full, or a
    // write error, logged there) is made again on the next pass.
    const auto answer = nlohmann::json::parse(spool_and_send(std::move(e), "the escalation timer"),
                                              nullptr, false);
    if (answer.is_object() && answer.value("ok", false)) {
      kept[id] = escalated_[id] = {made.first + 1, now_ms};
    }
  }
  // What this boot made, for the events still open; the rest never escalate again.
  if (found) escalated_ = std::move(kept);
}

}  // namespace relay::net

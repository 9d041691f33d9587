#include "relay/net/incident_log.h"

#include <spdlog/fmt/fmt.h>

#include "common/log.h"
#include "relay/store/outbox.h"

namespace relay::net {
namespace {

namespace v1 = relaymesh::v1;

// Own duress events remembered to name their receipts: far more than are
// ever open at once.
constexpr std::size_t kOwnDuressKept = 1000;

std::string id_of(const mesh::EventKey& key) {
  return key.origin + ":" + std::to_string(key.seq);
}

long long seconds(mesh::Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

std::string peer_state(const mesh::PeerStatus& peer) {
  if (!peer.heard) return "not heard yet";
  if (peer.down) return "down";
  if (peer.suspect) return "suspect";
  if (peer.degraded) return "degraded";
  return "alive";
}

std::string degraded_reason(const mesh::PeerStatus& peer) {
  if (peer.health && !peer.health->store_up()) {
    std::string why = fmt::format("its database is down for {} s (its own report)",
                                  peer.health->store_down_ms() / 1000);
    if (peer.health->spool_depth() > 0) {
      why += fmt::format("; {} events spooled, the oldest {} s old", peer.health->spool_depth(),
                         peer.health->spool_oldest_ms() / 1000);
    }
    return why;
  }
  return fmt::format("no ack for {} s while it answers probes (database down or disk full?)",
                     seconds(peer.unacked_for));
}

std::string paths_text(const mesh::PeerStatus& peer) {
  std::string out;
  for (std::size_t i = 0; i < peer.paths_up.size(); ++i) {
    out += fmt::format("{}{} {}{}", out.empty() ? "" : ", ", i + 1,
                       peer.paths_up[i] ? "up" : "down", i == peer.best_path ? " (best)" : "");
  }
  return out;
}

void IncidentLog::observe_peers(mesh::Time now, const std::vector<mesh::PeerStatus>& peers) {
  next_peers_ = now + std::chrono::milliseconds(500);
  for (const auto& p : peers) {
    const std::string state = peer_state(p);
    auto [it, first] = peers_.try_emplace(p.id, PeerSeen{state, p.alarmed, p.store_alarmed, now, {}});
    PeerSeen& seen = it->second;
    if (first) continue;
    if (state != seen.state) {
      const long long silent = seconds(now - p.last_heard);
      if (state == "alive") {
        log_incident(spdlog::level::info,
                     seen.state == "not heard yet"
                         ? fmt::format("peer {} is alive (first heard since start)", p.id)
                         : fmt::format("peer {} is alive again (was {} for {} s)", p.id, seen.state,
                                       seconds(now - seen.since)),
                     {{"incident", "peer_alive"}, {"peer", p.id}, {"reason", "answered"}});
      } else if (state == "suspect") {
        log_incident(spdlog::level::warn,
                     fmt::format("peer {} is suspect: no answer for {} s", p.id, silent),
                     {{"incident", "peer_suspect"},
                      {"peer", p.id},
                      {"reason", fmt::format("silent for {} s", silent)}});
      } else if (state == "degraded") {
        log_incident(
            spdlog::level::err,
            fmt::format("peer {} is degraded: {}; back-pressure no longer waits for it, "
                        "duress still goes to it",
                        p.id, degraded_reason(p)),
            {{"incident", "peer_degraded"}, {"peer", p.id}, {"reason", degraded_reason(p)}});
      } else if (state == "down") {
        log_incident(spdlog::level::err,
                     fmt::format("peer {} is down: silent for {} s; anti-entropy catches it up "
                                 "when it is back",
                                 p.id, silent),
                     {{"incident", "peer_down"},
                      {"peer", p.id},
                      {"reason", fmt::format("silent for {} s", silent)}});
      }
      seen.state = state;
      seen.since = now;
    }
    if (p.paths_up.size() > 1 && p.paths_up != seen.paths_up) {
      if (!seen.paths_up.empty()) {
        log_incident(spdlog::level::warn, fmt::format("peer {} paths: {}", p.id, paths_text(p)),
                     {{"incident", "peer_paths"}, {"peer", p.id}, {"reason", paths_text(p)}});
      }
      seen.paths_up = p.paths_up;
    }
    if (p.alarmed != seen.alarmed) {
      seen.alarmed = p.alarmed;
      if (p.alarmed) {
        log_incident(spdlog::level::critical,
                     fmt::format("SUPERVISION ALARM raised: peer {} unreachable for {} s", p.id,
                                 seconds(now - p.last_heard)),
                     {{"incident", "alarm_raised"},
                      {"peer", p.id},
                      {"reason", "unreachable beyond supervision_timeout"}});
      } else {
        log_incident(spdlog::level::info,
                     fmt::format("supervision alarm cleared: peer {} answers again", p.id),
                     {{"incident", "alarm_cleared"}, {"peer", p.id}, {"reason", "answered"}});
      }
    }
    if (p.store_alarmed != seen.store_alarmed) {
      seen.store_alarmed = p.store_alarmed;
      if (p.store_alarmed) {
        log_incident(spdlog::level::critical,
                     fmt::format("ALARM raised: peer {} answers, but {}", p.id, degraded_reason(p)),
                     {{"incident", "alarm_raised"},
                      {"peer", p.id},
                      {"reason", "database down beyond supervision_timeout"}});
      } else {
        log_incident(spdlog::level::info,
                     fmt::format("database-down alarm cleared: peer {} stores again", p.id),
                     {{"incident", "alarm_cleared"}, {"peer", p.id}, {"reason", "database up"}});
      }
    }
  }
}

void IncidentLog::claimed(const std::vector<mesh::EventPtr>& events, const Config& config,
                          bool in_message_queue) {
  const std::string& self = config.node.id;
  for (const auto& event : events) {
    if (event->priority != v1::PRIORITY_DURESS) continue;
    v1::Event e;
    if (!e.ParseFromString(event->signed_event.event()) || e.kind() != v1::KIND_DURESS) continue;
    std::string targets;
    for (const auto& t : e.targets()) targets += (targets.empty() ? "" : ",") + t;
    const std::string id = id_of(event->key);
    log_incident(spdlog::level::warn,
                 fmt::format("{}duress {} sent to {}: \"{}\" at \"{}\" by \"{}\"",
                             e.exercise() ? "[EXERCISE] " : "", id, targets, e.title(),
                             e.location(), e.sender()),
                 {{"incident", "duress_sent"},
                  {"event_id", id},
                  {"targets", targets},
                  {"location", e.location()}});
    if (auto why = store::send_refusal(config, e); !why.empty()) {
      log_incident(spdlog::level::err,
                   fmt::format("duress {} is outside the mesh policy, sent all the same: {}", id,
                               why),
                   {{"incident", "duress_outside_policy"}, {"event_id", id}, {"reason", why}});
    }
    if (in_message_queue && mesh::targets_node(event->targets, self, config.node.groups)) {
      log_incident(spdlog::level::warn,
                   fmt::format("duress {} delivered into message_queue here", id),
                   {{"incident", "duress_delivered"}, {"event_id", id}, {"peer", self}});
    }
    own_duress_.insert(event->key);
    own_duress_order_.push_back(event->key);
    if (own_duress_order_.size() > kOwnDuressKept) {
      const mesh::EventKey gone = own_duress_order_.front();
      own_duress_.erase(gone);
      own_duress_order_.pop_front();
      confirmed_logged_.erase(confirmed_logged_.lower_bound({gone, ""}),
                              confirmed_logged_.lower_bound({{gone.origin, gone.seq + 1}, ""}));
    }
  }
}

void IncidentLog::persisting(const mesh::StoreBatch& batch) {
  Pending pending;
  for (const auto& w : batch.events) {
    // A duress, not whatever travels at its priority (its all-clear).
    if (w.delivers() && w.event->kind == v1::KIND_DURESS)
      pending.delivered.emplace_back(w.event->key, w.outside_policy);
    if (w.queued() && w.outcome == v1::OUTCOME_REFUSED)
      pending.refused.emplace_back(w.event->key, w.refusal);
  }
  for (const auto& r : batch.receipts) {
    if (own_duress_.contains(r.event)) pending.confirmed.emplace_back(r.event, r.target);
  }
  if (!pending.delivered.empty() || !pending.confirmed.empty() || !pending.refused.empty())
    pending_[batch.ticket] = std::move(pending);
}

void IncidentLog::stored(const mesh::StoreDone& done) {
  auto it = pending_.find(done.ticket);
  if (it == pending_.end()) return;
  if (!done.failed) {
    for (const auto& [key, outside] : it->second.delivered) {
      log_incident(spdlog::level::warn,
                   fmt::format("duress {} delivered into message_queue here", id_of(key)),
                   {{"incident", "duress_delivered"}, {"event_id", id_of(key)}});
      if (outside.empty()) continue;
      // Never refused for policy, and never quiet about it either.
      log_incident(spdlog::level::err,
                   fmt::format("duress {} is outside the mesh policy, delivered all the same: {}",
                               id_of(key), outside),
                   {{"incident", "duress_outside_policy"},
                    {"event_id", id_of(key)},
                    {"reason", outside}});
    }
    for (const auto& [key, why] : it->second.refused) {
      if (!refusals_.allow()) continue;
      const auto held_back = refusals_.suppressed();
      log_incident(spdlog::level::err,
                   fmt::format("refused {} under the mesh policy: {}; a relay.policy row raised{}",
                               id_of(key), why,
                               held_back > 0
                                   ? fmt::format(" ({} more refusals not logged)", held_back)
                                   : ""),
                   {{"incident", "policy_refused"}, {"event_id", id_of(key)}, {"reason", why}});
    }
    for (const auto& [key, target] : it->second.confirmed) {
      if (!confirmed_logged_.emplace(key, target).second) continue;
      log_incident(spdlog::level::info,
                   fmt::format("duress {} confirmed by {}", id_of(key), target),
                   {{"incident", "duress_confirmed"}, {"event_id", id_of(key)}, {"peer", target}});
    }
  }
  pending_.erase(it);
}

void StoreTap::persist(mesh::StoreBatch batch) {
  log_.persisting(batch);
  store_.persist(std::move(batch));
}

void StoreTap::load(mesh::LoadRequest request) {
  store_.load(std::move(request));
}

}  // namespace relay::net

#include <algorithm>
#include <sstream>

#include "relay/net/incident_log.h"
#include "relay/status/drills.h"
#include "relay/status/render.h"
#include "relay/status/verdict.h"

namespace relay::status {
namespace {

/// Prometheus text (format 0.0.4), one family at a time.
class Metrics {
 public:
  /// Starts a family: its HELP and TYPE lines.
  Metrics& family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    return *this;
  }
  /// A sample of the current family, with an optional label.
  template <typename T>
  Metrics& sample(T value, std::string_view label = {}, std::string_view label_value = {}) {
    out_ << name_;
    if (!label.empty()) out_ << '{' << label << "=\"" << escape(label_value) << "\"}";
    out_ << ' ' << value << '\n';
    return *this;
  }
  std::string text() const { return out_.str(); }

 private:
  static std::string escape(std::string_view v) {
    std::string out;
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      out += c == '\n' ? ' ' : c;
    }
    return out;
  }
  std::ostringstream out_;
  std::string name_;
};

}  // namespace

std::string metrics_text(const Snapshot& s) {
  Metrics m;
  const Verdict v = judge(s);
  m.family("relay_build_info", "gauge", "Always 1; the version is a label.")
      .sample(1, "version", s.process.version);
  m.family("relay_verdict", "gauge", "The status page's verdict: 0 OK, 1 DEGRADED, 2 ALARM.")
      .sample(static_cast<int>(v.level));
  m.family("relay_healthy", "gauge", "1 while this node can do its own job (/healthz 200).")
      .sample(health_problems(s).empty() ? 1 : 0);
  m.family("relay_uptime_seconds", "gauge", "Seconds since relayd started.")
      .sample((s.now_unix_ms - s.process.started_unix_ms) / 1000);
  m.family("relay_database_up", "gauge", "1 while the periodic database check succeeds.")
      .sample(s.database.state == DatabaseState::State::up ? 1 : 0);
  m.family("relay_database_last_ok_timestamp_seconds", "gauge",
           "Unix time of the last successful database check; 0 if never.")
      .sample(s.database.last_ok_unix_ms / 1000);
  m.family("relay_output_captured", "gauge",
           "1 while stdout and stderr are captured for the status page.")
      .sample(s.logs.captured ? 1 : 0);
  m.family("relay_state_dir_full", "gauge",
           "1 while the state directory's file system is full (or cannot be checked).")
      .sample(state_dir_problem(s).empty() ? 0 : 1, "path", s.process.state_dir);
  m.family("relay_state_dir_free_bytes", "gauge",
           "Free space in the state directory's file system.")
      .sample(static_cast<std::int64_t>(s.state_disk.free_bytes), "path", s.process.state_dir);
  m.family("relay_own_job_up", "gauge",
           "Each part of this node's own job: 1 ok or not yet exercised, 0 failing.");
  for (const auto& part : s.health)
    m.sample(part.state == net::ComponentHealth::State::failing ? 0 : 1, "part", part.name);

  if (s.database.view) {
    const auto& view = *s.database.view;
    m.family("relay_outbox_backlog", "gauge", "Outbox rows not claimed yet.")
        .sample(view.outbox.backlog);
    m.family("relay_outbox_oldest_seconds", "gauge", "Age of the oldest unclaimed outbox row.")
        .sample(view.outbox.oldest_age_ms.value_or(0) / 1000);
    m.family("relay_outbox_rejected_rows", "gauge", "Rows in outbox_rejected.")
        .sample(view.outbox.rejected_total);
    m.family("relay_message_queue_rows", "gauge", "message_queue rows no consumer has taken.")
        .sample(view.queue.rows);
    m.family("relay_message_queue_oldest_seconds", "gauge",
             "Age of the oldest message_queue row; 0 if none.")
        .sample(view.queue.oldest ? view.queue.oldest->age_ms / 1000 : 0);
    m.family("relay_receipts_pending", "gauge",
             "Receipts own events still wait for, per target (last 1,000 events).");
    for (const auto& [target, n] : view.receipts_pending) m.sample(n, "peer", target);
  }

  // Spooled ones count too: open at their origin even with its database down.
  m.family("relay_duress_open", "gauge",
           "Duress alarms of the last 24 h without an all-clear or cancel, spooled ones included.")
      .sample(s.spooled_duress.size() +
              (s.database.view ? s.database.view->open_duress.size() : 0));
  // Whether a person answers: the open alarms nobody acknowledged, the
  // oldest of them (by when this node stored it, on its own clock: an
  // origin's clock an hour ahead must not mute it), and how long the last
  // answered one waited for its first answer (on the two sites' clocks).
  std::size_t unanswered = 0;
  std::int64_t oldest_ms = 0, last_ack_ms = -1, last_raised = 0;
  auto count = [&](const store::ConsoleView::Event& e) {
    if (e.acks.empty()) {
      ++unanswered;
      // A spooled one has no stored time yet: this node raised it.
      const std::int64_t since = e.stored_unix_ms > 0 ? e.stored_unix_ms : e.created_unix_ms;
      oldest_ms = std::max(oldest_ms, s.now_unix_ms - since);
    } else if (e.created_unix_ms > last_raised) {
      last_raised = e.created_unix_ms;
      last_ack_ms = std::max<std::int64_t>(0, e.acks.front().created_unix_ms - e.created_unix_ms);
    }
  };
  for (const auto& e : s.spooled_duress) count(e);
  if (s.database.view)
    for (const auto& e : s.database.view->open_duress) count(e);
  m.family("relay_duress_unacknowledged", "gauge",
           "Open duress alarms no person has acknowledged yet, spooled ones included.")
      .sample(unanswered);
  m.family("relay_duress_unacknowledged_oldest_seconds", "gauge",
           "How long the oldest open duress nobody acknowledged has been waiting; 0 if none.")
      .sample(std::max<std::int64_t>(0, oldest_ms) / 1000);
  if (last_ack_ms >= 0) {
    m.family("relay_duress_time_to_ack_seconds", "gauge",
             "Seconds from raise to first acknowledgement of the latest open duress answered.")
        .sample(static_cast<double>(last_ack_ms) / 1000);
  }
  if (s.database.view) {
    m.family("relay_database_durable", "gauge",
             "1 if PostgreSQL runs with fsync and full_page_writes on; 0 if either is off.")
        .sample(s.database.view->fsync && s.database.view->full_page_writes ? 1 : 0);
  }
  m.family("relay_runner_duress_alarms", "gauge",
           "Duress rows relay-runner groups keep failing to handle.")
      .sample(s.database.runner_alarms.size());
  if (!s.daemon) return m.text();
  const auto& d = *s.daemon;
  m.family("relay_datagrams_sent_total", "counter", "Datagrams sent to peers.")
      .sample(d.stats.datagrams_sent);
  m.family("relay_datagrams_accepted_total", "counter", "Datagrams that passed every check.")
      .sample(d.accepted);
  m.family("relay_retransmissions_total", "counter", "Events sent again for want of an ack.")
      .sample(d.stats.retransmissions);
  m.family("relay_events_stored_total", "counter", "Events of other nodes stored here.")
      .sample(d.stats.events_stored);
  m.family("relay_receipts_recorded_total", "counter", "Receipts recorded for own events.")
      .sample(d.stats.receipts_recorded);
  m.family("relay_events_withheld_total", "counter",
           "Events logged here but not delivered: expired, older than max_age, cleared, cancelled "
           "or refused.")
      .sample(d.stats.withheld);
  m.family("relay_events_refused_total", "counter",
           "Events refused here under the mesh policy (each raised a relay.policy row).")
      .sample(d.stats.refused);
  m.family("relay_conflicts_total", "counter",
           "Events whose content differs from what is held under the same id (a seq reused).")
      .sample(d.stats.conflicts);
  m.family("relay_seqs_healed_total", "counter",
           "Own seqs found numbered twice; the event was sent again under a fresh seq.")
      .sample(d.stats.healed);
  m.family("relay_seqs_settled_total", "counter",
           "Seqs settled here: pruned elsewhere before they arrived, or skipped by their origin.")
      .sample(d.stats.settled);
  m.family("relay_spool_depth", "gauge",
           "Duress alarms accepted through the control socket, not yet in the database.")
      .sample(d.spool_depth);
  m.family("relay_spool_oldest_age_seconds", "gauge", "Age of the oldest spooled alarm.")
      .sample(d.spool_oldest_ms / 1000);
  m.family("relay_numbering_ready", "gauge",
           "1 once this node knows what the mesh holds of its own events (normal alerts go out).")
      .sample(d.numbering.ready ? 1 : 0);
  m.family("relay_datagrams_rejected_total", "counter", "Datagrams dropped, by reason.");
  for (const auto& [reason, n] : d.rejected) m.sample(n, "reason", reason);
  m.family("relay_peer_up", "gauge",
           "1 if the peer answers probes (alive or degraded); 0 if suspect, down or never heard.");
  for (const auto& p : d.peers) {
    const auto state = net::peer_state(p);
    m.sample(state == "alive" || state == "degraded" ? 1 : 0, "peer", p.id);
  }
  m.family("relay_peer_degraded", "gauge",
           "1 if the peer answers probes but does not store (its report, or no ack for long).");
  for (const auto& p : d.peers) m.sample(net::peer_state(p) == "degraded" ? 1 : 0, "peer", p.id);
  m.family("relay_peer_store_up", "gauge",
           "The peer's own report of its database (1 up, 0 down); absent before its first report.");
  for (const auto& p : d.peers) {
    if (p.health) m.sample(p.health->store_up() ? 1 : 0, "peer", p.id);
  }
  m.family("relay_peer_paths_up", "gauge",
           "Paths (configured addresses) of the peer answering probes.");
  for (const auto& p : d.peers) {
    m.sample(std::count(p.paths_up.begin(), p.paths_up.end(), true), "peer", p.id);
  }
  m.family("relay_peer_paths", "gauge", "Paths (configured addresses) of the peer.");
  for (const auto& p : d.peers) m.sample(p.paths_up.size(), "peer", p.id);
  m.family("relay_peer_pacing_bytes_per_second", "gauge",
           "The rate this node paces what it sends the peer at (0: unpaced).");
  for (const auto& p : d.peers) {
    m.sample(static_cast<std::int64_t>(p.pacing_rate.bytes_per_second()), "peer", p.id);
  }
  m.family("relay_peer_queue_delay_seconds", "gauge",
           "Queueing delay last measured at the bottleneck towards the peer.");
  for (const auto& p : d.peers) {
    m.sample(std::chrono::duration<double>(queue_delay(p)).count(), "peer", p.id);
  }
  m.family("relay_peer_heard", "gauge", "1 once the peer has been heard since start.");
  for (const auto& p : d.peers) m.sample(p.heard ? 1 : 0, "peer", p.id);
  m.family("relay_peer_silent_seconds", "gauge",
           "Seconds since the peer was last heard (since start if never).");
  for (const auto& p : d.peers) m.sample(silent_ms(d, p) / 1000, "peer", p.id);
  m.family("relay_peer_alarm", "gauge", "1 while a supervision alarm is raised for the peer.");
  for (const auto& p : d.peers) m.sample(p.alarmed ? 1 : 0, "peer", p.id);
  m.family("relay_peer_store_alarm", "gauge",
           "1 while the peer says its database has been down for supervision_timeout or longer.");
  for (const auto& p : d.peers) m.sample(p.store_alarmed ? 1 : 0, "peer", p.id);
  m.family("relay_peer_queued", "gauge", "Events waiting to be sent to the peer, or in flight.");
  for (const auto& p : d.peers) m.sample(p.queued + p.in_flight, "peer", p.id);
  m.family("relay_peer_key_id", "gauge", "The mesh ring key id the peer seals with (0: not seen).");
  for (const auto& [peer, w] : d.wire) m.sample(w.key_id, "peer", peer);
  m.family("relay_peer_config_drift", "gauge",
           "1 while the peer's configuration and this node's disagree about the two of them.");
  for (const auto& [peer, w] : d.wire) m.sample(w.drift.empty() ? 0 : 1, "peer", peer);
  m.family("relay_peer_missing_key_id", "gauge",
           "A ring key id the peer sealed with that this node does not hold (0: none).");
  for (const auto& [peer, w] : d.wire) m.sample(w.missing_key, "peer", peer);
  return m.text() + drills_metrics(s);
}

}  // namespace relay::status

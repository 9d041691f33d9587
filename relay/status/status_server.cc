#include "relay/status/status_server.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <pqxx/pqxx>

#include <sstream>

#include "common/html.h"
#include "relay/runner/queue.h"
#include "relay/store/rows.h"

namespace relay::status {
namespace {

namespace pb = google::protobuf;

pb::Value text(const std::string& s) {
  pb::Value v;
  v.set_string_value(s);
  return v;
}

pb::Value number(double d) {
  pb::Value v;
  v.set_number_value(d);
  return v;
}

pb::Value boolean(bool b) {
  pb::Value v;
  v.set_bool_value(b);
  return v;
}

std::string to_json(const pb::Struct& s) {
  std::string out;
  pb::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)pb::util::MessageToJsonString(s, &out, options);
  return out;
}

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// Recent events from the log, newest first, read with a connection of its own.
std::string events_json(const std::string& dsn, int limit) {
  pqxx::connection conn(dsn);
  pqxx::read_transaction tx(conn);
  pb::Struct out;
  auto* list = (*out.mutable_fields())["events"].mutable_list_value();
  for (const auto& row : tx.exec_params(
           "SELECT signed, (extract(epoch from stored_at) * 1000)::bigint FROM relay_event_log "
           "ORDER BY stored_at DESC, origin, seq DESC LIMIT $1",
           limit)) {
    const pqxx::binarystring bytes(row[0]);
    relaymesh::v1::SignedEvent signed_event;
    relaymesh::v1::Event e;
    if (!signed_event.ParseFromString(bytes.str()) || !e.ParseFromString(signed_event.event()))
      continue;
    pb::Value item;
    auto& f = *item.mutable_struct_value()->mutable_fields();
    f["id"] = text(e.origin() + ":" + std::to_string(e.seq()));
    f["kind"] = text(store::kind_name(e.kind()));
    f["priority"] = text(store::priority_name(e.priority()));
    f["title"] = text(e.title());
    f["location"] = text(e.location());
    f["exercise"] = boolean(e.exercise());
    f["stored"] = number(static_cast<double>(row[1].as<std::int64_t>()));
    *list->add_values() = item;
  }
  return to_json(out);
}

/// Failing duress rows of relay-runner groups (relay/runner), one line each.
std::vector<std::string> read_runner_alarms(const std::string& dsn) {
  std::vector<std::string> out;
  try {
    pqxx::connection conn(dsn);
    for (const auto& a : runner::alarms(conn)) {
      out.push_back("group " + a.group + ", row " + std::to_string(a.queue_id) +
                    (a.event_id.empty() ? "" : " (" + a.event_id + ")") + ", " +
                    std::to_string(a.attempts) + " attempts: " + a.last_error);
    }
  } catch (const std::exception& e) {
    spdlog::warn("status page: cannot read runner alarms: {}", e.what());
  }
  return out;
}

}  // namespace

std::string status_json(const net::DaemonStatus& s) {
  pb::Struct out;
  auto& f = *out.mutable_fields();
  f["node"] = text(s.node);
  f["uptime_seconds"] = number(s.uptime_seconds);
  auto& db = *f["database"].mutable_struct_value()->mutable_fields();
  db["up"] = boolean(s.database_up);
  db["error"] = text(s.database_error);
  auto* peers = f["peers"].mutable_list_value();
  for (const auto& p : s.peers) {
    pb::Value v;
    auto& pf = *v.mutable_struct_value()->mutable_fields();
    pf["id"] = text(p.id);
    pf["state"] = text(p.down      ? "down"
                       : p.suspect ? "suspect"
                       : p.heard   ? "alive"
                                   : "not heard yet");
    pf["alarm"] = boolean(p.alarmed);
    pf["rtt_ms"] = number(ms(p.srtt));
    pf["in_flight"] = number(static_cast<double>(p.in_flight));
    pf["queued"] = number(static_cast<double>(p.queued));
    *peers->add_values() = v;
  }
  auto& st = *f["counters"].mutable_struct_value()->mutable_fields();
  st["datagrams_sent"] = number(static_cast<double>(s.stats.datagrams_sent));
  st["datagrams_accepted"] = number(static_cast<double>(s.accepted));
  st["events_sent"] = number(static_cast<double>(s.stats.events_sent));
  st["retransmissions"] = number(static_cast<double>(s.stats.retransmissions));
  st["events_stored"] = number(static_cast<double>(s.stats.events_stored));
  st["receipts_recorded"] = number(static_cast<double>(s.stats.receipts_recorded));
  st["kicks"] = number(static_cast<double>(s.kicks));
  auto* runner_alarms = f["runner_alarms"].mutable_list_value();
  for (const auto& a : s.runner_alarms) *runner_alarms->add_values() = text(a);
  auto& rejected = *f["rejected"].mutable_struct_value()->mutable_fields();
  for (const auto& [reason, n] : s.rejected) rejected[reason] = number(static_cast<double>(n));
  return to_json(out);
}

std::string metrics_text(const net::DaemonStatus& s) {
  std::ostringstream m;
  auto counter = [&](const char* name, const char* help, std::uint64_t value) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
      << name << ' ' << value << '\n';
  };
  m << "# HELP relay_database_up 1 while PostgreSQL answers.\n# TYPE relay_database_up gauge\n"
    << "relay_database_up " << (s.database_up ? 1 : 0) << '\n';
  counter("relay_datagrams_sent_total", "Datagrams sent to peers.", s.stats.datagrams_sent);
  counter("relay_datagrams_accepted_total", "Datagrams that passed every check.", s.accepted);
  counter("relay_retransmissions_total", "Events sent again for want of an ack.",
          s.stats.retransmissions);
  counter("relay_events_stored_total", "Events of other nodes stored here.", s.stats.events_stored);
  m << "# HELP relay_runner_duress_alarms Duress rows relay-runner groups keep failing to "
       "handle.\n# TYPE relay_runner_duress_alarms gauge\nrelay_runner_duress_alarms "
    << s.runner_alarms.size() << '\n';
  counter("relay_receipts_recorded_total", "Receipts recorded for own events.",
          s.stats.receipts_recorded);
  m << "# HELP relay_datagrams_rejected_total Datagrams dropped, by reason.\n"
       "# TYPE relay_datagrams_rejected_total counter\n";
  for (const auto& [reason, n] : s.rejected) {
    m << "relay_datagrams_rejected_total{reason=\"" << reason << "\"} " << n << '\n';
  }
  m << "# HELP relay_peer_up 1 if the peer is alive, 0 if suspect or down.\n# TYPE relay_peer_up "
       "gauge\n";
  for (const auto& p : s.peers)
    m << "relay_peer_up{peer=\"" << p.id << "\"} " << (p.suspect || p.down ? 0 : 1) << '\n';
  m << "# HELP relay_peer_alarm 1 while a supervision alarm is raised for the peer.\n# TYPE "
       "relay_peer_alarm gauge\n";
  for (const auto& p : s.peers)
    m << "relay_peer_alarm{peer=\"" << p.id << "\"} " << (p.alarmed ? 1 : 0) << '\n';
  m << "# HELP relay_peer_queued Events waiting to be sent to the peer.\n# TYPE relay_peer_queued "
       "gauge\n";
  for (const auto& p : s.peers)
    m << "relay_peer_queued{peer=\"" << p.id << "\"} " << p.queued + p.in_flight << '\n';
  return m.str();
}

std::string status_html(const net::DaemonStatus& s) {
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>"
       "<title>relayd "
    << escape_html(s.node)
    << "</title><style>"
       "body{font-family:sans-serif;margin:2em}td,th{padding:.3em 1em;text-align:left}"
       ".bad{background:#c00;color:#fff}.warn{background:#fc0}</style></head><body>"
    << "<h1>relayd " << escape_html(s.node) << "</h1>";
  if (!s.database_up) {
    h << "<p class=bad>PostgreSQL is not answering: " << escape_html(s.database_error)
      << ". Nothing is acknowledged until it does.</p>";
  }
  for (const auto& a : s.runner_alarms) {
    h << "<p class=bad>DURESS NOT HANDLED by a local consumer: " << escape_html(a) << "</p>";
  }
  h << "<table><tr><th>peer</th><th>state</th><th>rtt</th><th>in flight</th><th>queued</th></tr>";
  for (const auto& p : s.peers) {
    const char* cls = p.alarmed ? " class=bad" : (p.suspect || p.down) ? " class=warn" : "";
    h << "<tr" << cls << "><td>" << escape_html(p.id) << "</td><td>"
      << (p.alarmed   ? "SUPERVISION ALARM: unreachable"
          : p.down    ? "down"
          : p.suspect ? "suspect"
                      : "alive")
      << "</td><td>" << static_cast<int>(ms(p.srtt)) << " ms</td><td>" << p.in_flight << "</td><td>"
      << p.queued << "</td></tr>";
  }
  h << "</table><p>datagrams sent " << s.stats.datagrams_sent << ", accepted " << s.accepted
    << ", events stored " << s.stats.events_stored << ", retransmissions "
    << s.stats.retransmissions << "</p><p>rejected:";
  for (const auto& [reason, n] : s.rejected) {
    if (n > 0) h << ' ' << reason << ' ' << n;
  }
  h << "</p><p><a href=/api/status>/api/status</a> <a href=/api/events>/api/events</a> "
       "<a href=/metrics>/metrics</a> <a href=/healthz>/healthz</a></p></body></html>";
  return h.str();
}

StatusServer::StatusServer(Endpoint listen, std::string dsn,
                           std::function<net::DaemonStatus()> fetch)
    : listen_(std::move(listen)),
      dsn_(std::move(dsn)),
      fetch_(std::move(fetch)),
      server_(std::make_unique<httplib::Server>()) {}

StatusServer::~StatusServer() {
  stop();
}

void StatusServer::start() {
  // The daemon's view, plus what local consumers report through the database.
  auto full_status = [this] {
    auto s = fetch_();
    if (s.database_up) s.runner_alarms = read_runner_alarms(dsn_);
    return s;
  };
  server_->Get("/", [full_status](const httplib::Request&, httplib::Response& res) {
    res.set_content(status_html(full_status()), "text/html; charset=utf-8");
  });
  server_->Get("/api/status", [full_status](const httplib::Request&, httplib::Response& res) {
    res.set_content(status_json(full_status()), "application/json");
  });
  server_->Get("/metrics", [full_status](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(full_status()), "text/plain; version=0.0.4");
  });
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const auto s = fetch_();
    res.status = s.database_up ? 200 : 503;
    res.set_content(s.database_up ? "ok\n" : "database: " + s.database_error + "\n", "text/plain");
  });
  server_->Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) {
    int limit = 50;
    if (req.has_param("limit"))
      limit = std::clamp(std::atoi(req.get_param_value("limit").c_str()), 1, 1000);
    try {
      res.set_content(events_json(dsn_, limit), "application/json");
    } catch (const std::exception& e) {
      res.status = 503;
      res.set_content(std::string("database: ") + e.what() + "\n", "text/plain");
    }
  });
  if (!server_->bind_to_port(listen_.host.c_str(), listen_.port)) {
    throw std::runtime_error("status page: cannot listen on " + listen_.to_string());
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void StatusServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relay::status

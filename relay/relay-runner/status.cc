#include "relay/relay-runner/status.h"

#include <httplib.h>
#include <sys/socket.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "common/html.h"

namespace relay::runner {
namespace {

using Json = nlohmann::ordered_json;

std::string label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

double mean_latency(const LoopStats& l) {
  return l.started == 0 ? 0.0 : l.start_latency_seconds / static_cast<double>(l.started);
}

}  // namespace

bool runner_healthy(const RunnerStatus& s) {
  return s.loop.database_up && s.backlog && s.backlog->alarms.empty();
}

std::string runner_status_json(const RunnerStatus& s) {
  Json j;
  j["group"] = s.group;
  j["name"] = s.name;
  j["types"] = s.types;
  j["handler"] = s.handler;
  j["healthy"] = runner_healthy(s);
  j["uptime_seconds"] = static_cast<std::int64_t>(s.uptime_seconds);
  j["handled"] = s.loop.handled;
  j["failed"] = s.loop.failed;
  j["dead_lettered"] = s.loop.dead_lettered;
  j["expired"] = s.loop.expired;
  j["cleared"] = s.loop.cleared;
  j["acknowledged"] = s.loop.acknowledged;
  j["last_error"] = s.loop.last_error;
  j["database"] = {{"up", s.loop.database_up}, {"error", s.loop.database_error}};
  if (s.backlog) {
    j["pending"] = s.backlog->pending;
    j["lag_ms"] = static_cast<std::int64_t>(s.backlog->lag.count());
    j["dead_letters"] = s.backlog->dead_letters;
    Json alarms = Json::array();
    for (const auto& a : s.backlog->alarms) {
      alarms.push_back({{"queue_id", a.queue_id},
                        {"event_id", a.event_id},
                        {"attempts", a.attempts},
                        {"last_error", a.last_error}});
    }
    j["alarms"] = alarms;
  } else {
    j["pending"] = nullptr;
    j["lag_ms"] = nullptr;
    j["dead_letters"] = nullptr;
    j["alarms"] = nullptr;
  }
  j["wakeups"] = {{"kicks", s.kicks}, {"notifies", s.notifies}, {"listening", s.listening}};
  j["mean_start_latency_ms"] = static_cast<std::int64_t>(mean_latency(s.loop) * 1000);
  return j.dump(2) + "\n";
}

std::string runner_metrics_text(const RunnerStatus& s) {
  std::ostringstream m;
  const std::string g = "{group=\"" + label(s.group) + "\"}";
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << g << ' ' << value << '\n';
  };
  metric("relay_runner_handled_total", "counter", "Rows handled.", s.loop.handled);
  metric("relay_runner_failed_total", "counter", "Failed attempts (retried or dead-lettered).",
         s.loop.failed);
  metric("relay_runner_dead_lettered_total", "counter", "Rows moved to runner_dead_letters.",
         s.loop.dead_lettered);
  metric("relay_runner_expired_total", "counter",
         "Rows completed without running the handler: past their expiry.", s.loop.expired);
  metric("relay_runner_cleared_total", "counter",
         "Rows completed without running the handler: cleared or cancelled by their origin.", s.loop.cleared);
  metric("relay_runner_acknowledged_total", "counter",
         "Exercises handled and acknowledged by this runner ([runner] acknowledge).",
         s.loop.acknowledged);
  metric("relay_runner_database_up", "gauge", "1 while PostgreSQL answers.",
         s.loop.database_up ? 1 : 0);
  metric("relay_runner_kicks_total", "counter", "Kick datagrams received.", s.kicks);
  metric("relay_runner_notifies_total", "counter", "NOTIFYs received.", s.notifies);
  // One summary family (no quantiles): a scraper takes _sum and _count as
  // its parts, and rate(_sum) / rate(_count) is the mean; two counters
  // named so are refused (promtool check metrics).
  m << "# HELP relay_runner_start_latency_seconds From relayd's insert to the handler's start.\n"
    << "# TYPE relay_runner_start_latency_seconds summary\n"
    << "relay_runner_start_latency_seconds_sum" << g << ' ' << s.loop.start_latency_seconds << '\n'
    << "relay_runner_start_latency_seconds_count" << g << ' ' << s.loop.started << '\n';
  if (s.backlog) {
    metric("relay_runner_pending", "gauge", "Rows of the group's types not yet done.",
           s.backlog->pending);
    metric("relay_runner_lag_seconds", "gauge", "Age of the oldest pending row.",
           std::chrono::duration<double>(s.backlog->lag).count());
    metric("relay_runner_dead_letters", "gauge", "Rows in runner_dead_letters for the group.",
           s.backlog->dead_letters);
    metric("relay_runner_duress_alarms", "gauge", "Duress rows that keep failing.",
           s.backlog->alarms.size());
  }
  return m.str();
}

std::string runner_status_html(const RunnerStatus& s) {
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>"
       "<title>relay-runner "
    << escape_html(s.group)
    << "</title><style>body{font-family:sans-serif;margin:2em}.bad{background:#c00;color:#fff;"
       "padding:.3em}</style></head><body><h1>relay-runner "
    << escape_html(s.group) << " (" << escape_html(s.name) << ")</h1>";
  if (!s.loop.database_up) {
    h << "<p class=bad>PostgreSQL is not answering: " << escape_html(s.loop.database_error)
      << ". Rows wait in message_queue.</p>";
  }
  if (s.backlog) {
    for (const auto& a : s.backlog->alarms) {
      h << "<p class=bad>DURESS NOT HANDLED: row " << a.queue_id << " (" << escape_html(a.event_id)
        << ") failed " << a.attempts << " times: " << escape_html(a.last_error)
        << ". Still retrying.</p>";
    }
  }
  h << "<p>types: ";
  for (const auto& t : s.types) h << escape_html(t) << ' ';
  h << "<br>handler: " << escape_html(s.handler) << "</p><p>handled " << s.loop.handled
    << ", failed " << s.loop.failed << ", dead-lettered " << s.loop.dead_lettered
    << ", expired unhandled " << s.loop.expired << ", cleared unhandled " << s.loop.cleared
    << ", exercises acknowledged " << s.loop.acknowledged;
  if (s.backlog) {
    h << "<br>pending " << s.backlog->pending << ", lag " << s.backlog->lag.count()
      << " ms, dead letters " << s.backlog->dead_letters;
  }
  h << "<br>last error: " << escape_html(s.loop.last_error) << "</p><p>kicks " << s.kicks
    << ", notifies " << s.notifies << (s.listening ? " (listening)" : " (not listening)")
    << "</p><p><a href=/api/status>/api/status</a> <a href=/metrics>/metrics</a> "
       "<a href=/healthz>/healthz</a></p></body></html>";
  return h.str();
}

RunnerStatusServer::RunnerStatusServer(Endpoint listen, std::function<RunnerStatus()> fetch)
    : listen_(std::move(listen)),
      fetch_(std::move(fetch)),
      server_(std::make_unique<httplib::Server>()) {}

RunnerStatusServer::~RunnerStatusServer() {
  stop();
}

void RunnerStatusServer::start() {
  // Requests are GETs: no body worth more than this.
  server_->set_payload_max_length(4096);
  // cpp-httplib 0.11 sets SO_REUSEPORT by default, which would let a second
  // runner bind the same port silently; only SO_REUSEADDR (restarts) here.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(runner_status_html(fetch_()), "text/html; charset=utf-8");
  });
  server_->Get("/api/status", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(runner_status_json(fetch_()), "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(runner_metrics_text(fetch_()), "text/plain; version=0.0.4");
  });
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const auto s = fetch_();
    const bool ok = runner_healthy(s);
    res.status = ok ? 200 : 503;
    res.set_content(ok                    ? "ok\n"
                    : !s.loop.database_up ? "database: " + s.loop.database_error + "\n"
                    : !s.backlog          ? "database: no answer\n"
                                          : "duress rows keep failing\n",
                    "text/plain");
  });
  if (!server_->bind_to_port(listen_.host.c_str(), listen_.port)) {
    throw std::runtime_error("status page: cannot listen on " + listen_.to_string());
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // A stop() before the accept loop runs would be lost and join() would hang.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void RunnerStatusServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relay::runner

#include "relay/relay-runner/status_server.h"

namespace relay::runner {

net::HttpResponse runner_route(const net::HttpRequest& request, const StatusSource& fetch) {
  net::HttpResponse r;
  const std::string& path = request.path;
  if (path == "/") {
    r.content_type = "text/html; charset=utf-8";
    r.body = runner_status_html(fetch(true));
    // No script, nothing from elsewhere: what a handler printed cannot run here.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; style-src 'unsafe-inline'");
  } else if (path == "/api/status") {
    r.content_type = "application/json";
    r.body = runner_status_json(fetch(true));
  } else if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = runner_metrics_text(fetch(false));
  } else if (path == "/healthz") {
    const auto s = fetch(false);
    const bool ok = runner_healthy(s);
    r.status = ok ? 200 : 503;
    r.body = ok                    ? "ok\n"
             : !s.loop.database_up ? "database: " + s.loop.database_error + "\n"
             : !s.backlog          ? "database: no answer\n"
                                   : "duress rows keep failing\n";
  } else {
    r.status = 404;
    r.body = "not found; see / for the status page\n";
  }
  return r;
}

RunnerStatusServer::RunnerStatusServer(Endpoint listen, StatusSource fetch, net::HttpLimits limits)
    : fetch_(std::move(fetch)),
      server_(std::make_unique<net::HttpServer>(
          std::move(listen), limits,
          [this](const net::HttpRequest& request) { return runner_route(request, fetch_); })) {}

RunnerStatusServer::~RunnerStatusServer() {
  stop();
}

void RunnerStatusServer::start() {
  server_->start();
}

void RunnerStatusServer::stop() {
  server_->stop();
}

std::uint16_t RunnerStatusServer::port() const {
  return server_->port();
}

}  // namespace relay::runner

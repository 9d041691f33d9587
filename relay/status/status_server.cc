#include "relay/status/status_server.h"

#include <openssl/crypto.h>

#include "relay/status/render.h"
#include "relay/status/verdict.h"

namespace relay::status {
namespace {

/// Constant-time comparison: the token must not leak through timing.
bool same_token(const std::string& given, const std::string& token) {
  return given.size() == token.size() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

bool authorized(const net::HttpRequest& request, const std::string& token) {
  if (token.empty()) return true;
  if (auto it = request.headers.find("authorization"); it != request.headers.end()) {
    constexpr std::string_view kBearer = "Bearer ";
    if (it->second.starts_with(kBearer) && same_token(it->second.substr(kBearer.size()), token))
      return true;
  }
  if (auto it = request.query.find("token"); it != request.query.end())
    return same_token(it->second, token);
  return false;
}

net::HttpResponse json(std::string body) {
  net::HttpResponse r;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

}  // namespace

net::HttpResponse route(const net::HttpRequest& request, const Console& console,
                        const std::string& token) {
  net::HttpResponse r;
  if (!authorized(request, token)) {
    r.status = 401;
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    r.body = "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n";
    return r;
  }
  const std::string& path = request.path;
  if (path == "/healthz") {
    const auto s = console.snapshot(false);
    const auto problems = health_problems(s);
    const auto disk = state_dir_problem(s);
    r.status = problems.empty() ? 200 : 503;
    if (problems.empty()) r.body = disk.empty() ? "ok\n" : "ok, DEGRADED\n";
    for (const auto& p : problems) r.body += p + "\n";
    // Not a 503: a full state directory does not stop this node's job.
    if (!disk.empty()) r.body += "DEGRADED: " + disk + "\n";
    return r;
  }
  if (path == "/") {
    const auto s = console.snapshot(true);
    r.content_type = "text/html; charset=utf-8";
    r.body = status_html(s);
    // The page itself never fails to load: its verdict says what is wrong.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; connect-src 'self'");
    return r;
  }
  if (path == "/api/status") return json(status_json(console.snapshot(false)));
  if (path == "/api/events") return json(events_json(console.snapshot(false)));
  if (path == "/api/alarms") return json(alarms_json(console.snapshot(false)));
  if (path == "/api/logs") return json(logs_json(console.snapshot(true)));
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_text(console.snapshot(false));
    return r;
  }
  r.status = 404;
  r.body = "not found; see / for the status page\n";
  return r;
}

StatusServer::StatusServer(Config::Status config, const Console& console, net::HttpLimits limits)
    : config_(std::move(config)),
      console_(console),
      server_(std::make_unique<net::HttpServer>(
          config_.listen, limits,
          [this](const net::HttpRequest& request) { return respond(request); })) {}

StatusServer::~StatusServer() {
  stop();
}

void StatusServer::start() {
  server_->start();
}

void StatusServer::stop() {
  server_->stop();
}

std::uint16_t StatusServer::port() const {
  return server_->port();
}

net::HttpResponse StatusServer::respond(const net::HttpRequest& request) const {
  return route(request, console_, config_.token);
}

}  // namespace relay::status

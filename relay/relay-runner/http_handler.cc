#include "relay/relay-runner/http_handler.h"

#include <httplib.h>

#include <cctype>

#include "relay/relay-runner/command_handler.h"

namespace relay::runner {

std::string header_name(const std::string& variable) {
  std::string out = "X-";
  bool word_start = true;
  for (char c : variable) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '_') {
      out += '-';
      word_start = true;
    } else {
      out += static_cast<char>(word_start ? std::toupper(u) : std::tolower(u));
      word_start = false;
    }
  }
  return out;
}

HttpHandler::HttpHandler(HttpUrl url)
    : url_(std::move(url)), client_(std::make_unique<httplib::Client>(url_.host, url_.port)) {
  client_->set_keep_alive(true);
  // The request goes out as headers then body: without TCP_NODELAY, Nagle
  // holds the body for the gateway's delayed ACK (40 ms a row).
  client_->set_tcp_nodelay(true);
}

HttpHandler::~HttpHandler() = default;

Outcome HttpHandler::handle(const Row& row, std::chrono::milliseconds timeout) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
  client_->set_connection_timeout(seconds.count(), micros.count());
  client_->set_read_timeout(seconds.count(), micros.count());
  client_->set_write_timeout(seconds.count(), micros.count());
  httplib::Headers headers;
  for (const auto& [k, v] : handler_environment(row)) headers.emplace(header_name(k), v);
  auto res = client_->Post(url_.path.c_str(), headers, row.data, "application/json");
  if (!res) {
    return {false, "POST " + url_.host + ":" + std::to_string(url_.port) + url_.path + ": " +
                       httplib::to_string(res.error())};
  }
  std::string body = res->body.substr(0, 200);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  const std::string answer = "HTTP " + std::to_string(res->status) + (body.empty() ? "" : ": " + body);
  Outcome outcome{res->status >= 200 && res->status < 300};
  if (!outcome.ok) outcome.error = "POST " + url_.path + ": " + answer;
  // The gateway's answer, for the runner's page (docs/runner.md).
  outcome.output = answer + (res->body.size() > 200 ? " [...]" : "");
  return outcome;
}

}  // namespace relay::runner

// relay-runner's HTTP surface: relayd's server (relay/net/http_server.h)
// with the runner's routes, over a real socket.
#include "relay/relay-runner/status_server.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "tests/support/http_client.h"

using namespace relay;
using namespace relay::runner;
using relay::test::roundtrip;
using namespace std::chrono_literals;

namespace {

struct Served {
  std::atomic<int> with_logs{0};
  std::atomic<int> without_logs{0};
  RunnerStatusServer server{{"127.0.0.1", 0}, [this](bool logs) {
                              ++(logs ? with_logs : without_logs);
                              RunnerStatus s;
                              s.group = "popup";
                              s.name = "popup-1";
                              s.backlog = GroupBacklog{};
                              s.logs.captured = true;
                              s.logs.stderr_lines = {"a line <of> the runner"};
                              return s;
                            }};
  Served() { server.start(); }
  std::string get(const std::string& path) {
    return roundtrip(server.port(), "GET " + path + " HTTP/1.1\r\nConnection: close\r\n\r\n");
  }
};

bool has(const std::string& reply, const std::string& text) {
  return reply.find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("the runner's routes, with the headers every page of relayd's carries") {
  Served s;
  const auto page = s.get("/");
  CHECK(has(page, "HTTP/1.1 200 OK"));
  CHECK(has(page, "Content-Type: text/html; charset=utf-8"));
  CHECK(has(page, "X-Frame-Options: DENY"));
  CHECK(has(page, "X-Content-Type-Options: nosniff"));
  CHECK(has(page, "Cache-Control: no-store"));
  CHECK(has(page, "Content-Security-Policy: default-src 'none'"));
  CHECK(has(page, "a line &lt;of&gt; the runner"));
  CHECK(s.with_logs == 1);
  CHECK(has(s.get("/api/status"), "\"stderr\": [\n      \"a line <of> the runner\""));
  CHECK(has(s.get("/metrics"), "relay_runner_output_captured{group=\"popup\"} 1"));
  CHECK(has(s.get("/healthz"), "HTTP/1.1 200 OK"));
  CHECK(s.without_logs == 2);  // /metrics and /healthz read no files
  CHECK(has(s.get("/nothing"), "HTTP/1.1 404"));
  const auto head = roundtrip(s.server.port(), "HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(has(head, "HTTP/1.1 200 OK"));
  CHECK_FALSE(has(head, "<html>"));
}

TEST_CASE("the runner's page refuses what relayd's refuses") {
  Served s;
  const auto port = s.server.port();
  const auto post = roundtrip(port, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(has(post, "405 Method Not Allowed"));
  CHECK(has(post, "Allow: GET, HEAD"));
  CHECK(has(roundtrip(port, "GET / HTTP/1.1\r\nContent-Length: 1500000000\r\n\r\n"), "413"));
  CHECK(has(roundtrip(port, "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), "413"));
  CHECK(has(roundtrip(port, "GET / HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n"),
            "431"));
  CHECK(has(roundtrip(port, "garbage\r\n\r\n"), "400"));
  CHECK(s.with_logs + s.without_logs == 0);  // none of them reached the routes
}

TEST_CASE("a second runner on the same status port fails with a clear error (no SO_REUSEPORT)") {
  Served s;
  RunnerStatusServer second({"127.0.0.1", s.server.port()}, [](bool) { return RunnerStatus{}; });
  std::string error;
  try {
    second.start();
  } catch (const std::exception& e) {
    error = e.what();
  }
  CHECK(has(error, "cannot listen on 127.0.0.1:" + std::to_string(s.server.port())));
  CHECK(has(error, "in use"));
}

TEST_CASE("idle connections to the runner's page cannot lock out /healthz") {
  net::HttpLimits limits;
  limits.max_connections = 8;
  RunnerStatusServer server({"127.0.0.1", 0}, [](bool) {
    RunnerStatus s;
    s.backlog = GroupBacklog{};
    return s;
  }, limits);
  server.start();
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(relay::test::connect_to(server.port()));
  CHECK(has(roundtrip(server.port(), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 200 OK"));
  for (int fd : idle) ::close(fd);
}

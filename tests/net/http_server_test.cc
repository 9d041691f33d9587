#include "relay/net/http_server.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"

using namespace relay;
using relay::test::closed_by_server;
using relay::test::connect_to;
using relay::test::roundtrip;
using namespace std::chrono_literals;

namespace {

struct Server {
  net::HttpServer server;
  explicit Server(net::HttpLimits limits = {})
      : server({"127.0.0.1", 0}, limits, [](const net::HttpRequest& r) {
          net::HttpResponse res;
          res.body = r.path == "/hello"
                         ? "hello"
                         : "token=" + (r.query.contains("token") ? r.query.at("token") : "");
          return res;
        }) {
    server.start();
  }
};

}  // namespace

TEST_CASE("GET and HEAD are served, anything else is refused without reading a body") {
  Server s;
  const auto port = s.server.port();
  CHECK(roundtrip(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").find("200 OK") !=
        std::string::npos);
  const auto head = roundtrip(port, "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(head.find("Content-Length: 5") != std::string::npos);
  CHECK(head.find("hello") == std::string::npos);
  CHECK(roundtrip(port, "GET /?token=a%2Bb HTTP/1.1\r\n\r\n").find("token=a+b") !=
        std::string::npos);
  const auto post = roundtrip(port, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(post.find("405 Method Not Allowed") != std::string::npos);
  CHECK(post.find("Allow: GET, HEAD") != std::string::npos);
  // A 1.5 GB body announced: refused at once, nothing of it read or kept.
  const auto big = roundtrip(
      port, "GET / HTTP/1.1\r\nContent-Length: 1500000000\r\n\r\n" + std::string(100000, 'x'));
  CHECK(big.find("413") != std::string::npos);
  CHECK(roundtrip(port, "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").find("413") !=
        std::string::npos);
  CHECK(
      roundtrip(port, "GET / HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n").find("431") !=
      std::string::npos);
  CHECK(roundtrip(port, "garbage\r\n\r\n").find("400") != std::string::npos);
}

TEST_CASE("idle connections are closed after the timeout and can never lock out a request") {
  net::HttpLimits limits;
  limits.max_connections = 16;
  limits.timeout = 500ms;
  Server s(limits);
  const auto port = s.server.port();
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(connect_to(port));
  // Beyond the cap the oldest idle ones are closed to make room...
  CHECK(closed_by_server(idle.front(), 1000ms));
  // ...so a request still gets through at once.
  const auto start = std::chrono::steady_clock::now();
  CHECK(roundtrip(port, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n").find("hello") !=
        std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 400ms);
  // And a connection that never sends a request is closed after the timeout.
  CHECK(closed_by_server(idle.back(), 2000ms));
  for (int fd : idle) ::close(fd);
}

TEST_CASE("a second server on the same port fails with a clear error (no SO_REUSEPORT)") {
  Server s;
  net::HttpServer second({"127.0.0.1", s.server.port()}, {},
                         [](const net::HttpRequest&) { return net::HttpResponse{}; });
  std::string error;
  try {
    second.start();
  } catch (const std::exception& e) {
    error = e.what();
  }
  CHECK(error.find("cannot listen on 127.0.0.1:" + std::to_string(s.server.port())) !=
        std::string::npos);
  CHECK(error.find("in use") != std::string::npos);
}

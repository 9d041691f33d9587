#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "common/config.h"

namespace relay::net {

/// A request that passed every limit: GET or HEAD, a head within the size
/// and time limits, no body.
struct HttpRequest {
  std::string method;
  std::string path;                            // without the query
  std::map<std::string, std::string> query;    // percent-decoded
  std::map<std::string, std::string> headers;  // names lower-cased
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Bounds that keep the status page answering under abuse (docs/status.md).
struct HttpLimits {
  /// Open connections at most. At the cap a new one evicts the oldest
  /// connection that is waiting for a request, so idle sockets can never
  /// lock /healthz out; if every one is busy, the new one gets a 503.
  std::size_t max_connections = 64;
  /// Request line and headers; a request body is never accepted.
  std::size_t max_head_bytes = 8192;
  /// From connect (or the previous response) to a complete request head,
  /// and for writing a response.
  std::chrono::milliseconds timeout{5000};
  /// Requests per connection before it is closed.
  int max_requests = 100;
  /// Threads running handlers (which may wait for the network thread).
  std::size_t handler_threads = 2;
};

/// A small HTTP/1.1 server for the status page: GET and HEAD only, a strict
/// head parser, no request bodies (413), a connection cap, timeouts. Binds
/// without SO_REUSEPORT, so a second relayd on the same port fails to start
/// instead of sharing it. Serves on threads of its own. relayd's page and
/// relay-runner's are served by it (one server: the same limits and headers).
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer(Endpoint listen, HttpLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds (throws std::runtime_error naming the address and why) and serves.
  void start();
  /// Closes the listener and every connection; waits for the threads.
  void stop();
  /// The bound port (the OS's pick for port 0).
  std::uint16_t port() const { return port_; }

 private:
  struct Connection {
    explicit Connection(asio::ip::tcp::socket s)
        : socket(std::move(s)), timer(socket.get_executor()) {}
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    bool busy = false;
    std::list<std::shared_ptr<Connection>>::iterator self;
  };

  asio::awaitable<void> accept();
  asio::awaitable<void> serve(std::shared_ptr<Connection> c);
  asio::awaitable<HttpResponse> call_handler(HttpRequest request);
  void arm(const std::shared_ptr<Connection>& c);
  bool make_room();

  Endpoint listen_;
  HttpLimits limits_;
  Handler handler_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::thread_pool pool_;
  std::list<std::shared_ptr<Connection>> connections_;  // io_ thread only
  std::thread thread_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

/// Parses a request head (through the blank line). Returns the request, or
/// the status to refuse it with (400, 405, 413, 505).
std::variant<HttpRequest, int> parse_request_head(std::string_view head);

/// "HTTP/1.1 200 OK\r\n..." with the headers every response carries.
std::string response_head(const HttpResponse& response, bool keep_alive);

}  // namespace relay::net

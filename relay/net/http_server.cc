#include "relay/net/http_server.h"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>

#include <cctype>
#include <variant>

namespace relay::net {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const char* reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

HttpResponse refusal(int status) {
  HttpResponse r;
  r.status = status;
  r.body = std::string(reason_of(status)) + "\n";
  if (status == 405) {
    r.headers.emplace_back("Allow", "GET, HEAD");
    r.body = "only GET and HEAD are served here\n";
  }
  if (status == 413) r.body = "request bodies are not accepted here\n";
  return r;
}

}  // namespace

std::variant<HttpRequest, int> parse_request_head(std::string_view head) {
  HttpRequest req;
  const auto line_end = head.find("\r\n");
  if (line_end == std::string_view::npos) return 400;
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return 400;
  req.method = std::string(line.substr(0, sp1));
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return version.starts_with("HTTP/") ? 505 : 400;
  if (target.empty() || target.front() != '/') return 400;
  for (char c : req.method)
    if (!std::isupper(static_cast<unsigned char>(c))) return 400;
  if (req.method != "GET" && req.method != "HEAD") return 405;
  const auto q = target.find('?');
  req.path = percent_decode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      req.query[percent_decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
      query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    }
  }
  std::string_view rest = head.substr(line_end + 2);
  while (!rest.empty()) {
    const auto end = rest.find("\r\n");
    const std::string_view h = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    if (h.empty()) break;
    const auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return 400;
    req.headers[lower(h.substr(0, colon))] = std::string(trim(h.substr(colon + 1)));
  }
  if (req.headers.contains("transfer-encoding")) return 413;
  if (auto it = req.headers.find("content-length"); it != req.headers.end() && it->second != "0")
    return 413;
  if (version == "HTTP/1.0" && lower(req.headers["connection"]) != "keep-alive")
    req.headers["connection"] = "close";
  return req;
}

std::string response_head(const HttpResponse& response, bool keep_alive) {
  std::string head =
      "HTTP/1.1 " + std::to_string(response.status) + " " + reason_of(response.status) + "\r\n";
  head += "Content-Type: " + response.content_type + "\r\n";
  head += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  // The page shows who raised an alarm and where: never cached, never framed.
  head +=
      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
      "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";
  for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return head;
}

HttpServer::HttpServer(Endpoint listen, HttpLimits limits, Handler handler)
    : listen_(std::move(listen)),
      limits_(limits),
      handler_(std::move(handler)),
      acceptor_(io_),
      pool_(limits_.handler_threads) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  asio::error_code ec;
  asio::ip::tcp::resolver resolver(io_);
  auto results = resolver.resolve(listen_.host, std::to_string(listen_.port), ec);
  if (ec || results.empty()) {
    throw std::runtime_error("status page: cannot resolve " + listen_.to_string() + ": " +
                             ec.message());
  }
  const auto at = results.begin()->endpoint();
  acceptor_.open(at.protocol());
  // SO_REUSEADDR lets a restart bind while old connections linger; on Linux
  // it never lets two listeners share the port (SO_REUSEPORT would).
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error(
        "status page: cannot listen on " + listen_.to_string() + ": " + ec.message() +
        (ec == asio::error::address_in_use
             ? " (another daemon or another program has this port: give each relayd and each "
               "relay-runner its own [status] listen)"
             : ""));
  }
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, accept(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    stopped_ = true;
    asio::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : connections_) {
      c->socket.close(ignored);
      c->timer.cancel();
    }
  });
  pool_.join();
  thread_.join();
}

bool HttpServer::make_room() {
  if (connections_.size() < limits_.max_connections) return true;
  for (auto& c : connections_) {  // oldest first
    if (!c->busy) {
      asio::error_code ignored;
      c->socket.close(ignored);  // its serve() ends and removes it
      c->timer.cancel();
      return true;
    }
  }
  return false;
}

asio::awaitable<void> HttpServer::accept() {
  asio::steady_timer pause(io_);
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors, most likely: wait rather than spin.
      spdlog::warn("status page: accept: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (!make_room()) {
      const std::string busy = response_head(refusal(503), false) + reason_of(503) + "\n";
      asio::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(busy), ignored);
      continue;  // closed as `socket` goes
    }
    auto c = std::make_shared<Connection>(std::move(socket));
    connections_.push_back(c);
    c->self = std::prev(connections_.end());
    asio::co_spawn(io_, serve(c), asio::detached);
  }
}

void HttpServer::arm(const std::shared_ptr<Connection>& c) {
  c->timer.expires_after(limits_.timeout);
  c->timer.async_wait([c](const asio::error_code& ec) {
    if (ec) return;  // cancelled: the operation finished in time
    asio::error_code ignored;
    c->socket.close(ignored);
  });
}

asio::awaitable<HttpResponse> HttpServer::call_handler(HttpRequest request) {
  try {
    co_return handler_(request);
  } catch (const std::exception& e) {
    HttpResponse r = refusal(500);
    r.body = std::string("internal error: ") + e.what() + "\n";
    co_return r;
  }
}

asio::awaitable<void> HttpServer::serve(std::shared_ptr<Connection> c) {
  std::string buffer;
  for (int served = 0; served < limits_.max_requests && !stopped_; ++served) {
    c->busy = false;
    arm(c);
    auto [ec, n] = co_await asio::async_read_until(
        c->socket, asio::dynamic_buffer(buffer, limits_.max_head_bytes), "\r\n\r\n", use_tuple);
    c->timer.cancel();
    if (ec) {
      if (ec == asio::error::not_found) {  // the head outgrew its limit
        const std::string refused = response_head(refusal(431), false) + reason_of(431) + "\n";
        arm(c);
        co_await asio::async_write(c->socket, asio::buffer(refused), use_tuple);
        c->timer.cancel();
      }
      break;
    }
    c->busy = true;
    auto parsed = parse_request_head(std::string_view(buffer).substr(0, n));
    buffer.erase(0, n);
    HttpResponse response;
    bool keep_alive = served + 1 < limits_.max_requests;
    bool head_only = false;
    if (const int* refused = std::get_if<int>(&parsed)) {
      response = refusal(*refused);
      keep_alive = false;  // a body may follow that we will not read
    } else {
      auto& request = std::get<HttpRequest>(parsed);
      head_only = request.method == "HEAD";
      if (lower(request.headers["connection"]) == "close") keep_alive = false;
      response =
          co_await asio::co_spawn(pool_, call_handler(std::move(request)), asio::use_awaitable);
      co_await asio::post(io_, asio::use_awaitable);  // back on the connection's thread
    }
    std::string out = response_head(response, keep_alive);
    if (!head_only) out += response.body;
    arm(c);
    auto [write_error, written] =
        co_await asio::async_write(c->socket, asio::buffer(out), use_tuple);
    c->timer.cancel();
    if (write_error || !keep_alive) break;
  }
  asio::error_code ignored;
  c->socket.shutdown(asio::socket_base::shutdown_both, ignored);
  c->socket.close(ignored);
  c->timer.cancel();
  if (!stopped_) connections_.erase(c->self);
}

}  // namespace relay::net

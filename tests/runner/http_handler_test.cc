// The webhook handler against a real local HTTP server.
#include "relay/relay-runner/http_handler.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <mutex>
#include <thread>

using namespace relay::runner;
using namespace std::chrono_literals;

namespace {

/// A gateway on a free loopback port, answering with what the test sets.
class Gateway {
 public:
  Gateway() {
    server_.Post("/alert", [this](const httplib::Request& req, httplib::Response& res) {
      std::this_thread::sleep_for(delay_);
      std::lock_guard lock(mutex_);
      last_ = req;
      res.status = status_;
      res.set_content(answer_, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost, and join() would hang.
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Gateway() {
    server_.stop();
    thread_.join();
  }
  HttpUrl url() const { return {"127.0.0.1", port_, "/alert"}; }
  httplib::Request last() {
    std::lock_guard lock(mutex_);
    return last_;
  }

  int status_ = 204;
  std::string answer_;
  std::chrono::milliseconds delay_{0};

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  httplib::Request last_;
};

Row row() {
  Row r;
  r.queue_id = 7;
  r.type = "duress";
  r.data = R"({"id":"clinic-north:3","location":"Psych ward"})";
  r.priority = kDuressPriority;
  r.attempts = 1;
  r.event_id = "clinic-north:3";
  r.inserted_at = std::chrono::microseconds(1'700'000'000'000'001);
  return r;
}

}  // namespace

TEST_CASE("a 2xx answer is handled, the body is the row's JSON, the headers its identity") {
  Gateway g;
  HttpHandler h(g.url());
  CHECK(h.handle(row(), 5s).ok);
  const auto req = g.last();
  CHECK(req.body == row().data);
  CHECK(req.get_header_value("Content-Type") == "application/json");
  CHECK(req.get_header_value("X-Relay-Queue-Id") == "7");
  CHECK(req.get_header_value("X-Relay-Event-Id") == "clinic-north:3");
  CHECK(req.get_header_value("X-Relay-Type") == "duress");
  CHECK(req.get_header_value("X-Relay-Priority") == "duress");
  CHECK(req.get_header_value("X-Relay-Attempt") == "1");
  CHECK(req.get_header_value("X-Relay-Inserted-At") == "1700000000.000001");
  CHECK(h.handle(row(), 5s).ok);  // the kept-open connection serves the next row
}

TEST_CASE("any other answer fails, with the status and what the gateway said") {
  Gateway g;
  g.status_ = 503;
  g.answer_ = "modem offline\n";
  HttpHandler h(g.url());
  const auto outcome = h.handle(row(), 5s);
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error == "POST /alert: HTTP 503: modem offline");
  CHECK(outcome.output == "HTTP 503: modem offline");  // the run's output on the page
  g.status_ = 200;
  g.answer_ = "queued as #7" + std::string(300, '.');
  const auto handled = h.handle(row(), 5s);
  CHECK(handled.ok);
  CHECK(handled.output == "HTTP 200: queued as #7" + std::string(188, '.') + " [...]");
}

TEST_CASE("a gateway that does not answer in time fails the attempt") {
  Gateway g;
  g.delay_ = 1500ms;
  HttpHandler h(g.url());
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = h.handle(row(), 300ms);
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error.find("POST 127.0.0.1:") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 1200ms);
}

TEST_CASE("nothing listening fails the attempt with a reason") {
  int port = 0;
  {
    Gateway g;  // a port that was free a moment ago and is closed now
    port = g.url().port;
  }
  HttpHandler h({"127.0.0.1", port, "/alert"});
  const auto outcome = h.handle(row(), 1s);
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error.find("Connection") != std::string::npos);
}

#include "relay/status/status_server.h"

#include <doctest/doctest.h>

using namespace relay;

namespace {

net::DaemonStatus sample() {
  net::DaemonStatus s;
  s.node = "hq";
  s.database_up = false;
  s.database_error = "connection refused";
  s.peers.push_back(
      {"clinic-north", true, false, false, false, std::chrono::milliseconds(12), 3, 4});
  s.peers.push_back({"clinic-<south>", true, true, true, true, {}, 0, 0});
  s.rejected["bad_tag"] = 7;
  s.stats.datagrams_sent = 42;
  return s;
}

}  // namespace

TEST_CASE("metrics are Prometheus text with a line per peer and per reason") {
  const std::string m = status::metrics_text(sample());
  CHECK(m.find("relay_database_up 0\n") != std::string::npos);
  CHECK(m.find("relay_datagrams_sent_total 42\n") != std::string::npos);
  CHECK(m.find("relay_datagrams_rejected_total{reason=\"bad_tag\"} 7\n") != std::string::npos);
  CHECK(m.find("relay_peer_up{peer=\"clinic-north\"} 1\n") != std::string::npos);
  CHECK(m.find("relay_peer_alarm{peer=\"clinic-<south>\"} 1\n") != std::string::npos);
  CHECK(m.find("relay_peer_queued{peer=\"clinic-north\"} 7\n") != std::string::npos);
}

TEST_CASE("the status JSON and page show the database and every peer") {
  const std::string json = status::status_json(sample());
  CHECK(json.find("\"connection refused\"") != std::string::npos);
  CHECK(json.find("\"state\": \"alive\"") != std::string::npos);
  CHECK(json.find("\"alarm\": true") != std::string::npos);
  const std::string html = status::status_html(sample());
  CHECK(html.find("PostgreSQL is not answering") != std::string::npos);
  CHECK(html.find("SUPERVISION ALARM") != std::string::npos);
  CHECK(html.find("clinic-&lt;south&gt;") != std::string::npos);  // escaped
  CHECK(html.find("<south>") == std::string::npos);
}

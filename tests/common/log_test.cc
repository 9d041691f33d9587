#include "common/log.h"

#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <stdexcept>

TEST_CASE("logging goes to every sink, and a typo in the level is an error") {
  std::ostringstream out;
  relay::init_logging("info", {std::make_shared<spdlog::sinks::ostream_sink_mt>(out)});
  spdlog::info("relay started on {}", "hq");
  spdlog::debug("not shown at info");
  CHECK(out.str().find("relay started on hq") != std::string::npos);
  CHECK(out.str().find("not shown") == std::string::npos);

  // Protobuf's parse complaints are routed to debug, so they do not flood.
  GOOGLE_LOG(ERROR) << "String field contains invalid UTF-8";
  CHECK(out.str().find("invalid UTF-8") == std::string::npos);

  CHECK_THROWS_AS(relay::init_logging("verbose"), std::invalid_argument);
  CHECK_NOTHROW(relay::init_logging("warn"));
}

TEST_CASE("incident fields survive the round trip through a log line") {
  const std::string line = relay::with_fields(
      "peer clinic-north is down",
      {{"incident", "peer_down"}, {"peer", "clinic-north"}, {"reason", "silent for 61 s"}});
  CHECK(line ==
        "peer clinic-north is down | incident=peer_down peer=clinic-north "
        "reason=\"silent for 61 s\"");
  const auto fields = relay::parse_fields("2025-01-01T03:00:00.000 warn " + line);
  REQUIRE(fields);
  REQUIRE(fields->size() == 3);
  CHECK((*fields)[0] == std::pair<std::string, std::string>{"INCIDENT", "peer_down"});
  CHECK((*fields)[1] == std::pair<std::string, std::string>{"PEER", "clinic-north"});
  CHECK((*fields)[2] == std::pair<std::string, std::string>{"REASON", "silent for 61 s"});

  const auto quoted = relay::parse_fields(relay::with_fields("x", {{"reason", "a \"b\" | c=d"}}));
  REQUIRE(quoted);
  CHECK((*quoted)[0].second == "a \"b\" | c=d");

  // A library's line, or one that only looks similar, has no fields.
  CHECK_FALSE(relay::parse_fields("libpq: server closed the connection"));
  CHECK_FALSE(relay::parse_fields("a | B=upper"));
  CHECK_FALSE(relay::parse_fields("a | reason=\"unterminated"));
}

TEST_CASE("a rate limit lets a burst through per window and counts the rest") {
  relay::RateLimit limit(std::chrono::seconds(60), 2);
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  CHECK(limit.allow(t0));
  CHECK(limit.allow(t0));
  CHECK_FALSE(limit.allow(t0));
  CHECK_FALSE(limit.allow(t0 + std::chrono::seconds(59)));
  CHECK(limit.allow(t0 + std::chrono::seconds(61)));
  CHECK(limit.suppressed() == 2);
  CHECK(limit.suppressed() == 0);
}

TEST_CASE("one_line: libpq's message with its hint, on one line") {
  CHECK(relay::one_line("connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such "
                        "file or directory\n\tIs the server running locally?\n") ==
        "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such file or "
        "directory Is the server running locally?");
  CHECK(relay::one_line("") == "");
  CHECK(relay::one_line("plain") == "plain");
}

#include "common/log.h"

#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>

#include <stdexcept>

TEST_CASE("logging goes to the ring buffer, and a typo in the level is an error") {
  auto ring = relay::init_logging("info");
  spdlog::info("relay started on {}", "hq");
  spdlog::debug("not shown at info");
  const auto lines = ring->last_formatted();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("relay started on hq") != std::string::npos);

  // Protobuf's parse complaints are routed to debug, so they do not flood.
  GOOGLE_LOG(ERROR) << "String field contains invalid UTF-8";
  CHECK(ring->last_formatted().size() == 1);

  CHECK_THROWS_AS(relay::init_logging("verbose"), std::invalid_argument);
  CHECK_NOTHROW(relay::init_logging("warn"));
}

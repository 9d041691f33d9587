// The response loop in the simulator: an acknowledgement is an event of the
// site that makes it, so the mesh carries it like any other (loss, exactly
// once, anti-entropy), and never to a peer whose build does not take it.
#include <doctest/doctest.h>

#include "relay/mesh/response.h"
#include "relay/sim/cluster.h"

using namespace relay::sim;
using namespace std::chrono_literals;
namespace v1 = relaymesh::v1;

namespace {

/// hq acknowledges `alarm` (held at hq), as its outbox would make it.
EventKey acknowledge(Cluster& c, const EventKey& alarm) {
  const auto& held = c.durable(0).log.at(alarm);
  v1::Event referenced;
  REQUIRE(referenced.ParseFromString(held->signed_event.event()));
  std::vector<relay::mesh::PeerInfo> mesh;
  for (std::size_t i = 0; i < c.size(); ++i) mesh.push_back({c.id(i), {i == 0 ? "hq" : "clinics"}});
  v1::Event ack;
  ack.set_ack(v1::ACK_RESPONDING);
  ack.set_sender("guard 3");
  REQUIRE(relay::mesh::make_ack(ack, referenced, "hq", mesh) == "");
  return c.inject_event(0, ack);
}

}  // namespace

TEST_CASE("an acknowledgement reaches the alarm's origin once, through 30% loss") {
  SimConfig cfg;
  cfg.nodes = 4;
  cfg.seed = 41;
  cfg.link.loss = 0.3;
  Cluster c(cfg);
  c.run_for(5s);
  const auto alarm = c.inject(1, v1::PRIORITY_DURESS, {"hq"});
  c.run_for(3s);
  REQUIRE(c.durable(0).log.contains(alarm));
  const auto ack = acknowledge(c, alarm);
  CHECK(c.durable(0).log.at(ack)->priority == v1::PRIORITY_DURESS);
  REQUIRE(c.run_until_converged(60s));
  const auto violation = c.check();
  CHECK_MESSAGE(!violation, violation.value_or(""));
  // Delivered at the origin, and nowhere else (hq made it; the others
  // were not the alarm's targets): stored everywhere all the same.
  CHECK(c.durable(1).delivered.at(ack) == 1);
  CHECK_FALSE(c.durable(0).delivered.contains(ack));
  CHECK_FALSE(c.durable(2).delivered.contains(ack));
  for (std::size_t n = 0; n < c.size(); ++n) CHECK(c.stored_at(ack, n).has_value());
}

TEST_CASE("an acknowledgement waits for a peer's upgrade, the duress never does") {
  SimConfig cfg;
  cfg.nodes = 3;
  cfg.seed = 43;
  Cluster c(cfg);
  c.announce_features(2, 0);  // clinic-2 runs a build before the response loop
  c.run_for(5s);
  const auto alarm = c.inject(1, v1::PRIORITY_DURESS, {"hq", "clinic-2"});
  c.run_for(3s);
  const auto ack = acknowledge(c, alarm);
  c.run_for(30s);
  CHECK(c.stored_at(alarm, 2).has_value());
  CHECK(c.durable(1).delivered.at(ack) == 1);
  // Not pushed, relayed or served to it: an older build would drop the
  // whole datagram it came in, as malformed.
  CHECK_FALSE(c.stored_at(ack, 2).has_value());
  CHECK(c.node(0)->stats().withheld_for_features > 0);
  // Upgraded: it catches up, and the ack is delivered there exactly once.
  c.announce_features(2, v1::FEATURE_RESPONSE_LOOP);
  REQUIRE(c.run_until_converged(30s));
  const auto violation = c.check();
  CHECK_MESSAGE(!violation, violation.value_or(""));
  CHECK(c.durable(2).delivered.at(ack) == 1);
}

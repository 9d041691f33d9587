#include "relay/wire/bundle.h"

#include <doctest/doctest.h>

#include "relay/wire/datagram.h"
#include "tests/wire/mesh_fixture.h"

using namespace relay;
using relay::test::MeshFixture;
using wire::Reject;
namespace v1 = relaymesh::v1;

namespace {

std::vector<v1::Event> events_of(const MeshFixture& mesh, std::size_t n,
                                 const std::string& body = "event ") {
  std::vector<v1::Event> out;
  for (std::size_t i = 1; i <= n; ++i) out.push_back(mesh.event("hq", i, body + std::to_string(i)));
  return out;
}

/// Opens each signed event in its own datagram from clinic-south; adds the
/// Ed25519 checks the events took (not the session's) to `checks`.
std::vector<Reject> open_each(MeshFixture& mesh, wire::Codec& receiver,
                              const std::vector<v1::SignedEvent>& signed_events,
                              std::uint64_t* checks = nullptr) {
  // A fresh sender is a restart: a higher boot counter makes it the newer session.
  static std::uint64_t boot = 0;
  auto sender = mesh.codec("clinic-south", ++boot);
  MeshFixture::connect(*sender, receiver);
  std::vector<Reject> out;
  wire::Opened opened;
  const std::uint64_t before = receiver.signature_checks();
  for (const auto& se : signed_events) {
    v1::Datagram d;
    *d.mutable_events()->add_events() = se;
    out.push_back(
        receiver.open(crypto::as_bytes(MeshFixture::seal(*sender, "clinic-north", d)), opened));
  }
  if (checks != nullptr) *checks += receiver.signature_checks() - before;
  return out;
}

}  // namespace

TEST_CASE("a bundle verifies every event with one signature check") {
  MeshFixture mesh;
  for (std::size_t n : {2, 3, 5, 33, 64}) {
    CAPTURE(n);
    const auto signed_events = wire::sign_bundle(events_of(mesh, n), mesh.identities.at("hq"));
    REQUIRE(signed_events.size() == n);
    auto north = mesh.codec("clinic-north");
    std::uint64_t checks = 0;
    for (auto r : open_each(mesh, *north, signed_events, &checks)) CHECK(r == Reject::none);
    CHECK(checks == 1);
    for (const auto& se : signed_events) {
      CHECK(wire::verify_signed_event(se, mesh.identities.at("hq").verify_key()));
      CHECK(se.event().size() + wire::kBundleProofBytes >= se.ByteSizeLong() - 64);
    }
  }
}

TEST_CASE("a bundled event that was changed, moved or borrowed is rejected") {
  MeshFixture mesh;
  auto bundle = wire::sign_bundle(events_of(mesh, 8), mesh.identities.at("hq"));
  auto other = wire::sign_bundle(events_of(mesh, 8, "other "), crypto::SigningKey::generate());
  auto north = mesh.codec("clinic-north");

  SUBCASE("changed event bytes") {
    auto se = bundle[3];
    v1::Event e;
    REQUIRE(e.ParseFromString(se.event()));
    e.set_priority(v1::PRIORITY_DURESS);
    e.SerializeToString(se.mutable_event());
    CHECK(open_each(mesh, *north, {se})[0] == Reject::bad_origin_signature);
  }
  SUBCASE("changed event after its bundle was already verified") {
    CHECK(open_each(mesh, *north, {bundle[0]})[0] == Reject::none);
    auto se = bundle[3];
    se.mutable_event()->back() ^= 1;
    CHECK(open_each(mesh, *north, {se})[0] != Reject::none);
  }
  SUBCASE("a wrong index") {
    auto se = bundle[3];
    se.set_index(2);
    CHECK(open_each(mesh, *north, {se})[0] == Reject::bad_origin_signature);
  }
  SUBCASE("a path of another bundle") {
    auto se = bundle[3];
    *se.mutable_path() = other[3].path();
    CHECK(open_each(mesh, *north, {se})[0] == Reject::bad_origin_signature);
  }
  SUBCASE("signed by a key that is not the origin's") {
    CHECK(open_each(mesh, *north, {other[0]})[0] == Reject::bad_origin_signature);
  }
  SUBCASE("a malformed path") {
    auto se = bundle[3];
    se.mutable_path(0)->pop_back();
    CHECK(open_each(mesh, *north, {se})[0] == Reject::malformed_body);
    auto deep = bundle[3];
    for (int i = 0; i < 4; ++i) deep.add_path(std::string(32, 'x'));
    CHECK(open_each(mesh, *north, {deep})[0] == Reject::malformed_body);
  }
}

TEST_CASE("the largest event that is bundled still fits a datagram with its proof") {
  MeshFixture mesh;
  const std::string longest(wire::kMaxSenderId, 'x');
  mesh.identities.emplace(longest, crypto::SigningKey::generate());
  std::vector<v1::Event> events;
  for (std::uint64_t i = 1; i <= wire::kMaxBundle; ++i)
    events.push_back(mesh.event(longest, i, ""));
  auto& big = events.back();
  big.set_seq(INT64_MAX);  // the largest seq a store takes
  big.set_body(
      std::string(wire::kMaxEventBytes - wire::kBundleProofBytes - big.ByteSizeLong() - 3, 'b'));
  REQUIRE(big.ByteSizeLong() == wire::kMaxEventBytes - wire::kBundleProofBytes);
  const auto signed_events = wire::sign_bundle(events, mesh.identities.at(longest));
  REQUIRE(signed_events.back().path_size() == static_cast<int>(wire::kMaxBundleDepth));
  v1::Datagram d;
  *d.mutable_events()->add_events() = signed_events.back();
  auto sender = mesh.codec(longest);
  auto hq = mesh.codec("hq");
  MeshFixture::connect(*sender, *hq);
  wire::Opened opened;
  CHECK(hq->open(crypto::as_bytes(MeshFixture::seal(*sender, "hq", d)), opened) == Reject::none);
}

// Wire revision 3, as far as it runs: the features a hello announces, and
// what makes an acknowledgement well-formed.
#include <doctest/doctest.h>

#include "relay/mesh/types.h"
#include "relay/wire/datagram.h"
#include "tests/wire/mesh_fixture.h"
#include "tests/wire/raw_seal.h"

using namespace relay;
using relay::test::bytes;
using relay::test::MeshFixture;
using relay::test::probe;
using wire::Reject;
namespace v1 = relaymesh::v1;

namespace {

/// hq's first hello to clinic-north.
std::string first_hello(wire::Codec& hq) {
  const auto sealed = hq.seal("clinic-north", probe(1)).value();
  REQUIRE(sealed.size() == 1);
  REQUIRE(wire::parse_header(bytes(sealed[0]))->kind == wire::Kind::hello);
  return sealed[0];
}

/// `self`'s view of itself and `peer`, both in the same groups as the
/// other's view says, and `policy` (a digest; empty: a build before it).
v1::PairView view_of(const std::string& self, const std::string& peer, const std::string& policy) {
  v1::PairView v;
  v.mutable_self()->set_id(self);
  v.mutable_self()->add_groups(self == "hq" ? "hq" : "clinics");
  v.mutable_peer()->set_id(peer);
  v.mutable_peer()->add_groups(peer == "hq" ? "hq" : "clinics");
  v.set_policy_digest(policy);
  return v;
}

/// A digest as views carry it: 32 bytes, the first `first`.
std::string digest(char first) {
  std::string d(32, '\x5e');
  d[0] = first;
  return d;
}

}  // namespace

TEST_CASE("a hello announces its features under the sender's signature") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  const std::string sealed = first_hello(*hq);
  const auto header = *wire::parse_header(bytes(sealed));
  const v1::Datagram body = test::open_hello_raw(mesh.ring, sealed);
  CHECK(body.hello().features() == wire::kFeatures);
  CHECK(body.hello().features_signature().size() == 64);
  auto reseal = [&](const v1::Datagram& d) {
    return test::raw_seal_hello(mesh.ring, "hq", header.boot, header.boot_id, header.counter,
                                d.SerializeAsString());
  };
  wire::Opened opened;
  // A mesh-key holder cannot add a feature: the v3 signature covers them.
  v1::Datagram more = body;
  more.mutable_hello()->set_features(wire::kFeatures | 2);
  CHECK(north->open(bytes(reseal(more)), opened) == Reject::bad_credential);
  // Nor pass the v2 signature off as the v3 one.
  v1::Datagram swapped = body;
  swapped.mutable_hello()->set_features_signature(body.hello().signature());
  CHECK(north->open(bytes(reseal(swapped)), opened) == Reject::bad_credential);
  CHECK(north->peer_state("hq").features == 0);

  REQUIRE(north->open(bytes(sealed), opened) == Reject::none);
  CHECK(north->peer_state("hq").features == wire::kFeatures);
}

TEST_CASE(
    "an older build's hello (no features) verifies as before, and stripping never lowers them") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  hq->set_features(0);  // as a build before the features
  const std::string old_hello = first_hello(*hq);
  const v1::Datagram body = test::open_hello_raw(mesh.ring, old_hello);
  CHECK(body.hello().features() == 0);
  CHECK(body.hello().features_signature().empty());
  // Byte for byte what a v2 build signed: the v2 message alone verifies it.
  const auto header = *wire::parse_header(bytes(old_hello));
  CHECK(mesh.identities.at("hq").verify_key().verify(
      bytes(
          wire::hello_signing_message("clinic-north", header.key_id, header.counter, body.hello())),
      bytes(body.hello().signature())));
  wire::Opened opened;
  REQUIRE(north->open(bytes(old_hello), opened) == Reject::none);
  CHECK(north->peer_state("hq").features == 0);

  // A new hello of the same session announces them; a later one stripped
  // of them (still v2-valid: a mesh-key holder's downgrade) is taken, but
  // does not take them back.
  hq->set_features(v1::FEATURE_RESPONSE_LOOP);
  auto next_hello = [&](std::uint64_t nonce) {
    mesh.clock.advance(std::chrono::seconds(2));  // hellos go at most once a second
    const auto out = hq->seal("clinic-north", probe(nonce)).value();
    REQUIRE(out.size() == 1);
    return out[0];
  };
  REQUIRE(north->open(bytes(next_hello(2)), opened) == Reject::none);
  CHECK(north->peer_state("hq").features == v1::FEATURE_RESPONSE_LOOP);
  const std::string third = next_hello(3);
  const auto third_header = *wire::parse_header(bytes(third));
  v1::Datagram stripped = test::open_hello_raw(mesh.ring, third);
  stripped.mutable_hello()->clear_features();
  stripped.mutable_hello()->clear_features_signature();
  const auto resealed =
      test::raw_seal_hello(mesh.ring, "hq", third_header.boot, third_header.boot_id,
                           third_header.counter, stripped.SerializeAsString());
  CHECK(north->open(bytes(resealed), opened) == Reject::none);
  CHECK(north->peer_state("hq").features == v1::FEATURE_RESPONSE_LOOP);
}

TEST_CASE("an acknowledgement references exactly one event and says how") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*south, *north);
  wire::Opened opened;
  auto check = [&](const v1::Event& e) {
    return north->open(bytes(MeshFixture::seal(*south, "clinic-north", mesh.events_body({e}))),
                       opened);
  };
  auto ack = [&] {
    v1::Event e = mesh.event("hq", 2);
    e.set_kind(v1::KIND_ACK);
    e.set_priority(v1::PRIORITY_DURESS);
    e.set_ack(v1::ACK_RESPONDING);
    auto* r = e.add_references();
    r->set_origin("clinic-north");
    r->set_seq(5);
    return e;
  };
  CHECK(wire::well_formed(ack()));
  CHECK(check(ack()) == Reject::none);
  auto e = ack();
  e.clear_references();
  CHECK_FALSE(wire::well_formed(e));
  CHECK(check(e) == Reject::malformed_body);
  e = ack();
  *e.add_references() = e.references(0);
  CHECK_FALSE(wire::well_formed(e));
  e = ack();
  e.set_ack(v1::ACK_UNSPECIFIED);
  CHECK_FALSE(wire::well_formed(e));
  CHECK(check(e) == Reject::malformed_body);
  e = ack();
  e.set_ack(static_cast<v1::AckState>(9));
  CHECK_FALSE(wire::well_formed(e));
  e = ack();
  e.set_ack(v1::ACK_RESOLVED);
  CHECK(wire::well_formed(e));
  // An answer on anything but an acknowledgement means nothing anywhere.
  e = mesh.event("hq", 3);
  e.set_ack(v1::ACK_RESOLVED);
  CHECK_FALSE(wire::well_formed(e));
  // The internal kinds never travel as events.
  e = mesh.event("hq", 3);
  e.set_kind(v1::KIND_RECEIPT);
  CHECK_FALSE(wire::well_formed(e));
}

TEST_CASE("an escalation references exactly one event in a round of 1 or more") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*south, *north);
  wire::Opened opened;
  auto check = [&](const v1::Event& e) {
    return north->open(bytes(MeshFixture::seal(*south, "clinic-north", mesh.events_body({e}))),
                       opened);
  };
  auto escalation = [&] {
    v1::Event e = mesh.event("clinic-south", 2);
    e.set_kind(v1::KIND_ESCALATION);
    e.set_priority(v1::PRIORITY_DURESS);
    e.set_escalation_round(1);
    e.set_escalation_max(3);
    auto* r = e.add_references();
    r->set_origin("clinic-south");
    r->set_seq(1);
    return e;
  };
  CHECK(wire::well_formed(escalation()));
  CHECK(check(escalation()) == Reject::none);
  auto e = escalation();
  e.set_escalation_round(0);
  CHECK_FALSE(wire::well_formed(e));
  CHECK(check(e) == Reject::malformed_body);
  e = escalation();
  e.clear_references();
  CHECK_FALSE(wire::well_formed(e));
  e = escalation();
  *e.add_references() = e.references(0);
  CHECK_FALSE(wire::well_formed(e));
  e = escalation();
  e.set_ack(v1::ACK_RESPONDING);
  CHECK_FALSE(wire::well_formed(e));
  // A round on anything but an escalation means nothing anywhere.
  e = mesh.event("clinic-south", 3);
  e.set_escalation_round(1);
  CHECK_FALSE(wire::well_formed(e));
  e = mesh.event("clinic-south", 3);
  e.set_escalation_max(2);
  CHECK_FALSE(wire::well_formed(e));
  // Escalations wait for the response-loop bit like acknowledgements.
  CHECK(mesh::features_needed(v1::KIND_ESCALATION) == v1::FEATURE_RESPONSE_LOOP);
}

TEST_CASE("an update or cancel revises one earlier event of its own origin") {
  MeshFixture mesh;
  auto revision = [&](v1::Kind kind) {
    v1::Event e = mesh.event("clinic-south", 4);
    e.set_kind(kind);
    auto* r = e.add_references();
    r->set_origin("clinic-south");
    r->set_seq(3);
    return e;
  };
  for (const auto kind : {v1::KIND_UPDATE, v1::KIND_CANCEL}) {
    CHECK(wire::well_formed(revision(kind)));
    // Another site's alert: only its origin revises it.
    auto e = revision(kind);
    e.mutable_references(0)->set_origin("hq");
    CHECK_FALSE(wire::well_formed(e));
    // One not raised yet, or itself.
    e = revision(kind);
    e.mutable_references(0)->set_seq(4);
    CHECK_FALSE(wire::well_formed(e));
    e = revision(kind);
    *e.add_references() = e.references(0);
    CHECK_FALSE(wire::well_formed(e));
    e = revision(kind);
    e.set_ack(v1::ACK_RESOLVED);
    CHECK_FALSE(wire::well_formed(e));
    // A bit of its own: builds that announced only the response loop
    // refuse these kinds.
    CHECK(mesh::features_needed(kind) == v1::FEATURE_UPDATE_CANCEL);
  }
}

TEST_CASE("two sites whose mesh policies differ both see drift, the same policy, none") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  hq->set_views({{"clinic-north", view_of("hq", "clinic-north", digest('\x1a'))}});
  north->set_views({{"hq", view_of("clinic-north", "hq", digest('\x2b'))}});
  MeshFixture::connect(*hq, *north);
  const auto at_north = north->peer_state("hq").drift;
  const auto at_hq = hq->peer_state("clinic-north").drift;
  REQUIRE(at_north.size() == 1);
  CHECK(at_north[0] ==
        "hq's mesh policy differs from this node's (digest 1a5e5e5e\u2026 there, 2b5e5e5e\u2026 "
        "here): the same policy file must be installed at every site");
  REQUIRE(at_hq.size() == 1);
  CHECK(at_hq[0].starts_with("clinic-north's mesh policy differs from this node's (digest "
                             "2b5e5e5e\u2026 there, 1a5e5e5e\u2026 here)"));

  // The same policy on both: no drift, and none left over from before.
  MeshFixture again;
  auto hq2 = again.codec("hq");
  auto north2 = again.codec("clinic-north");
  hq2->set_views({{"clinic-north", view_of("hq", "clinic-north", digest('\x1a'))}});
  north2->set_views({{"hq", view_of("clinic-north", "hq", digest('\x1a'))}});
  MeshFixture::connect(*hq2, *north2);
  CHECK(north2->peer_state("hq").drift.empty());
  CHECK(hq2->peer_state("clinic-north").drift.empty());
}

TEST_CASE("an older build's hello has no policy digest, and is never drift for it") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  // hq as a build before the features (and so before the digest), though
  // its view holds one: its hello carries none.
  hq->set_features(0);
  hq->set_views({{"clinic-north", view_of("hq", "clinic-north", digest('\x1a'))}});
  north->set_views({{"hq", view_of("clinic-north", "hq", digest('\x2b'))}});
  const std::string sealed = first_hello(*hq);
  const v1::Datagram body = test::open_hello_raw(mesh.ring, sealed);
  REQUIRE(body.hello().has_view());
  CHECK(body.hello().view().policy_digest().empty());
  wire::Opened opened;
  REQUIRE(north->open(bytes(sealed), opened) == Reject::none);
  CHECK(north->peer_state("hq").drift.empty());

  // A v3 build before the digest (features, a view without one): its v3
  // signature verifies as that build made it, and it is not drift either.
  MeshFixture v3;
  auto hq3 = v3.codec("hq");
  auto north3 = v3.codec("clinic-north");
  hq3->set_views({{"clinic-north", view_of("hq", "clinic-north", "")}});
  north3->set_views({{"hq", view_of("clinic-north", "hq", digest('\x2b'))}});
  const std::string v3_hello = first_hello(*hq3);
  const auto header = *wire::parse_header(bytes(v3_hello));
  const v1::Datagram v3_body = test::open_hello_raw(v3.ring, v3_hello);
  CHECK(v3_body.hello().features() != 0);
  // What a v3 build before the digest signs: the features last.
  v1::Hello before = v3_body.hello();
  std::string message = wire::hello_features_signing_message("clinic-north", header.key_id,
                                                             header.counter, before);
  CHECK(v3.identities.at("hq").verify_key().verify(bytes(message),
                                                   bytes(v3_body.hello().features_signature())));
  CHECK(message.ends_with(std::string(7, '\0') + static_cast<char>(v3_body.hello().features())));
  REQUIRE(north3->open(bytes(v3_hello), opened) == Reject::none);
  CHECK(north3->peer_state("hq").drift.empty());
}

TEST_CASE("a policy digest is its sender's word: faked, hidden or downgraded, it shows") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  hq->set_views({{"clinic-north", view_of("hq", "clinic-north", digest('\x1a'))}});
  north->set_views({{"hq", view_of("clinic-north", "hq", digest('\x1a'))}});
  const std::string sealed = first_hello(*hq);
  const auto header = *wire::parse_header(bytes(sealed));
  const v1::Datagram body = test::open_hello_raw(mesh.ring, sealed);
  CHECK(body.hello().view().policy_digest() == digest('\x1a'));
  auto reseal = [&](const v1::Datagram& d, std::uint64_t counter) {
    return test::raw_seal_hello(mesh.ring, "hq", header.boot, header.boot_id, counter,
                                d.SerializeAsString());
  };
  wire::Opened opened;
  // A v3 build from before the digest checks the features signature alone,
  // which does not cover it: it still opens this build's hellos.
  CHECK(mesh.identities.at("hq").verify_key().verify(
      bytes(wire::hello_features_signing_message("clinic-north", header.key_id, header.counter,
                                                 body.hello())),
      bytes(body.hello().features_signature())));
  // A mesh-key holder can neither fake a drift (another digest) nor hide
  // one (the digest left out) in a v3 hello: its own signature covers it.
  v1::Datagram faked = body;
  faked.mutable_hello()->mutable_view()->set_policy_digest(digest('\x2b'));
  CHECK(north->open(bytes(reseal(faked, header.counter)), opened) == Reject::bad_credential);
  v1::Datagram hidden = body;
  hidden.mutable_hello()->mutable_view()->clear_policy_digest();
  CHECK(north->open(bytes(reseal(hidden, header.counter)), opened) == Reject::bad_credential);
  // Passed off as an older build's: a digest left in without its signature
  // is a forgery; with the digest gone too, it is an older build's hello,
  // which the v2 signature still covers, and no drift comes of it.
  v1::Datagram downgraded = faked;
  downgraded.mutable_hello()->clear_features();
  downgraded.mutable_hello()->clear_features_signature();
  downgraded.mutable_hello()->clear_policy_signature();
  CHECK(north->open(bytes(reseal(downgraded, header.counter)), opened) == Reject::bad_credential);
  downgraded.mutable_hello()->mutable_view()->clear_policy_digest();
  REQUIRE(north->open(bytes(reseal(downgraded, header.counter)), opened) == Reject::none);
  CHECK(north->peer_state("hq").drift.empty());

  // Real drift, once announced under the v3 signature, stays for the
  // session: a later hello downgraded to hide it does not.
  MeshFixture other;
  auto hq2 = other.codec("hq");
  auto north2 = other.codec("clinic-north");
  hq2->set_views({{"clinic-north", view_of("hq", "clinic-north", digest('\x1a'))}});
  north2->set_views({{"hq", view_of("clinic-north", "hq", digest('\x2b'))}});
  REQUIRE(north2->open(bytes(first_hello(*hq2)), opened) == Reject::none);
  CHECK(north2->peer_state("hq").drift.size() == 1);
  other.clock.advance(std::chrono::seconds(2));  // hellos go at most once a second
  const auto next = hq2->seal("clinic-north", probe(2)).value();
  REQUIRE(next.size() == 1);
  const auto next_header = *wire::parse_header(bytes(next[0]));
  v1::Datagram stripped = test::open_hello_raw(other.ring, next[0]);
  stripped.mutable_hello()->clear_features();
  stripped.mutable_hello()->clear_features_signature();
  stripped.mutable_hello()->clear_policy_signature();
  stripped.mutable_hello()->mutable_view()->clear_policy_digest();
  const auto resealed =
      test::raw_seal_hello(other.ring, "hq", next_header.boot, next_header.boot_id,
                           next_header.counter, stripped.SerializeAsString());
  REQUIRE(north2->open(bytes(resealed), opened) == Reject::none);
  CHECK(north2->peer_state("hq").drift.size() == 1);
}

TEST_CASE("an all-clear of another site's event waits for a peer that enforces the policy") {
  mesh::Event clear;
  clear.key = {"hq", 9};
  clear.kind = v1::KIND_ALL_CLEAR;
  clear.references = {{"hq", 4}};
  // Its own event: every build has always taken that.
  CHECK(mesh::features_needed(clear) == 0);
  CHECK(mesh::takes(0, clear));
  // Another site's: a build before the policy would let it withhold the
  // event whatever the mesh policy says.
  clear.references.push_back({"clinic-north", 5});
  CHECK(mesh::features_needed(clear) == v1::FEATURE_POLICY);
  CHECK_FALSE(mesh::takes(v1::FEATURE_RESPONSE_LOOP | v1::FEATURE_UPDATE_CANCEL, clear));
  CHECK(mesh::takes(wire::kFeatures, clear));
}

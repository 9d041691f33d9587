#include "relay/wire/datagram.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <unordered_set>

#include "tests/wire/mesh_fixture.h"
#include "tests/wire/raw_seal.h"

using namespace relay;
using relay::test::MeshFixture;
using wire::Reject;
namespace v1 = relaymesh::v1;

namespace {

crypto::ByteView bytes(const std::string& s) {
  return crypto::as_bytes(s);
}

v1::Datagram probe(std::uint64_t nonce) {
  v1::Datagram d;
  d.mutable_probe()->set_nonce(nonce);
  return d;
}

}  // namespace

TEST_CASE("a sealed datagram opens to the same message, events verified") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  const auto sealed =
      hq->seal(mesh.events_body({mesh.event("hq", 1), mesh.event("clinic-south", 7)}));
  REQUIRE(sealed);
  CHECK(sealed->size() <= wire::kMaxDatagram);

  wire::Opened opened;
  REQUIRE(north->open(bytes(*sealed), opened) == Reject::none);
  CHECK(opened.sender == "hq");
  REQUIRE(opened.events.size() == 2);
  CHECK(opened.events[0].origin() == "hq");
  CHECK(opened.events[0].body() == "fire in the west wing");
  CHECK(opened.events[1].origin() == "clinic-south");
  CHECK(opened.events[1].seq() == 7);
  CHECK(north->accepted() == 1);
}

TEST_CASE("every single-byte change of a sealed datagram is rejected with a reason") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  const auto sealed = hq->seal(mesh.events_body({mesh.event("hq", 1)}));
  REQUIRE(sealed);
  std::map<Reject, int> reasons;
  wire::Opened opened;
  for (std::size_t at = 0; at < sealed->size(); ++at) {
    for (int delta = 1; delta < 256; ++delta) {
      std::string tampered = *sealed;
      tampered[at] = static_cast<char>(tampered[at] ^ delta);
      const Reject r = north->open(bytes(tampered), opened);
      REQUIRE_MESSAGE(r != Reject::none, "byte ", at, " xor ", delta, " was accepted");
      ++reasons[r];
    }
  }
  // Changes reach several checks, not only the tag.
  CHECK(reasons[Reject::bad_tag] > 0);
  CHECK(reasons[Reject::unknown_version] == 255);
  CHECK(reasons[Reject::unknown_key_id] > 0);
  CHECK(reasons[Reject::bad_size] > 0);
  CHECK(north->accepted() == 0);
  // None of the forgeries disturbed the receiver: the original still opens once.
  CHECK(north->open(bytes(*sealed), opened) == Reject::none);
  CHECK(north->open(bytes(*sealed), opened) == Reject::replay);
}

TEST_CASE("replay protection") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  wire::Opened opened;

  SUBCASE("a replayed datagram is rejected") {
    const auto d = *hq->seal(probe(1));
    CHECK(north->open(bytes(d), opened) == Reject::none);
    CHECK(north->open(bytes(d), opened) == Reject::replay);
    CHECK(north->rejected(Reject::replay) == 1);
  }
  SUBCASE("reordering inside the window is accepted once each") {
    std::vector<std::string> sent;
    for (int i = 0; i < 500; ++i) sent.push_back(*hq->seal(probe(i)));
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      CHECK(north->open(bytes(*it), opened) == Reject::none);
    }
    for (const auto& d : sent) CHECK(north->open(bytes(d), opened) == Reject::replay);
  }
  SUBCASE("a counter older than the window is rejected") {
    const auto first = *hq->seal(probe(0));
    std::string last;
    for (std::uint64_t i = 0; i < wire::ReplayWindow::kSize; ++i) last = *hq->seal(probe(i));
    CHECK(north->open(bytes(last), opened) == Reject::none);
    CHECK(north->open(bytes(first), opened) == Reject::replay);
  }
}

TEST_CASE("a newer session of a sender retires the older one") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto old_hq = mesh.codec("hq");
  mesh.clock.advance(std::chrono::seconds(5));
  auto new_hq = mesh.codec("hq");  // hq restarted
  REQUIRE(old_hq->session() < new_hq->session());
  wire::Opened opened;
  const auto before = *old_hq->seal(probe(1));
  const auto after_restart = *new_hq->seal(probe(2));
  CHECK(north->open(bytes(before), opened) == Reject::none);
  CHECK(north->open(bytes(after_restart), opened) == Reject::none);
  // The new session starts its counter at 1 again, and that is fine.
  CHECK(north->open(bytes(*old_hq->seal(probe(3))), opened) == Reject::stale_session);
  CHECK(north->open(bytes(*new_hq->seal(probe(4))), opened) == Reject::none);
}

TEST_CASE("key rotation: a removed key id is rejected, a kept one accepted") {
  MeshFixture mesh;
  mesh.ring.keys[2] = {};
  crypto::random_bytes(mesh.ring.keys[2]);
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  const auto with_key1 = *hq->seal(probe(1));
  KeyRing switched = mesh.ring;
  switched.current = 2;
  hq->set_key_ring(switched);
  const auto with_key2 = *hq->seal(probe(2));
  CHECK(wire::parse_header(bytes(with_key1))->key_id == 1);
  CHECK(wire::parse_header(bytes(with_key2))->key_id == 2);

  KeyRing only2 = switched;
  only2.keys.erase(1);
  north->set_key_ring(only2);
  wire::Opened opened;
  CHECK(north->open(bytes(with_key1), opened) == Reject::unknown_key_id);
  CHECK(north->open(bytes(with_key2), opened) == Reject::none);
  CHECK(north->open(bytes(*hq->seal(probe(3))), opened) == Reject::none);
}

TEST_CASE("no (key, nonce) pair repeats over 1,000,000 datagrams and three restarts") {
  MeshFixture mesh;
  // The clock stays frozen, so restarts share their start time: only the
  // random boot id keeps their keys apart, the worst case for the scheme.
  std::unordered_set<std::string> seen;
  seen.reserve(1'100'000);
  std::map<std::pair<std::string, wire::Session>, crypto::Key> keys;
  std::set<wire::Session> sessions;
  const std::vector<std::string> senders{"hq", "clinic-north", "clinic-south"};
  const v1::Datagram body = probe(9);
  std::size_t total = 0;
  for (int boot = 0; boot < 4; ++boot) {
    std::vector<std::unique_ptr<wire::Codec>> codecs;
    for (const auto& s : senders) codecs.push_back(mesh.codec(s));
    for (int i = 0; i < 1'000'000 / 12 + 1; ++i) {
      for (std::size_t s = 0; s < codecs.size(); ++s) {
        const auto d = *codecs[s]->seal(body);
        const auto h = *wire::parse_header(bytes(d));
        sessions.insert(h.session);
        auto [it, fresh] = keys.try_emplace(std::pair(h.sender, h.session));
        if (fresh)
          it->second = wire::derive_datagram_key(*mesh.ring.find(h.key_id), h.sender, h.session);
        std::string pair(it->second.begin(), it->second.end());
        pair.append(reinterpret_cast<const char*>(&h.counter), sizeof h.counter);
        REQUIRE(seen.insert(std::move(pair)).second);
        ++total;
      }
    }
  }
  CHECK(total >= 1'000'000);
  CHECK(sessions.size() == 12);
  CHECK(keys.size() == 12);
}

TEST_CASE("origin signatures") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  wire::Opened opened;

  SUBCASE("an event signed by another node than its claimed origin is rejected") {
    v1::Datagram d;
    *d.mutable_events()->add_events() =
        wire::sign_event(mesh.event("hq", 1), mesh.identities.at("clinic-south"));
    CHECK(north->open(bytes(*south->seal(d)), opened) == Reject::bad_origin_signature);
  }
  SUBCASE("an event changed after signing is rejected") {
    v1::Datagram d = mesh.events_body({mesh.event("hq", 1)});
    auto* e = d.mutable_events()->mutable_events(0);
    v1::Event changed;
    REQUIRE(changed.ParseFromString(e->event()));
    changed.set_priority(v1::PRIORITY_DURESS);
    changed.SerializeToString(e->mutable_event());
    CHECK(north->open(bytes(*south->seal(d)), opened) == Reject::bad_origin_signature);
  }
  SUBCASE("one bad event spoils its datagram") {
    v1::Datagram d = mesh.events_body({mesh.event("hq", 1), mesh.event("clinic-south", 1)});
    d.mutable_events()->mutable_events(1)->mutable_signature()->at(3) ^= 1;
    CHECK(north->open(bytes(*south->seal(d)), opened) == Reject::bad_origin_signature);
  }
  SUBCASE("an event from an origin outside the mesh is rejected") {
    auto event = mesh.event("clinic-east", 1);
    v1::Datagram d;
    *d.mutable_events()->add_events() = wire::sign_event(event, crypto::SigningKey::generate());
    CHECK(north->open(bytes(*south->seal(d)), opened) == Reject::unknown_origin);
  }
  SUBCASE("the node's own events come back verified") {
    CHECK(north->open(bytes(*south->seal(mesh.events_body({mesh.event("clinic-north", 3)}))),
                      opened) == Reject::none);
  }
}

TEST_CASE("senders outside the mesh, bodies that do not parse, sizes out of range") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  wire::Opened opened;

  // clinic-east holds the mesh key but is not in north's config.
  wire::Codec east("clinic-east", crypto::SigningKey::generate(), mesh.ring, mesh.peers_of(""),
                   mesh.clock);
  CHECK(north->open(bytes(*east.seal(probe(1))), opened) == Reject::unknown_sender);
  // Nor does a node accept datagrams claiming to be from itself.
  auto north_twin = mesh.codec("clinic-north");
  CHECK(north->open(bytes(*north_twin->seal(probe(1))), opened) == Reject::unknown_sender);

  const wire::Session session{123, 456};
  CHECK(north->open(bytes(test::raw_seal(mesh.ring, "hq", session, 1, "\xff\xff\xff")), opened) ==
        Reject::malformed_body);
  CHECK(north->open(bytes(test::raw_seal(mesh.ring, "hq", session, 2, "")), opened) ==
        Reject::malformed_body);
  v1::Datagram bad_event;
  bad_event.mutable_events()->add_events()->set_event("\x08");
  CHECK(
      north->open(bytes(test::raw_seal(mesh.ring, "hq", session, 3, bad_event.SerializeAsString())),
                  opened) == Reject::malformed_body);

  CHECK(north->open({}, opened) == Reject::bad_size);
  const std::string huge(wire::kMaxDatagram + 1, '\x01');
  CHECK(north->open(bytes(huge), opened) == Reject::bad_size);
  CHECK(north->rejected(Reject::bad_size) == 2);
  CHECK(north->rejected(Reject::malformed_body) == 3);
  CHECK(north->rejected(Reject::unknown_sender) == 2);
}

TEST_CASE("size limits: the largest event fits, a larger body is refused at sealing") {
  MeshFixture mesh;
  const std::string longest_id(wire::kMaxSenderId, 'x');
  mesh.identities.emplace(longest_id, crypto::SigningKey::generate());
  auto sender = mesh.codec(longest_id);
  auto event = mesh.event(longest_id, 1, "");
  event.set_body(std::string(wire::kMaxEventBytes - event.ByteSizeLong() - 3, 'b'));
  REQUIRE(event.ByteSizeLong() == wire::kMaxEventBytes);
  const auto sealed = sender->seal(mesh.events_body({event}));
  REQUIRE(sealed);
  wire::Opened opened;
  CHECK(mesh.codec("hq")->open(bytes(*sealed), opened) == Reject::none);

  CHECK_FALSE(sender->seal(mesh.events_body({event, event})));
}

TEST_CASE("signed events that no store could take are rejected as malformed") {
  // Validly signed by their origin (a buggy or compromised node), but a
  // store lane would fail on them forever: they must stop at the wire.
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  wire::Opened opened;
  auto check = [&](v1::Event e) {
    return north->open(bytes(*south->seal(mesh.events_body({e}))), opened);
  };
  auto e = mesh.event("hq", 1);
  e.set_priority(static_cast<v1::Priority>(70000));
  CHECK(check(e) == Reject::malformed_body);
  e = mesh.event("hq", static_cast<std::uint64_t>(INT64_MAX) + 1);
  CHECK(check(e) == Reject::malformed_body);
  e = mesh.event("hq", 1);
  e.set_title(std::string("nul\0inside", 10));
  CHECK(check(e) == Reject::malformed_body);
  e = mesh.event("hq", 1);
  e.clear_targets();
  CHECK(check(e) == Reject::malformed_body);
  CHECK(check(mesh.event("hq", 1)) == Reject::none);
}

TEST_CASE("receipts speak for their target, receipt acks for their origin") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  wire::Opened opened;
  auto receipts_from = [](const std::string& target) {
    v1::Datagram d;
    auto* r = d.mutable_receipts();
    r->set_origin("hq");
    r->set_target(target);
    auto* delivery = r->add_deliveries();
    delivery->set_seq(7);
    delivery->set_delivered_unix_ms(1'790'000'000'123);
    return d;
  };
  // north's own receipts, signed as it seals them: accepted, also relayed.
  const auto sealed = *north->seal(receipts_from("clinic-north"));
  REQUIRE(hq->open(bytes(sealed), opened) == Reject::none);
  REQUIRE(opened.body.receipts().signature().size() == 64);
  v1::Datagram relayed = opened.body;
  CHECK(hq->open(bytes(*south->seal(relayed)), opened) == Reject::none);

  // south claiming that north delivered: refused.
  CHECK(hq->open(bytes(*south->seal(receipts_from("clinic-north"))), opened) ==
        Reject::bad_origin_signature);
  // A relay that changes the delivery time: refused.
  relayed.mutable_receipts()->mutable_deliveries(0)->set_delivered_unix_ms(1);
  CHECK(hq->open(bytes(*south->seal(relayed)), opened) == Reject::bad_origin_signature);

  // Receipt acks: only the origin can say it recorded them.
  v1::Datagram acks;
  acks.mutable_receipt_acks()->set_origin("hq");
  acks.mutable_receipt_acks()->set_target("clinic-north");
  acks.mutable_receipt_acks()->add_seqs(7);
  CHECK(north->open(bytes(*hq->seal(acks)), opened) == Reject::none);
  CHECK(north->open(bytes(*south->seal(acks)), opened) == Reject::bad_origin_signature);
}

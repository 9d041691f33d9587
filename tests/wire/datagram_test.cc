#include "relay/wire/datagram.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <unordered_set>

#include "relay/wire/bundle.h"
#include "tests/wire/mesh_fixture.h"
#include "tests/wire/raw_seal.h"

using namespace relay;
using relay::test::bytes;
using relay::test::MeshFixture;
using relay::test::probe;
using wire::Reject;
namespace v1 = relaymesh::v1;

TEST_CASE("a sealed datagram opens to the same message, events verified") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  const auto sealed = MeshFixture::seal(
      *hq, "clinic-north", mesh.events_body({mesh.event("hq", 1), mesh.event("clinic-south", 7)}));
  CHECK(sealed.size() <= wire::kMaxDatagram);

  wire::Opened opened;
  REQUIRE(north->open(bytes(sealed), opened) == Reject::none);
  CHECK(opened.for_core);
  CHECK(opened.sender == "hq");
  REQUIRE(opened.events.size() == 2);
  CHECK(opened.events[0].origin() == "hq");
  CHECK(opened.events[0].body() == "fire in the west wing");
  CHECK(opened.events[1].origin() == "clinic-south");
  CHECK(opened.events[1].seq() == 7);
}

TEST_CASE("without a session a body waits and a hello goes out, the session sends it") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  auto first = *hq->seal("clinic-north", probe(1));
  REQUIRE(first.size() == 1);
  CHECK(wire::parse_header(bytes(first[0]))->kind == wire::Kind::hello);
  CHECK(hq->seal("clinic-north", probe(2))->empty());  // a hello at most once a second
  CHECK(hq->peer_state("clinic-north").waiting == 2);
  wire::Opened opened;
  REQUIRE(north->open(bytes(first[0]), opened) == Reject::none);
  CHECK_FALSE(opened.for_core);
  REQUIRE(opened.replies.size() == 1);
  wire::Opened back;
  REQUIRE(hq->open(bytes(opened.replies[0]), back) == Reject::none);
  REQUIRE(back.replies.size() == 2);  // both waiting probes, sealed now
  for (std::uint64_t nonce = 1; nonce <= 2; ++nonce) {
    wire::Opened got;
    REQUIRE(north->open(bytes(back.replies[nonce - 1]), got) == Reject::none);
    CHECK(got.body.probe().nonce() == nonce);
  }
  CHECK(hq->peer_state("clinic-north").waiting == 0);
  CHECK(north->peer_state("hq").session);
}

TEST_CASE("every single-byte change of a sealed datagram is rejected with a reason") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  const auto sealed =
      MeshFixture::seal(*hq, "clinic-north", mesh.events_body({mesh.event("hq", 1)}));
  std::map<Reject, int> reasons;
  wire::Opened opened;
  for (std::size_t at = 0; at < sealed.size(); ++at) {
    for (int delta = 1; delta < 256; ++delta) {
      std::string tampered = sealed;
      tampered[at] = static_cast<char>(tampered[at] ^ delta);
      const Reject r = north->open(bytes(tampered), opened);
      REQUIRE_MESSAGE(r != Reject::none, "byte ", at, " xor ", delta, " was accepted");
      ++reasons[r];
    }
  }
  // Changes reach several checks, not only the tag.
  CHECK(reasons[Reject::bad_tag] > 0);
  CHECK(reasons[Reject::unknown_version] >= 255);
  CHECK(reasons[Reject::unknown_key_id] > 0);
  CHECK(reasons[Reject::unknown_session] > 0);
  CHECK(reasons[Reject::stale_session] > 0);
  CHECK(reasons[Reject::bad_size] > 0);
  // None of the forgeries disturbed the receiver: the original still opens once.
  CHECK(north->open(bytes(sealed), opened) == Reject::none);
  CHECK(north->open(bytes(sealed), opened) == Reject::replay);
}

TEST_CASE("replay protection") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  wire::Opened opened;

  SUBCASE("a replayed datagram is rejected") {
    const auto d = MeshFixture::seal(*hq, "clinic-north", probe(1));
    CHECK(north->open(bytes(d), opened) == Reject::none);
    CHECK(north->open(bytes(d), opened) == Reject::replay);
  }
  SUBCASE("reordering inside the window is accepted once each") {
    std::vector<std::string> sent;
    for (int i = 0; i < 500; ++i) sent.push_back(MeshFixture::seal(*hq, "clinic-north", probe(i)));
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      CHECK(north->open(bytes(*it), opened) == Reject::none);
    }
    for (const auto& d : sent) CHECK(north->open(bytes(d), opened) == Reject::replay);
  }
  SUBCASE("a counter older than the window is rejected") {
    const auto first = MeshFixture::seal(*hq, "clinic-north", probe(0));
    std::string last;
    for (std::uint64_t i = 0; i < wire::ReplayWindow::kSize; ++i)
      last = MeshFixture::seal(*hq, "clinic-north", probe(i));
    CHECK(north->open(bytes(last), opened) == Reject::none);
    CHECK(north->open(bytes(first), opened) == Reject::replay);
  }
  SUBCASE("a capture never opens again once the receiver restarted") {
    const auto captured = MeshFixture::seal(*hq, "clinic-north", probe(7));
    auto restarted = mesh.codec("clinic-north", 2);
    CHECK(restarted->open(bytes(captured), opened) == Reject::stale_session);
    CHECK_FALSE(restarted->peer_state("hq").session);
    // Its answer is a hello of the new session, which only the live hq can use.
    REQUIRE(opened.replies.size() == 1);
    CHECK(wire::parse_header(bytes(opened.replies[0]))->kind == wire::Kind::hello);
  }
}

TEST_CASE("a newer session of a sender retires the older one") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto old_hq = mesh.codec("hq", 5);
  MeshFixture::connect(*old_hq, *north);
  const auto before = MeshFixture::seal(*old_hq, "clinic-north", probe(1));
  auto new_hq = mesh.codec("hq", 6);  // hq restarted
  MeshFixture::connect(*new_hq, *north);
  wire::Opened opened;
  CHECK(north->open(bytes(before), opened) == Reject::unknown_session);
  CHECK(north->peer_state("hq").boot == 6);
  CHECK(north->open(bytes(MeshFixture::seal(*new_hq, "clinic-north", probe(2))), opened) ==
        Reject::none);
}

TEST_CASE("a peer whose boot counter went back (state lost) is taken once it proves itself") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto hq = mesh.codec("hq", 41);
  MeshFixture::connect(*hq, *north);
  auto rebuilt = mesh.codec("hq", 1);  // a new server: its counter starts again
  MeshFixture::connect(*rebuilt, *north);
  CHECK(north->peer_state("hq").boot == 1);
  wire::Opened opened;
  CHECK(north->open(bytes(MeshFixture::seal(*rebuilt, "clinic-north", probe(3))), opened) ==
        Reject::none);
  // And what north seals now goes to the live one.
  CHECK(rebuilt->open(bytes(MeshFixture::seal(*north, "hq", probe(4))), opened) == Reject::none);
}

TEST_CASE("a mesh-key holder cannot forge, mute or outrank another node's session") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq", 3);
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  // The forger holds the mesh key ring and claims to be hq, far in the future.
  const auto forger_key = crypto::SigningKey::generate();
  wire::Codec forger("hq", forger_key, MeshFixture::keys_of(forger_key), mesh.ring,
                     mesh.peers_of("hq"), std::uint64_t{1} << 60, mesh.clock);
  auto forged = *forger.seal("clinic-north", probe(1));
  REQUIRE(forged.size() == 1);
  wire::Opened opened;
  CHECK(north->open(bytes(forged[0]), opened) == Reject::bad_credential);
  CHECK(north->peer_state("hq").boot == 3);
  // A real credential of hq under a header that is not its session: refused too.
  auto real_hello = *mesh.codec("hq", 9)->seal("clinic-north", probe(1));
  std::string relabelled = real_hello[0];
  relabelled[6] ^= 0x40;  // the boot counter in the header
  CHECK(north->open(bytes(relabelled), opened) != Reject::none);
  // hq's own session is untouched.
  CHECK(north->open(bytes(MeshFixture::seal(*hq, "clinic-north", probe(2))), opened) ==
        Reject::none);
}

TEST_CASE("key rotation: a removed key id is rejected and named, a peer's key is answered in") {
  MeshFixture mesh;
  mesh.ring.keys[2] = {};
  crypto::random_bytes(mesh.ring.keys[2]);
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  const auto with_key1 = MeshFixture::seal(*hq, "clinic-north", probe(1));
  KeyRing switched = mesh.ring;
  switched.current = 2;
  north->set_key_ring(switched);
  // hq still seals with key 1: north answers it with key 1 while it holds it.
  wire::Opened opened;
  REQUIRE(north->open(bytes(with_key1), opened) == Reject::none);
  CHECK(wire::parse_header(bytes(MeshFixture::seal(*north, "hq", probe(2))))->key_id == 1);
  hq->set_key_ring(switched);
  const auto with_key2 = MeshFixture::seal(*hq, "clinic-north", probe(3));
  CHECK(wire::parse_header(bytes(with_key2))->key_id == 1);  // hq answers north's key
  KeyRing only2 = switched;
  only2.keys.erase(1);
  north->set_key_ring(only2);
  CHECK(north->open(bytes(with_key2), opened) == Reject::unknown_key_id);
  CHECK(north->peer_state("hq").missing_key == 1);
  hq->set_key_ring(only2);
  CHECK(north->open(bytes(MeshFixture::seal(*hq, "clinic-north", probe(4))), opened) ==
        Reject::none);
  CHECK(north->peer_state("hq").key_id == 2);
  CHECK(north->peer_state("hq").missing_key == 0);
}

TEST_CASE("no nonce repeats under a key over 1,000,000 datagrams and four restarts") {
  MeshFixture mesh;
  // Every restart keeps the same boot counter (the state directory lost
  // each time): only the random boot id and ephemeral keys keep the keys
  // of one boot apart from the next, the worst case for the scheme.
  const std::vector<std::string> nodes{"hq", "clinic-north", "clinic-south"};
  std::set<std::tuple<std::string, std::uint64_t, std::uint64_t>> seen;  // sender, boot id, counter
  std::set<std::pair<std::string, std::uint64_t>> boots;
  std::size_t total = 0;
  for (int boot = 0; boot < 4; ++boot) {
    std::map<std::string, std::unique_ptr<wire::Codec>> codecs;
    for (const auto& n : nodes) codecs[n] = mesh.codec(n, 7);
    for (std::size_t a = 0; a < nodes.size(); ++a) {
      for (std::size_t b = a + 1; b < nodes.size(); ++b)
        MeshFixture::connect(*codecs[nodes[a]], *codecs[nodes[b]]);
    }
    for (int i = 0; i < 1'000'000 / 24 + 1; ++i) {
      for (const auto& from : nodes) {
        for (const auto& to : nodes) {
          if (from == to) continue;
          const auto sealed = codecs[from]->seal(to, probe(9)).value();
          for (const auto& d : sealed) {
            const auto h = *wire::parse_header(bytes(d));
            boots.insert({h.sender, h.boot_id});
            REQUIRE(seen.insert({h.sender, h.boot_id, h.counter}).second);
            ++total;
          }
        }
      }
    }
  }
  // A counter is never reused within a boot, whichever key seals it, and
  // every key belongs to one boot (its boot id is in every key's salt).
  CHECK(total >= 1'000'000);
  CHECK(boots.size() == 12);
}

TEST_CASE("origin signatures") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*south, *north);
  wire::Opened opened;
  auto open = [&](const v1::Datagram& d) {
    return north->open(bytes(MeshFixture::seal(*south, "clinic-north", d)), opened);
  };

  SUBCASE("an event signed by another node than its claimed origin is rejected") {
    v1::Datagram d;
    *d.mutable_events()->add_events() =
        wire::sign_event(mesh.event("hq", 1), mesh.identities.at("clinic-south"));
    CHECK(open(d) == Reject::bad_origin_signature);
  }
  SUBCASE("an event changed after signing is rejected") {
    v1::Datagram d = mesh.events_body({mesh.event("hq", 1)});
    auto* e = d.mutable_events()->mutable_events(0);
    v1::Event changed;
    REQUIRE(changed.ParseFromString(e->event()));
    changed.set_priority(v1::PRIORITY_DURESS);
    changed.SerializeToString(e->mutable_event());
    CHECK(open(d) == Reject::bad_origin_signature);
  }
  SUBCASE("one bad event spoils its datagram") {
    v1::Datagram d = mesh.events_body({mesh.event("hq", 1), mesh.event("clinic-south", 1)});
    d.mutable_events()->mutable_events(1)->mutable_signature()->at(3) ^= 1;
    CHECK(open(d) == Reject::bad_origin_signature);
  }
  SUBCASE("an event from an origin outside the mesh is rejected") {
    auto event = mesh.event("clinic-east", 1);
    v1::Datagram d;
    *d.mutable_events()->add_events() = wire::sign_event(event, crypto::SigningKey::generate());
    CHECK(open(d) == Reject::unknown_origin);
  }
  SUBCASE("the node's own events come back verified") {
    CHECK(open(mesh.events_body({mesh.event("clinic-north", 3)})) == Reject::none);
  }
}

TEST_CASE("a retired identity key verifies only the seqs it signed before it was retired") {
  MeshFixture mesh;
  const auto old_key = mesh.identities.at("hq");
  const auto new_key = crypto::SigningKey::generate();
  auto peers = mesh.peers_of("clinic-north");
  peers.erase("hq");
  peers.emplace("hq", wire::IdentityKeys{new_key.verify_key(), {{old_key.verify_key(), 100}}});
  wire::Codec north("clinic-north", mesh.identities.at("clinic-north"),
                    MeshFixture::keys_of(mesh.identities.at("clinic-north")), mesh.ring, peers, 1,
                    mesh.clock);
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*south, north);
  wire::Opened opened;
  auto open = [&](const v1::Event& e, const crypto::SigningKey& key) {
    v1::Datagram d;
    *d.mutable_events()->add_events() = wire::sign_event(e, key);
    return north.open(bytes(MeshFixture::seal(*south, "clinic-north", d)), opened);
  };
  CHECK(open(mesh.event("hq", 100), old_key) == Reject::none);  // signed before the rotation
  CHECK(open(mesh.event("hq", 101), old_key) == Reject::bad_origin_signature);  // a leaked key
  CHECK(open(mesh.event("hq", 101), new_key) == Reject::none);
  CHECK(open(mesh.event("hq", 5), new_key) == Reject::none);

  // Bundles alike: a root signed by the old key vouches only for old seqs.
  std::vector<v1::Event> late{mesh.event("hq", 99), mesh.event("hq", 101)};
  v1::Datagram bundle;
  for (auto& e : wire::sign_bundle(late, old_key)) *bundle.mutable_events()->add_events() = e;
  CHECK(north.open(bytes(MeshFixture::seal(*south, "clinic-north", bundle)), opened) ==
        Reject::bad_origin_signature);
}

TEST_CASE("an indirect probe answer needs the probed node's own signature") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*hq, *north);
  MeshFixture::connect(*south, *north);
  MeshFixture::connect(*hq, *south);
  wire::Opened opened;
  // south answers north's relay for hq's probe: sealed to north, signed for hq.
  v1::Datagram answer;
  auto* ack = answer.mutable_probe_ack();
  ack->set_nonce(77);
  ack->set_target("clinic-south");
  ack->set_requester("hq");
  REQUIRE(north->open(bytes(MeshFixture::seal(*south, "clinic-north", answer)), opened) ==
          Reject::none);
  REQUIRE(opened.body.probe_ack().signature().size() == 64);
  const v1::Datagram relayed = opened.body;
  CHECK(hq->open(bytes(MeshFixture::seal(*north, "hq", relayed)), opened) == Reject::none);
  // north vouching for south by itself: refused.
  v1::Datagram made_up;
  made_up.mutable_probe_ack()->set_nonce(78);
  made_up.mutable_probe_ack()->set_target("clinic-south");
  made_up.mutable_probe_ack()->set_requester("hq");
  CHECK(hq->open(bytes(MeshFixture::seal(*north, "hq", made_up)), opened) ==
        Reject::bad_origin_signature);
  // A signed answer for someone else is no proof for this node.
  v1::Datagram for_other = relayed;
  for_other.mutable_probe_ack()->set_requester("clinic-north");
  CHECK(hq->open(bytes(MeshFixture::seal(*north, "hq", for_other)), opened) ==
        Reject::bad_origin_signature);
}

TEST_CASE("senders outside the mesh, bodies that do not parse, sizes out of range") {
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto hq = mesh.codec("hq");
  MeshFixture::connect(*hq, *north);
  wire::Opened opened;

  // clinic-east holds the mesh key but is not in north's config.
  const auto east_key = crypto::SigningKey::generate();
  wire::Codec east("clinic-east", east_key, MeshFixture::keys_of(east_key), mesh.ring,
                   mesh.peers_of(""), 1, mesh.clock);
  CHECK(north->open(bytes(east.seal("clinic-north", probe(1))->at(0)), opened) ==
        Reject::unknown_sender);
  // Nor does a node accept datagrams claiming to be from itself.
  auto north_twin = mesh.codec("clinic-north");
  CHECK(north->open(bytes(north_twin->seal("hq", probe(1))->at(0)), opened) ==
        Reject::unknown_sender);

  const std::uint64_t base = std::uint64_t{1} << 40;  // counters hq itself never reached
  CHECK(north->open(bytes(test::raw_seal(mesh.ring, *hq, *north, base + 1, "\xff\xff\xff")),
                    opened) == Reject::malformed_body);
  CHECK(north->open(bytes(test::raw_seal(mesh.ring, *hq, *north, base + 2, "")), opened) ==
        Reject::malformed_body);
  v1::Datagram bad_event;
  bad_event.mutable_events()->add_events()->set_event("\x08");
  CHECK(north->open(
            bytes(test::raw_seal(mesh.ring, *hq, *north, base + 3, bad_event.SerializeAsString())),
            opened) == Reject::malformed_body);
  v1::Datagram hello_inside;
  hello_inside.mutable_hello();
  CHECK(north->open(bytes(test::raw_seal(mesh.ring, *hq, *north, base + 4,
                                         hello_inside.SerializeAsString())),
                    opened) == Reject::malformed_body);

  CHECK(north->open({}, opened) == Reject::bad_size);
  const std::string huge(wire::kMaxDatagram + 1, '\x02');
  CHECK(north->open(bytes(huge), opened) == Reject::bad_size);
  CHECK(north->rejected(Reject::bad_size) == 2);
  CHECK(north->rejected(Reject::malformed_body) == 4);
  CHECK(north->rejected(Reject::unknown_sender) == 2);
}

TEST_CASE("size limits: the largest event fits, a larger body is refused at sealing") {
  MeshFixture mesh;
  const std::string longest_id(wire::kMaxSenderId, 'x');
  mesh.identities.emplace(longest_id, crypto::SigningKey::generate());
  auto sender = mesh.codec(longest_id);
  auto hq = mesh.codec("hq");
  MeshFixture::connect(*sender, *hq);
  auto event = mesh.event(longest_id, 1, "");
  event.set_body(std::string(wire::kMaxEventBytes - event.ByteSizeLong() - 3, 'b'));
  REQUIRE(event.ByteSizeLong() == wire::kMaxEventBytes);
  const auto sealed = MeshFixture::seal(*sender, "hq", mesh.events_body({event}));
  wire::Opened opened;
  CHECK(hq->open(bytes(sealed), opened) == Reject::none);
  CHECK_FALSE(sender->seal("hq", mesh.events_body({event, event})));
}

TEST_CASE("signed events that no store could take are rejected as malformed") {
  // Validly signed by their origin (a buggy or compromised node), but a
  // store lane would fail on them forever: they must stop at the wire.
  MeshFixture mesh;
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*south, *north);
  wire::Opened opened;
  auto check = [&](v1::Event e) {
    return north->open(bytes(MeshFixture::seal(*south, "clinic-north", mesh.events_body({e}))),
                       opened);
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
  e = mesh.event("hq", 1);
  e.set_type("relay.supervision");  // the relay's own
  CHECK(check(e) == Reject::malformed_body);
  e = mesh.event("hq", 1);
  e.set_data(R"({"a": "\u0000"})");  // no message_queue could take it
  CHECK(check(e) == Reject::malformed_body);
  CHECK(check(mesh.event("hq", 1)) == Reject::none);
}

TEST_CASE("receipts speak for their target, receipt acks for their origin") {
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  auto south = mesh.codec("clinic-south");
  MeshFixture::connect(*north, *hq);
  MeshFixture::connect(*south, *hq);
  MeshFixture::connect(*south, *north);
  wire::Opened opened;
  auto receipts_from = [](const std::string& target) {
    v1::Datagram d;
    auto* r = d.mutable_receipts();
    r->set_origin("hq");
    r->set_target(target);
    auto* delivery = r->add_deliveries();
    delivery->set_seq(7);
    delivery->set_delivered_unix_ms(1'790'000'000'123);
    delivery->set_outcome(v1::OUTCOME_EXPIRED);
    return d;
  };
  // north's own receipts, signed as it seals them: accepted, also relayed.
  REQUIRE(hq->open(bytes(MeshFixture::seal(*north, "hq", receipts_from("clinic-north"))), opened) ==
          Reject::none);
  REQUIRE(opened.body.receipts().signature().size() == 64);
  v1::Datagram relayed = opened.body;
  CHECK(hq->open(bytes(MeshFixture::seal(*south, "hq", relayed)), opened) == Reject::none);

  // south claiming that north delivered: refused.
  CHECK(hq->open(bytes(MeshFixture::seal(*south, "hq", receipts_from("clinic-north"))), opened) ==
        Reject::bad_origin_signature);
  // A relay that changes the outcome: refused.
  relayed.mutable_receipts()->mutable_deliveries(0)->set_outcome(v1::OUTCOME_DELIVERED);
  CHECK(hq->open(bytes(MeshFixture::seal(*south, "hq", relayed)), opened) ==
        Reject::bad_origin_signature);

  // Receipt acks: only the origin can say it recorded them.
  v1::Datagram acks;
  acks.mutable_receipt_acks()->set_origin("hq");
  acks.mutable_receipt_acks()->set_target("clinic-north");
  acks.mutable_receipt_acks()->add_seqs(7);
  CHECK(north->open(bytes(MeshFixture::seal(*hq, "clinic-north", acks)), opened) == Reject::none);
  CHECK(north->open(bytes(MeshFixture::seal(*south, "clinic-north", acks)), opened) ==
        Reject::bad_origin_signature);
}

TEST_CASE(
    "a hello's view and key id are its sender's word: tampered, hidden or replayed, refused") {
  MeshFixture mesh;
  mesh.ring.keys[2] = {};
  crypto::random_bytes(mesh.ring.keys[2]);  // both hold key 2; they seal with key 1
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  auto view_of = [](std::string self, std::string self_group, std::string peer,
                    std::string peer_group) {
    v1::PairView v;
    v.mutable_self()->set_id(std::move(self));
    v.mutable_self()->add_groups(std::move(self_group));
    v.mutable_peer()->set_id(std::move(peer));
    v.mutable_peer()->add_groups(std::move(peer_group));
    return v;
  };
  hq->set_views({{"clinic-north", view_of("hq", "hq", "clinic-north", "clinics")}});
  north->set_views({{"hq", view_of("clinic-north", "clinics", "hq", "hq")}});
  const auto sealed = hq->seal("clinic-north", probe(1)).value();
  REQUIRE(sealed.size() == 1);
  const auto header = *wire::parse_header(bytes(sealed[0]));
  REQUIRE(header.kind == wire::Kind::hello);
  const v1::Datagram body = test::open_hello_raw(mesh.ring, sealed[0]);
  REQUIRE(body.hello().has_view());
  auto reseal = [&](const v1::Datagram& d, std::uint32_t key_id, std::uint64_t counter) {
    KeyRing ring = mesh.ring;
    ring.current = key_id;
    return test::raw_seal_hello(ring, "hq", header.boot, header.boot_id, counter,
                                d.SerializeAsString());
  };
  wire::Opened opened;
  // A faked drift: hq made to say it is a clinic.
  v1::Datagram faked = body;
  faked.mutable_hello()->mutable_view()->mutable_self()->set_groups(0, "clinics");
  CHECK(north->open(bytes(reseal(faked, 1, header.counter)), opened) == Reject::bad_credential);
  // A hidden one: the view left out.
  v1::Datagram hidden = body;
  hidden.mutable_hello()->clear_view();
  CHECK(north->open(bytes(reseal(hidden, 1, header.counter)), opened) == Reject::bad_credential);
  // Another key id in the header, or another counter: the signature was for this datagram.
  CHECK(north->open(bytes(reseal(body, 2, header.counter)), opened) == Reject::bad_credential);
  CHECK(north->open(bytes(reseal(body, 1, header.counter + 1)), opened) == Reject::bad_credential);
  CHECK(north->peer_state("hq").key_id == 0);
  CHECK(north->peer_state("hq").drift.empty());
  CHECK_FALSE(north->peer_state("hq").session);

  // The real one, as it was sealed: accepted, and hq's real view agrees.
  REQUIRE(north->open(bytes(sealed[0]), opened) == Reject::none);
  CHECK(north->peer_state("hq").key_id == 1);
  CHECK(north->peer_state("hq").drift.empty());
  // Replayed, it is refused before any Ed25519 check.
  const auto checks = north->signature_checks();
  CHECK(north->open(bytes(sealed[0]), opened) == Reject::replay);
  CHECK(north->signature_checks() == checks);
}

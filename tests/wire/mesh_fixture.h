#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/clock.h"
#include "relay/wire/datagram.h"

namespace relay::test {

namespace v1 = relaymesh::v1;

/// The bytes of a sealed datagram, as Codec::open takes them.
inline crypto::ByteView bytes(const std::string& s) {
  return crypto::as_bytes(s);
}

/// A direct probe: the smallest body there is.
inline v1::Datagram probe(std::uint64_t nonce) {
  v1::Datagram d;
  d.mutable_probe()->set_nonce(nonce);
  return d;
}

/// Three nodes sharing a key ring, each with its own identity key.
struct MeshFixture {
  ManualClock clock;
  KeyRing ring = generate_key_ring();
  std::map<std::string, crypto::SigningKey> identities{
      {"hq", crypto::SigningKey::generate()},
      {"clinic-north", crypto::SigningKey::generate()},
      {"clinic-south", crypto::SigningKey::generate()}};

  static wire::IdentityKeys keys_of(const crypto::SigningKey& key) {
    return wire::IdentityKeys{key.verify_key(), {}};
  }

  /// Every node but `self`, with its public key.
  std::map<std::string, wire::IdentityKeys> peers_of(const std::string& self) const {
    std::map<std::string, wire::IdentityKeys> peers;
    for (const auto& [id, key] : identities) {
      if (id != self) peers.emplace(id, keys_of(key));
    }
    return peers;
  }

  std::unique_ptr<wire::Codec> codec(const std::string& self, std::uint64_t boot = 1) const {
    return std::make_unique<wire::Codec>(self, identities.at(self), keys_of(identities.at(self)),
                                         ring, peers_of(self), boot, clock);
  }

  /// Test, fuzz and benchmark code alike: a broken expectation throws.
  static void expect(bool ok, const char* what) {
    if (!ok) throw std::logic_error(std::string("mesh fixture: ") + what);
  }

  /// Makes a session between two codecs, as their first datagrams would:
  /// a's hello, b's answer. Both can seal to each other afterwards.
  static void connect(wire::Codec& a, wire::Codec& b) {
    const std::string& b_id = b.session().credential.node();
    v1::Datagram probe;
    probe.mutable_probe()->set_nonce(1);
    auto hello = a.seal(b_id, probe).value();  // a hello; the probe waits for the session
    expect(hello.size() == 1, "no hello");
    wire::Opened opened;
    expect(b.open(crypto::as_bytes(hello[0]), opened) == wire::Reject::none, "hello refused");
    if (wire::parse_header(crypto::as_bytes(hello[0]))->kind == wire::Kind::pair)
      return;                                                 // had one
    expect(!opened.replies.empty(), "no answer to a hello");  // b's own hello
    auto replies = opened.replies;
    for (const auto& reply : replies) {
      wire::Opened back;
      expect(a.open(crypto::as_bytes(reply), back) == wire::Reject::none, "answer refused");
      // a's waiting probe, sealed now: b takes it, which confirms a's session.
      for (const auto& waiting : back.replies) {
        if (wire::parse_header(crypto::as_bytes(waiting))->kind != wire::Kind::pair) continue;
        wire::Opened probe_opened;
        expect(b.open(crypto::as_bytes(waiting), probe_opened) == wire::Reject::none,
               "first pairwise datagram refused");
      }
    }
  }

  /// Seals one datagram from `from` to `to`, which must have a session.
  static std::string seal(wire::Codec& from, const std::string& to, const v1::Datagram& body) {
    auto out = from.seal(to, body).value_or(std::vector<std::string>{});
    expect(out.size() == 1, "no session to seal to");
    expect(wire::parse_header(crypto::as_bytes(out[0]))->kind == wire::Kind::pair, "not pairwise");
    return out[0];
  }

  v1::Event event(const std::string& origin, std::uint64_t seq,
                  std::string body = "fire in the west wing") const {
    v1::Event e;
    e.set_origin(origin);
    e.set_seq(seq);
    e.set_kind(v1::KIND_NOTIFICATION);
    e.set_priority(v1::PRIORITY_NORMAL);
    e.set_created_unix_ms(1'790'000'000'000);
    e.add_targets("all");
    e.set_title("Fire");
    e.set_body(std::move(body));
    return e;
  }

  /// A datagram body carrying the given events, signed by their origins.
  v1::Datagram events_body(const std::vector<v1::Event>& events) const {
    v1::Datagram d;
    for (const auto& e : events) {
      *d.mutable_events()->add_events() = wire::sign_event(e, identities.at(e.origin()));
    }
    return d;
  }
};

}  // namespace relay::test

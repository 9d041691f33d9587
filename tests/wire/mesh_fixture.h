#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "relay/wire/datagram.h"

namespace relay::test {

namespace v1 = relaymesh::v1;

/// Three nodes sharing a key ring, each with its own identity key.
struct MeshFixture {
  ManualClock clock;
  KeyRing ring = generate_key_ring();
  std::map<std::string, crypto::SigningKey> identities{
      {"hq", crypto::SigningKey::generate()},
      {"clinic-north", crypto::SigningKey::generate()},
      {"clinic-south", crypto::SigningKey::generate()}};

  /// Every node but `self`, with its public key.
  std::map<std::string, crypto::VerifyKey> peers_of(const std::string& self) const {
    std::map<std::string, crypto::VerifyKey> peers;
    for (const auto& [id, key] : identities) {
      if (id != self) peers.emplace(id, key.verify_key());
    }
    return peers;
  }

  std::unique_ptr<wire::Codec> codec(const std::string& self) const {
    return std::make_unique<wire::Codec>(self, identities.at(self), ring, peers_of(self), clock);
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

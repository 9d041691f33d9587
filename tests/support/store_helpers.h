#pragma once

// Small builders shared by the tests of the PostgreSQL store.
#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "common/config.h"
#include "relay/mesh/store.h"
#include "relay/wire/datagram.h"

namespace relay::test {

namespace v1 = relaymesh::v1;

/// A config for node "hq" with two clinics, as claims check targets against it.
inline Config hq_config() {
  Config c;
  c.node.id = "hq";
  c.node.groups = {"hq"};
  c.peers.push_back({"clinic-north", {"192.0.2.11", 7400}, {}, {"clinics"}, {}, {}});
  c.peers.push_back({"clinic-south", {"192.0.2.12", 7400}, {}, {"clinics"}, {}, {}});
  return c;
}

inline mesh::EventPtr event_of(const std::string& origin, std::uint64_t seq,
                               const crypto::SigningKey& key,
                               v1::Priority priority = v1::PRIORITY_NORMAL) {
  v1::Event e;
  e.set_origin(origin);
  e.set_seq(seq);
  e.set_kind(v1::KIND_NOTIFICATION);
  e.set_priority(priority);
  e.add_targets("all");
  e.set_title("Fire \"west\" wing");
  e.set_body("Evacuate via the east stairs\n");
  e.set_data(R"({"floor": 2, "rooms": ["2.01", "2.02"]})");
  return mesh::make_event(wire::sign_event(e, key), e);
}

inline mesh::StoreBatch batch_of(std::vector<mesh::EventPtr> events, bool deliver,
                                 std::uint64_t ticket = 1) {
  mesh::StoreBatch b;
  b.ticket = ticket;
  for (auto& e : events) b.events.push_back({std::move(e), deliver});
  return b;
}

inline std::int64_t count(pqxx::connection& conn, const std::string& sql) {
  pqxx::read_transaction tx(conn);
  return tx.exec1(sql)[0].as<std::int64_t>();
}

}  // namespace relay::test

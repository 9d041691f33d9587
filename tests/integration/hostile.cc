// Sends hostile datagrams at a running relayd, as a holder of the mesh key
// ring who is not the node it claims to be: random bytes; hellos claiming to
// be PEER_ID with a session far in the future, signed by a key that is not
// PEER_ID's; pairwise datagrams of sessions the target never verified; a
// replayed hello.
//   hostile MESH_KEYS TARGET_PORT TARGET_ID PEER_ID COUNT
#include <asio.hpp>

#include <cstdio>
#include <map>
#include <random>

#include "common/keys.h"
#include "relay/wire/datagram.h"

using namespace relay;

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: hostile MESH_KEYS TARGET_PORT TARGET_ID PEER_ID COUNT\n");
    return 2;
  }
  const KeyRing ring = load_key_ring(argv[1]);
  const auto port = static_cast<unsigned short>(std::atoi(argv[2]));
  const std::string target_id = argv[3];
  const std::string peer = argv[4];
  const int count = std::atoi(argv[5]);
  asio::io_context io;
  asio::ip::udp::socket socket(io, asio::ip::udp::v4());
  const asio::ip::udp::endpoint target(asio::ip::make_address("127.0.0.1"), port);
  auto send = [&](const std::string& d) { socket.send_to(asio::buffer(d), target); };

  std::mt19937_64 rng(7);
  for (int i = 0; i < count; ++i) {
    std::string noise(rng() % 1400, '\0');
    for (auto& c : noise) c = static_cast<char>(rng());
    send(noise);
  }

  // The mesh key opens the envelope, but the credential is not PEER_ID's:
  // a session claimed far in the future must change nothing at the target.
  static const SystemClock clock;
  const auto fake = crypto::SigningKey::generate();
  std::map<std::string, wire::IdentityKeys> peers;
  peers.emplace(target_id, wire::IdentityKeys{fake.verify_key(), {}});
  wire::Codec forger(peer, fake, wire::IdentityKeys{fake.verify_key(), {}}, ring, std::move(peers),
                     std::uint64_t{1} << 60, clock);
  relaymesh::v1::Datagram probe;
  probe.mutable_probe()->set_nonce(42);
  const auto hello = forger.greet();
  for (int i = 0; i < 100; ++i) send(hello.at(0).second);  // and replayed
  // A pairwise datagram of a session the target never verified.
  std::string unverified = hello.at(0).second;
  unverified[1] = static_cast<char>(wire::Kind::pair);
  send(unverified);
  std::printf("sent %d random datagrams, 100 forged far-future hellos as %s, 1 unverified pair\n",
              count, peer.c_str());
  return 0;
}

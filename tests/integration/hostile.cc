// Sends hostile datagrams at a running relayd: random bytes, an event whose
// origin signature is forged (sealed with the real mesh key, as a real peer
// id), and a replay of a datagram it sealed itself.
//   hostile MESH_KEYS TARGET_PORT PEER_ID COUNT
#include <asio.hpp>

#include <cstdio>
#include <random>

#include "common/keys.h"
#include "relay/wire/datagram.h"

using namespace relay;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: hostile MESH_KEYS TARGET_PORT PEER_ID COUNT\n");
    return 2;
  }
  const KeyRing ring = load_key_ring(argv[1]);
  const auto port = static_cast<unsigned short>(std::atoi(argv[2]));
  const std::string peer = argv[3];
  const int count = std::atoi(argv[4]);
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

  // A key holder pretending that hq raised an alarm: the mesh key opens the
  // envelope, but the origin signature is not hq's.
  static const SystemClock clock;
  wire::Codec forger(peer, crypto::SigningKey::generate(), ring, {}, clock);
  relaymesh::v1::Event e;
  e.set_origin("hq");
  e.set_seq(1'000'000);
  e.set_kind(relaymesh::v1::KIND_DURESS);
  e.set_priority(relaymesh::v1::PRIORITY_DURESS);
  e.add_targets("all");
  e.set_title("FORGED");
  relaymesh::v1::Datagram forged;
  *forged.mutable_events()->add_events() = wire::sign_event(e, crypto::SigningKey::generate());
  send(*forger.seal(forged));

  // A capture sent twice: the second copy is a replay.
  relaymesh::v1::Datagram probe;
  probe.mutable_probe()->set_nonce(42);
  const auto captured = *forger.seal(probe);
  send(captured);
  send(captured);
  std::printf("sent %d random datagrams, 1 forged-origin event, 1 datagram twice\n", count);
  return 0;
}

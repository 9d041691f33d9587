// relayctl keygen and check-config.
#include <cstdio>
#include <iostream>

#include "common/keys.h"
#include "relay/relayctl/relayctl.h"

namespace relay::ctl {
namespace {

std::string join(const std::vector<std::string>& items, const char* empty) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? empty : text;
}

}  // namespace

int keygen(const std::string& out, bool mesh) {
  if (mesh) {
    const KeyRing ring = generate_key_ring();
    write_secret_file(out, key_ring_to_toml(ring));
    std::cerr << "wrote mesh key ring " << out << " (key id " << ring.current
              << ", mode 0600); copy it to every node of the mesh\n";
    return kOk;
  }
  const auto key = crypto::SigningKey::generate();
  write_secret_file(out, key.to_pem());
  std::cerr << "wrote node identity key " << out
            << " (mode 0600); put this line in the [[peer]] entry for this node on every other "
               "node:\n";
  std::cout << "public_key = \"" << format_public_key(key.public_key()) << "\"\n";
  return kOk;
}

int check_config(const std::string& file) {
  const Config config = load_config(file);
  const NodeKeys keys = load_node_keys(config);
  std::printf("%s: OK\n", file.c_str());
  std::printf("  node      %s (groups: %s), listening on %s\n", config.node.id.c_str(),
              join(config.node.groups, "none").c_str(), config.node.listen.to_string().c_str());
  std::printf("  identity  %s\n            public_key = \"%s\"\n", config.node.identity_key.c_str(),
              format_public_key(keys.identity.public_key()).c_str());
  std::printf("  mesh keys %s: %zu key(s), sending with key id %u\n", config.mesh.keys.c_str(),
              keys.ring.keys.size(), keys.ring.current);
  std::printf("  peers     %zu\n", config.peers.size());
  for (const auto& peer : config.peers) {
    std::printf("            %-32s %-24s groups: %s\n", peer.id.c_str(),
                peer.address.to_string().c_str(), join(peer.groups, "none").c_str());
  }
  std::vector<std::string> kicks;
  for (const auto& ep : config.delivery.kick) kicks.push_back(ep.to_string());
  std::printf("  store     %s, polling every %lld ms, keeping the log %lld days\n",
              config.store.dsn.c_str(), static_cast<long long>(config.store.poll_interval.count()),
              static_cast<long long>(config.store.retention.count() / 86'400'000));
  std::printf("  kick      listening on %s; waking consumers at: %s\n",
              config.kick.listen.to_string().c_str(), join(kicks, "none").c_str());
  std::printf("  duress    default targets: %s\n", join(config.duress.targets, "none").c_str());
  std::printf("  supervision timeout %lld s\n",
              static_cast<long long>(config.mesh.supervision_timeout.count() / 1000));
  std::printf("  status    http://%s/\n", config.status.listen.to_string().c_str());
  return kOk;
}

}  // namespace relay::ctl

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

int keygen(const std::string& out, bool mesh, bool json) {
  if (mesh) {
    const KeyRing ring = generate_key_ring();
    write_secret_file(out, key_ring_to_toml(ring));
    if (json) {
      print_json({{"ok", true}, {"file", out}, {"key_id", ring.current}});
      return kOk;
    }
    std::cerr << "wrote mesh key ring " << out << " (key id " << ring.current
              << ", mode 0600); copy it to every node of the mesh\n";
    return kOk;
  }
  const auto key = crypto::SigningKey::generate();
  write_secret_file(out, key.to_pem());
  if (json) {
    print_json({{"ok", true}, {"file", out}, {"public_key", format_public_key(key.public_key())}});
    return kOk;
  }
  std::cerr << "wrote node identity key " << out
            << " (mode 0600); put this line in the [[peer]] entry for this node on every other "
               "node:\n";
  std::cout << "public_key = \"" << format_public_key(key.public_key()) << "\"\n";
  return kOk;
}

int check_config(const std::string& file, bool json) {
  const Config config = load_config(file);
  const NodeKeys keys = load_node_keys(config);
  std::vector<std::string> kick_addresses;
  for (const auto& ep : config.delivery.kick) kick_addresses.push_back(ep.to_string());
  if (json) {
    Json peers = Json::array();
    for (const auto& p : config.peers) {
      peers.push_back({{"id", p.id}, {"address", p.address.to_string()}, {"groups", p.groups}});
    }
    Json r;
    r["ok"] = true;
    r["node"] = config.node.id;
    r["groups"] = config.node.groups;
    r["listen"] = config.node.listen.to_string();
    r["public_key"] = format_public_key(keys.identity.public_key());
    r["mesh_keys"] = keys.ring.keys.size();
    r["mesh_key_current"] = keys.ring.current;
    r["peers"] = peers;
    r["dsn"] = config.store.dsn;
    r["poll_interval_ms"] = config.store.poll_interval.count();
    r["retention_ms"] = config.store.retention.count();
    r["kick"] = config.kick.listen.to_string();
    r["delivery_kick"] = kick_addresses;
    r["duress_targets"] = config.duress.targets;
    r["supervision_timeout_ms"] = config.mesh.supervision_timeout.count();
    r["status"] = config.status.listen.to_string();
    r["state_dir"] = config.node.state_dir.string();
    print_json(r);
    return kOk;
  }
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
  std::printf("  store     %s, polling every %lld ms, keeping the log %lld days\n",
              config.store.dsn.c_str(), static_cast<long long>(config.store.poll_interval.count()),
              static_cast<long long>(config.store.retention.count() / 86'400'000));
  std::printf("  kick      listening on %s; waking consumers at: %s\n",
              config.kick.listen.to_string().c_str(), join(kick_addresses, "none").c_str());
  std::printf("  duress    default targets: %s\n", join(config.duress.targets, "none").c_str());
  std::printf("  supervision timeout %lld s\n",
              static_cast<long long>(config.mesh.supervision_timeout.count() / 1000));
  std::printf("  status    http://%s/\n", config.status.listen.to_string().c_str());
  return kOk;
}

}  // namespace relay::ctl

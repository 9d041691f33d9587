// relayctl: the operator's command line for relaymesh.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "common/config.h"
#include "common/config_error.h"
#include "common/keys.h"

namespace {

// Exit codes of the contract in DESIGN.md.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int keygen(const std::string& out, bool mesh) {
  if (mesh) {
    const relay::KeyRing ring = relay::generate_key_ring();
    relay::write_secret_file(out, relay::key_ring_to_toml(ring));
    std::cerr << "wrote mesh key ring " << out << " (key id " << ring.current
              << ", mode 0600); copy it to every node of the mesh\n";
    return kExitOk;
  }
  const auto key = relay::crypto::SigningKey::generate();
  relay::write_secret_file(out, key.to_pem());
  std::cerr << "wrote node identity key " << out
            << " (mode 0600); put this line in the [[peer]] entry for this node on every other "
               "node:\n";
  std::cout << "public_key = \"" << relay::format_public_key(key.public_key()) << "\"\n";
  return kExitOk;
}

std::string join(const std::vector<std::string>& items, const char* empty) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? empty : text;
}

int check_config(const std::string& file) {
  const relay::Config config = relay::load_config(file);
  const relay::NodeKeys keys = relay::load_node_keys(config);
  std::printf("%s: OK\n", file.c_str());
  std::printf("  node      %s (groups: %s), listening on %s\n", config.node.id.c_str(),
              join(config.node.groups, "none").c_str(), config.node.listen.to_string().c_str());
  std::printf("  identity  %s\n            public_key = \"%s\"\n", config.node.identity_key.c_str(),
              relay::format_public_key(keys.identity.public_key()).c_str());
  std::printf("  mesh keys %s: %zu key(s), sending with key id %u\n", config.mesh.keys.c_str(),
              keys.ring.keys.size(), keys.ring.current);
  std::printf("  peers     %zu\n", config.peers.size());
  for (const auto& peer : config.peers) {
    std::printf("            %-32s %-24s groups: %s\n", peer.id.c_str(),
                peer.address.to_string().c_str(), join(peer.groups, "none").c_str());
  }
  std::printf("  store     %s, polling every %lld ms\n", config.store.dsn.c_str(),
              static_cast<long long>(config.store.poll_interval.count()));
  std::printf("  kick      listening on %s; waking consumers at: %s\n",
              config.kick.listen.to_string().c_str(),
              [&] {
                std::vector<std::string> eps;
                for (const auto& ep : config.delivery.kick) eps.push_back(ep.to_string());
                return join(eps, "none");
              }()
                  .c_str());
  std::printf("  duress    default targets: %s\n", join(config.duress.targets, "none").c_str());
  std::printf("  supervision timeout %lld s\n",
              static_cast<long long>(config.mesh.supervision_timeout.count() / 1000));
  std::printf("  status    http://%s/\n", config.status.listen.to_string().c_str());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"relayctl: send alerts and manage a relaymesh node"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string config_file = "/etc/relaymesh/relayd.toml";
  app.add_option("--config", config_file, "relayd configuration file")->capture_default_str();

  auto* keygen_cmd = app.add_subcommand("keygen", "create a node identity key or a mesh key ring");
  std::string out;
  bool mesh = false;
  keygen_cmd->add_option("--out", out, "file to create (mode 0600; never overwritten)")->required();
  keygen_cmd->add_flag("--mesh", mesh, "create a mesh key ring instead of a node identity key");

  auto* check_cmd =
      app.add_subcommand("check-config", "load and check a configuration and its key files");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (keygen_cmd->parsed()) return keygen(out, mesh);
    if (check_cmd->parsed()) return check_config(config_file);
  } catch (const relay::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "relayctl: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitUsage;
}

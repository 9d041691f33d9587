// relayctl keygen and check-config.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

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

namespace pb = google::protobuf;

void print_json(const pb::Struct& s) {
  std::string text;
  (void)pb::util::MessageToJsonString(s, &text);
  std::printf("%s\n", text.c_str());
}

pb::Value text(const std::string& s) {
  pb::Value v;
  v.set_string_value(s);
  return v;
}

pb::Value list(const std::vector<std::string>& items) {
  pb::Value v;
  for (const auto& i : items) *v.mutable_list_value()->add_values() = text(i);
  return v;
}

pb::Value number(double d) {
  pb::Value v;
  v.set_number_value(d);
  return v;
}

}  // namespace

int keygen(const std::string& out, bool mesh, bool json) {
  pb::Struct result;
  auto& f = *result.mutable_fields();
  f["file"] = text(out);
  if (mesh) {
    const KeyRing ring = generate_key_ring();
    write_secret_file(out, key_ring_to_toml(ring));
    if (json) {
      f["key_id"] = number(ring.current);
      print_json(result);
      return kOk;
    }
    std::cerr << "wrote mesh key ring " << out << " (key id " << ring.current
              << ", mode 0600); copy it to every node of the mesh\n";
    return kOk;
  }
  const auto key = crypto::SigningKey::generate();
  write_secret_file(out, key.to_pem());
  if (json) {
    f["public_key"] = text(format_public_key(key.public_key()));
    print_json(result);
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
    pb::Struct r;
    auto& f = *r.mutable_fields();
    f["ok"].set_bool_value(true);
    f["node"] = text(config.node.id);
    f["groups"] = list(config.node.groups);
    f["listen"] = text(config.node.listen.to_string());
    f["public_key"] = text(format_public_key(keys.identity.public_key()));
    f["mesh_keys"] = number(static_cast<double>(keys.ring.keys.size()));
    f["mesh_key_current"] = number(keys.ring.current);
    auto* peers = f["peers"].mutable_list_value();
    for (const auto& p : config.peers) {
      pb::Value v;
      auto& pf = *v.mutable_struct_value()->mutable_fields();
      pf["id"] = text(p.id);
      pf["address"] = text(p.address.to_string());
      pf["groups"] = list(p.groups);
      *peers->add_values() = v;
    }
    f["dsn"] = text(config.store.dsn);
    f["poll_interval_ms"] = number(static_cast<double>(config.store.poll_interval.count()));
    f["retention_ms"] = number(static_cast<double>(config.store.retention.count()));
    f["kick"] = text(config.kick.listen.to_string());
    f["delivery_kick"] = list(kick_addresses);
    f["duress_targets"] = list(config.duress.targets);
    f["supervision_timeout_ms"] =
        number(static_cast<double>(config.mesh.supervision_timeout.count()));
    f["status"] = text(config.status.listen.to_string());
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

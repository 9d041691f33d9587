// relayctl keygen.

#include <cstdio>
#include <iostream>

#include "common/keys.h"
#include "relay/relayctl/relayctl.h"

namespace relay::ctl {
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

}  // namespace relay::ctl

#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/crypto.h"

namespace relay {

/// The mesh's shared AEAD keys by id (ids start at 1; 0 means none). A node seals with `current`
/// and opens with any key in the ring, so a rotation is: install the new key everywhere, switch
/// `current`, and remove the old key after a grace period.
struct KeyRing {
  std::uint32_t current = 0;
  std::map<std::uint32_t, crypto::Key> keys;

  /// The key with this id, or nullptr.
  const crypto::Key* find(std::uint32_t id) const;
};

/// A ring holding one fresh random key, id 1.
KeyRing generate_key_ring();
/// The key ring file format (TOML), as `relayctl keygen --mesh` writes it.
std::string key_ring_to_toml(const KeyRing& ring);
/// Loads and checks a key ring file; throws ConfigError naming file and key.
KeyRing load_key_ring(const std::filesystem::path& file);

/// Loads a node identity key (PKCS#8 PEM, Ed25519); throws ConfigError.
crypto::SigningKey load_identity_key(const std::filesystem::path& file);

/// "ed25519:" followed by the base64 of the 32 raw bytes, as put in peers' configs.
std::string format_public_key(const crypto::PublicKeyBytes& key);
/// The inverse of format_public_key; nullopt on any deviation.
std::optional<crypto::PublicKeyBytes> parse_public_key(std::string_view text);

/// Throws ConfigError if group or others have any access to a secret file:
/// a readable private key is a key that must be treated as leaked.
void check_secret_file_mode(const std::filesystem::path& file);

/// Creates `file` with mode 0600 and writes `content`; refuses to overwrite an
/// existing file. Throws std::runtime_error naming the file.
void write_secret_file(const std::filesystem::path& file, std::string_view content);

}  // namespace relay

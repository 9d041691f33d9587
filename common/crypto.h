#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// Thin, allocation-light wrappers over OpenSSL 3 EVP. Nothing here throws on
// bad input from the network: verification and decryption return false.
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace relay::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kNonceSize = 12;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kPublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;

using Key = std::array<std::uint8_t, kKeySize>;
using Nonce = std::array<std::uint8_t, kNonceSize>;
using PublicKeyBytes = std::array<std::uint8_t, kPublicKeySize>;
using Signature = std::array<std::uint8_t, kSignatureSize>;
using Digest = std::array<std::uint8_t, 32>;

/// Views a string's bytes without copying.
inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Fills `out` from the operating system's CSPRNG; aborts if it fails, since
/// continuing with predictable keys or boot ids would be worse than stopping.
void random_bytes(std::span<std::uint8_t> out);

/// SHA-256 of the concatenation of `parts`.
Digest sha256(std::initializer_list<ByteView> parts);

/// HKDF-SHA256 (RFC 5869) producing one 32-byte key.
Key hkdf_sha256(ByteView ikm, ByteView salt, ByteView info);

/// ChaCha20-Poly1305 (RFC 8439). One instance per thread; it reuses its
/// cipher context between calls.
class Aead {
 public:
  Aead();
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  /// Writes ciphertext followed by the 16-byte tag; `out` must hold
  /// plaintext.size() + kTagSize bytes. Returns false only on library failure.
  bool seal(const Key& key, const Nonce& nonce, ByteView aad, ByteView plaintext,
            std::span<std::uint8_t> out);

  /// Checks the tag and writes the plaintext; `out` must hold
  /// sealed.size() - kTagSize bytes. Returns false on any mismatch.
  bool open(const Key& key, const Nonce& nonce, ByteView aad, ByteView sealed,
            std::span<std::uint8_t> out);

 private:
  EVP_CIPHER_CTX* ctx_;
};

/// An Ed25519 public key, parsed once and reused for every verification.
class VerifyKey {
 public:
  /// Returns nullopt if the bytes are not a valid Ed25519 point encoding.
  static std::optional<VerifyKey> from_bytes(const PublicKeyBytes& raw);

  /// True if `sig` is this key's signature over `message`.
  bool verify(ByteView message, ByteView sig) const;
  const PublicKeyBytes& bytes() const { return raw_; }

 private:
  VerifyKey(std::shared_ptr<EVP_PKEY> key, const PublicKeyBytes& raw)
      : key_(std::move(key)), raw_(raw) {}
  std::shared_ptr<EVP_PKEY> key_;
  PublicKeyBytes raw_;
};

/// An Ed25519 private key: a node's identity.
class SigningKey {
 public:
  /// A fresh key from the CSPRNG.
  static SigningKey generate();
  /// From the 32-byte RFC 8032 seed; nullopt if OpenSSL rejects it.
  static std::optional<SigningKey> from_seed(ByteView seed);
  /// From PKCS#8 PEM text; nullopt if it is not an Ed25519 private key.
  static std::optional<SigningKey> from_pem(std::string_view pem);

  Signature sign(ByteView message) const;
  PublicKeyBytes public_key() const;
  VerifyKey verify_key() const;
  /// PKCS#8 PEM, as written to identity key files.
  std::string to_pem() const;

 private:
  explicit SigningKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

/// An X25519 key pair, made fresh for each boot of a node: its public half
/// travels in the signed session credential, and the pairwise keys of the
/// boot derive from agreements with the peers' ephemeral keys.
class EphemeralKey {
 public:
  /// A fresh key pair from the CSPRNG.
  static EphemeralKey generate();
  const PublicKeyBytes& public_key() const { return public_; }
  /// The shared secret with `peer` (RFC 7748); nullopt if the peer's key is
  /// not a valid X25519 key or the agreement is all zeros (a low-order point).
  std::optional<Key> agree(const PublicKeyBytes& peer) const;

 private:
  EphemeralKey(std::shared_ptr<EVP_PKEY> key, const PublicKeyBytes& pub)
      : key_(std::move(key)), public_(pub) {}
  std::shared_ptr<EVP_PKEY> key_;
  PublicKeyBytes public_;
};

/// Standard base64 with padding.
std::string base64_encode(ByteView data);
/// Strict decode: nullopt on any character or padding error.
std::optional<Bytes> base64_decode(std::string_view text);

}  // namespace relay::crypto

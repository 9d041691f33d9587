#include "common/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

namespace relay::crypto {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "relaymesh: OpenSSL failure in %s\n", what);
  std::abort();
}

// Explicit fetches, once: OpenSSL 3's implicit fetch on every init costs a
// lock and a lookup per datagram.
const EVP_CIPHER* chacha20_poly1305() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  if (cipher == nullptr) die("EVP_CIPHER_fetch(ChaCha20-Poly1305)");
  return cipher;
}

const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) die("EVP_MD_fetch(SHA256)");
  return md;
}

EVP_KDF* hkdf() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) die("EVP_KDF_fetch(HKDF)");
  return kdf;
}

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) {
  return {key, EVP_PKEY_free};
}

struct MdCtx {
  MdCtx() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr) die("EVP_MD_CTX_new");
  }
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx;
};

}  // namespace

void random_bytes(std::span<std::uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) die("RAND_bytes");
}

Digest sha256(std::initializer_list<ByteView> parts) {
  MdCtx md;
  Digest out{};
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex2(md.ctx, sha256_md(), nullptr) == 1;
  for (const auto& part : parts) ok = ok && EVP_DigestUpdate(md.ctx, part.data(), part.size()) == 1;
  if (!ok || EVP_DigestFinal_ex(md.ctx, out.data(), &len) != 1 || len != out.size()) die("SHA256");
  return out;
}

Key hkdf_sha256(ByteView ikm, ByteView salt, ByteView info) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(hkdf());
  if (ctx == nullptr) die("EVP_KDF_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  Key out{};
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) die("EVP_KDF_derive(HKDF)");
  return out;
}

Aead::Aead() : ctx_(EVP_CIPHER_CTX_new()) {
  if (ctx_ == nullptr) die("EVP_CIPHER_CTX_new");
}

Aead::~Aead() {
  EVP_CIPHER_CTX_free(ctx_);
}

bool Aead::seal(const Key& key, const Nonce& nonce, ByteView aad, ByteView plaintext,
                std::span<std::uint8_t> out) {
  if (out.size() < plaintext.size() + kTagSize) return false;
  int len = 0;
  int final_len = 0;
  return EVP_EncryptInit_ex2(ctx_, chacha20_poly1305(), key.data(), nonce.data(), nullptr) == 1 &&
         EVP_EncryptUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
         EVP_EncryptUpdate(ctx_, out.data(), &len, plaintext.data(),
                           static_cast<int>(plaintext.size())) == 1 &&
         EVP_EncryptFinal_ex(ctx_, out.data() + len, &final_len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagSize,
                             out.data() + plaintext.size()) == 1;
}

bool Aead::open(const Key& key, const Nonce& nonce, ByteView aad, ByteView sealed,
                std::span<std::uint8_t> out) {
  if (sealed.size() < kTagSize) return false;
  const std::size_t body = sealed.size() - kTagSize;
  if (out.size() < body) return false;
  int len = 0;
  int final_len = 0;
  // The tag is set before Final; Final returns 0 when it does not match.
  return EVP_DecryptInit_ex2(ctx_, chacha20_poly1305(), key.data(), nonce.data(), nullptr) == 1 &&
         EVP_DecryptUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
         EVP_DecryptUpdate(ctx_, out.data(), &len, sealed.data(), static_cast<int>(body)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagSize,
                             const_cast<std::uint8_t*>(sealed.data() + body)) == 1 &&
         EVP_DecryptFinal_ex(ctx_, out.data() + len, &final_len) == 1;
}

std::optional<VerifyKey> VerifyKey::from_bytes(const PublicKeyBytes& raw) {
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size());
  if (key == nullptr) return std::nullopt;
  return VerifyKey(own(key), raw);
}

bool VerifyKey::verify(ByteView message, ByteView sig) const {
  if (sig.size() != kSignatureSize) return false;
  MdCtx md;
  return EVP_DigestVerifyInit(md.ctx, nullptr, nullptr, nullptr, key_.get()) == 1 &&
         EVP_DigestVerify(md.ctx, sig.data(), sig.size(), message.data(), message.size()) == 1;
}

SigningKey SigningKey::generate() {
  Key seed;
  random_bytes(seed);
  auto key = from_seed(seed);
  if (!key) die("EVP_PKEY_new_raw_private_key(ED25519)");
  return *key;
}

std::optional<SigningKey> SigningKey::from_seed(ByteView seed) {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (key == nullptr) return std::nullopt;
  return SigningKey(own(key));
}

std::optional<SigningKey> SigningKey::from_pem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) die("BIO_new_mem_buf");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return std::nullopt;
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return std::nullopt;
  }
  return SigningKey(own(key));
}

Signature SigningKey::sign(ByteView message) const {
  MdCtx md;
  Signature sig{};
  std::size_t len = sig.size();
  if (EVP_DigestSignInit(md.ctx, nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(md.ctx, sig.data(), &len, message.data(), message.size()) != 1 ||
      len != sig.size()) {
    die("EVP_DigestSign(ED25519)");
  }
  return sig;
}

PublicKeyBytes SigningKey::public_key() const {
  PublicKeyBytes raw{};
  std::size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key_.get(), raw.data(), &len) != 1 || len != raw.size()) {
    die("EVP_PKEY_get_raw_public_key");
  }
  return raw;
}

VerifyKey SigningKey::verify_key() const {
  auto key = VerifyKey::from_bytes(public_key());
  if (!key) die("EVP_PKEY_new_raw_public_key(ED25519)");
  return *key;
}

EphemeralKey EphemeralKey::generate() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  if (key == nullptr) die("EVP_PKEY_Q_keygen(X25519)");
  PublicKeyBytes pub{};
  std::size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, pub.data(), &len) != 1 || len != pub.size()) {
    die("EVP_PKEY_get_raw_public_key(X25519)");
  }
  return EphemeralKey(own(key), pub);
}

std::optional<Key> EphemeralKey::agree(const PublicKeyBytes& peer) const {
  EVP_PKEY* theirs =
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer.data(), peer.size());
  if (theirs == nullptr) return std::nullopt;
  const auto peer_key = own(theirs);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr);
  if (ctx == nullptr) die("EVP_PKEY_CTX_new_from_pkey");
  Key secret{};
  std::size_t len = secret.size();
  // OpenSSL refuses an all-zero result (a low-order peer key) in derive.
  const bool ok = EVP_PKEY_derive_init(ctx) == 1 &&
                  EVP_PKEY_derive_set_peer(ctx, peer_key.get()) == 1 &&
                  EVP_PKEY_derive(ctx, secret.data(), &len) == 1 && len == secret.size();
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return std::nullopt;
  return secret;
}

std::string SigningKey::to_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio, key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string base64_encode(ByteView data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                  static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::optional<Bytes> base64_decode(std::string_view text) {
  // EVP_DecodeBlock skips whitespace and keeps padding bytes as zeros, so
  // check the alphabet and the padding here and trim afterwards.
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;
      ++pad;
    } else if (pad > 0 || !(alnum || c == '+' || c == '/')) {
      return std::nullopt;
    }
  }
  Bytes out(text.size() / 4 * 3);
  const int len = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
  if (len < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(len) - pad);
  return out;
}

}  // namespace relay::crypto

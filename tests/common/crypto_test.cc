#include "common/crypto.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "tests/support/hex.h"

using namespace relay;
using relay::test::from_hex;

template <std::size_t N>
std::array<std::uint8_t, N> array_of(const std::vector<std::uint8_t>& v) {
  REQUIRE(v.size() == N);
  std::array<std::uint8_t, N> a{};
  std::copy(v.begin(), v.end(), a.begin());
  return a;
}

TEST_CASE("ChaCha20-Poly1305 matches RFC 8439 section 2.8.2") {
  const std::string plaintext =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
      "future, sunscreen would be it.";
  const auto key =
      array_of<32>(from_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"));
  const auto nonce = array_of<12>(from_hex("070000004041424344454647"));
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto expected = from_hex(
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
      "3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691");

  crypto::Aead aead;
  std::vector<std::uint8_t> sealed(plaintext.size() + crypto::kTagSize);
  REQUIRE(aead.seal(key, nonce, aad, crypto::as_bytes(plaintext), sealed));
  CHECK(sealed == expected);

  std::vector<std::uint8_t> opened(plaintext.size());
  REQUIRE(aead.open(key, nonce, aad, sealed, opened));
  CHECK(std::string(opened.begin(), opened.end()) == plaintext);

  SUBCASE("a changed tag, ciphertext, aad or nonce fails to open") {
    auto bad = sealed;
    bad.back() ^= 1;
    CHECK_FALSE(aead.open(key, nonce, aad, bad, opened));
    bad = sealed;
    bad.front() ^= 0x80;
    CHECK_FALSE(aead.open(key, nonce, aad, bad, opened));
    auto bad_aad = aad;
    bad_aad[0] ^= 1;
    CHECK_FALSE(aead.open(key, nonce, bad_aad, sealed, opened));
    auto bad_nonce = nonce;
    bad_nonce[11] ^= 1;
    CHECK_FALSE(aead.open(key, bad_nonce, aad, sealed, opened));
  }
}

TEST_CASE("HKDF-SHA256 matches RFC 5869 test case 1") {
  const auto okm =
      crypto::hkdf_sha256(from_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                          from_hex("000102030405060708090a0b0c"), from_hex("f0f1f2f3f4f5f6f7f8f9"));
  CHECK(std::vector<std::uint8_t>(okm.begin(), okm.end()) ==
        from_hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"));
}

TEST_CASE("Ed25519 matches RFC 8032 section 7.1 test 1") {
  const auto key = crypto::SigningKey::from_seed(
      from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  REQUIRE(key);
  const auto pub = key->public_key();
  CHECK(std::vector<std::uint8_t>(pub.begin(), pub.end()) ==
        from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
  const auto sig = key->sign({});
  const auto expected = from_hex(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  CHECK(std::vector<std::uint8_t>(sig.begin(), sig.end()) == expected);

  const auto verifier = key->verify_key();
  CHECK(verifier.verify({}, sig));
  auto bad = sig;
  bad[10] ^= 4;
  CHECK_FALSE(verifier.verify({}, bad));
  CHECK_FALSE(verifier.verify(crypto::as_bytes("x"), sig));
  CHECK_FALSE(verifier.verify({}, crypto::ByteView(sig).first(63)));
}

TEST_CASE("PEM round trip keeps the identity") {
  const auto key = crypto::SigningKey::generate();
  const auto again = crypto::SigningKey::from_pem(key.to_pem());
  REQUIRE(again);
  CHECK(again->public_key() == key.public_key());
  CHECK_FALSE(crypto::SigningKey::from_pem("not a key"));
}

TEST_CASE("base64 is strict") {
  const auto bytes = from_hex("00ff10203040");
  const std::string text = crypto::base64_encode(bytes);
  CHECK(text == "AP8QIDBA");
  CHECK(crypto::base64_decode(text) == bytes);
  CHECK(crypto::base64_decode("AP8=") == from_hex("00ff"));
  CHECK(crypto::base64_decode("AA==") == from_hex("00"));
  CHECK_FALSE(crypto::base64_decode("AP8"));
  CHECK_FALSE(crypto::base64_decode("A=P8"));
  CHECK_FALSE(crypto::base64_decode("AP 8"));
  CHECK_FALSE(crypto::base64_decode("AP8*"));
}

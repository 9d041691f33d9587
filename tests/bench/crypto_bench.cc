// Cost of sealing and opening datagrams and of event signatures, each beside
// the raw OpenSSL EVP cost of the same operation measured in the same run, so
// the ratio (our overhead) is what counts, not the machine.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <string>

#include "relay/wire/bundle.h"
#include "relay/wire/datagram.h"
#include "tests/wire/mesh_fixture.h"

using namespace relay;
namespace v1 = relaymesh::v1;

namespace {

/// A digest body padded so that the sealed datagram is `total` bytes.
v1::Datagram body_of_size(std::size_t total, std::size_t sender) {
  v1::Datagram d;
  auto* origin = d.mutable_digest()->add_origins();
  const std::size_t overhead = wire::kFixedHeader + sender + crypto::kTagSize;
  std::size_t pad = total - overhead;
  origin->set_origin(std::string(pad, 'x'));
  while (overhead + d.ByteSizeLong() > total) {
    origin->mutable_origin()->pop_back();
  }
  return d;
}

// A datagram of an established session: pairwise key (derived once per
// session), framing, replay window, protobuf. The session scheme signs the
// session, not the datagram, so this is its whole per-datagram cost.
void BM_SealOpen(benchmark::State& state) {
  test::MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  test::MeshFixture::connect(*hq, *north);
  const auto body = body_of_size(static_cast<std::size_t>(state.range(0)), 2);
  wire::Opened opened;
  for (auto _ : state) {
    const auto sealed = hq->seal("clinic-north", body);
    if (north->open(crypto::as_bytes(sealed->at(0)), opened) != wire::Reject::none)
      state.SkipWithError("rejected");
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SealOpen)->Arg(200)->Arg(1200);

// What a session costs once, per peer and boot: a signed credential each
// way, both verified, two X25519 agreements, the hello round trip and the
// pairwise keys of the first datagrams.
void BM_SessionHandshake(benchmark::State& state) {
  test::MeshFixture mesh;
  std::uint64_t boot = 0;
  for (auto _ : state) {
    auto hq = mesh.codec("hq", ++boot);
    auto north = mesh.codec("clinic-north", boot);
    test::MeshFixture::connect(*hq, *north);
    benchmark::DoNotOptimize(hq);
  }
}
BENCHMARK(BM_SessionHandshake);

// The floor: one ChaCha20-Poly1305 encrypt and decrypt of the same size
// through EVP with a fixed key, no framing, no protobuf, no key derivation.
void BM_RawEvpSealOpen(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0)) - crypto::kTagSize;
  std::uint8_t key[32] = {1};
  std::uint8_t nonce[12] = {2};
  std::uint8_t aad[40] = {3};
  std::string plain(size, 'p');
  std::string sealed(size + crypto::kTagSize, '\0');
  std::string opened(size, '\0');
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  auto* s = reinterpret_cast<std::uint8_t*>(sealed.data());
  for (auto _ : state) {
    int len = 0;
    EVP_EncryptInit_ex2(ctx, cipher, key, nonce, nullptr);
    EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof aad);
    EVP_EncryptUpdate(ctx, s, &len, reinterpret_cast<const std::uint8_t*>(plain.data()),
                      static_cast<int>(size));
    EVP_EncryptFinal_ex(ctx, s + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, s + size);
    EVP_DecryptInit_ex2(ctx, cipher, key, nonce, nullptr);
    EVP_DecryptUpdate(ctx, nullptr, &len, aad, sizeof aad);
    EVP_DecryptUpdate(ctx, reinterpret_cast<std::uint8_t*>(opened.data()), &len, s,
                      static_cast<int>(size));
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, s + size);
    if (EVP_DecryptFinal_ex(ctx, reinterpret_cast<std::uint8_t*>(opened.data()) + len, &len) != 1) {
      state.SkipWithError("tag");
    }
    benchmark::DoNotOptimize(opened);
  }
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(cipher);
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RawEvpSealOpen)->Arg(200)->Arg(1200);

// A session's first datagram each way pays one HKDF; this is that cost.
void BM_DerivePairKey(benchmark::State& state) {
  crypto::Key ring_key{7};
  crypto::Key agreement{9};
  v1::Credential a, b;
  a.set_node("hq");
  b.set_node("clinic-north");
  std::uint64_t boot = 0;
  for (auto _ : state) {
    a.set_boot(++boot);
    benchmark::DoNotOptimize(
        wire::derive_pair_key(ring_key, agreement, "hq", a, "clinic-north", b));
  }
}
BENCHMARK(BM_DerivePairKey);

void BM_SignEvent(benchmark::State& state) {
  test::MeshFixture mesh;
  const auto event = mesh.event("hq", 1);
  const auto& key = mesh.identities.at("hq");
  for (auto _ : state) benchmark::DoNotOptimize(wire::sign_event(event, key));
}
BENCHMARK(BM_SignEvent);

void BM_VerifyEvent(benchmark::State& state) {
  test::MeshFixture mesh;
  const auto signed_event = wire::sign_event(mesh.event("hq", 1), mesh.identities.at("hq"));
  const auto key = mesh.identities.at("hq").verify_key();
  const auto message = wire::event_signing_message(signed_event.event());
  for (auto _ : state) {
    if (!key.verify(crypto::as_bytes(message), crypto::as_bytes(signed_event.signature()))) {
      state.SkipWithError("verify");
    }
  }
}
BENCHMARK(BM_VerifyEvent);

// Per-event cost of a bundled event at a receiver: its Merkle path (the
// bundle's one signature check is shared by up to 64 events).
void BM_BundlePath(benchmark::State& state) {
  test::MeshFixture mesh;
  std::vector<v1::Event> events;
  for (std::uint64_t i = 1; i <= 64; ++i) events.push_back(mesh.event("hq", i));
  const auto bundle = wire::sign_bundle(events, mesh.identities.at("hq"));
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(wire::bundle_root(bundle[i++ % bundle.size()]));
}
BENCHMARK(BM_BundlePath);

// Signing a claim of 64 events as one bundle (tree and one signature).
void BM_SignBundle64(benchmark::State& state) {
  test::MeshFixture mesh;
  std::vector<v1::Event> events;
  for (std::uint64_t i = 1; i <= 64; ++i) events.push_back(mesh.event("hq", i));
  for (auto _ : state)
    benchmark::DoNotOptimize(wire::sign_bundle(events, mesh.identities.at("hq")));
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_SignBundle64);

// The floor for signatures: EVP_DigestSign / EVP_DigestVerify on one reused
// EVP_PKEY and MD context, over the same message length.
void BM_RawEvpSign(benchmark::State& state) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const std::string message(state.range(0), 'm');
  std::uint8_t sig[64];
  for (auto _ : state) {
    std::size_t len = sizeof sig;
    EVP_DigestSignInit(md, nullptr, nullptr, nullptr, pkey);
    EVP_DigestSign(md, sig, &len, reinterpret_cast<const std::uint8_t*>(message.data()),
                   message.size());
    benchmark::DoNotOptimize(sig);
  }
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
}
BENCHMARK(BM_RawEvpSign)->Arg(80);

void BM_RawEvpVerify(benchmark::State& state) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const std::string message(state.range(0), 'm');
  std::uint8_t sig[64];
  std::size_t len = sizeof sig;
  EVP_DigestSignInit(md, nullptr, nullptr, nullptr, pkey);
  EVP_DigestSign(md, sig, &len, reinterpret_cast<const std::uint8_t*>(message.data()),
                 message.size());
  for (auto _ : state) {
    EVP_DigestVerifyInit(md, nullptr, nullptr, nullptr, pkey);
    if (EVP_DigestVerify(md, sig, len, reinterpret_cast<const std::uint8_t*>(message.data()),
                         message.size()) != 1) {
      state.SkipWithError("verify");
    }
  }
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
}
BENCHMARK(BM_RawEvpVerify)->Arg(80);

}  // namespace

BENCHMARK_MAIN();

#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "relay/wire/datagram.h"

namespace relay::test {

/// Seals arbitrary plaintext as a pairwise datagram from `from` to `to`
/// (which have a session), framed by hand from the header layout: lets
/// tests and the fuzzer reach the body parser with authenticated bytes that
/// the Codec itself would never produce. `counter` must be one `to` has not
/// seen from `from` in this session.
inline std::string raw_seal(const KeyRing& ring, const wire::Codec& from, const wire::Codec& to,
                            std::uint64_t counter, std::string_view plaintext) {
  auto put = [](std::string& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  const auto& mine = from.session();
  const auto& theirs = to.session().credential;
  const std::string& sender = mine.credential.node();
  std::string out;
  out.push_back(static_cast<char>(wire::kVersion));
  out.push_back(static_cast<char>(wire::Kind::pair));
  put(out, ring.current, 4);
  put(out, mine.boot, 8);
  put(out, mine.boot_id, 8);
  put(out, counter, 8);
  put(out, to.session().boot_id, 8);
  out.push_back(static_cast<char>(sender.size()));
  out.append(sender);
  const std::size_t header = out.size();
  crypto::Nonce nonce{};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  crypto::PublicKeyBytes peer_ephemeral;
  std::copy(theirs.ephemeral().begin(), theirs.ephemeral().end(), peer_ephemeral.begin());
  const auto agreement = mine.ephemeral.agree(peer_ephemeral);
  const auto key = wire::derive_pair_key(*ring.find(ring.current), *agreement, sender,
                                         mine.credential, theirs.node(), theirs);
  out.resize(header + plaintext.size() + crypto::kTagSize);
  auto* data = reinterpret_cast<std::uint8_t*>(out.data());
  crypto::Aead aead;
  aead.seal(key, nonce, {data, header}, crypto::as_bytes(plaintext),
            {data + header, plaintext.size() + crypto::kTagSize});
  return out;
}

/// Seals arbitrary plaintext as a hello of `sender`'s session (boot,
/// boot_id), with the mesh key alone: what a mesh-key holder can send.
inline std::string raw_seal_hello(const KeyRing& ring, std::string_view sender, std::uint64_t boot,
                                  std::uint64_t boot_id, std::uint64_t counter,
                                  std::string_view plaintext) {
  auto put = [](std::string& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  std::string out;
  out.push_back(static_cast<char>(wire::kVersion));
  out.push_back(static_cast<char>(wire::Kind::hello));
  put(out, ring.current, 4);
  put(out, boot, 8);
  put(out, boot_id, 8);
  put(out, counter, 8);
  put(out, 0, 8);
  out.push_back(static_cast<char>(sender.size()));
  out.append(sender);
  const std::size_t header = out.size();
  crypto::Nonce nonce{};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  const auto key =
      wire::derive_hello_key(*ring.find(ring.current), std::string(sender), boot, boot_id);
  out.resize(header + plaintext.size() + crypto::kTagSize);
  auto* data = reinterpret_cast<std::uint8_t*>(out.data());
  crypto::Aead aead;
  aead.seal(key, nonce, {data, header}, crypto::as_bytes(plaintext),
            {data + header, plaintext.size() + crypto::kTagSize});
  return out;
}

/// Opens a hello as any mesh-key holder can: its body, readable and
/// re-sealable (raw_seal_hello). Throws if it does not open.
inline relaymesh::v1::Datagram open_hello_raw(const KeyRing& ring, const std::string& sealed) {
  const auto bytes = crypto::as_bytes(sealed);
  const auto header = *wire::parse_header(bytes);
  const auto key =
      wire::derive_hello_key(*ring.find(header.key_id), header.sender, header.boot, header.boot_id);
  crypto::Nonce nonce{};
  for (int i = 0; i < 8; ++i)
    nonce[4 + i] = static_cast<std::uint8_t>(header.counter >> (56 - 8 * i));
  const std::size_t header_size = wire::kFixedHeader + header.sender.size();
  std::string plain(sealed.size() - header_size - crypto::kTagSize, '\0');
  crypto::Aead aead;
  relaymesh::v1::Datagram d;
  if (!aead.open(key, nonce, bytes.first(header_size), bytes.subspan(header_size),
                 {reinterpret_cast<std::uint8_t*>(plain.data()), plain.size()}) ||
      !d.ParseFromString(plain)) {
    throw std::logic_error("open_hello_raw: not a hello sealed with this ring");
  }
  return d;
}

}  // namespace relay::test

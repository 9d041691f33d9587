#pragma once

#include <string>
#include <string_view>

#include "relay/wire/datagram.h"

namespace relay::test {

/// Seals arbitrary plaintext as `sender` would, framed by hand from the
/// header layout: lets tests and the fuzzer reach the body parser with
/// authenticated bytes that the Codec itself would never produce.
inline std::string raw_seal(const KeyRing& ring, std::string_view sender,
                            const wire::Session& session, std::uint64_t counter,
                            std::string_view plaintext) {
  auto put = [](std::string& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  std::string out;
  out.push_back(static_cast<char>(wire::kVersion));
  put(out, ring.current, 4);
  put(out, session.start_us, 8);
  put(out, session.boot_id, 8);
  put(out, counter, 8);
  out.push_back(static_cast<char>(sender.size()));
  out.append(sender);
  const std::size_t header = out.size();
  crypto::Nonce nonce{};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  const auto key = wire::derive_datagram_key(*ring.find(ring.current), sender, session);
  out.resize(header + plaintext.size() + crypto::kTagSize);
  auto* data = reinterpret_cast<std::uint8_t*>(out.data());
  crypto::Aead aead;
  aead.seal(key, nonce, {data, header}, crypto::as_bytes(plaintext),
            {data + header, plaintext.size() + crypto::kTagSize});
  return out;
}

}  // namespace relay::test

#include "relay/wire/datagram.h"

#include <cstdint>

namespace relay::wire {
namespace {

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_be(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const char* to_string(Reject reason) {
  static constexpr const char* names[kRejectReasons] = {
      "none",           "bad_size",       "unknown_version",      "unknown_key_id",
      "unknown_sender", "bad_tag",        "stale_session",        "replay",
      "malformed_body", "unknown_origin", "bad_origin_signature", "unknown_session",
      "bad_credential"};
  return names[static_cast<std::size_t>(reason)];
}

std::optional<Header> parse_header(crypto::ByteView d, Reject* why) {
  auto fail = [&](Reject r) {
    if (why != nullptr) *why = r;
    return std::nullopt;
  };
  if (d.size() < kFixedHeader + 1 + crypto::kTagSize || d.size() > kMaxDatagram) {
    return fail(Reject::bad_size);
  }
  if (d[0] != kVersion || (d[1] != static_cast<std::uint8_t>(Kind::hello) &&
                           d[1] != static_cast<std::uint8_t>(Kind::pair))) {
    return fail(Reject::unknown_version);
  }
  Header h;
  h.kind = static_cast<Kind>(d[1]);
  h.key_id = static_cast<std::uint32_t>(get_be(&d[2], 4));
  h.boot = get_be(&d[6], 8);
  h.boot_id = get_be(&d[14], 8);
  h.counter = get_be(&d[22], 8);
  h.receiver_boot_id = get_be(&d[30], 8);
  const std::size_t sender_len = d[38];
  if (sender_len == 0 || sender_len > kMaxSenderId ||
      kFixedHeader + sender_len + crypto::kTagSize > d.size()) {
    return fail(Reject::bad_size);
  }
  h.sender.assign(reinterpret_cast<const char*>(&d[kFixedHeader]), sender_len);
  return h;
}

std::string probe_ack_signing_message(const v1::ProbeAck& ack) {
  std::string m = "relaymesh v2 probe ack";
  m.push_back('\0');
  m += ack.requester();
  m.push_back('\0');
  m += ack.target();
  m.push_back('\0');
  put_be(m, ack.nonce(), 8);
  return m;
}

}  // namespace relay::wire

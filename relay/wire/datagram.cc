#include "relay/wire/datagram.h"

#include "relay/wire/bundle.h"

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>

namespace relay::wire {
namespace {

constexpr std::string_view kKeyInfo = "relaymesh v1 datagram key ";

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_be(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

crypto::Nonce nonce_of(std::uint64_t counter) {
  crypto::Nonce nonce{};  // 4 zero bytes, then the counter big-endian
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  return nonce;
}

Session new_session(const Clock& clock) {
  Session s;
  s.start_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock.wall_now().time_since_epoch())
          .count());
  crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&s.boot_id), sizeof s.boot_id});
  return s;
}

}  // namespace

const char* to_string(Reject reason) {
  static constexpr const char* names[kRejectReasons] = {
      "none",           "bad_size",       "unknown_version",     "unknown_key_id",
      "unknown_sender", "bad_tag",        "stale_session",       "replay",
      "malformed_body", "unknown_origin", "bad_origin_signature"};
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
  if (d[0] != kVersion) return fail(Reject::unknown_version);
  Header h;
  h.key_id = static_cast<std::uint32_t>(get_be(&d[1], 4));
  h.session.start_us = get_be(&d[5], 8);
  h.session.boot_id = get_be(&d[13], 8);
  h.counter = get_be(&d[21], 8);
  const std::size_t sender_len = d[29];
  if (sender_len == 0 || sender_len > kMaxSenderId ||
      kFixedHeader + sender_len + crypto::kTagSize > d.size()) {
    return fail(Reject::bad_size);
  }
  h.sender.assign(reinterpret_cast<const char*>(&d[kFixedHeader]), sender_len);
  return h;
}

crypto::Key derive_datagram_key(const crypto::Key& ring_key, std::string_view sender,
                                const Session& session) {
  std::string salt;
  put_be(salt, session.start_us, 8);
  put_be(salt, session.boot_id, 8);
  const std::string info = std::string(kKeyInfo) + std::string(sender);
  return crypto::hkdf_sha256(ring_key, crypto::as_bytes(salt), crypto::as_bytes(info));
}

Codec::Codec(std::string self, const crypto::SigningKey& identity, KeyRing ring,
             std::map<std::string, crypto::VerifyKey> peers, const Clock& clock)
    : self_(std::move(self)),
      identity_(identity),
      self_key_(identity.verify_key()),
      ring_(std::move(ring)),
      peers_(std::move(peers)),
      session_(new_session(clock)) {}

const crypto::Key& Codec::send_key() {
  if (send_key_id_ != ring_.current) {
    send_subkey_ = derive_datagram_key(*ring_.find(ring_.current), self_, session_);
    send_key_id_ = ring_.current;
  }
  return send_subkey_;
}

std::optional<std::string> Codec::seal(const v1::Datagram& unsigned_body) {
  const v1::Datagram* to_send = &unsigned_body;
  v1::Datagram signed_body;
  if (unsigned_body.has_receipts() && unsigned_body.receipts().target() == self_) {
    signed_body = unsigned_body;
    auto* r = signed_body.mutable_receipts();
    const auto sig = identity_.sign(crypto::as_bytes(receipts_signing_message(*r)));
    r->set_signature(sig.data(), sig.size());
    to_send = &signed_body;
  } else if (unsigned_body.has_receipt_acks() && unsigned_body.receipt_acks().origin() == self_) {
    signed_body = unsigned_body;
    auto* a = signed_body.mutable_receipt_acks();
    const auto sig = identity_.sign(crypto::as_bytes(receipt_acks_signing_message(*a)));
    a->set_signature(sig.data(), sig.size());
    to_send = &signed_body;
  }
  const v1::Datagram& body = *to_send;
  const std::size_t header_size = kFixedHeader + self_.size();
  const std::size_t body_size = body.ByteSizeLong();
  if (header_size + body_size + crypto::kTagSize > kMaxDatagram) return std::nullopt;
  // A 64-bit counter at a million datagrams a second lasts 584,000 years;
  // wrapping would reuse nonces, so stop rather than continue.
  if (counter_ == UINT64_MAX) std::abort();
  ++counter_;

  std::string out;
  out.reserve(header_size + body_size + crypto::kTagSize);
  out.push_back(static_cast<char>(kVersion));
  put_be(out, ring_.current, 4);
  put_be(out, session_.start_us, 8);
  put_be(out, session_.boot_id, 8);
  put_be(out, counter_, 8);
  out.push_back(static_cast<char>(self_.size()));
  out.append(self_);
  body.SerializeToString(&buffer_);
  out.resize(header_size + body_size + crypto::kTagSize);
  auto* data = reinterpret_cast<std::uint8_t*>(out.data());
  if (!aead_.seal(send_key(), nonce_of(counter_), {data, header_size}, crypto::as_bytes(buffer_),
                  {data + header_size, body_size + crypto::kTagSize})) {
    std::abort();  // only a broken OpenSSL fails to encrypt
  }
  return out;
}

Reject Codec::open(crypto::ByteView datagram, Opened& out) {
  const Reject reason = open_checked(datagram, out);
  if (reason == Reject::none) {
    ++accepted_;
  } else {
    ++rejected_[static_cast<std::size_t>(reason)];
  }
  return reason;
}

Reject Codec::open_checked(crypto::ByteView datagram, Opened& out) {
  Reject why = Reject::none;
  auto header = parse_header(datagram, &why);
  if (!header) return why;
  const crypto::Key* ring_key = ring_.find(header->key_id);
  if (ring_key == nullptr) return Reject::unknown_key_id;
  if (peers_.find(header->sender) == peers_.end()) return Reject::unknown_sender;

  // The subkey of the sender's current session is cached; any other session
  // is derived afresh and only remembered once its datagram authenticates.
  Receiver& rx = receivers_[header->sender];
  const bool cached = rx.key_id == header->key_id && rx.session == header->session;
  const crypto::Key subkey =
      cached ? rx.subkey : derive_datagram_key(*ring_key, header->sender, header->session);

  const std::size_t header_size = kFixedHeader + header->sender.size();
  const auto sealed = datagram.subspan(header_size);
  buffer_.resize(sealed.size() - crypto::kTagSize);
  if (!aead_.open(subkey, nonce_of(header->counter), datagram.first(header_size), sealed,
                  {reinterpret_cast<std::uint8_t*>(buffer_.data()), buffer_.size()})) {
    return Reject::bad_tag;
  }

  // Authenticated from here on: the header is the sender's own.
  if (header->session < rx.session) return Reject::stale_session;
  if (header->session > rx.session) {
    rx.session = header->session;
    rx.window = ReplayWindow{};
  }
  rx.key_id = header->key_id;
  rx.subkey = subkey;
  if (rx.window.check_and_mark(header->counter) != ReplayWindow::Verdict::fresh) {
    return Reject::replay;
  }

  out.sender = std::move(header->sender);
  out.events.clear();
  if (!out.body.ParseFromString(buffer_) || out.body.body_case() == v1::Datagram::BODY_NOT_SET) {
    return Reject::malformed_body;
  }
  if (const Reject r = verify_receipts(out.body); r != Reject::none) return r;
  return verify_events(out);
}

const crypto::VerifyKey* Codec::key_of(const std::string& node) const {
  if (node == self_) return &self_key_;
  auto it = peers_.find(node);
  return it == peers_.end() ? nullptr : &it->second;
}

Reject Codec::verify_receipts(const v1::Datagram& body) {
  // Receipts speak for their target and acks for their origin, whoever
  // relays them: each is checked against that node's own key.
  if (body.has_receipts()) {
    const auto* key = key_of(body.receipts().target());
    if (key == nullptr) return Reject::unknown_origin;
    ++signature_checks_;
    if (!key->verify(crypto::as_bytes(receipts_signing_message(body.receipts())),
                     crypto::as_bytes(body.receipts().signature()))) {
      return Reject::bad_origin_signature;
    }
  } else if (body.has_receipt_acks()) {
    const auto* key = key_of(body.receipt_acks().origin());
    if (key == nullptr) return Reject::unknown_origin;
    ++signature_checks_;
    if (!key->verify(crypto::as_bytes(receipt_acks_signing_message(body.receipt_acks())),
                     crypto::as_bytes(body.receipt_acks().signature()))) {
      return Reject::bad_origin_signature;
    }
  }
  return Reject::none;
}

Reject Codec::verify_events(Opened& out) {
  if (!out.body.has_events()) return Reject::none;
  for (const auto& signed_event : out.body.events().events()) {
    v1::Event& event = out.events.emplace_back();
    if (signed_event.event().size() > kMaxEventBytes ||
        !event.ParseFromString(signed_event.event()) || !well_formed(event)) {
      return Reject::malformed_body;
    }
    const crypto::VerifyKey* key = nullptr;
    if (event.origin() == self_) {
      key = &self_key_;
    } else if (auto it = peers_.find(event.origin()); it != peers_.end()) {
      key = &it->second;
    } else {
      return Reject::unknown_origin;
    }
    if (signed_event.path_size() == 0) {
      ++signature_checks_;
      if (!key->verify(crypto::as_bytes(event_signing_message(signed_event.event())),
                       crypto::as_bytes(signed_event.signature()))) {
        return Reject::bad_origin_signature;
      }
      continue;
    }
    // A bundled event: its path leads to a root, whose signature is checked
    // once and then remembered (origin, root and signature together).
    const auto root = bundle_root(signed_event);
    if (!root) return Reject::malformed_body;
    std::string cache_key = event.origin();
    cache_key.push_back('\0');
    cache_key.append(reinterpret_cast<const char*>(root->data()), root->size());
    cache_key.append(signed_event.signature());
    if (verified_roots_.contains(cache_key)) continue;
    ++signature_checks_;
    if (!key->verify(crypto::as_bytes(bundle_signing_message(*root, signed_event.path_size())),
                     crypto::as_bytes(signed_event.signature()))) {
      return Reject::bad_origin_signature;
    }
    // Bounded: forgetting costs one more check per bundle, nothing else.
    if (verified_roots_.size() >= kVerifiedRoots) verified_roots_.clear();
    verified_roots_.insert(std::move(cache_key));
  }
  return Reject::none;
}

void Codec::set_key_ring(KeyRing ring) {
  ring_ = std::move(ring);
  send_key_id_ = 0;
  for (auto& [id, rx] : receivers_) {
    if (ring_.find(rx.key_id) == nullptr) rx.key_id = 0;
  }
}

void Codec::set_peers(std::map<std::string, crypto::VerifyKey> peers) {
  peers_ = std::move(peers);
  verified_roots_.clear();  // a peer's key may have changed
  std::erase_if(receivers_, [&](const auto& entry) { return !peers_.contains(entry.first); });
}

}  // namespace relay::wire

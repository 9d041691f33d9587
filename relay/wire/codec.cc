// The Codec: sessions and their handshake, sealing and opening, signature
// checks. docs/wire.md describes the format and the threat model.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "relay/wire/bundle.h"
#include "relay/wire/datagram.h"

namespace relay::wire {
namespace {

// A peer without a session gets at most one hello a second from us, and an
// answer to its own hellos at most as often unless they bring a new session.
constexpr auto kHelloInterval = std::chrono::seconds(1);
// Bodies kept per peer while its session is being made; the core's retries
// cover what does not fit.
constexpr std::size_t kMaxWaiting = 256;
// Verified credentials remembered (one per boot of each peer, and a few).
constexpr std::size_t kVerifiedCredentials = 1024;

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

crypto::Nonce nonce_of(std::uint64_t counter) {
  crypto::Nonce nonce{};  // 4 zero bytes, then the counter big-endian
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  return nonce;
}

}  // namespace

Codec::Codec(std::string self, const crypto::SigningKey& identity, IdentityKeys self_keys,
             KeyRing ring, std::map<std::string, IdentityKeys> peers, std::uint64_t boot,
             const Clock& clock)
    : self_(std::move(self)),
      identity_(identity),
      self_keys_(std::move(self_keys)),
      ring_(std::move(ring)),
      local_(new_local_session(self_, identity_, boot)),
      clock_(clock) {
  for (auto& [id, keys] : peers) peers_.emplace(id, Peer(std::move(keys)));
}

std::uint32_t Codec::key_id_for(const Peer& peer) const {
  // Answer a peer with the ring key it seals with while we hold it: a site
  // that missed a rotation keeps talking until its old key leaves the rings.
  return peer.key_id != 0 && ring_.find(peer.key_id) != nullptr ? peer.key_id : ring_.current;
}

const crypto::Key& Codec::hello_key(std::uint32_t key_id) {
  auto it = hello_keys_.find(key_id);
  if (it == hello_keys_.end()) {
    it = hello_keys_
             .emplace(key_id,
                      derive_hello_key(*ring_.find(key_id), self_, local_.boot, local_.boot_id))
             .first;
  }
  return it->second;
}

std::optional<std::string> Codec::seal_as(Kind kind, std::uint32_t key_id, const crypto::Key& key,
                                          std::uint64_t receiver_boot_id, const std::string& body) {
  const std::size_t header_size = kFixedHeader + self_.size();
  if (header_size + body.size() + crypto::kTagSize > kMaxDatagram) return std::nullopt;
  // A 64-bit counter at a million datagrams a second lasts 584,000 years;
  // wrapping would reuse nonces, so stop rather than continue.
  if (counter_ == UINT64_MAX) std::abort();
  ++counter_;
  std::string out;
  out.reserve(header_size + body.size() + crypto::kTagSize);
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(kind));
  put_be(out, key_id, 4);
  put_be(out, local_.boot, 8);
  put_be(out, local_.boot_id, 8);
  put_be(out, counter_, 8);
  put_be(out, receiver_boot_id, 8);
  out.push_back(static_cast<char>(self_.size()));
  out.append(self_);
  out.resize(header_size + body.size() + crypto::kTagSize);
  auto* data = reinterpret_cast<std::uint8_t*>(out.data());
  // Why a nonce never repeats under a key: every key belongs to one boot of
  // this node (its random boot id is in the hello key's salt and, with the
  // peer's boot, in each pairwise key's), and within a boot the counter
  // only rises, shared by every key of the boot.
  if (!aead_.seal(key, nonce_of(counter_), {data, header_size}, crypto::as_bytes(body),
                  {data + header_size, body.size() + crypto::kTagSize})) {
    std::abort();  // only a broken OpenSSL fails to encrypt
  }
  return out;
}

namespace {

std::string listed(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::vector<std::string> sorted(items.begin(), items.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out = "[";
  for (const auto& s : sorted) out += (out.size() > 1 ? ", " : "") + s;
  return out + "]";
}

/// The first bytes of a digest in hex, as people compare two by eye.
std::string short_digest(const std::string& digest) {
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(digest.size(), 4); ++i) {
    out += fmt::format("{:02x}", static_cast<std::uint8_t>(digest[i]));
  }
  return out + "\u2026";
}

/// Where what `peer` says (its view of itself and of us, and the policy
/// digest its v3 signature vouched for) disagrees with our view of the two:
/// the groups each is in, whether it lists our key, the mesh policy.
std::vector<std::string> disagreements(const std::string& peer, const v1::PairView& ours,
                                       const v1::PairView& theirs,
                                       const std::string& their_policy) {
  std::vector<std::string> out;
  // Empty on either side is unknown (a build before the digest), not drift.
  if (!their_policy.empty() && !ours.policy_digest().empty() &&
      their_policy != ours.policy_digest()) {
    out.push_back(peer + "'s mesh policy differs from this node's (digest " +
                  short_digest(their_policy) + " there, " + short_digest(ours.policy_digest()) +
                  " here): the same policy file must be installed at every site");
  }
  if (listed(theirs.self().groups()) != listed(ours.peer().groups())) {
    out.push_back(peer + " says it is in groups " + listed(theirs.self().groups()) +
                  "; this node's configuration has " + listed(ours.peer().groups()));
  }
  if (listed(theirs.peer().groups()) != listed(ours.self().groups())) {
    out.push_back(peer + "'s configuration puts this node in groups " +
                  listed(theirs.peer().groups()) + "; it is in " + listed(ours.self().groups()));
  }
  const auto& keys = theirs.peer().keys();
  if (!ours.self().keys().empty() &&
      std::find(keys.begin(), keys.end(), ours.self().keys(0)) == keys.end()) {
    out.push_back(peer + "'s configuration does not list this node's current identity key");
  }
  return out;
}

}  // namespace

std::optional<std::string> Codec::hello_for(const std::string& peer_id, Peer& peer, bool force) {
  const auto now = clock_.steady_now();
  if (!force && now - peer.last_hello < kHelloInterval) return std::nullopt;
  peer.last_hello = now;
  v1::Hello hello;
  *hello.mutable_credential() = local_.credential;
  if (const PeerSession* s = peer.sessions.for_sending()) hello.set_known_boot_id(s->boot_id());
  if (auto view = views_.find(peer_id); view != views_.end()) *hello.mutable_view() = view->second;
  // Only the v3 signature covers the digest: without features, none (a hello
  // as a build before it sends).
  if (features_ == 0 && hello.has_view()) hello.mutable_view()->clear_policy_digest();
  hello.set_wall_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch())
          .count());
  const std::uint32_t key_id = key_id_for(peer);
  // seal_as numbers the datagram counter_ + 1 (one thread owns the codec).
  if (features_ != 0) {
    hello.set_features(features_);
    const auto v3 = identity_.sign(
        crypto::as_bytes(hello_features_signing_message(peer_id, key_id, counter_ + 1, hello)));
    hello.set_features_signature(v3.data(), v3.size());
    if (!hello.view().policy_digest().empty()) {
      const auto policy = identity_.sign(
          crypto::as_bytes(hello_policy_signing_message(peer_id, key_id, counter_ + 1, hello)));
      hello.set_policy_signature(policy.data(), policy.size());
    }
  }
  // Signed the v2 way too: an older peer checks only that one.
  const auto sig =
      identity_.sign(crypto::as_bytes(hello_signing_message(peer_id, key_id, counter_ + 1, hello)));
  hello.set_signature(sig.data(), sig.size());
  v1::Datagram d;
  *d.mutable_hello() = std::move(hello);
  return seal_as(Kind::hello, key_id, hello_key(key_id), 0, d.SerializeAsString());
}

std::optional<std::string> Codec::seal_pair(const std::string& id, Peer& peer,
                                            const std::string& body) {
  PeerSession* s = peer.sessions.for_sending();
  if (s == nullptr) return std::nullopt;
  const std::uint32_t key_id = key_id_for(peer);
  auto key = s->send_keys.find(key_id);
  if (key == s->send_keys.end()) {
    key = s->send_keys
              .emplace(key_id, derive_pair_key(*ring_.find(key_id), s->agreement, self_,
                                               local_.credential, id, s->credential))
              .first;
  }
  return seal_as(Kind::pair, key_id, key->second, s->boot_id(), body);
}

void Codec::flush_waiting(const std::string& id, Peer& peer, std::vector<std::string>& out) {
  while (!peer.waiting.empty() && peer.sessions.for_sending() != nullptr) {
    if (auto sealed = seal_pair(id, peer, peer.waiting.front())) out.push_back(std::move(*sealed));
    peer.waiting.pop_front();
  }
}

v1::Datagram Codec::sign_parts(const v1::Datagram& body) const {
  v1::Datagram signed_body = body;
  auto sign = [&](const std::string& message, std::string* signature) {
    const auto sig = identity_.sign(crypto::as_bytes(message));
    signature->assign(reinterpret_cast<const char*>(sig.data()), sig.size());
  };
  if (body.has_receipts() && body.receipts().target() == self_) {
    auto* r = signed_body.mutable_receipts();
    sign(receipts_signing_message(*r), r->mutable_signature());
  } else if (body.has_receipt_acks() && body.receipt_acks().origin() == self_) {
    auto* a = signed_body.mutable_receipt_acks();
    sign(receipt_acks_signing_message(*a), a->mutable_signature());
  } else if (body.has_probe_ack() && body.probe_ack().target() == self_ &&
             !body.probe_ack().requester().empty()) {
    // Answering an indirect probe: the relay passes it on, and only our own
    // signature can make the requester believe we are alive.
    auto* a = signed_body.mutable_probe_ack();
    sign(probe_ack_signing_message(*a), a->mutable_signature());
  }
  return signed_body;
}

std::optional<std::vector<std::string>> Codec::seal(const std::string& id,
                                                    const v1::Datagram& body) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return std::vector<std::string>{};
  Peer& peer = it->second;
  const bool needs_signature = (body.has_receipts() && body.receipts().target() == self_) ||
                               (body.has_receipt_acks() && body.receipt_acks().origin() == self_) ||
                               (body.has_probe_ack() && body.probe_ack().target() == self_ &&
                                !body.probe_ack().requester().empty());
  const std::string bytes =
      needs_signature ? sign_parts(body).SerializeAsString() : body.SerializeAsString();
  if (kFixedHeader + self_.size() + bytes.size() + crypto::kTagSize > kMaxDatagram) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  if (auto sealed = seal_pair(id, peer, bytes)) {
    out.push_back(std::move(*sealed));
    return out;
  }
  if (peer.waiting.size() < kMaxWaiting) peer.waiting.push_back(bytes);
  if (auto hello = hello_for(id, peer, false)) out.push_back(std::move(*hello));
  return out;
}

std::vector<std::pair<std::string, std::string>> Codec::greet() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [id, peer] : peers_) {
    if (peer.sessions.for_sending() != nullptr) continue;
    if (auto hello = hello_for(id, peer, true)) out.emplace_back(id, std::move(*hello));
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
  out.replies.clear();
  out.events.clear();
  out.sender.clear();
  out.for_core = false;
  Reject why = Reject::none;
  auto header = parse_header(datagram, &why);
  if (!header) return why;
  auto it = peers_.find(header->sender);
  if (ring_.find(header->key_id) == nullptr) {
    // Unauthenticated, but worth naming: a site on a key this node lacks.
    if (it != peers_.end()) it->second.missing_key = header->key_id;
    return Reject::unknown_key_id;
  }
  if (it == peers_.end()) return Reject::unknown_sender;
  out.sender = header->sender;
  return header->kind == Kind::hello ? open_hello(*header, it->second, datagram, out)
                                     : open_pair(*header, it->second, datagram, out);
}

Reject Codec::open_hello(const Header& header, Peer& peer, crypto::ByteView datagram, Opened& out) {
  const crypto::Key key =
      derive_hello_key(*ring_.find(header.key_id), header.sender, header.boot, header.boot_id);
  const std::size_t header_size = kFixedHeader + header.sender.size();
  const auto sealed = datagram.subspan(header_size);
  buffer_.resize(sealed.size() - crypto::kTagSize);
  if (!aead_.open(key, nonce_of(header.counter), datagram.first(header_size), sealed,
                  {reinterpret_cast<std::uint8_t*>(buffer_.data()), buffer_.size()})) {
    return Reject::bad_tag;
  }
  if (!out.body.ParseFromString(buffer_) || !out.body.has_hello()) return Reject::malformed_body;
  // Anyone with the mesh key can get this far; the credential must be the
  // sender's own, signed by its identity key, for this very session.
  const v1::Credential& c = out.body.hello().credential();
  if (c.node() != header.sender || c.boot() != header.boot || c.boot_id() != header.boot_id ||
      c.ephemeral().size() != crypto::kPublicKeySize) {
    return Reject::bad_credential;
  }
  if (!verified_credentials_.contains(c.signature())) {
    ++signature_checks_;
    if (!peer.keys.verify_now(crypto::as_bytes(credential_signing_message(c)),
                              crypto::as_bytes(c.signature()))) {
      // Most likely a key this configuration does not list yet (drift);
      // while a session with the real peer stands, a forgery says nothing.
      if (peer.sessions.current() == nullptr) peer.unlisted_key = true;
      return Reject::bad_credential;
    }
    if (verified_credentials_.size() >= kVerifiedCredentials) verified_credentials_.clear();
    verified_credentials_.insert(c.signature());
  }
  // The hello itself, signed for this datagram: its view (drift) and the
  // key id in its header are the sender's word, not a mesh-key holder's.
  // A counter at or below the last accepted one of this session is a
  // replay, refused before the Ed25519 check; only a verified hello moves
  // the mark, so a forged high counter cannot lock the real hellos out.
  if (header.boot_id == peer.hello_boot_id && header.counter <= peer.hello_counter) {
    return Reject::replay;
  }
  ++signature_checks_;
  const v1::Hello& offered = out.body.hello();
  // With features, the v3 signature covers everything the v2 one does and
  // the features too; without, the hello is an older node's (features 0).
  const bool v3 = offered.features() != 0 || !offered.features_signature().empty();
  const std::string message =
      v3 ? hello_features_signing_message(self_, header.key_id, header.counter, offered)
         : hello_signing_message(self_, header.key_id, header.counter, offered);
  const std::string& signature = v3 ? offered.features_signature() : offered.signature();
  if (!peer.keys.verify_now(crypto::as_bytes(message), crypto::as_bytes(signature))) {
    return Reject::bad_credential;
  }
  // A policy digest is somebody's word only under its own signature; one
  // without it (or a signature without one) is a forgery.
  const bool policy = !offered.view().policy_digest().empty();
  if (policy || !offered.policy_signature().empty()) {
    ++signature_checks_;
    if (!v3 || !policy ||
        !peer.keys.verify_now(crypto::as_bytes(hello_policy_signing_message(
                                  self_, header.key_id, header.counter, offered)),
                              crypto::as_bytes(offered.policy_signature()))) {
      return Reject::bad_credential;
    }
  }
  // A build does not change within a session, so its features only grow
  // there: a mesh-key holder who strips them from a hello (and its v3
  // signature with them) cannot take back what an earlier hello announced.
  if (header.boot_id != peer.features_boot_id) {
    peer.features_boot_id = header.boot_id;
    peer.features = 0;
    peer.policy_digest.clear();
  }
  peer.features |= offered.features();
  // Like the features, a session's digest is what its signed hellos said
  // last, so one stripped to pass as an older build's does not hide it.
  if (policy) peer.policy_digest = offered.view().policy_digest();
  peer.hello_boot_id = header.boot_id;
  peer.hello_counter = header.counter;
  crypto::PublicKeyBytes ephemeral;
  std::copy(c.ephemeral().begin(), c.ephemeral().end(), ephemeral.begin());
  const auto agreement = local_.ephemeral.agree(ephemeral);
  if (!agreement) return Reject::bad_credential;
  peer.key_id = header.key_id;
  peer.missing_key = 0;
  peer.unlisted_key = false;
  if (auto ours = views_.find(header.sender);
      ours != views_.end() && out.body.hello().has_view()) {
    peer.drift =
        disagreements(header.sender, ours->second, out.body.hello().view(), peer.policy_digest);
  }
  const auto offer = peer.sessions.offer(c, *agreement, clock_.steady_now());
  // Answer with ours unless it already holds it (this hello is then the
  // answer to ours): a new session at once, a repeated one at most once a
  // second.
  if (out.body.hello().known_boot_id() != local_.boot_id) {
    if (auto hello = hello_for(header.sender, peer, offer == PeerSessions::Offer::accepted)) {
      out.replies.push_back(std::move(*hello));
    }
  }
  flush_waiting(header.sender, peer, out.replies);
  return Reject::none;
}

Reject Codec::open_pair(const Header& header, Peer& peer, crypto::ByteView datagram, Opened& out) {
  PeerSession* s = header.receiver_boot_id == local_.boot_id
                       ? peer.sessions.find(header.boot, header.boot_id)
                       : nullptr;
  if (s == nullptr) {
    // Sealed to an earlier boot of ours, or from a session we never
    // verified (a restart on either side, or a replay): offer ours, so that
    // a live peer makes a session with it.
    if (auto hello = hello_for(header.sender, peer, false)) out.replies.push_back(*hello);
    return header.receiver_boot_id == local_.boot_id ? Reject::unknown_session
                                                     : Reject::stale_session;
  }
  auto key = s->receive_keys.find(header.key_id);
  if (key == s->receive_keys.end()) {
    key = s->receive_keys
              .emplace(header.key_id,
                       derive_pair_key(*ring_.find(header.key_id), s->agreement, header.sender,
                                       s->credential, self_, local_.credential))
              .first;
  }
  const std::size_t header_size = kFixedHeader + header.sender.size();
  const auto sealed = datagram.subspan(header_size);
  buffer_.resize(sealed.size() - crypto::kTagSize);
  if (!aead_.open(key->second, nonce_of(header.counter), datagram.first(header_size), sealed,
                  {reinterpret_cast<std::uint8_t*>(buffer_.data()), buffer_.size()})) {
    return Reject::bad_tag;
  }
  // Authenticated: only the peer's live process holds this key.
  if (s->window.check_and_mark(header.counter) != ReplayWindow::Verdict::fresh) {
    return Reject::replay;
  }
  peer.sessions.confirm(s);  // s may move: not used below
  peer.key_id = header.key_id;
  peer.missing_key = 0;
  flush_waiting(header.sender, peer, out.replies);
  if (!out.body.ParseFromString(buffer_) || out.body.body_case() == v1::Datagram::BODY_NOT_SET ||
      out.body.has_hello()) {
    return Reject::malformed_body;
  }
  if (const Reject r = verify_signed_parts(header.sender, out.body); r != Reject::none) return r;
  if (const Reject r = verify_events(out); r != Reject::none) return r;
  out.for_core = true;
  return Reject::none;
}

const IdentityKeys* Codec::keys_of(const std::string& node) const {
  if (node == self_) return &self_keys_;
  auto it = peers_.find(node);
  return it == peers_.end() ? nullptr : &it->second.keys;
}

Reject Codec::verify_signed_parts(const std::string& sender, const v1::Datagram& body) {
  // Receipts speak for their target, acks for their origin and an indirect
  // probe answer for the probed node, whoever relays them: each is checked
  // against that node's own key.
  auto check = [&](const std::string& node, const std::string& message,
                   const std::string& signature) {
    const IdentityKeys* keys = keys_of(node);
    if (keys == nullptr) return Reject::unknown_origin;
    ++signature_checks_;
    return keys->verify_now(crypto::as_bytes(message), crypto::as_bytes(signature))
               ? Reject::none
               : Reject::bad_origin_signature;
  };
  if (body.has_receipts()) {
    return check(body.receipts().target(), receipts_signing_message(body.receipts()),
                 body.receipts().signature());
  }
  if (body.has_receipt_acks()) {
    return check(body.receipt_acks().origin(), receipt_acks_signing_message(body.receipt_acks()),
                 body.receipt_acks().signature());
  }
  if (body.has_probe_ack() && body.probe_ack().target() != sender) {
    // Only the requester itself may take a relayed answer as proof.
    if (body.probe_ack().requester() != self_) return Reject::bad_origin_signature;
    return check(body.probe_ack().target(), probe_ack_signing_message(body.probe_ack()),
                 body.probe_ack().signature());
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
    const IdentityKeys* keys = keys_of(event.origin());
    if (keys == nullptr) return Reject::unknown_origin;
    // The current key, or a retired one that signed up to this seq.
    const auto candidates = keys->keys_for_seq(event.seq());
    if (signed_event.path_size() == 0) {
      const std::string message = event_signing_message(signed_event.event());
      bool ok = false;
      for (std::size_t index : candidates) {
        ++signature_checks_;
        if (keys->key(index).verify(crypto::as_bytes(message),
                                    crypto::as_bytes(signed_event.signature()))) {
          ok = true;
          break;
        }
      }
      if (!ok) return Reject::bad_origin_signature;
      continue;
    }
    // A bundled event: its path leads to a root, whose signature is checked
    // once and then remembered with the key that made it.
    const auto root = bundle_root(signed_event);
    if (!root) return Reject::malformed_body;
    std::string cache_key = event.origin();
    cache_key.push_back('\0');
    cache_key.append(reinterpret_cast<const char*>(root->data()), root->size());
    cache_key.append(signed_event.signature());
    if (auto hit = verified_roots_.find(cache_key); hit != verified_roots_.end()) {
      if (std::find(candidates.begin(), candidates.end(), hit->second) != candidates.end())
        continue;
      return Reject::bad_origin_signature;  // that key may not sign this seq
    }
    const std::string message = bundle_signing_message(*root, signed_event.path_size());
    std::optional<std::size_t> signer;
    for (std::size_t index : candidates) {
      ++signature_checks_;
      if (keys->key(index).verify(crypto::as_bytes(message),
                                  crypto::as_bytes(signed_event.signature()))) {
        signer = index;
        break;
      }
    }
    if (!signer) return Reject::bad_origin_signature;
    // Bounded: forgetting costs one more check per bundle, nothing else.
    if (verified_roots_.size() >= kVerifiedRoots) verified_roots_.clear();
    verified_roots_.emplace(std::move(cache_key), *signer);
  }
  return Reject::none;
}

void Codec::set_key_ring(KeyRing ring) {
  ring_ = std::move(ring);
  hello_keys_.clear();
  for (auto& [id, peer] : peers_) peer.sessions.forget_keys();
}

void Codec::set_peers(std::map<std::string, IdentityKeys> peers) {
  std::erase_if(peers_, [&](const auto& entry) { return !peers.contains(entry.first); });
  for (auto& [id, keys] : peers) {
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      peers_.emplace(id, Peer(std::move(keys)));
    } else {
      it->second.keys = std::move(keys);
    }
  }
  verified_roots_.clear();  // a peer's keys may have changed
  verified_credentials_.clear();
}

void Codec::set_identity(const crypto::SigningKey& identity, IdentityKeys self_keys,
                         std::uint64_t boot) {
  identity_ = identity;
  self_keys_ = std::move(self_keys);
  local_ = new_local_session(self_, identity_, boot);
  hello_keys_.clear();
  // Every agreement used the old ephemeral key: make the sessions again.
  for (auto& [id, peer] : peers_) peer.sessions.clear();
}

PeerWireState Codec::peer_state(const std::string& id) const {
  PeerWireState state;
  auto it = peers_.find(id);
  if (it == peers_.end()) return state;
  const Peer& peer = it->second;
  state.session = peer.sessions.current() != nullptr;
  if (const PeerSession* s = peer.sessions.current()) state.boot = s->boot();
  state.key_id = peer.key_id;
  state.missing_key = peer.missing_key;
  state.waiting = peer.waiting.size();
  state.drift = peer.drift;
  state.features = peer.features;
  if (peer.unlisted_key) {
    state.drift.insert(state.drift.begin(),
                       id + " signs with an identity key this node's configuration does not "
                            "list for it");
  }
  return state;
}

}  // namespace relay::wire

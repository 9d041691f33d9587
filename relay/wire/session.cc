#include "relay/wire/session.h"

#include <string_view>

namespace relay::wire {
namespace {

// A candidate that never proved itself may be replaced by a lower boot
// after this long (a rebuilt peer whose counter restarted; see offer()).
constexpr auto kCandidateGrace = std::chrono::seconds(5);

void put_be(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_session(std::string& out, const v1::Credential& c) {
  out += c.node();
  out.push_back('\0');
  put_be(out, c.boot());
  put_be(out, c.boot_id());
}

}  // namespace

bool IdentityKeys::verify_now(crypto::ByteView message, crypto::ByteView sig) const {
  if (current.verify(message, sig)) return true;
  for (const auto& r : retired) {
    if (!r.last_seq && r.key.verify(message, sig)) return true;
  }
  return false;
}

std::vector<std::size_t> IdentityKeys::keys_for_seq(std::uint64_t seq) const {
  std::vector<std::size_t> out{0};
  for (std::size_t i = 0; i < retired.size(); ++i) {
    if (!retired[i].last_seq || seq <= *retired[i].last_seq) out.push_back(i + 1);
  }
  return out;
}

std::string credential_signing_message(const v1::Credential& c) {
  std::string m = "relaymesh v2 session";
  m.push_back('\0');
  put_session(m, c);
  m += c.ephemeral();
  return m;
}

namespace {

void put_text(std::string& out, const std::string& text) {
  put_be(out, text.size());
  out += text;
}

void put_member(std::string& out, const v1::Member& m) {
  put_text(out, m.id());
  put_be(out, static_cast<std::uint64_t>(m.groups_size()));
  for (const auto& g : m.groups()) put_text(out, g);
  put_be(out, static_cast<std::uint64_t>(m.keys_size()));
  for (const auto& k : m.keys()) put_text(out, k);
}

}  // namespace

namespace {

std::string hello_message(std::string_view tag, const std::string& receiver, std::uint32_t key_id,
                          std::uint64_t counter, const v1::Hello& hello) {
  std::string m(tag);
  m.push_back('\0');
  put_session(m, hello.credential());
  put_text(m, hello.credential().signature());
  put_text(m, receiver);
  put_be(m, key_id);
  put_be(m, counter);
  put_be(m, hello.known_boot_id());
  put_be(m, static_cast<std::uint64_t>(hello.wall_unix_ms()));
  put_text(m, hello.view_digest());
  m.push_back(hello.has_view() ? '\1' : '\0');
  if (hello.has_view()) {
    put_member(m, hello.view().self());
    put_member(m, hello.view().peer());
  }
  return m;
}

}  // namespace

std::string hello_signing_message(const std::string& receiver, std::uint32_t key_id,
                                  std::uint64_t counter, const v1::Hello& hello) {
  return hello_message("relaymesh v2 hello", receiver, key_id, counter, hello);
}

std::string hello_features_signing_message(const std::string& receiver, std::uint32_t key_id,
                                           std::uint64_t counter, const v1::Hello& hello) {
  // Its own tag: neither signature is ever valid as the other.
  std::string m = hello_message("relaymesh v3 hello", receiver, key_id, counter, hello);
  put_be(m, hello.features());
  return m;
}

std::string hello_policy_signing_message(const std::string& receiver, std::uint32_t key_id,
                                         std::uint64_t counter, const v1::Hello& hello) {
  // Its own tag again; then the digest after all the features signature covers.
  std::string m = hello_message("relaymesh v3 hello policy", receiver, key_id, counter, hello);
  put_be(m, hello.features());
  put_text(m, hello.view().policy_digest());
  return m;
}

LocalSession new_local_session(const std::string& self, const crypto::SigningKey& identity,
                               std::uint64_t boot) {
  LocalSession s{boot, 0, crypto::EphemeralKey::generate(), {}};
  crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&s.boot_id), sizeof s.boot_id});
  auto& c = s.credential;
  c.set_node(self);
  c.set_boot(boot);
  c.set_boot_id(s.boot_id);
  c.set_ephemeral(s.ephemeral.public_key().data(), s.ephemeral.public_key().size());
  const auto sig = identity.sign(crypto::as_bytes(credential_signing_message(c)));
  c.set_signature(sig.data(), sig.size());
  return s;
}

crypto::Key derive_hello_key(const crypto::Key& ring_key, const std::string& sender,
                             std::uint64_t boot, std::uint64_t boot_id) {
  std::string salt;
  put_be(salt, boot);
  put_be(salt, boot_id);
  const std::string info = "relaymesh v2 hello key " + sender;
  return crypto::hkdf_sha256(ring_key, crypto::as_bytes(salt), crypto::as_bytes(info));
}

crypto::Key derive_pair_key(const crypto::Key& ring_key, const crypto::Key& agreement,
                            const std::string& from, const v1::Credential& from_session,
                            const std::string& to, const v1::Credential& to_session) {
  // Both secrets in the key material: the mesh key (who may talk at all)
  // and the agreement (which two live processes). The salt names both
  // boots and the info the direction, so each key seals one way of one
  // pair of boots, and the sender's counter never repeats under it.
  std::string ikm(ring_key.begin(), ring_key.end());
  ikm.append(agreement.begin(), agreement.end());
  std::string salt;
  put_session(salt, from_session);
  put_session(salt, to_session);
  std::string info = "relaymesh v2 pair key " + from;
  info.push_back('\0');
  info += to;
  return crypto::hkdf_sha256(crypto::as_bytes(ikm), crypto::as_bytes(salt), crypto::as_bytes(info));
}

PeerSessions::Offer PeerSessions::offer(const v1::Credential& credential,
                                        const crypto::Key& agreement, SteadyTime now) {
  auto same = [&](const std::optional<PeerSession>& s) {
    return s && s->boot() == credential.boot() && s->boot_id() == credential.boot_id();
  };
  if (same(current_) || same(candidate_)) return Offer::same;
  // A candidate is replaced by a higher boot at once, by anything else only
  // once it has had its chance to prove itself: a replayed older hello can
  // delay a real session of a peer that lost its counter by a few seconds
  // at most, and never divert what is sent to a newer one.
  if (candidate_ && credential.boot() <= candidate_->boot() &&
      now - candidate_->since < kCandidateGrace) {
    return Offer::ignored;
  }
  PeerSession session;
  session.credential = credential;
  session.agreement = agreement;
  session.since = now;
  candidate_ = std::move(session);
  return Offer::accepted;
}

PeerSession* PeerSessions::find(std::uint64_t boot, std::uint64_t boot_id) {
  for (auto* s : {&current_, &candidate_}) {
    if (*s && (*s)->boot() == boot && (*s)->boot_id() == boot_id) return &**s;
  }
  return nullptr;
}

void PeerSessions::confirm(PeerSession* session) {
  if (candidate_ && session == &*candidate_) {
    current_ = std::move(candidate_);  // the newer proven session retires the older
    candidate_.reset();
  }
}

PeerSession* PeerSessions::for_sending() {
  if (candidate_ && (!current_ || candidate_->boot() > current_->boot())) return &*candidate_;
  return current_ ? &*current_ : nullptr;
}

void PeerSessions::forget_keys() {
  for (auto* s : {&current_, &candidate_}) {
    if (*s) {
      (*s)->send_keys.clear();
      (*s)->receive_keys.clear();
    }
  }
}

void PeerSessions::clear() {
  current_.reset();
  candidate_.reset();
}

}  // namespace relay::wire

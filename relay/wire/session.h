#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "proto/relaymesh.pb.h"
#include "relay/wire/replay_window.h"

namespace relay::wire {

namespace v1 = relaymesh::v1;
using SteadyTime = std::chrono::steady_clock::time_point;

/// A node's identity keys as this node's configuration lists them: the
/// current key, and retired ones kept so that what they signed still
/// verifies. A retired key with `last_seq` verifies only the node's events
/// up to that seq (a leaked old key cannot sign new ones); without it the
/// key is in its overlap and still speaks for the node (a rotation under way).
struct IdentityKeys {
  struct Retired {
    crypto::VerifyKey key;
    std::optional<std::uint64_t> last_seq;
  };
  crypto::VerifyKey current;
  std::vector<Retired> retired;

  /// True if a key that speaks for the node now (the current one, or one in
  /// its overlap) signed `message`: sessions, receipts, probe answers.
  bool verify_now(crypto::ByteView message, crypto::ByteView sig) const;
  /// The keys that may have signed the node's event with this seq: 0 is
  /// the current key, i > 0 is retired[i - 1].
  std::vector<std::size_t> keys_for_seq(std::uint64_t seq) const;
  const crypto::VerifyKey& key(std::size_t index) const {
    return index == 0 ? current : retired[index - 1].key;
  }
};

/// This node's session for one boot: the boot counter (from the state
/// directory, durable before the session is used), a random boot id, an
/// ephemeral X25519 key, and the credential that binds them to the node's
/// identity key. Signed once per boot, not per datagram.
struct LocalSession {
  std::uint64_t boot = 0;
  std::uint64_t boot_id = 0;
  crypto::EphemeralKey ephemeral;
  v1::Credential credential;
};

/// A new session of `self` for boot `boot`.
LocalSession new_local_session(const std::string& self, const crypto::SigningKey& identity,
                               std::uint64_t boot);
/// What a credential's signature covers: a domain tag and the fields in a
/// fixed byte layout.
std::string credential_signing_message(const v1::Credential& credential);

/// What a hello's signature covers: a domain tag, the sender's session
/// (its credential's signature), the receiver, the header's ring key id and
/// counter, and every field of the hello but the signature, view included,
/// in a fixed byte layout. The counter makes each signature good for one
/// datagram: a replayed hello is refused before any Ed25519 check.
std::string hello_signing_message(const std::string& receiver, std::uint32_t key_id,
                                  std::uint64_t counter, const v1::Hello& hello);
/// What a hello's `features_signature` covers: the same fields under the
/// tag "relaymesh v3 hello", then the features. A v3 node checks it when
/// present, else `signature` (a hello from an older node: features 0).
/// `signature` stays for older nodes, which do not know the features.
std::string hello_features_signing_message(const std::string& receiver, std::uint32_t key_id,
                                           std::uint64_t counter, const v1::Hello& hello);
/// What a hello's `policy_signature` covers: the same fields under the tag
/// "relaymesh v3 hello policy", the features, then the view's policy
/// digest. Checked when the view carries a digest: a v3 build before the
/// digest checks `features_signature` alone, which does not cover it.
std::string hello_policy_signing_message(const std::string& receiver, std::uint32_t key_id,
                                         std::uint64_t counter, const v1::Hello& hello);

/// The key that seals a session's hellos: the mesh key alone (there is no
/// pairwise key yet), new for each boot of each sender.
crypto::Key derive_hello_key(const crypto::Key& ring_key, const std::string& sender,
                             std::uint64_t boot, std::uint64_t boot_id);
/// The key of one direction between two sessions: HKDF over the ring key
/// and the X25519 agreement of the two boots' ephemeral keys. Only the two
/// live processes can compute it: a mesh-key holder cannot, and it dies with
/// either boot, so a capture never opens again after a restart.
crypto::Key derive_pair_key(const crypto::Key& ring_key, const crypto::Key& agreement,
                            const std::string& from, const v1::Credential& from_session,
                            const std::string& to, const v1::Credential& to_session);

/// A peer's session as this node verified it.
struct PeerSession {
  v1::Credential credential;
  crypto::Key agreement{};  // X25519 of our ephemeral key and the peer's
  ReplayWindow window;
  /// Pairwise keys by ring key id, derived when first needed.
  std::map<std::uint32_t, crypto::Key> send_keys;
  std::map<std::uint32_t, crypto::Key> receive_keys;
  SteadyTime since{};
  std::uint64_t boot() const { return credential.boot(); }
  std::uint64_t boot_id() const { return credential.boot_id(); }
};

/// What this node holds of one peer's sessions, and the rules between them
/// (docs/wire.md, "Sessions"). A verified credential becomes a candidate; a
/// pairwise datagram that opens under the candidate proves the peer is live
/// in it now, and it becomes current, retiring the one before. A candidate
/// with a higher boot counter is sealed to at once (it is provably newer); a
/// lower one (the peer lost its state) only once it proved itself, so that
/// a replayed old hello cannot divert what is sent. Pure: time is passed in.
class PeerSessions {
 public:
  enum class Offer { same, accepted, ignored };
  /// A credential whose signature checked out, with our agreement for it.
  Offer offer(const v1::Credential& credential, const crypto::Key& agreement, SteadyTime now);
  /// The session a pairwise datagram names, or nullptr.
  PeerSession* find(std::uint64_t boot, std::uint64_t boot_id);
  /// A datagram opened under `session`: a candidate becomes current.
  void confirm(PeerSession* session);
  /// The session to seal for the peer with, or nullptr if there is none.
  PeerSession* for_sending();
  const PeerSession* current() const { return current_ ? &*current_ : nullptr; }
  /// Forgets everything (our own session changed: every agreement is void).
  void clear();
  /// Forgets derived keys (the key ring changed); they are derived again.
  void forget_keys();

 private:
  std::optional<PeerSession> current_;
  std::optional<PeerSession> candidate_;
};

}  // namespace relay::wire

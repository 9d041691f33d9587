#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/keys.h"
#include "proto/relaymesh.pb.h"
#include "relay/wire/replay_window.h"
#include "relay/wire/session.h"
#include "relay/wire/signing.h"

namespace relay::wire {

namespace v1 = relaymesh::v1;

/// QUIC's rule: the largest UDP payload that crosses real paths without IP
/// fragmentation, which loses the whole datagram when one fragment is lost.
inline constexpr std::size_t kMaxDatagram = 1200;
/// Version 2: signed sessions with pairwise keys (docs/wire.md).
inline constexpr std::uint8_t kVersion = 2;
/// What this build takes beyond version 2, announced in its signed hello
/// (relaymesh.v1.Feature; docs/wire.md, "Features").
inline constexpr std::uint64_t kFeatures =
    v1::FEATURE_RESPONSE_LOOP | v1::FEATURE_POLICY | v1::FEATURE_UPDATE_CANCEL;
inline constexpr std::size_t kMaxSenderId = 32;
/// Fixed part of the header: version, kind, key id, boot counter, boot id,
/// counter, the receiver's boot id, sender length.
inline constexpr std::size_t kFixedHeader = 1 + 1 + 4 + 8 + 8 + 8 + 8 + 1;
/// Largest serialized Event: one signed event with its framing still fits a
/// datagram sent by a node with the longest id (checked by a test).
inline constexpr std::size_t kMaxEventBytes = 1000;

/// How a datagram is sealed.
enum class Kind : std::uint8_t {
  hello = 1,  // a session offer, sealed with the mesh key ring alone
  pair = 2,   // everything else, sealed with the pairwise key of two sessions
};

/// The authenticated (associated data) header of every datagram.
struct Header {
  Kind kind = Kind::pair;
  std::uint32_t key_id = 0;
  std::uint64_t boot = 0;     // the sender's boot counter
  std::uint64_t boot_id = 0;  // the sender's random boot id
  std::uint64_t counter = 0;
  std::uint64_t receiver_boot_id = 0;  // pair only: the session it is sealed to
  std::string sender;
};

/// Why a datagram was dropped. Every reason is counted.
enum class Reject : std::uint8_t {
  none,
  bad_size,
  unknown_version,
  unknown_key_id,
  unknown_sender,
  bad_tag,
  stale_session,
  replay,
  malformed_body,
  unknown_origin,
  bad_origin_signature,
  unknown_session,
  bad_credential,
};
inline constexpr std::size_t kRejectReasons = 13;
/// Stable snake_case name of a reason, for logs and metrics.
const char* to_string(Reject reason);

/// Parses the header of a datagram; nullopt if it is not one of ours.
/// Returns the reason in `why` (bad_size or unknown_version) on failure.
std::optional<Header> parse_header(crypto::ByteView datagram, Reject* why = nullptr);

/// What the indirect probe answer of `target` for `requester` signs.
std::string probe_ack_signing_message(const v1::ProbeAck& ack);

/// A datagram that passed every check, with its events parsed and verified.
struct Opened {
  std::string sender;
  v1::Datagram body;
  /// Parsed events of body.events(), in order, each signature checked.
  std::vector<v1::Event> events;
  /// The body is for the protocol core (false for a hello, which the codec
  /// handles itself).
  bool for_core = false;
  /// Sealed datagrams to send back to the sender: a hello in answer, and
  /// what waited for a session with it.
  std::vector<std::string> replies;
};

/// What a node knows of a peer's sessions and keys, for the status page.
struct PeerWireState {
  bool session = false;           // a session to seal to
  std::uint64_t boot = 0;         // the peer's current boot counter, if any
  std::uint32_t key_id = 0;       // the ring key id it seals with (0: not seen)
  std::uint32_t missing_key = 0;  // a key id it used that this node does not hold
  std::size_t waiting = 0;        // datagrams waiting for a session with it
  /// Where its configuration and this node's disagree about the two of
  /// them (groups, keys), as it said in its last hello; empty if they agree.
  std::vector<std::string> drift;
  /// The relaymesh.v1.Feature bits its current session announced (0: none,
  /// an older build, or no verified hello yet).
  std::uint64_t features = 0;
};

/// Seals outgoing and opens incoming datagrams for one node: framing,
/// sessions and their handshake, AEAD, anti-replay, origin signatures.
/// Untrusted input never throws out of open(); every drop is counted by
/// reason. Not thread-safe: one per network thread.
class Codec {
 public:
  /// `peers` maps every node allowed to send to us to its identity keys;
  /// `self_keys` are this node's own, current and retired (its own events
  /// come back from peers after a restore). `boot` is this boot's counter,
  /// durable in the state directory before it is passed here.
  Codec(std::string self, const crypto::SigningKey& identity, IdentityKeys self_keys, KeyRing ring,
        std::map<std::string, IdentityKeys> peers, std::uint64_t boot, const Clock& clock);

  /// Seals `body` for `peer`. Returns what to send now: the sealed datagram
  /// when there is a session with the peer; else a hello (at most one a
  /// second) while the body waits for the session, up to a bound, so maybe
  /// nothing. Receipts this node gives as a target, receipt acks it gives
  /// as an origin and indirect probe answers it gives are signed here; ones
  /// it relays keep their signature. nullopt if the body would exceed
  /// kMaxDatagram (a bug).
  std::optional<std::vector<std::string>> seal(const std::string& peer, const v1::Datagram& body);
  /// A hello to every peer without a session (at start, and after a new
  /// key ring or identity).
  std::vector<std::pair<std::string, std::string>> greet();

  /// Opens a datagram. Returns Reject::none and fills `out`, or the reason.
  Reject open(crypto::ByteView datagram, Opened& out);

  /// Replaces the key ring (SIGHUP); cached keys of removed ring keys go too.
  void set_key_ring(KeyRing ring);
  /// Replaces the peer set; state of removed peers is dropped.
  void set_peers(std::map<std::string, IdentityKeys> peers);
  /// What this node's configuration says about itself and each peer: sent
  /// in hellos, and compared with what each peer says (configuration drift).
  void set_views(std::map<std::string, v1::PairView> views) { views_ = std::move(views); }
  /// This node's own keys, retired ones included, that its events are
  /// verified with (a reload that changes only `[node] retired_keys`).
  void set_self_keys(IdentityKeys self_keys) { self_keys_ = std::move(self_keys); }
  /// A new identity key (SIGHUP): a new session under boot `boot`; every
  /// peer session is made again.
  void set_identity(const crypto::SigningKey& identity, IdentityKeys self_keys, std::uint64_t boot);

  /// The relaymesh.v1.Feature bits this node announces in its hellos (all
  /// this build takes by default; tests announce less to act as an older build).
  void set_features(std::uint64_t features) { features_ = features; }
  const LocalSession& session() const { return local_; }
  PeerWireState peer_state(const std::string& peer) const;
  std::uint64_t accepted() const { return accepted_; }
  /// Ed25519 verifications done: one per single event, one per bundle.
  std::uint64_t signature_checks() const { return signature_checks_; }
  /// Datagrams dropped for `reason` since start.
  std::uint64_t rejected(Reject reason) const {
    return rejected_[static_cast<std::size_t>(reason)];
  }

 private:
  struct Peer {
    explicit Peer(IdentityKeys k) : keys(std::move(k)) {}
    IdentityKeys keys;
    PeerSessions sessions;
    std::deque<std::string> waiting;  // serialized bodies without a session yet
    SteadyTime last_hello{};
    std::uint32_t key_id = 0;       // the ring key it last sealed with
    std::uint32_t missing_key = 0;  // a key id it sealed with that we lack
    bool unlisted_key = false;      // its hellos are signed by a key it is not listed with
    std::vector<std::string> drift;
    // The session and counter of its last verified hello: older ones are replays.
    std::uint64_t hello_boot_id = 0;
    std::uint64_t hello_counter = 0;
    // What the session `features_boot_id` announced in its verified hellos.
    std::uint64_t features = 0;
    std::uint64_t features_boot_id = 0;
    // The policy digest the session `features_boot_id` last announced under
    // its v3 signature; empty: unknown (an older build), never drift.
    std::string policy_digest;
  };

  Reject open_checked(crypto::ByteView datagram, Opened& out);
  Reject open_hello(const Header& header, Peer& peer, crypto::ByteView datagram, Opened& out);
  Reject open_pair(const Header& header, Peer& peer, crypto::ByteView datagram, Opened& out);
  Reject verify_events(Opened& out);
  Reject verify_signed_parts(const std::string& sender, const v1::Datagram& body);
  const IdentityKeys* keys_of(const std::string& node) const;
  v1::Datagram sign_parts(const v1::Datagram& body) const;
  std::optional<std::string> seal_as(Kind kind, std::uint32_t key_id, const crypto::Key& key,
                                     std::uint64_t receiver_boot_id, const std::string& body);
  std::optional<std::string> hello_for(const std::string& peer_id, Peer& peer, bool force);
  void flush_waiting(const std::string& id, Peer& peer, std::vector<std::string>& out);
  std::optional<std::string> seal_pair(const std::string& id, Peer& peer, const std::string& body);
  std::uint32_t key_id_for(const Peer& peer) const;
  const crypto::Key& hello_key(std::uint32_t key_id);

  std::string self_;
  crypto::SigningKey identity_;
  IdentityKeys self_keys_;
  KeyRing ring_;
  std::map<std::string, Peer> peers_;
  std::map<std::string, v1::PairView> views_;
  LocalSession local_;
  std::map<std::uint32_t, crypto::Key> hello_keys_;  // of our own session, by key id
  const Clock& clock_;
  std::uint64_t features_ = kFeatures;
  std::uint64_t counter_ = 0;
  crypto::Aead aead_;
  std::string buffer_;
  std::uint64_t accepted_ = 0;
  std::uint64_t signature_checks_ = 0;
  std::array<std::uint64_t, kRejectReasons> rejected_{};
  /// Credentials whose signature checked out (their signature bytes): a
  /// replayed hello costs no Ed25519 check.
  std::unordered_set<std::string> verified_credentials_;
  /// Bundle roots whose signature checked out: origin, root, signature, and
  /// which of the origin's keys (IdentityKeys index) verified it.
  static constexpr std::size_t kVerifiedRoots = 4096;
  std::unordered_map<std::string, std::size_t> verified_roots_;
};

}  // namespace relay::wire

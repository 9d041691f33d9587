#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/keys.h"
#include "proto/relaymesh.pb.h"
#include "relay/wire/replay_window.h"
#include "relay/wire/signing.h"

namespace relay::wire {

namespace v1 = relaymesh::v1;

/// QUIC's rule: the largest UDP payload that crosses real paths without IP
/// fragmentation, which loses the whole datagram when one fragment is lost.
inline constexpr std::size_t kMaxDatagram = 1200;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kMaxSenderId = 32;
/// Fixed part of the header: version, key id, session start, boot id, counter, sender length.
inline constexpr std::size_t kFixedHeader = 1 + 4 + 8 + 8 + 8 + 1;
/// Largest serialized Event: one signed event with its framing still fits a
/// datagram sent by a node with the longest id (checked by a test).
inline constexpr std::size_t kMaxEventBytes = 1000;

/// One run of a sender process. Ordered by start time, then boot id; a newer
/// session of a sender retires the older ones.
struct Session {
  std::uint64_t start_us = 0;  // wall clock at boot, microseconds since the epoch
  std::uint64_t boot_id = 0;   // random per boot
  auto operator<=>(const Session&) const = default;
};

/// The authenticated (associated data) header of every datagram.
struct Header {
  std::uint32_t key_id = 0;
  Session session;
  std::uint64_t counter = 0;
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
};
inline constexpr std::size_t kRejectReasons = 11;
/// Stable snake_case name of a reason, for logs and metrics.
const char* to_string(Reject reason);

/// Parses the header of a datagram; nullopt if it is not one of ours.
/// Returns the reason in `why` (bad_size or unknown_version) on failure.
std::optional<Header> parse_header(crypto::ByteView datagram, Reject* why = nullptr);

/// The AEAD key for one (ring key, sender, session). Why nonces never repeat:
/// the subkey is new for every boot of every sender (HKDF over the ring key
/// with the sender id as info and the session's start time and random boot id
/// as salt), and within a session the nonce is a counter that only goes up,
/// so no (subkey, nonce) pair is used twice, across nodes and restarts alike.
crypto::Key derive_datagram_key(const crypto::Key& ring_key, std::string_view sender,
                                const Session& session);

/// A datagram that passed every check, with its events parsed and verified.
struct Opened {
  std::string sender;
  v1::Datagram body;
  /// Parsed events of body.events(), in order, each signature checked.
  std::vector<v1::Event> events;
};

/// Seals outgoing and opens incoming datagrams for one node: framing, AEAD,
/// anti-replay, origin signatures. Untrusted input never throws out of open();
/// every drop is counted by reason. Not thread-safe: one per network thread.
class Codec {
 public:
  /// `peers` maps every node allowed to send to us to its identity key;
  /// the node's own key is added for events it originated.
  Codec(std::string self, const crypto::SigningKey& identity, KeyRing ring,
        std::map<std::string, crypto::VerifyKey> peers, const Clock& clock);

  /// The sealed datagram, or nullopt if the body would exceed kMaxDatagram.
  /// Receipts this node gives as a target, and receipt acks it gives as an
  /// origin, are signed here; ones it only relays keep their signature.
  std::optional<std::string> seal(const v1::Datagram& body);

  /// Opens a datagram. Returns Reject::none and fills `out`, or the reason.
  Reject open(crypto::ByteView datagram, Opened& out);

  /// Replaces the key ring (SIGHUP); cached subkeys of removed keys go too.
  void set_key_ring(KeyRing ring);
  /// Replaces the peer set; state of removed peers is dropped.
  void set_peers(std::map<std::string, crypto::VerifyKey> peers);

  const Session& session() const { return session_; }
  std::uint64_t accepted() const { return accepted_; }
  /// Ed25519 verifications done: one per single event, one per bundle.
  std::uint64_t signature_checks() const { return signature_checks_; }
  /// Datagrams dropped for `reason` since start.
  std::uint64_t rejected(Reject reason) const {
    return rejected_[static_cast<std::size_t>(reason)];
  }

 private:
  struct Receiver {
    Session session;
    ReplayWindow window;
    std::uint32_t key_id = 0;  // of the cached subkey; 0: none cached
    crypto::Key subkey{};
  };

  Reject open_checked(crypto::ByteView datagram, Opened& out);
  Reject verify_events(Opened& out);
  Reject verify_receipts(const v1::Datagram& body);
  const crypto::VerifyKey* key_of(const std::string& node) const;
  const crypto::Key& send_key();

  std::string self_;
  crypto::SigningKey identity_;
  crypto::VerifyKey self_key_;
  KeyRing ring_;
  std::map<std::string, crypto::VerifyKey> peers_;
  std::map<std::string, Receiver> receivers_;
  Session session_;
  std::uint64_t counter_ = 0;
  std::uint32_t send_key_id_ = 0;  // of send_subkey_; 0: none derived
  crypto::Key send_subkey_{};
  crypto::Aead aead_;
  std::string buffer_;
  std::uint64_t accepted_ = 0;
  std::uint64_t signature_checks_ = 0;
  std::array<std::uint64_t, kRejectReasons> rejected_{};
  /// Bundle roots whose signature checked out: origin, root, signature.
  static constexpr std::size_t kVerifiedRoots = 4096;
  std::unordered_set<std::string> verified_roots_;
};

}  // namespace relay::wire

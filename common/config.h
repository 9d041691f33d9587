#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_error.h"
#include "common/crypto.h"
#include "common/keys.h"
#include "relay/mesh/policy.h"

namespace relay {

using namespace std::chrono_literals;

/// A host (name or IP literal) and a UDP/TCP port.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  /// "host:port", with brackets around an IPv6 literal.
  std::string to_string() const;
};

/// Parses "host:port" or "[v6]:port"; nullopt on any error.
std::optional<Endpoint> parse_endpoint(std::string_view text);

/// Addresses (paths) a peer may list.
inline constexpr std::size_t kMaxPeerAddresses = 8;

/// A node id: 1 to 32 of [a-z0-9-].
bool valid_node_id(std::string_view id);

/// An identity key a node used before its current one. Without `last_seq`
/// it is still in its overlap (the node may sign with it); with it, it
/// verifies only that node's events up to that seq.
struct RetiredKey {
  crypto::PublicKeyBytes key{};
  std::optional<std::uint64_t> last_seq;
};

struct PeerConfig {
  std::string id;
  /// The preferred address: `address`, or the first of `addresses`.
  Endpoint address;
  crypto::PublicKeyBytes public_key{};
  std::vector<std::string> groups;
  std::vector<RetiredKey> retired_keys;
  /// Every address (path) of the peer, in order of preference (fibre, then
  /// LTE): one for `address`, up to kMaxPeerAddresses for `addresses`.
  /// Empty in a config built by hand: `address` alone then.
  std::vector<Endpoint> addresses;
  /// `addresses`, or `address` alone.
  std::vector<Endpoint> paths() const {
    return addresses.empty() ? std::vector{address} : addresses;
  }
};

/// An [[escalation]] rule (docs/config.md): an own event of `kind` (or of
/// `priority`) that no person acknowledged within `after` goes to `to`, and
/// again every `repeat` until someone does or it is cleared, `max` times.
struct EscalationRule {
  std::string kind;      // "duress", "notification" or "test"; "" when by priority
  std::string priority;  // "duress", "emergency", "normal" or "bulk"; "" when by kind
  std::chrono::milliseconds after = 60s;
  std::vector<std::string> to;  // targets, as elsewhere
  std::chrono::milliseconds repeat = 60s;
  std::uint32_t max = 5;
};

/// A [[drill]] schedule (docs/config.md): at each slot an exercise goes from
/// this node to `targets`, and each target site must acknowledge it within
/// `window`, else this node raises a drill alarm about that site.
struct DrillSchedule {
  /// Names the schedule in each drill's data ("drill"), which is how the log
  /// tells this schedule's drills (and so its timer) apart after a restart.
  std::string name;
  /// Slots at whole multiples of this since the Unix epoch; 0: `at` instead.
  std::chrono::milliseconds every{0};
  /// Weekly (or daily) slots on the server's local clock: the day, 0 for
  /// Sunday to 6, or -1 for every day, and the minute after midnight.
  int weekday = -1;
  int minute_of_day = 0;
  std::vector<std::string> targets;
  std::chrono::milliseconds window = 15min;
  std::string title = "Drill of the alert system";
};

/// The relayd configuration. Every default lives here, in the member
/// initializers, and is documented in docs/config.md.
struct Config {
  std::filesystem::path file;

  struct Node {
    std::string id;
    std::vector<std::string> groups;
    Endpoint listen{"0.0.0.0", 7400};
    std::filesystem::path identity_key;
    /// Per-node state kept outside the database (numbering high-water mark,
    /// boot counter, spool, captured log). Default: /var/lib/relaymesh/<id>,
    /// so several relayd can share a machine.
    std::filesystem::path state_dir;
    /// This node's own earlier public keys: its old events, pulled back
    /// from peers after a restore, verify with them.
    std::vector<RetiredKey> retired_keys;
  } node;

  struct Mesh {
    std::filesystem::path keys;
    /// EN 50136 / SOS Access top level: a peer silent this long raises an alarm.
    std::chrono::milliseconds supervision_timeout = 90s;
  } mesh;

  std::vector<PeerConfig> peers;

  struct Store {
    std::string dsn = "dbname=relaymesh";
    std::chrono::milliseconds poll_interval = 1s;
    /// Event log rows older than this are pruned once every peer holds them.
    std::chrono::milliseconds retention = std::chrono::hours(24 * 30);
    /// Accept a PostgreSQL with fsync or full_page_writes off, which a power
    /// cut can make lose what relayd acknowledged (shown as DEGRADED).
    bool unsafe_durability = false;
  } store;

  struct Kick {
    Endpoint listen{"127.0.0.1", 7401};
  } kick;

  struct Delivery {
    std::vector<Endpoint> kick;
    /// Events older than this (on their origin's own clock) are logged here
    /// but not delivered into message_queue; duress is never aged out.
    std::chrono::milliseconds max_age = std::chrono::hours(24);
  } delivery;

  struct Duress {
    std::vector<std::string> targets{"all"};
  } duress;

  struct Status {
    Endpoint listen{"127.0.0.1", 7480};
    /// Required when listen is not a loopback address: requests must carry it
    /// (Authorization: Bearer, or ?token= for a browser).
    std::string token;
  } status;

  /// The local raise path (docs/config.md, [control]): a Unix socket that
  /// takes a duress even while the database is down.
  struct Control {
    /// Default: control.sock in the state directory.
    std::filesystem::path socket;
    /// Members of this group may raise alarms through the socket (relayd's
    /// own user and root always may); empty: nobody else.
    std::string group;
  } control;

  /// [[escalation]] rules, in file order: the first that matches an event wins.
  std::vector<EscalationRule> escalations;

  /// [[drill]] schedules, in file order.
  std::vector<DrillSchedule> drills;

  /// The mesh policy ([mesh] policy, a file of its own, the same at every
  /// site; docs/config.md, "Policy"). Without one: only an event's origin
  /// may clear it.
  mesh::Policy policy;
  /// SHA-256 (hex) of the policy's canonical form: two sites that differ
  /// show drift.
  std::string policy_digest;

  /// The peer with this id, or nullptr.
  const PeerConfig* find_peer(std::string_view id) const;
  /// The groups of this node or a peer; none for an unknown id.
  std::vector<std::string> groups_of(std::string_view id) const;
  /// True if the node or any peer is in this group.
  bool has_group(std::string_view group) const;
  /// Checks one target ("all", a node id, "group:NAME"); returns an empty
  /// string if valid, else what is wrong with it.
  std::string check_target(std::string_view target) const;
};

class TomlSection;
/// Reads the targets list `key` of a section ([[escalation]] to, [[drill]]
/// targets): each checked against `config`, at least one, required; each
/// problem recorded against the key, with `example` ("[\"group:hq\"]") and
/// `what` they are for. Empty when absent or wrong.
/// `also`: words taken besides targets (the policy's "origin").
std::vector<std::string> read_targets(TomlSection& section, std::string_view key,
                                      const Config& config, std::string_view what,
                                      std::string_view example,
                                      std::initializer_list<std::string_view> also = {});

/// Reads and validates a config file. Relative key paths are resolved against
/// the config file's folder. Throws ConfigError listing every problem found.
Config load_config(const std::filesystem::path& file);

/// What can be read of a config file despite its problems, which go to
/// `issues` (relayctl reload still finds relayd's control socket in a
/// broken file, so that relayd itself refuses it, visibly).
Config read_config(const std::filesystem::path& file, std::vector<ConfigIssue>& issues);

/// The secrets a config points at, loaded and checked.
struct NodeKeys {
  crypto::SigningKey identity;
  KeyRing ring;
};

/// Loads the identity key and the key ring named by `config`; problems are
/// reported against the config key that names the file. Throws ConfigError.
NodeKeys load_node_keys(const Config& config);

}  // namespace relay

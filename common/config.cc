#include "common/config.h"
#include "common/drill_config.h"
#include "common/escalation_config.h"
#include "common/policy_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/config_error.h"
#include "common/toml_section.h"

namespace relay {
namespace {

constexpr auto kEndpointHint =
    "expected \"host:port\" such as \"192.0.2.10:7400\" or \"[2001:db8::1]:7400\"";

bool valid_group(std::string_view name) {
  return valid_node_id(name);
}

std::optional<Endpoint> endpoint(TomlSection& section, std::string_view key) {
  auto text = section.string(key, false);
  if (!text) return std::nullopt;
  auto ep = parse_endpoint(*text);
  if (!ep) section.error(key, kEndpointHint);
  return ep;
}

/// An address this node binds: an IP literal (a name could resolve to a
/// different address each start, or to none while DNS is down).
std::optional<Endpoint> listen_endpoint(TomlSection& section, std::string_view key) {
  auto ep = endpoint(section, key);
  if (!ep) return ep;
  in6_addr v6{};
  in_addr v4{};
  if (inet_pton(AF_INET, ep->host.c_str(), &v4) != 1 &&
      inet_pton(AF_INET6, ep->host.c_str(), &v6) != 1) {
    section.error(key, "\"" + ep->to_string() +
                           "\": a listening address must be an IP address, such as "
                           "\"127.0.0.1:7401\" or \"0.0.0.0:7400\", not a host name");
    return std::nullopt;
  }
  return ep;
}

void read_groups(TomlSection& section, std::vector<std::string>& out) {
  auto groups = section.strings("groups");
  if (!groups) return;
  for (const auto& g : *groups) {
    if (!valid_group(g)) {
      section.error("groups", "group \"" + g + "\" is not 1 to 32 of a-z, 0-9 and -");
      return;
    }
  }
  out = std::move(*groups);
}

void read_retired_keys(TomlSection& section, std::vector<RetiredKey>& out) {
  // An array of inline tables: [{ key = "ed25519:...", last_seq = 1234 }].
  const toml::array* keys = section.tables("retired_keys");
  if (keys == nullptr) return;
  for (std::size_t i = 0; i < keys->size(); ++i) {
    TomlSection entry(*keys->get(i)->as_table(), section.file(),
                      section.path_of("retired_keys") + "[" + std::to_string(i + 1) + "]",
                      section.issues(), {"key", "last_seq"});
    RetiredKey retired;
    if (auto text = entry.string("key", true)) {
      if (auto key = parse_public_key(*text)) {
        retired.key = *key;
      } else {
        entry.error("key",
                    "expected \"ed25519:\" and 44 base64 characters, as relayctl keygen prints");
      }
    }
    if (auto seq = entry.integer("last_seq", false, 0, INT64_MAX)) {
      retired.last_seq = static_cast<std::uint64_t>(*seq);
    }
    out.push_back(retired);
  }
}

std::filesystem::path resolve(const std::filesystem::path& config_file, const std::string& path) {
  std::filesystem::path p(path);
  return p.is_absolute() ? p : config_file.parent_path() / p;
}

void read_node(TomlSection& top, Config& config) {
  const toml::table* table = top.table("node");
  if (table == nullptr) {
    top.error("node", "missing; expected a [node] table with id and identity_key");
    return;
  }
  TomlSection node(*table, top.file(), "node", top.issues(),
                   {"id", "groups", "listen", "identity_key", "state_dir", "retired_keys"});
  read_retired_keys(node, config.node.retired_keys);
  if (auto id = node.string("id", true)) {
    if (valid_node_id(*id)) {
      config.node.id = *id;
    } else {
      node.error("id", "\"" + *id + "\" is not a node id: expected 1 to 32 of a-z, 0-9 and -");
    }
  }
  read_groups(node, config.node.groups);
  if (auto ep = listen_endpoint(node, "listen")) config.node.listen = *ep;
  if (auto key = node.string("identity_key", true)) {
    config.node.identity_key = resolve(config.file, *key);
  }
  if (auto dir = node.string("state_dir", false)) {
    if (dir->empty()) {
      node.error("state_dir", "expected a folder path");
    } else {
      config.node.state_dir = resolve(config.file, *dir);
    }
  }
  if (config.node.state_dir.empty() && !config.node.id.empty()) {
    config.node.state_dir = std::filesystem::path("/var/lib/relaymesh") / config.node.id;
  }
}

void read_mesh(TomlSection& top, Config& config) {
  const toml::table* table = top.table("mesh");
  if (table == nullptr) {
    top.error("mesh", "missing; expected a [mesh] table with keys");
    return;
  }
  TomlSection mesh(*table, top.file(), "mesh", top.issues(),
                   {"keys", "supervision_timeout", "policy"});
  if (auto keys = mesh.string("keys", true)) config.mesh.keys = resolve(config.file, *keys);
  if (auto d = mesh.duration("supervision_timeout", 5s, 24h)) config.mesh.supervision_timeout = *d;
  std::filesystem::path policy;
  if (auto file = mesh.string("policy", false)) {
    if (file->empty()) {
      mesh.error("policy", "expected the path of the policy file, or no policy key");
    } else {
      policy = resolve(config.file, *file);
    }
  }
  // The peers are read by now: the policy's targets name them.
  read_policy(mesh, policy, config);
}

// `address = "host:port"`, or `addresses = [...]` for a peer reached on
// several paths (fibre and LTE), in order of preference; not both.
void read_addresses(TomlSection& section, PeerConfig& peer) {
  const bool many = section.has("addresses");
  if (section.has("address") && many) {
    section.error("addresses", "set either address or addresses, not both");
    return;
  }
  if (!many) {
    if (auto ep = endpoint(section, "address")) {
      peer.addresses.push_back(*ep);
    } else if (!section.has("address")) {
      section.error("address", std::string("missing; ") + kEndpointHint);
    }
  } else if (auto list = section.strings("addresses")) {
    if (list->empty() || list->size() > kMaxPeerAddresses) {
      section.error("addresses", "expected 1 to " + std::to_string(kMaxPeerAddresses) +
                                     " addresses, the preferred path first");
      return;
    }
    for (const auto& text : *list) {
      auto ep = parse_endpoint(text);
      if (!ep) {
        section.error("addresses", "\"" + text + "\": " + kEndpointHint);
        return;
      }
      peer.addresses.push_back(*ep);
    }
  }
  if (!peer.addresses.empty()) peer.address = peer.addresses.front();
}

void read_peers(TomlSection& top, Config& config) {
  const toml::array* peers = top.tables("peer");
  if (peers == nullptr) return;
  std::set<std::string> ids{config.node.id};
  std::set<crypto::PublicKeyBytes> keys;
  for (std::size_t i = 0; i < peers->size(); ++i) {
    TomlSection section(*peers->get(i)->as_table(), top.file(),
                        "peer[" + std::to_string(i + 1) + "]", top.issues(),
                        {"id", "address", "addresses", "public_key", "groups", "retired_keys"});
    PeerConfig peer;
    if (auto id = section.string("id", true)) {
      if (!valid_node_id(*id)) {
        section.error("id", "\"" + *id + "\" is not a node id: expected 1 to 32 of a-z, 0-9 and -");
      } else if (!ids.insert(*id).second) {
        section.error("id", "\"" + *id + "\" is used twice (or is this node's own id)");
      }
      peer.id = *id;
    }
    read_addresses(section, peer);
    if (auto text = section.string("public_key", true)) {
      if (auto key = parse_public_key(*text)) {
        peer.public_key = *key;
        if (!keys.insert(*key).second) section.error("public_key", "the same key as another peer");
      } else {
        section.error("public_key",
                      "expected \"ed25519:\" and 44 base64 characters, as relayctl keygen prints");
      }
    }
    read_groups(section, peer.groups);
    read_retired_keys(section, peer.retired_keys);
    config.peers.push_back(std::move(peer));
  }
}

void read_endpoint_table(TomlSection& top, std::string_view name, Endpoint& out) {
  const toml::table* table = top.table(name);
  if (table == nullptr) return;
  TomlSection section(*table, top.file(), std::string(name), top.issues(), {"listen"});
  if (auto ep = listen_endpoint(section, "listen")) out = *ep;
}

/// True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine reaches.
bool loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

void read_status(TomlSection& top, Config::Status& status) {
  const toml::table* table = top.table("status");
  if (table == nullptr) return;
  TomlSection section(*table, top.file(), "status", top.issues(), {"listen", "token"});
  if (auto ep = listen_endpoint(section, "listen")) status.listen = *ep;
  if (auto token = section.string("token", false)) {
    // Long enough not to be guessed over HTTP; it is compared in constant time.
    if (token->size() < 16) {
      section.error("token", "expected at least 16 characters");
    } else {
      status.token = *token;
    }
  }
  // The page shows who pressed a duress button and where: anything beyond
  // this machine must prove it may see that.
  if (!loopback(status.listen.host) && status.token.empty()) {
    section.error("listen", "\"" + status.listen.to_string() +
                                "\" is not a loopback address; set [status] token as well");
  }
}

void read_rest(TomlSection& top, Config& config) {
  if (const toml::table* table = top.table("store")) {
    TomlSection store(*table, top.file(), "store", top.issues(),
                      {"dsn", "poll_interval", "retention", "unsafe_durability"});
    if (auto unsafe = store.boolean("unsafe_durability")) config.store.unsafe_durability = *unsafe;
    if (auto dsn = store.string("dsn", false)) config.store.dsn = *dsn;
    if (auto d = store.duration("poll_interval", 10ms, 1h)) config.store.poll_interval = *d;
    if (auto d = store.duration("retention", 1h, std::chrono::hours(24 * 3650))) {
      config.store.retention = *d;
    }
  }
  read_endpoint_table(top, "kick", config.kick.listen);
  read_status(top, config.status);
  if (const toml::table* table = top.table("delivery")) {
    TomlSection delivery(*table, top.file(), "delivery", top.issues(), {"kick", "max_age"});
    if (auto d = delivery.duration("max_age", 1min, std::chrono::hours(24 * 3650))) {
      config.delivery.max_age = *d;
    }
    for (const auto& text : delivery.strings("kick").value_or(std::vector<std::string>{})) {
      auto ep = parse_endpoint(text);
      if (!ep) {
        delivery.error("kick", "\"" + text + "\": " + kEndpointHint);
        continue;
      }
      config.delivery.kick.push_back(*ep);
    }
  }
  if (const toml::table* table = top.table("duress")) {
    TomlSection duress(*table, top.file(), "duress", top.issues(), {"targets"});
    if (auto targets = duress.strings("targets")) {
      for (const auto& t : *targets) {
        if (auto why = config.check_target(t); !why.empty()) duress.error("targets", why);
      }
      if (targets->empty()) duress.error("targets", "expected at least one target");
      config.duress.targets = std::move(*targets);
    }
  }
}

}  // namespace

std::string Endpoint::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.starts_with('[') && host.ends_with(']')) {
    host = host.substr(1, host.size() - 2);
    in6_addr addr{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) return std::nullopt;
  } else if (host.empty() || host.find(':') != std::string_view::npos) {
    return std::nullopt;
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':';
    if (!ok) return std::nullopt;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || ptr != port.data() + port.size() || value > 65535) return std::nullopt;
  return Endpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

bool valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

const PeerConfig* Config::find_peer(std::string_view id) const {
  for (const auto& p : peers) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::vector<std::string> Config::groups_of(std::string_view id) const {
  if (id == node.id) return node.groups;
  const auto* peer = find_peer(id);
  return peer != nullptr ? peer->groups : std::vector<std::string>{};
}

bool Config::has_group(std::string_view group) const {
  auto in = [&](const std::vector<std::string>& groups) {
    return std::find(groups.begin(), groups.end(), group) != groups.end();
  };
  if (in(node.groups)) return true;
  for (const auto& p : peers) {
    if (in(p.groups)) return true;
  }
  return false;
}

std::string Config::check_target(std::string_view target) const {
  if (target == "all" || target == node.id || find_peer(target) != nullptr) return "";
  if (target.starts_with("group:")) {
    if (has_group(target.substr(6))) return "";
    return "target \"" + std::string(target) + "\": no node or peer is in group \"" +
           std::string(target.substr(6)) + "\"";
  }
  return "target \"" + std::string(target) + "\" is not \"all\", a known node id or \"group:NAME\"";
}

void read_control(TomlSection& top, Config& config) {
  if (const toml::table* table = top.table("control")) {
    TomlSection section(*table, top.file(), "control", top.issues(), {"socket", "group"});
    if (auto path = section.string("socket", false)) {
      if (path->empty() || path->size() > 100) {
        section.error("socket", "expected a path of 1 to 100 characters (a Unix socket's limit)");
      } else {
        config.control.socket = resolve(config.file, *path);
      }
    }
    if (auto group = section.string("group", false)) config.control.group = *group;
  }
  if (config.control.socket.empty() && !config.node.state_dir.empty()) {
    config.control.socket = config.node.state_dir / "control.sock";
  }
}

std::vector<std::string> read_targets(TomlSection& section, std::string_view key,
                                      const Config& config, std::string_view what,
                                      std::string_view example,
                                      std::initializer_list<std::string_view> also) {
  auto targets = section.strings(key);
  if (!targets) {
    if (!section.has(key)) {
      section.error(key, "missing: expected " + std::string(what) + ", e.g. " + std::string(example));
    }
    return {};
  }
  for (const auto& t : *targets) {
    if (std::find(also.begin(), also.end(), t) != also.end()) continue;
    if (auto why = config.check_target(t); !why.empty()) section.error(key, why);
  }
  if (targets->empty()) section.error(key, "expected at least one target, e.g. " + std::string(example));
  return std::move(*targets);
}

Config read_config(const std::filesystem::path& file, std::vector<ConfigIssue>& issues) {
  Config config;
  config.file = file;
  auto doc = parse_toml_file(file, issues);
  if (!doc) return config;
  TomlSection top(
      *doc, file.string(), "", issues,
      {"node", "mesh", "peer", "store", "kick", "delivery", "duress", "status", "control",
       "escalation", "drill"});
  read_node(top, config);
  read_peers(top, config);
  read_mesh(top, config);  // after the peers: the policy file names them
  read_rest(top, config);
  read_control(top, config);
  read_escalations(top, config);
  read_drills(top, config);
  return config;
}

Config load_config(const std::filesystem::path& file) {
  std::vector<ConfigIssue> issues;
  Config config = read_config(file, issues);
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return config;
}

NodeKeys load_node_keys(const Config& config) {
  std::vector<ConfigIssue> issues;
  // Reports a key file's problem against the config key that names it, so
  // the operator sees both the config line to look at and the file.
  auto attempt = [&](const char* key, auto load) {
    try {
      return std::optional(load());
    } catch (const ConfigError& e) {
      for (const auto& issue : e.issues()) {
        issues.push_back({config.file.string(), 0, key, issue.to_string()});
      }
      return decltype(std::optional(load())){};
    }
  };
  auto identity =
      attempt("node.identity_key", [&] { return load_identity_key(config.node.identity_key); });
  auto ring = attempt("mesh.keys", [&] { return load_key_ring(config.mesh.keys); });
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return NodeKeys{std::move(*identity), std::move(*ring)};
}

}  // namespace relay

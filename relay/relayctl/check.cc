// relayctl check-config: the file and its key files, then (unless
// --offline) what relayd will meet at start: the database (reachable, its
// schema, its durability settings) and the ports it will bind.
#include <fcntl.h>
#include <grp.h>
#include <httplib.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/bind_check.h"
#include "common/keys.h"
#include "relay/relayctl/relayctl.h"
#include "relay/store/durability.h"
#include "relay/store/migrate.h"

namespace relay::ctl {
namespace {

std::string join(const std::vector<std::string>& items, const char* empty) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? empty : text;
}

struct Check {
  std::string name;
  bool ok = true;
  std::string message;
};

Check database_check(const Config& config) {
  Check c{"database", true, ""};
  try {
    // A database that does not answer within seconds is the finding; libpq
    // takes this default for any form of DSN that does not set its own.
    ::setenv("PGCONNECT_TIMEOUT", "3", 0);
    pqxx::connection conn(config.store.dsn);
    int version = 0;
    {
      pqxx::read_transaction tx(conn);
      const auto row = tx.exec1(
          "SELECT to_regclass('relay_schema_migrations') IS NOT NULL");
      if (row[0].as<bool>()) {
        version = tx.exec1("SELECT coalesce(max(version), 0) FROM relay_schema_migrations")[0]
                      .as<int>();
      }
    }
    const auto settings = store::read_durability(conn);
    if (auto why = store::durability_refusal(settings, config.store.unsafe_durability);
        !why.empty()) {
      return {"database", false, why};
    }
    const int known = store::latest_version();
    if (version > known) {
      return {"database", false,
              "schema version " + std::to_string(version) + " is newer than this relaymesh knows (" +
                  std::to_string(known) + "): upgrade relayd and relayctl"};
    }
    c.message = version == 0     ? "reachable; not migrated yet (relayd migrates at start)"
                : version < known ? "reachable, schema version " + std::to_string(version) +
                                        " (relayd migrates it to " + std::to_string(known) +
                                        " at start)"
                                  : "reachable, schema version " + std::to_string(version);
    if (!settings.fsync || !settings.full_page_writes) {
      c.message += "; fsync or full_page_writes off, accepted by [store] unsafe_durability";
    }
  } catch (const std::exception& e) {
    return {"database", false, unreachable(config, e)};
  }
  return c;
}

std::string user_name(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return pw ? pw->pw_name : std::to_string(uid);
}

std::string group_name(gid_t gid) {
  const group* gr = ::getgrgid(gid);
  return gr ? gr->gr_name : std::to_string(gid);
}

/// The user relayd runs as: whoever runs this check (the unit's
/// ExecStartPre runs as its User=). Run as root, the owner of the identity
/// key: relayd refuses a key that others may read, so only its owner (and
/// root) can run relayd on this configuration.
struct ServiceUser {
  uid_t uid = 0;
  std::vector<gid_t> groups;
};

ServiceUser service_user(const Config& config) {
  ServiceUser user{::geteuid(), {}};
  struct stat st {};
  if (user.uid == 0 && ::stat(config.node.identity_key.c_str(), &st) == 0) user.uid = st.st_uid;
  if (const passwd* pw = ::getpwuid(user.uid)) {
    int n = 64;
    user.groups.resize(static_cast<std::size_t>(n));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, user.groups.data(), &n) < 0) {
      user.groups.resize(static_cast<std::size_t>(n));
      ::getgrouplist(pw->pw_name, pw->pw_gid, user.groups.data(), &n);
    }
    user.groups.resize(static_cast<std::size_t>(n));
  }
  return user;
}

/// Whether USER may read and write PATH (search it too, a folder). For the
/// user running this, the kernel's answer; for another, the mode bits.
bool allows(const ServiceUser& user, const std::filesystem::path& path, const struct stat& st) {
  const int need = S_ISDIR(st.st_mode) ? (W_OK | X_OK) : (R_OK | W_OK);
  errno = 0;  // the caller tells a read-only file system (EROFS) from the rest
  if (user.uid == ::geteuid()) return ::faccessat(AT_FDCWD, path.c_str(), need, AT_EACCESS) == 0;
  if (user.uid == 0) return true;
  const bool in_group =
      std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end();
  const unsigned bits = st.st_uid == user.uid ? (st.st_mode >> 6) & 7u
                        : in_group            ? (st.st_mode >> 3) & 7u
                                              : st.st_mode & 7u;
  return (bits & static_cast<unsigned>(need)) == static_cast<unsigned>(need);
}

/// relayd exits 2 on a state directory it cannot write, and systemd would
/// start it again and again: found here, naming the owner. relayd creates
/// the folder if it is missing, so then the nearest existing parent counts.
Check state_dir_check(const Config& config) {
  namespace fs = std::filesystem;
  const ServiceUser user = service_user(config);
  const std::string who = user_name(user.uid);
  const fs::path dir = config.node.state_dir;
  std::error_code ec;
  fs::path existing = fs::absolute(dir, ec);
  while (!fs::exists(existing, ec) && existing.has_relative_path()) existing = existing.parent_path();
  std::vector<fs::path> paths{existing};
  if (existing == fs::absolute(dir, ec)) {
    // Files relayd keeps there (lock, counters, spool, log) must be its too.
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end && paths.size() < 10000; it.increment(ec)) {
      paths.push_back(it->path());
    }
  }
  for (const auto& path : paths) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;  // a socket is made anew
    if (allows(user, path, st)) continue;
    if (errno == EROFS && user.uid == ::geteuid()) {
      // Not the owner's doing: a chown would not help.
      return {"[node] state_dir", false,
              path.string() + " is on a read-only file system here (under systemd, "
              "ProtectSystem=strict makes every folder so unless the unit names it in "
              "ReadWritePaths=): relayd could not write it (it would exit 2)"};
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777u);
    const std::string owner = user_name(st.st_uid) + ":" + group_name(st.st_gid);
    const bool missing = existing != fs::absolute(dir, ec);
    return {"[node] state_dir", false,
            (missing ? "relayd cannot create " + dir.string() + ": " : std::string()) +
                path.string() + " belongs to " + owner + " (mode " + mode +
                "), and relayd, running as " + who + ", cannot write it (it would exit 2): " +
                (missing ? "install -d -o " + who + " -m 0700 " : "chown -R " + who + ": ") +
                dir.string()};
  }
  return {"[node] state_dir", true,
          (existing == fs::absolute(dir, ec) ? dir.string() + " is writable by "
                                             : "relayd can create " + dir.string() + " as ") +
              who};
}

/// True if this configuration's own relayd answers on its status page (it
/// holds the ports then, which is fine).
bool own_relayd_running(const Config& config) {
  httplib::Client client(config.status.listen.host, config.status.listen.port);
  client.set_connection_timeout(std::chrono::seconds(1));
  client.set_read_timeout(std::chrono::seconds(2));
  if (!config.status.token.empty()) client.set_bearer_token_auth(config.status.token);
  auto res = client.Get("/api/status");
  if (!res || res->status != 200) return false;
  try {
    return Json::parse(res->body).value("node", "") == config.node.id;
  } catch (const Json::exception&) {
    return false;
  }
}

std::vector<Check> port_checks(const Config& config) {
  std::vector<Check> checks;
  std::optional<bool> ours;
  for (const auto& [name, ep, type] :
       {std::tuple{"[node] listen (UDP)", config.node.listen, SOCK_DGRAM},
        std::tuple{"[kick] listen (UDP)", config.kick.listen, SOCK_DGRAM},
        std::tuple{"[status] listen (TCP)", config.status.listen, SOCK_STREAM}}) {
    const int err = try_bind(ep, type);
    if (err == 0 || ep.port == 0) {
      checks.push_back({name, true, ep.to_string() + " is free"});
    } else if (err == EADDRINUSE && (ours ? *ours : *(ours = own_relayd_running(config)))) {
      checks.push_back({name, true, ep.to_string() + " is held by this node's running relayd"});
    } else {
      checks.push_back({name, false, ep.to_string() + ": " + std::strerror(err) +
                                          (err == EADDRINUSE ? " (another program has it)" : "")});
    }
  }
  return checks;
}

}  // namespace

int check_config(const std::string& file, bool offline, bool json) {
  const Config config = load_config(file);
  const NodeKeys keys = load_node_keys(config);
  std::vector<Check> checks;
  // relayd refuses to start without it; the lookup needs no database.
  if (!config.control.group.empty()) {
    const bool known = ::getgrnam(config.control.group.c_str()) != nullptr;
    checks.push_back({"[control] group", known,
                      known ? "\"" + config.control.group + "\" exists"
                            : "no such group \"" + config.control.group + "\" on this machine"});
  }
  checks.push_back(state_dir_check(config));
  if (!offline) {
    checks.push_back(database_check(config));
    for (auto& c : port_checks(config)) checks.push_back(std::move(c));
  }
  const bool all_ok =
      std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.ok; });
  Json checks_json = Json::array();
  for (const auto& c : checks)
    checks_json.push_back({{"check", c.name}, {"ok", c.ok}, {"message", c.message}});
  std::vector<std::string> kick_addresses;
  for (const auto& ep : config.delivery.kick) kick_addresses.push_back(ep.to_string());
  if (json) {
    Json peers = Json::array();
    for (const auto& p : config.peers) {
      peers.push_back({{"id", p.id}, {"address", p.address.to_string()}, {"groups", p.groups}});
    }
    Json r;
    r["ok"] = all_ok;
    r["exit_code"] = all_ok ? kOk : kUsage;
    r["node"] = config.node.id;
    r["groups"] = config.node.groups;
    r["listen"] = config.node.listen.to_string();
    r["public_key"] = format_public_key(keys.identity.public_key());
    r["mesh_keys"] = keys.ring.keys.size();
    r["mesh_key_current"] = keys.ring.current;
    r["peers"] = peers;
    r["dsn"] = config.store.dsn;
    r["poll_interval_ms"] = config.store.poll_interval.count();
    r["retention_ms"] = config.store.retention.count();
    r["kick"] = config.kick.listen.to_string();
    r["delivery_kick"] = kick_addresses;
    r["duress_targets"] = config.duress.targets;
    Json escalations = Json::array();
    for (const auto& rule : config.escalations) {
      escalations.push_back({{"kind", rule.kind.empty() ? Json(nullptr) : Json(rule.kind)},
                             {"priority", rule.priority.empty() ? Json(nullptr) : Json(rule.priority)},
                             {"after_ms", rule.after.count()},
                             {"to", rule.to},
                             {"repeat_ms", rule.repeat.count()},
                             {"max", rule.max}});
    }
    r["escalations"] = escalations;
    r["supervision_timeout_ms"] = config.mesh.supervision_timeout.count();
    r["status"] = config.status.listen.to_string();
    r["state_dir"] = config.node.state_dir.string();
    r["checks"] = checks_json;
    print_json(r);
    return all_ok ? kOk : kUsage;
  }
  std::printf("%s: %s\n", file.c_str(), all_ok ? "OK" : "PROBLEMS (below)");
  std::printf("  node      %s (groups: %s), listening on %s\n", config.node.id.c_str(),
              join(config.node.groups, "none").c_str(), config.node.listen.to_string().c_str());
  std::printf("  identity  %s\n            public_key = \"%s\"\n", config.node.identity_key.c_str(),
              format_public_key(keys.identity.public_key()).c_str());
  std::printf("  mesh keys %s: %zu key(s), sending with key id %u\n", config.mesh.keys.c_str(),
              keys.ring.keys.size(), keys.ring.current);
  std::printf("  peers     %zu\n", config.peers.size());
  for (const auto& peer : config.peers) {
    std::printf("            %-32s %-24s groups: %s\n", peer.id.c_str(),
                peer.address.to_string().c_str(), join(peer.groups, "none").c_str());
  }
  // Retention is an hour at least; said as the configuration says it.
  const auto hours = std::chrono::duration_cast<std::chrono::hours>(config.store.retention).count();
  const std::string kept =
      hours % 24 == 0 ? std::to_string(hours / 24) + "d" : std::to_string(hours) + "h";
  std::printf("  store     %s, polling every %lld ms, keeping the log %s\n",
              config.store.dsn.c_str(), static_cast<long long>(config.store.poll_interval.count()),
              kept.c_str());
  std::printf("  kick      listening on %s; waking consumers at: %s\n",
              config.kick.listen.to_string().c_str(), join(kick_addresses, "none").c_str());
  std::printf("  duress    default targets: %s\n", join(config.duress.targets, "none").c_str());
  if (config.escalations.empty()) std::printf("  escalation none\n");
  for (const auto& rule : config.escalations) {
    const std::string which = rule.kind.empty() ? "priority " + rule.priority : "kind " + rule.kind;
    std::printf("  escalation %s: after %lld ms to %s, every %lld ms, at most %u times\n",
                which.c_str(), static_cast<long long>(rule.after.count()),
                join(rule.to, "none").c_str(), static_cast<long long>(rule.repeat.count()),
                rule.max);
  }
  std::printf("  supervision timeout %lld s\n",
              static_cast<long long>(config.mesh.supervision_timeout.count() / 1000));
  std::printf("  status    http://%s/\n", config.status.listen.to_string().c_str());
  for (const auto& c : checks) {
    std::printf("  %-9s %s: %s\n", c.ok ? "ok" : "PROBLEM", c.name.c_str(), c.message.c_str());
  }
  if (offline) std::printf("  (--offline: the database and the ports were not checked)\n");
  return all_ok ? kOk : kUsage;
}

}  // namespace relay::ctl

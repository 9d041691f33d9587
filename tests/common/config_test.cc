#include "common/config.h"

#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/config_error.h"
#include "common/drill_config.h"
#include "common/policy_config.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using relay::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// A node's files as an operator would lay them out: keys beside the config.
struct Site {
  TempDir dir;
  std::string north_key = format_public_key(crypto::SigningKey::generate().public_key());
  std::string south_key = format_public_key(crypto::SigningKey::generate().public_key());

  Site() {
    write_secret_file(dir / "hq.key", crypto::SigningKey::generate().to_pem());
    write_secret_file(dir / "mesh.keys", key_ring_to_toml(generate_key_ring()));
  }

  std::string config_text() const {
    return "[node]\n"
           "id = \"hq\"\n"
           "groups = [\"hq\"]\n"
           "identity_key = \"hq.key\"\n"
           "\n"
           "[mesh]\n"
           "keys = \"mesh.keys\"\n"
           "\n"
           "[[peer]]\n"
           "id = \"clinic-north\"\n"
           "address = \"192.0.2.11:7400\"\n"
           "public_key = \"" +
           north_key +
           "\"\n"
           "groups = [\"clinics\"]\n"
           "\n"
           "[[peer]]\n"
           "id = \"clinic-south\"\n"
           "address = \"[2001:db8::12]:7400\"\n"
           "public_key = \"" +
           south_key +
           "\"\n"
           "groups = [\"clinics\"]\n"
           "\n"
           "[duress]\n"
           "targets = [\"hq\", \"group:clinics\"]\n";
  }

  fs::path write_config(std::string_view text) const { return dir.write("hq.toml", text); }
};

/// Replaces the first occurrence of `from` in `text`.
std::string replace(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string load_error(const fs::path& file) {
  try {
    load_node_keys(load_config(file));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

struct Run {
  int exit_code;
  std::string output;
};

Run relayctl(const std::string& args) {
  const std::string command = std::string(RELAYCTL_PATH) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  std::array<char, 4096> chunk{};
  while (std::size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe))
    output.append(chunk.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace

TEST_CASE("a complete config loads with defaults filled in") {
  Site site;
  const Config config = load_config(site.write_config(site.config_text()));
  CHECK(config.node.id == "hq");
  CHECK(config.node.identity_key == site.dir / "hq.key");
  CHECK(config.node.listen.to_string() == "0.0.0.0:7400");
  REQUIRE(config.peers.size() == 2);
  CHECK(config.peers[1].address.host == "2001:db8::12");
  CHECK(config.peers[1].address.to_string() == "[2001:db8::12]:7400");
  CHECK(config.mesh.supervision_timeout == 90s);
  CHECK(config.store.poll_interval == 1s);
  CHECK(config.store.retention == std::chrono::hours(24 * 30));
  CHECK(config.kick.listen.to_string() == "127.0.0.1:7401");
  CHECK(config.status.listen.to_string() == "127.0.0.1:7480");
  CHECK(config.duress.targets == std::vector<std::string>{"hq", "group:clinics"});
  CHECK(config.check_target("clinic-north") == "");
  CHECK(config.check_target("group:nowhere") != "");
  CHECK(config.check_target("clinic-east") != "");
  const NodeKeys keys = load_node_keys(config);
  CHECK(keys.ring.current == 1);
}

TEST_CASE("a peer reached on several paths lists its addresses, the preferred first") {
  Site site;
  const std::string text = replace(site.config_text(), "address = \"192.0.2.11:7400\"",
                                   "addresses = [\"192.0.2.11:7400\", \"198.51.100.11:7400\"]");
  const Config config = load_config(site.write_config(text));
  REQUIRE(config.peers[0].addresses.size() == 2);
  CHECK(config.peers[0].address.to_string() == "192.0.2.11:7400");
  CHECK(config.peers[0].addresses[1].to_string() == "198.51.100.11:7400");
  // A single `address` is one path.
  REQUIRE(config.peers[1].addresses.size() == 1);
  CHECK(config.peers[1].addresses[0].to_string() == "[2001:db8::12]:7400");

  auto error_for = [&](const std::string& t) { return load_error(site.write_config(t)); };
  CHECK(error_for(replace(text, "public_key = \"" + site.north_key,
                          "address = \"192.0.2.11:7400\"\npublic_key = \"" + site.north_key))
            .find("peer[1].addresses: set either address or addresses, not both") !=
        std::string::npos);
  CHECK(error_for(replace(text, "\"198.51.100.11:7400\"", "\"lte\""))
            .find("peer[1].addresses: \"lte\": expected \"host:port\"") != std::string::npos);
  CHECK(error_for(replace(text, "[\"192.0.2.11:7400\", \"198.51.100.11:7400\"]", "[]"))
            .find("peer[1].addresses: expected 1 to 8 addresses") != std::string::npos);
}

TEST_CASE("config errors name the file, the line, the key and what was expected") {
  Site site;
  const std::string good = site.config_text();
  const std::string file = (site.dir / "hq.toml").string();
  auto error_for = [&](const std::string& text) { return load_error(site.write_config(text)); };

  SUBCASE("an unknown key") {
    const auto error = error_for(replace(good, "groups = [\"hq\"]", "group = [\"hq\"]"));
    CHECK(error.find(file + ":3: node.group: unknown key; expected one of: id, groups") !=
          std::string::npos);
  }
  SUBCASE("a bad node id") {
    const auto error = error_for(replace(good, "id = \"hq\"", "id = \"HQ main\""));
    CHECK(error.find(file + ":2: node.id: \"HQ main\" is not a node id") != std::string::npos);
  }
  SUBCASE("a missing key file") {
    fs::remove(site.dir / "hq.key");
    const auto error = error_for(good);
    CHECK(error.find(file + ": node.identity_key: ") != std::string::npos);
    CHECK(error.find((site.dir / "hq.key").string() + ": cannot open the key file") !=
          std::string::npos);
  }
  SUBCASE("a world-readable private key") {
    fs::permissions(site.dir / "mesh.keys", fs::perms(0644));
    const auto error = error_for(good);
    CHECK(error.find(file + ": mesh.keys: ") != std::string::npos);
    CHECK(error.find("mode 0644; group and others must have no access") != std::string::npos);
  }
  SUBCASE("a duplicate peer id") {
    const auto error = error_for(replace(good, "id = \"clinic-south\"", "id = \"clinic-north\""));
    CHECK(error.find(":16: peer[2].id: \"clinic-north\" is used twice") != std::string::npos);
  }
  SUBCASE("a peer with this node's id") {
    const auto error = error_for(replace(good, "id = \"clinic-south\"", "id = \"hq\""));
    CHECK(error.find("peer[2].id: \"hq\" is used twice (or is this node's own id)") !=
          std::string::npos);
  }
  SUBCASE("a mangled public key") {
    const auto error = error_for(replace(good, site.north_key, site.north_key.substr(0, 20)));
    CHECK(error.find(":12: peer[1].public_key: expected \"ed25519:\"") != std::string::npos);
  }
  SUBCASE("the same public key twice") {
    const auto error = error_for(replace(good, site.south_key, site.north_key));
    CHECK(error.find("peer[2].public_key: the same key as another peer") != std::string::npos);
  }
  SUBCASE("a bad address") {
    const auto error = error_for(replace(good, "192.0.2.11:7400", "192.0.2.11"));
    CHECK(error.find(":11: peer[1].address: expected \"host:port\"") != std::string::npos);
  }
  SUBCASE("an unknown duress target") {
    const auto error = error_for(replace(good, "group:clinics", "group:clinic"));
    CHECK(error.find("duress.targets: target \"group:clinic\": no node or peer is in group") !=
          std::string::npos);
  }
  SUBCASE("a duration without a unit") {
    const auto error = error_for(good + "[store]\npoll_interval = 5\n");
    CHECK(error.find("store.poll_interval: expected a duration") != std::string::npos);
  }
  SUBCASE("a missing section") {
    const auto error = error_for(replace(good, "[mesh]\nkeys = \"mesh.keys\"\n", ""));
    CHECK(error.find(file + ": mesh: missing") != std::string::npos);
  }
  SUBCASE("several problems are all reported") {
    auto text = replace(good, "id = \"hq\"", "id = \"\"");
    text = replace(text, "192.0.2.11:7400", "nowhere");
    const auto error = error_for(text);
    CHECK(error.find("node.id") != std::string::npos);
    CHECK(error.find("peer[1].address") != std::string::npos);
  }
}

TEST_CASE("relayctl check-config prints a summary, or the errors and exit code 2") {
  Site site;
  const auto config = site.write_config(site.config_text());
  const Run ok = relayctl("check-config --offline --config " + config.string());
  CHECK(ok.exit_code == 0);
  CHECK(ok.output.find("node      hq (groups: hq)") != std::string::npos);
  CHECK(ok.output.find("clinic-south") != std::string::npos);

  const Run also = relayctl("--config " + config.string() + " check-config --offline");
  CHECK(also.exit_code == 0);
  const Run json = relayctl("--json check-config --offline --config " + config.string());
  CHECK(json.exit_code == 0);
  CHECK(json.output.find("\"ok\":true") != std::string::npos);
  CHECK(json.output.find("\"node\":\"hq\"") != std::string::npos);

  site.write_config(replace(site.config_text(), "[mesh]", "[mesh]\nkey_ring = \"x\""));
  const Run bad = relayctl("check-config --config " + config.string());
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find(config.string() + ":7: mesh.key_ring: unknown key") != std::string::npos);

  fs::permissions(site.dir / "hq.key", fs::perms(0640));
  site.write_config(site.config_text());
  const Run readable = relayctl("check-config --config " + config.string());
  CHECK(readable.exit_code == 2);
  CHECK(readable.output.find("node.identity_key") != std::string::npos);
  CHECK(readable.output.find("mode 0640") != std::string::npos);

  const Run missing = relayctl("check-config --config " + (site.dir / "nope.toml").string());
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("nope.toml: cannot read the file") != std::string::npos);

  // A control group this machine lacks: relayd would not start, so
  // check-config says so, offline too; the group root always has is fine.
  fs::permissions(site.dir / "hq.key", fs::perms(0600));
  site.write_config(site.config_text() + "\n[control]\ngroup = \"no-such-group-here\"\n");
  const Run nogroup = relayctl("check-config --offline --config " + config.string());
  CHECK(nogroup.exit_code == 2);
  CHECK(nogroup.output.find("[control] group: no such group \"no-such-group-here\"") !=
        std::string::npos);
  site.write_config(site.config_text() + "\n[control]\ngroup = \"root\"\n");
  const Run group = relayctl("check-config --offline --config " + config.string());
  CHECK(group.exit_code == 0);
  CHECK(group.output.find("[control] group: \"root\" exists") != std::string::npos);
}

TEST_CASE("check-config checks what relayd will meet: the database, its ports, IP addresses") {
  Site site;
  // A database that does not answer, and a kick port another program holds.
  const int held = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(held, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
  socklen_t length = sizeof at;
  ::getsockname(held, reinterpret_cast<sockaddr*>(&at), &length);
  const std::string port = std::to_string(ntohs(at.sin_port));
  const auto config = site.write_config(
      site.config_text() + "\n[store]\ndsn = \"host=" + site.dir.path().string() +
      " dbname=nowhere\"\n\n[kick]\nlisten = \"127.0.0.1:" + port + "\"\n\n[status]\n" +
      "listen = \"127.0.0.1:0\"\n");
  const Run run = relayctl("check-config --config " + config.string());
  ::close(held);
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("PROBLEM   database: cannot reach the database") != std::string::npos);
  CHECK(run.output.find("PROBLEM   [kick] listen (UDP): 127.0.0.1:" + port) != std::string::npos);
  CHECK(run.output.find("another program has it") != std::string::npos);

  // A host name where relayd binds is refused by the file check already.
  site.write_config(site.config_text() + "\n[kick]\nlisten = \"localhost:7401\"\n");
  const Run name = relayctl("check-config --offline --config " + config.string());
  CHECK(name.exit_code == 2);
  CHECK(name.output.find("kick.listen") != std::string::npos);
  CHECK(name.output.find("must be an IP address") != std::string::npos);
}

TEST_CASE("relayctl keygen writes a 0600 key and prints the line peers paste") {
  TempDir dir;
  const Run run = relayctl("keygen --out " + (dir / "node.key").string());
  CHECK(run.exit_code == 0);
  const auto at = run.output.find("public_key = \"ed25519:");
  REQUIRE(at != std::string::npos);
  const auto line = run.output.substr(at + 14, 8 + 44);
  const auto key = load_identity_key(dir / "node.key");
  CHECK(parse_public_key(line) == key.public_key());
  CHECK((fs::status(dir / "node.key").permissions() & fs::perms(0777)) == fs::perms(0600));

  const Run again = relayctl("keygen --out " + (dir / "node.key").string());
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("refusing to overwrite") != std::string::npos);

  const Run mesh = relayctl("keygen --mesh --out " + (dir / "mesh.keys").string());
  CHECK(mesh.exit_code == 0);
  CHECK(load_key_ring(dir / "mesh.keys").keys.size() == 1);

  CHECK(relayctl("keygen").exit_code == 2);
  CHECK(relayctl("frobnicate").exit_code == 2);
}

TEST_CASE("the example configs in deploy/ are valid") {
  for (const char* name : {"hq.toml", "clinic.toml"}) {
    CAPTURE(name);
    const Config config = load_config(fs::path(RELAY_SOURCE_DIR) / "deploy" / name);
    CHECK(config.peers.size() == 1);  // one mesh of two sites (deploy/OPERATOR.md)
  }
}

TEST_CASE("the status page leaves loopback only with a token") {
  Site site;
  const std::string good = site.config_text();
  auto with_status = [&](const std::string& status) {
    return load_error(site.write_config(good + "\n[status]\n" + status));
  };
  CHECK(with_status("listen = \"127.0.0.1:7480\"\n") == "");
  CHECK(with_status("listen = \"[::1]:7480\"\n") == "");
  CHECK(with_status("listen = \"0.0.0.0:7480\"\n").find("status.listen") != std::string::npos);
  CHECK(with_status("listen = \"0.0.0.0:7480\"\ntoken = \"short\"\n").find("16 characters") !=
        std::string::npos);
  CHECK(with_status("listen = \"0.0.0.0:7480\"\ntoken = \"a-long-enough-secret\"\n") == "");
  const Config config = load_config(site.dir / "hq.toml");
  CHECK(config.status.token == "a-long-enough-secret");
}

TEST_CASE("[[escalation]] rules: by kind or priority, with defaults, and errors naming the key") {
  Site site;
  const std::string file = (site.dir / "hq.toml").string();
  const std::string rules =
      "\n[[escalation]]\nkind = \"duress\"\nafter = \"60s\"\nto = [\"group:clinics\"]\n"
      "repeat = \"30s\"\nmax = 4\n"
      "\n[[escalation]]\npriority = \"emergency\"\nto = [\"clinic-north\"]\n";
  const auto config = load_config(site.write_config(site.config_text() + rules));
  REQUIRE(config.escalations.size() == 2);
  CHECK(config.escalations[0].kind == "duress");
  CHECK(config.escalations[0].priority.empty());
  CHECK(config.escalations[0].after == 60s);
  CHECK(config.escalations[0].repeat == 30s);
  CHECK(config.escalations[0].max == 4);
  CHECK(config.escalations[0].to == std::vector<std::string>{"group:clinics"});
  CHECK(config.escalations[1].priority == "emergency");
  CHECK(config.escalations[1].after == 60s);  // the defaults
  CHECK(config.escalations[1].repeat == 60s);
  CHECK(config.escalations[1].max == 5);
  CHECK(load_config(site.write_config(site.config_text())).escalations.empty());

  auto error_for = [&](const std::string& rule) {
    return load_error(site.write_config(site.config_text() + "\n[[escalation]]\n" + rule));
  };
  const auto ack = error_for("kind = \"ack\"\nto = [\"hq\"]\n");
  CHECK(ack.find(file + ":") != std::string::npos);  // the file and the line
  CHECK(ack.find(": escalation[1].kind: \"ack\": expected duress, notification or test") !=
        std::string::npos);
  CHECK(error_for("priority = \"urgent\"\nto = [\"hq\"]\n")
            .find("escalation[1].priority: \"urgent\": expected duress, emergency, normal or bulk") !=
        std::string::npos);
  CHECK(error_for("to = [\"hq\"]\n").find("escalation[1].kind: expected either kind or priority") !=
        std::string::npos);
  CHECK(error_for("kind = \"duress\"\npriority = \"duress\"\nto = [\"hq\"]\n")
            .find("expected either kind or priority") != std::string::npos);
  CHECK(error_for("kind = \"duress\"\n").find("escalation[1].to: missing") != std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = []\n").find("escalation[1].to: expected at least one") !=
        std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = [\"group:nobody\"]\n")
            .find("escalation[1].to: target \"group:nobody\"") != std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = [\"hq\"]\nafter = \"soon\"\n").find("escalation[1].after") !=
        std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = [\"hq\"]\nrepeat = \"10ms\"\n")
            .find("escalation[1].repeat") != std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = [\"hq\"]\nmax = 0\n").find("escalation[1].max") !=
        std::string::npos);
  CHECK(error_for("kind = \"duress\"\nto = [\"hq\"]\nevery = \"1m\"\n")
            .find("escalation[1].every: unknown key") != std::string::npos);

  const auto path = site.write_config(site.config_text() + rules);
  const Run shown = relayctl("check-config --offline --config " + path.string());
  CHECK(shown.exit_code == 0);
  CHECK(shown.output.find("escalation kind duress: after 60000 ms to group:clinics, every 30000 ms, "
                          "at most 4 times") != std::string::npos);
  const Run json = relayctl("--json check-config --offline --config " + path.string());
  CHECK(json.output.find("\"escalations\":[{\"kind\":\"duress\",\"priority\":null,\"after_ms\":60000") !=
        std::string::npos);
}

TEST_CASE("[[drill]] schedules: every or weekly at, with defaults, and errors naming the key") {
  Site site;
  const std::string file = (site.dir / "hq.toml").string();
  const std::string drills =
      "\n[[drill]]\nevery = \"20s\"\nwindow = \"5s\"\ntargets = [\"group:clinics\"]\n"
      "\n[[drill]]\nname = \"weekly\"\nat = \"mon 10:00\"\ntargets = [\"clinic-north\"]\n"
      "title = \"Monday drill\"\n"
      "\n[[drill]]\nname = \"daily\"\nat = \"07:30\"\ntargets = [\"all\"]\n";
  const auto config = load_config(site.write_config(site.config_text() + drills));
  REQUIRE(config.drills.size() == 3);
  CHECK(config.drills[0].name == "drill-1");  // its place in the file
  CHECK(config.drills[0].every == 20s);
  CHECK(config.drills[0].window == 5s);
  CHECK(config.drills[0].title == "Drill of the alert system");
  CHECK(config.drills[1].name == "weekly");
  CHECK(config.drills[1].weekday == 1);
  CHECK(config.drills[1].minute_of_day == 600);
  CHECK(config.drills[1].window == 15min);
  CHECK(config.drills[1].title == "Monday drill");
  CHECK(config.drills[2].weekday == -1);
  CHECK(config.drills[2].minute_of_day == 450);

  auto error_for = [&](const std::string& drill) {
    return load_error(site.write_config(site.config_text() + "\n[[drill]]\n" + drill));
  };
  const auto both = error_for("every = \"1h\"\nat = \"Mon 10:00\"\ntargets = [\"hq\"]\n");
  CHECK(both.find(file + ":") != std::string::npos);
  CHECK(both.find("drill[1].every: expected either every") != std::string::npos);
  CHECK(error_for("targets = [\"hq\"]\n").find("drill[1].every: expected either every") !=
        std::string::npos);
  CHECK(error_for("at = \"Monday 10:00\"\ntargets = [\"hq\"]\n")
            .find("drill[1].at: \"Monday 10:00\": expected \"Mon 10:00\"") != std::string::npos);
  CHECK(error_for("at = \"24:00\"\ntargets = [\"hq\"]\n").find("drill[1].at") != std::string::npos);
  CHECK(error_for("every = \"10s\"\nwindow = \"10s\"\ntargets = [\"hq\"]\n")
            .find("drill[1].window: expected less than the time between two drills") !=
        std::string::npos);
  CHECK(error_for("every = \"1h\"\n").find("drill[1].targets: missing") != std::string::npos);
  CHECK(error_for("every = \"1h\"\ntargets = [\"group:nobody\"]\n")
            .find("drill[1].targets: target \"group:nobody\"") != std::string::npos);
  CHECK(error_for("name = \"Weekly\"\nevery = \"1h\"\ntargets = [\"hq\"]\n").find("drill[1].name") !=
        std::string::npos);
  CHECK(load_error(site.write_config(site.config_text() +
                                     "\n[[drill]]\nevery = \"1h\"\ntargets = [\"hq\"]\n"
                                     "\n[[drill]]\nname = \"drill-1\"\nevery = \"1h\"\n"
                                     "targets = [\"hq\"]\n"))
            .find("drill[2].name: \"drill-1\" names another [[drill]] too") != std::string::npos);
}

TEST_CASE("[[drill]] slots: multiples of every, and the last weekly or daily time on the local clock") {
  DrillSchedule every;
  every.every = 10s;
  CHECK(last_slot(every, 12'345) == 10'000);
  CHECK(last_slot(every, 20'000) == 20'000);
  // The local clock is UTC here; 2024-01-01 10:00 UTC was a Monday.
  const char* tz = std::getenv("TZ");
  const std::string saved = tz != nullptr ? tz : "";
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  constexpr std::int64_t monday_10 = 1'704'103'200'000;
  constexpr std::int64_t day = 86'400'000;
  DrillSchedule weekly;
  weekly.weekday = 1;
  weekly.minute_of_day = 600;
  CHECK(last_slot(weekly, monday_10) == monday_10);
  CHECK(last_slot(weekly, monday_10 + 3 * day) == monday_10);
  CHECK(last_slot(weekly, monday_10 - 1000) == monday_10 - 7 * day);
  CHECK(slot_spacing(weekly) == std::chrono::hours(24 * 7));
  DrillSchedule daily;
  daily.minute_of_day = 600;
  CHECK(last_slot(daily, monday_10 - 1000) == monday_10 - day);
  CHECK(last_slot(daily, monday_10 + 1000) == monday_10);
  if (tz != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

namespace {

/// `site`'s config naming policy.toml, which holds `policy`.
fs::path site_with_policy(Site& site, std::string_view policy) {
  site.dir.write("policy.toml", policy);
  return site.write_config(replace(site.config_text(), "keys = \"mesh.keys\"\n",
                                   "keys = \"mesh.keys\"\npolicy = \"policy.toml\"\n"));
}

}  // namespace

TEST_CASE("[mesh] policy: [[clear]] rules from a file of their own, with defaults and a digest") {
  Site site;
  const std::string file = (site.dir / "policy.toml").string();
  auto with_policy = [&](std::string_view policy) { return site_with_policy(site, policy); };
  const std::string rules =
      "# Only the origin, or hq, may clear.\n"
      "[[clear]]\nname = \"hq-clears\"\nby = [\"hq\"]\nof = [\"all\"]\n"
      "\n[[clear]]\nby = [\"group:clinics\", \"clinic-north\"]\nof = [\"group:clinics\"]\n"
      "\n[[clear]]\nby = [\"clinic-south\"]\n";
  const Config config = load_config(with_policy(rules));
  REQUIRE(config.policy.clear.size() == 3);
  CHECK(config.policy.clear[0].name == "hq-clears");
  CHECK(config.policy.clear[0].by == std::vector<std::string>{"hq"});
  CHECK(config.policy.clear[1].name == "clear-2");  // the defaults
  CHECK(config.policy.clear[2].of == std::vector<std::string>{"all"});
  CHECK(config.policy_digest.size() == 64);

  // Without a policy file: the empty policy (only the origin clears), and its digest.
  const Config none = load_config(site.write_config(site.config_text()));
  CHECK(none.policy.clear.empty());
  CHECK(none.policy_digest == digest_hex(policy_digest({})));
  CHECK(none.policy_digest != config.policy_digest);
  CHECK(load_config(with_policy("# nothing yet\n")).policy_digest == none.policy_digest);

  // The same rules written otherwise: comments, spacing, the order within a
  // list, a default spelled out: the same digest.
  const std::string same =
      "[[clear]]   # hq\n  name=\"hq-clears\"\n  of = [ \"all\" ]\n  by = [ \"hq\" ]\n"
      "[[clear]]\nof=[\"group:clinics\"]\nby=[\"clinic-north\",\"group:clinics\"]\n"
      "[[clear]]\nname = \"clear-3\"\nof = [\"all\"]\nby = [\"clinic-south\"]\n# end\n";
  CHECK(load_config(with_policy(same)).policy_digest == config.policy_digest);
  // Anything that changes what the rules allow, or what refusals name: another digest.
  const auto digest_of = [&](const std::string& text) {
    return load_config(with_policy(text)).policy_digest;
  };
  CHECK(digest_of(replace(rules, "by = [\"hq\"]", "by = [\"clinic-north\"]")) !=
        config.policy_digest);
  CHECK(digest_of(replace(rules, "of = [\"all\"]", "of = [\"hq\"]")) != config.policy_digest);
  CHECK(digest_of(replace(rules, "hq-clears", "hq-may-clear")) != config.policy_digest);
  CHECK(digest_of(replace(rules, "\n[[clear]]\nby = [\"clinic-south\"]\n", "")) !=
        config.policy_digest);
  // The first rule that matches wins: the order of rules counts.
  CHECK(digest_of("[[clear]]\nname = \"a\"\nby = [\"hq\"]\n[[clear]]\nname = \"b\"\nby = [\"all\"]\n") !=
        digest_of("[[clear]]\nname = \"b\"\nby = [\"all\"]\n[[clear]]\nname = \"a\"\nby = [\"hq\"]\n"));

  auto error_for = [&](const std::string& policy) { return load_error(with_policy(policy)); };
  CHECK(error_for("[[clear]]\nof = [\"all\"]\n").find(file + ": clear[1].by: missing: expected the sites that may clear") !=
        std::string::npos);
  CHECK(error_for("[[clear]]\nby = [\"clinic-east\"]\n")
            .find(file + ":2: clear[1].by: target \"clinic-east\" is not \"all\"") !=
        std::string::npos);
  CHECK(error_for("[[clear]]\nby = [\"hq\"]\nof = [\"group:nobody\"]\n")
            .find(file + ":3: clear[1].of: target \"group:nobody\"") != std::string::npos);
  CHECK(error_for("[[clear]]\nby = [\"hq\"]\nof = []\n").find("clear[1].of: expected at least one") !=
        std::string::npos);
  CHECK(error_for("[[clear]]\nname = \"HQ\"\nby = [\"hq\"]\n")
            .find(file + ":2: clear[1].name: \"HQ\" is not 1 to 32") != std::string::npos);
  CHECK(error_for("[[clear]]\nby = [\"hq\"]\n[[clear]]\nname = \"clear-1\"\nby = [\"hq\"]\n")
            .find("clear[2].name: \"clear-1\" names another [[clear]] rule too") !=
        std::string::npos);
  CHECK(error_for("[[clear]]\nby = [\"hq\"]\nwho = [\"hq\"]\n")
            .find(file + ":3: clear[1].who: unknown key; expected one of: name, by, of") !=
        std::string::npos);
  CHECK(error_for("[[ack]]\nby = [\"hq\"]\n").find(file + ":1: ack: unknown key") !=
        std::string::npos);
  CHECK(error_for("[[clear]\n").find(file + ":1: not valid TOML") != std::string::npos);

  // A policy file that is not there: the config line naming it, and the path.
  fs::remove(site.dir / "policy.toml");
  const auto config_file = (site.dir / "hq.toml").string();
  const auto missing = load_error(site.dir / "hq.toml");
  CHECK(missing.find(config_file + ":8: mesh.policy: " + file + ": cannot read the file") !=
        std::string::npos);

  // relayctl check-config says so too, with exit code 2.
  const Run run = relayctl("check-config --offline --config " + config_file);
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("mesh.policy: " + file + ": cannot read the file") != std::string::npos);
  site.dir.write("policy.toml", "[[clear]]\nby = [\"clinic-east\"]\n");
  const Run bad = relayctl("check-config --offline --config " + config_file);
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find(file + ":2: clear[1].by: target \"clinic-east\"") != std::string::npos);
}

TEST_CASE("[mesh] policy: [[send]] rules, their defaults, errors and digest") {
  Site site;
  const std::string file = (site.dir / "policy.toml").string();
  auto with_policy = [&](std::string_view policy) { return site_with_policy(site, policy); };
  const std::string clears = "[[clear]]\nname = \"hq-clears\"\nby = [\"hq\"]\n";
  const std::string sends =
      "[[send]]\nname = \"hq-lockdown\"\nby = [\"hq\"]\ntypes = [\"lockdown\"]\n"
      "[[send]]\nname = \"no-lockdown\"\ntypes = [\"lockdown\"]\nallow = false\n"
      "[[send]]\nby = [\"group:clinics\"]\nkinds = [\"duress\"]\nto = [\"origin\", \"hq\"]\n";
  const Config config = load_config(with_policy(clears + sends));
  REQUIRE(config.policy.send.size() == 3);
  CHECK(config.policy.send[0].to == std::vector<std::string>{"all"});  // the defaults
  CHECK(config.policy.send[0].kinds.empty());
  CHECK(config.policy.send[0].allow);
  CHECK(config.policy.send[1].by == std::vector<std::string>{"all"});
  CHECK_FALSE(config.policy.send[1].allow);
  CHECK(config.policy.send[2].name == "send-3");
  CHECK(config.policy.send[2].to == std::vector<std::string>{"origin", "hq"});

  // A policy of [[clear]] rules alone keeps the digest builds before
  // [[send]] rules computed; adding, reordering or changing one changes it.
  const auto digest_of = [&](const std::string& text) {
    return load_config(with_policy(text)).policy_digest;
  };
  mesh::Policy clears_only;
  clears_only.clear.push_back({"hq-clears", {"hq"}, {"all"}});
  CHECK(digest_of(clears) == digest_hex(policy_digest(clears_only)));
  CHECK(config.policy_digest != digest_of(clears));
  CHECK(digest_of(replace(clears + sends, "allow = false\n", "")) != config.policy_digest);
  CHECK(digest_of(replace(clears + sends, "\"origin\", \"hq\"", "\"hq\"")) !=
        config.policy_digest);
  CHECK(digest_of(replace(clears + sends, "\"lockdown\"]\n[[send]]", "\"lockdown\", \"evacuate\"]\n[[send]]")) !=
        config.policy_digest);
  CHECK(digest_of(replace(clears + sends, "\"origin\", \"hq\"", "\"hq\", \"origin\"")) ==
        config.policy_digest);
  // Types are free text: no comma inside one reads as two.
  CHECK(digest_of("[[send]]\ntypes = [\"a,b\"]\nallow = false\n") !=
        digest_of("[[send]]\ntypes = [\"a\", \"b\"]\nallow = false\n"));

  auto error_for = [&](const std::string& policy) { return load_error(with_policy(policy)); };
  CHECK(error_for("[[send]]\nkinds = [\"all-clear\"]\n")
            .find(file + ":2: send[1].kinds: \"all-clear\" is not one of notification, duress, test") !=
        std::string::npos);
  CHECK(error_for("[[send]]\npriorities = [\"high\"]\n").find("send[1].priorities: \"high\" is not one of") !=
        std::string::npos);
  CHECK(error_for("[[send]]\nkinds = []\n").find("send[1].kinds: empty") != std::string::npos);
  CHECK(error_for("[[send]]\nallow = false\nto = [\"hq\"]\n")
            .find("send[1].to: a rule with allow = false refuses what it matches to anyone") !=
        std::string::npos);
  CHECK(error_for("[[send]]\nto = [\"clinic-east\"]\n").find("send[1].to: target \"clinic-east\"") !=
        std::string::npos);
  CHECK(error_for("[[send]]\nby = [\"origin\"]\n").find("send[1].by: target \"origin\"") !=
        std::string::npos);
  CHECK(error_for("[[send]]\nname = \"x\"\n[[send]]\nname = \"x\"\n")
            .find("send[2].name: \"x\" names another [[send]] rule too") != std::string::npos);
  CHECK(error_for("[[send]]\nkind = [\"duress\"]\n")
            .find("send[1].kind: unknown key; expected one of: name, by, kinds, types, priorities, to, allow") !=
        std::string::npos);
}

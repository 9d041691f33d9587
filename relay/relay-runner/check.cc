// relay-runner --check-config: the file, then what the runner will meet at
// start: its handler, the database and the ports it binds (as relayctl
// check-config does for relayd, relay/relayctl/check.cc).
#include "relay/relay-runner/check.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/bind_check.h"
#include "common/log.h"
#include "relay/relay-runner/command_handler.h"

namespace relay::runner {
namespace {

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", mode & 07777u);
  return text;
}

/// The program the runner would execute, checked as exec will find it.
RunnerCheck command_check(const RunnerConfig& config) {
  const std::string key = "[handler] command";
  const std::string& name = config.handler.command.front();
  const std::string program = find_program(name);
  if (program.find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    return {key, false,
            "\"" + name + "\" is not an executable file in any folder of PATH (" +
                (path != nullptr ? path : "unset") + ")"};
  }
  const std::string found = program == name ? program : program + " (\"" + name + "\" in PATH)";
  struct stat st {};
  if (::stat(program.c_str(), &st) != 0) {
    return {key, false, program + ": " + std::strerror(errno)};
  }
  if (S_ISDIR(st.st_mode)) return {key, false, found + " is a directory, not a program"};
  if (!S_ISREG(st.st_mode)) return {key, false, found + " is not a regular file"};
  // As the user this runs as: the unit's ExecStartPre runs as its User=.
  if (::faccessat(AT_FDCWD, program.c_str(), X_OK, AT_EACCESS) != 0) {
    return {key, false,
            found + " is not executable by this user (mode " + mode_text(st.st_mode) + "): " +
                std::strerror(errno)};
  }
  return {key, true, found + " is executable"};
}

RunnerCheck url_check(const RunnerConfig& config) {
  // load_runner_config refuses a URL that does not parse; said here too,
  // with where the runner will POST.
  const auto url = parse_http_url(config.handler.url);
  if (!url) return {"[handler] url", false, "\"" + config.handler.url + "\" does not parse"};
  return {"[handler] url", true,
          "POST to host " + url->host + ", port " + std::to_string(url->port) + ", path " +
              url->path};
}

RunnerCheck database_check(const RunnerConfig& config) {
  const std::string key = "[store] dsn";
  try {
    // A database that does not answer within seconds is the finding; libpq
    // takes this default for any form of DSN that does not set its own.
    ::setenv("PGCONNECT_TIMEOUT", "3", 0);
    pqxx::connection conn(config.store.dsn);
    pqxx::read_transaction tx(conn);
    if (!tx.exec1("SELECT to_regclass('runner_groups') IS NOT NULL")[0].as<bool>()) {
      return {key, true,
              "reachable; no runner tables yet (the runner or relayd creates them at start)"};
    }
    const auto group = tx.exec_params(
        "SELECT array_to_string(types, ', ') FROM runner_groups WHERE name = $1",
        config.runner.group);
    return {key, true,
            group.empty() ? "reachable; group " + config.runner.group +
                                " is not registered yet (the runner registers it at start)"
                          : "reachable; group " + config.runner.group + " consumes [" +
                                group[0][0].as<std::string>() + "]"};
  } catch (const std::exception& e) {
    return {key, false,
            "cannot reach the database (" + config.store.dsn + "): " + one_line(e.what())};
  }
}

/// True if this configuration's own runner answers on its status page (it
/// holds its ports then, which is fine).
bool own_runner_running(const RunnerConfig& config) {
  httplib::Client client(config.status.listen.host, config.status.listen.port);
  client.set_connection_timeout(std::chrono::seconds(1));
  client.set_read_timeout(std::chrono::seconds(2));
  auto res = client.Get("/api/status");
  if (!res || res->status != 200) return false;
  try {
    const auto status = nlohmann::json::parse(res->body);
    return status.value("group", "") == config.runner.group &&
           status.value("name", "") == config.runner.name;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

std::vector<RunnerCheck> port_checks(const RunnerConfig& config) {
  std::vector<std::tuple<std::string, Endpoint, int>> ports;
  if (config.kick) ports.emplace_back("[kick] listen (UDP)", *config.kick, SOCK_DGRAM);
  ports.emplace_back("[status] listen (TCP)", config.status.listen, SOCK_STREAM);
  std::vector<RunnerCheck> checks;
  std::optional<bool> ours;
  for (const auto& [key, ep, type] : ports) {
    const int err = try_bind(ep, type);
    if (err == 0 || ep.port == 0) {
      checks.push_back({key, true, ep.to_string() + " is free"});
    } else if (err == EADDRINUSE && (ours ? *ours : *(ours = own_runner_running(config)))) {
      checks.push_back({key, true, ep.to_string() + " is held by this runner, running"});
    } else {
      checks.push_back({key, false, ep.to_string() + ": " + std::strerror(err) +
                                        (err == EADDRINUSE ? " (another program has it)" : "")});
    }
  }
  return checks;
}

}  // namespace

std::vector<RunnerCheck> check_runner(const RunnerConfig& config, bool offline) {
  std::vector<RunnerCheck> checks;
  checks.push_back(config.handler.command.empty() ? url_check(config) : command_check(config));
  if (!offline) checks.push_back(database_check(config));
  for (auto& c : port_checks(config)) checks.push_back(std::move(c));
  return checks;
}

int check_config(const RunnerConfig& config, bool offline) {
  const auto checks = check_runner(config, offline);
  const bool all_ok =
      std::all_of(checks.begin(), checks.end(), [](const RunnerCheck& c) { return c.ok; });
  std::printf("%s: %s\n", config.file.c_str(), all_ok ? "OK" : "PROBLEMS (below)");
  std::printf("  runner    %s of group %s\n", config.runner.name.c_str(),
              config.runner.group.c_str());
  for (const auto& c : checks) {
    std::printf("  %-9s %s: %s\n", c.ok ? "ok" : "PROBLEM", c.key.c_str(), c.message.c_str());
  }
  if (offline) {
    std::printf("  (--offline: the database was not checked; the runner waits for it)\n");
  }
  return all_ok ? 0 : 2;
}

}  // namespace relay::runner

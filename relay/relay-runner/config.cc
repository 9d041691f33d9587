#include "relay/relay-runner/config.h"

#include <unistd.h>

#include <charconv>

#include "common/config_error.h"
#include "common/toml_section.h"

namespace relay::runner {
namespace {

using namespace std::chrono_literals;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

void read_runner(TomlSection& top, RunnerConfig& config) {
  const toml::table* table = top.table("runner");
  if (table == nullptr) {
    top.error("runner", "missing; expected a [runner] table with group and types");
    return;
  }
  TomlSection s(*table, top.file(), "runner", top.issues(),
                {"group", "types", "name", "batch", "concurrency", "acknowledge", "state_dir"});
  if (auto group = s.string("group", true)) {
    if (valid_node_id(*group)) {
      config.runner.group = *group;
    } else {
      s.error("group", "\"" + *group + "\" is not 1 to 32 of a-z, 0-9 and -");
    }
  }
  if (auto types = s.strings("types")) {
    if (types->empty()) s.error("types", "expected at least one message_queue type");
    for (const auto& t : *types) {
      if (t.empty()) s.error("types", "a type is an empty string");
    }
    config.runner.types = std::move(*types);
  } else if (table->get("types") == nullptr) {
    s.error("types", "missing; expected the message_queue types, such as [\"duress\"]");
  }
  if (auto name = s.string("name", false)) {
    if (name->empty()) s.error("name", "expected a name unique within the group");
    config.runner.name = *name;
  }
  if (config.runner.name.empty()) config.runner.name = config.runner.group + "@" + host_name();
  if (auto n = s.integer("batch", false, 1, 1000)) config.runner.batch = *n;
  if (auto n = s.integer("concurrency", false, 1, 64)) config.runner.concurrency = *n;
  if (auto state = s.string("acknowledge", false)) {
    if (*state != "responding" && *state != "resolved") {
      s.error("acknowledge", "\"" + *state + "\": expected responding or resolved (how the group "
                             "acknowledges the exercises it handled)");
    }
    config.runner.acknowledge = *state;
  }
  if (auto dir = s.string("state_dir", false)) {
    if (dir->empty()) s.error("state_dir", "expected a folder path");
    // Relative to the config file's folder, as relayd's [node] state_dir.
    const std::filesystem::path path(*dir);
    config.runner.state_dir = path.is_absolute() ? path : config.file.parent_path() / path;
  }
  if (config.runner.state_dir.empty() && !config.runner.group.empty())
    config.runner.state_dir = std::filesystem::path("/var/lib/relaymesh") / ("runner-" + config.runner.group);
}

void read_store(TomlSection& top, RunnerConfig& config) {
  const toml::table* table = top.table("store");
  if (table == nullptr) return;
  TomlSection s(*table, top.file(), "store", top.issues(), {"dsn", "poll_interval", "listen"});
  if (auto dsn = s.string("dsn", false)) config.store.dsn = *dsn;
  if (auto d = s.duration("poll_interval", 10ms, 1h)) config.store.poll_interval = *d;
  if (auto channel = s.string("listen", false)) config.store.listen = *channel;
}

void read_handler(TomlSection& top, RunnerConfig& config) {
  const toml::table* table = top.table("handler");
  if (table == nullptr) {
    top.error("handler", "missing; expected a [handler] table with command or url");
    return;
  }
  TomlSection s(*table, top.file(), "handler", top.issues(), {"command", "url", "timeout"});
  if (auto command = s.strings("command")) {
    if (command->empty() || command->front().empty()) {
      s.error("command", "expected the program and its arguments, such as [\"/usr/bin/popup\"]");
    }
    config.handler.command = std::move(*command);
  }
  if (auto url = s.string("url", false)) {
    if (!parse_http_url(*url)) {
      s.error("url", "expected \"http://host:port/path\" (plain http, a local gateway)");
    }
    config.handler.url = *url;
  }
  const bool has_command = table->get("command") != nullptr;
  const bool has_url = table->get("url") != nullptr;
  if (has_command == has_url) {
    s.error(has_url ? "url" : "command", "expected exactly one of command and url");
  }
  if (auto d = s.duration("timeout", 10ms, 1h)) config.handler.timeout = *d;
}

void read_retry(TomlSection& top, RunnerConfig& config) {
  const toml::table* table = top.table("retry");
  if (table == nullptr) return;
  TomlSection s(*table, top.file(), "retry", top.issues(),
                {"initial", "max", "max_attempts", "duress_alarm_after"});
  if (auto d = s.duration("initial", 10ms, 1h)) config.retry.initial = *d;
  if (auto d = s.duration("max", 10ms, 24h)) config.retry.max = *d;
  if (config.retry.max < config.retry.initial) s.error("max", "expected at least retry.initial");
  if (auto n = s.integer("max_attempts", false, 1, 1'000'000)) config.retry.max_attempts = *n;
  if (auto n = s.integer("duress_alarm_after", false, 1, 1'000'000)) {
    config.retry.duress_alarm_after = *n;
  }
}

void read_endpoint(TomlSection& top, std::string_view name, std::optional<Endpoint>& out) {
  const toml::table* table = top.table(name);
  if (table == nullptr) return;
  TomlSection s(*table, top.file(), std::string(name), top.issues(), {"listen"});
  auto text = s.string("listen", true);
  if (!text) return;
  out = parse_endpoint(*text);
  if (!out) s.error("listen", "expected \"host:port\" such as \"127.0.0.1:7491\"");
}

}  // namespace

RunnerConfig load_runner_config(const std::filesystem::path& file) {
  std::vector<ConfigIssue> issues;
  auto doc = parse_toml_file(file, issues);
  if (!doc) throw ConfigError(std::move(issues));
  RunnerConfig config;
  config.file = file;
  TomlSection top(*doc, file.string(), "", issues,
                  {"runner", "store", "kick", "handler", "retry", "status"});
  read_runner(top, config);
  read_store(top, config);
  read_endpoint(top, "kick", config.kick);
  read_handler(top, config);
  read_retry(top, config);
  std::optional<Endpoint> status;
  read_endpoint(top, "status", status);
  if (status) config.status.listen = *status;
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return config;
}

std::optional<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) return std::nullopt;
  url.remove_prefix(scheme.size());
  HttpUrl out;
  const auto slash = url.find('/');
  if (slash != std::string_view::npos) {
    out.path = std::string(url.substr(slash));
    url = url.substr(0, slash);
  }
  if (url.find('@') != std::string_view::npos) return std::nullopt;
  if (url.find(':') != std::string_view::npos) {
    auto ep = parse_endpoint(url);
    if (!ep || ep->port == 0) return std::nullopt;
    out.host = ep->host;
    out.port = ep->port;
  } else {
    out.host = std::string(url);
  }
  if (out.host.empty()) return std::nullopt;
  return out;
}

}  // namespace relay::runner

#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "relay/runner/retry.h"

namespace relay::runner {

/// relay-runner's configuration (one file per integration). Every default
/// lives here and is documented in docs/runner.md.
struct RunnerConfig {
  std::filesystem::path file;

  struct Runner {
    /// The consumer group: each group sees every row of its types.
    std::string group;
    std::vector<std::string> types;
    /// Unique within the group; leases are held under it. Default group@host.
    std::string name;
    std::size_t batch = 1;
    std::size_t concurrency = 1;
    /// "responding" or "resolved": after the handler succeeds on an
    /// exercise, the group acknowledges it in that state (a drill answered
    /// by a configured runner); empty: never.
    std::string acknowledge;
    /// Kept outside the database: the captured output and the recent runs
    /// the page shows (`<state_dir>/log`). Default /var/lib/relaymesh/runner-GROUP.
    std::filesystem::path state_dir;
  } runner;

  struct Store {
    std::string dsn = "dbname=relaymesh";
    std::chrono::milliseconds poll_interval = std::chrono::seconds(1);
    /// NOTIFY channel to LISTEN on; empty: no LISTEN.
    std::string listen = "message_queue";
  } store;

  /// [kick] listen: the UDP port relayd's [delivery] kick sends to; none if unset.
  std::optional<Endpoint> kick;

  struct Handler {
    /// Run this (argv; no shell) with the row's JSON on stdin; exit 0 is handled.
    std::vector<std::string> command;
    /// Or POST the row's JSON here ("http://host:port/path"); 2xx is handled.
    std::string url;
    std::chrono::milliseconds timeout = std::chrono::seconds(30);
  } handler;

  RetryPolicy retry;

  struct Status {
    Endpoint listen{"127.0.0.1", 7490};
  } status;
};

/// Reads and validates a relay-runner config file; throws ConfigError
/// listing every problem (file, line, key, what is expected).
RunnerConfig load_runner_config(const std::filesystem::path& file);

/// "http://host:port/path" split up; nullopt unless it is plain http with a host.
struct HttpUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
};
std::optional<HttpUrl> parse_http_url(std::string_view url);

}  // namespace relay::runner

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"

namespace relay::ctl {

// Exit codes of the contract in docs/design.md ("Contracts").
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsage = 2;
inline constexpr int kWaitTimedOut = 3;

/// A usage or input error: relayctl prints it and exits 2, inserting nothing.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What the sending verbs take from the command line.
struct SendOptions {
  std::string kind = "notification";
  std::string priority;  // empty: by kind
  std::string targets;   // comma-separated; empty: the verb's default
  std::string title, body, location, sender, type, data;
  std::string expires;  // a duration, "" for never
  std::vector<std::string> refs;
  bool exercise = false;
  std::optional<std::chrono::milliseconds> wait;
  bool json = false;
};

int keygen(const std::string& out, bool mesh, bool json);
int check_config(const std::string& file, bool json);
int migrate(const Config& config, bool json);
int send(const Config& config, SendOptions options);
int status(const Config& config, bool json);
int events(const Config& config, int limit, const std::string& kind, const std::string& origin,
           bool json);
int receipts(const Config& config, const std::string& event, bool json);
int tail(const Config& config, bool json);

/// Node ids of the mesh (this node and its peers) that `targets` name.
std::vector<std::string> resolve_targets(const Config& config,
                                         const std::vector<std::string>& targets);
/// Splits "a,b,c" and trims spaces.
std::vector<std::string> split_list(const std::string& text);

}  // namespace relay::ctl

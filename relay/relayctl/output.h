#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace relay::ctl {

/// relayctl's JSON: keys in the order written, integers as integers.
using Json = nlohmann::ordered_json;

/// Prints one JSON document on stdout (the only one of the run).
void print_json(const Json& doc);

/// A verb that could not do what it was asked: relayctl exits with `code`
/// and says what state it left behind (`state`, merged into the --json
/// document: e.g. {"state": "queued", "outbox_id": 12}).
struct Failure : std::runtime_error {
  Failure(int exit_code, const std::string& message, Json left_behind = Json::object())
      : std::runtime_error(message), code(exit_code), state(std::move(left_behind)) {}
  int code;
  Json state;
};

/// A bad argument or input: exit 2, and nothing was sent or changed.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace relay::ctl

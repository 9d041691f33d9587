// relayctl: the operator's command line for relaymesh.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/config_error.h"
#include "common/toml_section.h"
#include "relay/relayctl/relayctl.h"

namespace {

using namespace relay;

/// The options every sending verb shares.
void add_send_options(CLI::App* cmd, ctl::SendOptions& o, std::string& wait) {
  cmd->add_option("--title", o.title, "short text, shown first");
  cmd->add_option("--body", o.body, "the message");
  cmd->add_option("--location", o.location, "where, e.g. \"Psych ward, room 12\"");
  cmd->add_option("--by", o.sender, "who or what raised it");
  cmd->add_option("--type", o.type, "message_queue type at the targets (default: the kind)");
  cmd->add_option("--data", o.data, "JSON handed to the consumers as is");
  cmd->add_option("--expires", o.expires, "lifetime, e.g. 30m or 2h");
  cmd->add_flag("--exercise", o.exercise, "a drill: labelled as such everywhere");
  cmd->add_flag("--wait{30s}", wait,
                "show progress until every target confirms; exit 3 if not within the duration "
                "(default 30s, or --wait=2m)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"relayctl: send alerts and look after a relaymesh node"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string config_file = "/etc/relaymesh/relayd.toml";
  bool json = false;
  app.add_option("--config", config_file, "relayd configuration file")->capture_default_str();
  app.add_flag("--json", json, "machine-readable output");

  ctl::SendOptions send;
  std::string wait;
  auto* send_cmd = app.add_subcommand("send", "send an alert (an outbox insert and a kick)");
  send_cmd->add_option("--kind", send.kind, "notification, duress, all-clear or test")
      ->capture_default_str();
  send_cmd->add_option("--priority", send.priority,
                       "duress, emergency, normal or bulk (default by kind)");
  send_cmd->add_option("--target", send.targets, "all, node ids, group:NAME; comma-separated")
      ->default_str("all");
  add_send_options(send_cmd, send, wait);

  auto* duress_cmd =
      app.add_subcommand("duress", "raise a duress alarm (targets from [duress] by default)");
  duress_cmd->add_option("--target", send.targets, "override [duress] targets; comma-separated");
  add_send_options(duress_cmd, send, wait);

  std::string cleared;
  auto* clear_cmd = app.add_subcommand("all-clear", "clear an earlier event everywhere it went");
  clear_cmd->add_option("EVENT", cleared, "the event to clear, as ORIGIN:SEQ")->required();
  clear_cmd->add_option("--target", send.targets, "targets (default: all)");
  add_send_options(clear_cmd, send, wait);

  auto* status_cmd = app.add_subcommand("status", "peers, liveness, round trips, what is pending");
  int limit = 20;
  std::string kind_filter, origin_filter;
  auto* events_cmd = app.add_subcommand("events", "recent events in this node's log");
  events_cmd->add_option("--limit", limit, "how many")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  events_cmd->add_option("--kind", kind_filter, "only this kind");
  events_cmd->add_option("--origin", origin_filter, "only from this node");
  std::string event_id;
  auto* receipts_cmd = app.add_subcommand("receipts", "per target: delivered when, or pending");
  receipts_cmd->add_option("EVENT", event_id, "ORIGIN:SEQ, as send printed it")->required();
  auto* tail_cmd = app.add_subcommand("tail", "print new events as they arrive");
  auto* migrate_cmd = app.add_subcommand("migrate", "apply the database migrations");
  std::string older_than;
  auto* prune_cmd = app.add_subcommand(
      "prune", "prune the event log now, as retention does hourly (dedupe outlives it)");
  prune_cmd->add_option("--older-than", older_than,
                        "prune what was stored longer ago than this, e.g. 0s (default: [store] "
                        "retention)");

  std::string out;
  bool mesh = false;
  auto* keygen_cmd = app.add_subcommand("keygen", "create a node identity key or a mesh key ring");
  keygen_cmd->add_option("--out", out, "file to create (mode 0600; never overwritten)")->required();
  keygen_cmd->add_flag("--mesh", mesh, "create a mesh key ring instead of a node identity key");
  auto* check_cmd =
      app.add_subcommand("check-config", "load and check a configuration and its key files");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? ctl::kOk : ctl::kUsage;
  }

  try {
    if (keygen_cmd->parsed()) return ctl::keygen(out, mesh, json);
    if (check_cmd->parsed()) return ctl::check_config(config_file, json);
    const Config config = load_config(config_file);
    send.json = json;
    if (!wait.empty()) {
      auto d = parse_duration(wait);
      if (!d) throw ctl::UsageError("--wait=" + wait + ": expected a duration such as 30s or 2m");
      send.wait = *d;
    }
    if (send_cmd->parsed()) {
      if (send.targets.empty()) send.targets = "all";
      return ctl::send(config, send);
    }
    if (duress_cmd->parsed()) {
      send.kind = "duress";
      if (send.targets.empty()) {
        for (const auto& t : config.duress.targets)
          send.targets += (send.targets.empty() ? "" : ",") + t;
      }
      if (send.title.empty()) send.title = "Duress";
      return ctl::send(config, send);
    }
    if (clear_cmd->parsed()) {
      send.kind = "all-clear";
      send.refs = {cleared};
      if (send.targets.empty()) send.targets = "all";
      if (send.title.empty()) send.title = "All clear";
      return ctl::send(config, send);
    }
    if (status_cmd->parsed()) return ctl::status(config, json);
    if (events_cmd->parsed()) return ctl::events(config, limit, kind_filter, origin_filter, json);
    if (receipts_cmd->parsed()) return ctl::receipts(config, event_id, json);
    if (tail_cmd->parsed()) return ctl::tail(config, json);
    if (migrate_cmd->parsed()) return ctl::migrate(config, json);
    if (prune_cmd->parsed()) {
      auto age =
          older_than.empty() ? std::optional(config.store.retention) : parse_duration(older_than);
      if (!age)
        throw ctl::UsageError("--older-than " + older_than +
                              ": expected a duration such as 0s or 30d");
      return ctl::prune(config, *age, json);
    }
  } catch (const ConfigError& e) {
    if (json) {
      // Machine output even for errors: one object with every problem.
      google::protobuf::Struct report;
      auto& f = *report.mutable_fields();
      f["ok"].set_bool_value(false);
      auto* errors = f["errors"].mutable_list_value();
      for (const auto& issue : e.issues())
        errors->add_values()->set_string_value(issue.to_string());
      std::string text;
      (void)google::protobuf::util::MessageToJsonString(report, &text);
      std::cout << text << "\n";
    }
    std::cerr << e.what() << "\n";
    return ctl::kUsage;
  } catch (const ctl::UsageError& e) {
    std::cerr << "relayctl: " << e.what() << " (nothing was sent)\n";
    return ctl::kUsage;
  } catch (const std::exception& e) {
    std::cerr << "relayctl: " << e.what() << "\n";
    return ctl::kFailure;
  }
  return ctl::kUsage;
}

// relayctl: the operator's command line for relaymesh.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "common/config_error.h"
#include "common/toml_section.h"
#include "relay/relayctl/relayctl.h"

namespace {

using namespace relay;

constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0  success\n"
    "  1  anything else (the database unreachable, the relay rejected the alert, ...)\n"
    "  2  usage or configuration error (a sending verb sent nothing)\n"
    "  3  --wait: the event was sent, but not every target confirmed in time\n"
    "  4  queued, not yet sent: relayd did not claim the outbox row in time\n"
    "  5  status: the verdict is DEGRADED\n"
    "  6  status: the verdict is ALARM\n"
    "With --json, stdout carries exactly one JSON document in every case, errors included\n"
    "(\"ok\", \"exit_code\", \"error\", and the state left behind, e.g. \"outbox_id\").";

/// --wait: follow receipts.
CLI::Option* add_wait_option(CLI::App* cmd, std::string& wait) {
  return cmd
      ->add_option("--wait", wait,
                   "follow receipts until every target confirms; exit 3 if not within the "
                   "duration (--wait, --wait 2m or --wait=2m; default 30s)")
      ->expected(0, 1);
}

/// The options every sending verb shares; returns the --wait option.
CLI::Option* add_send_options(CLI::App* cmd, ctl::SendOptions& o, std::string& wait) {
  cmd->add_option("--title", o.title, "short text, shown first");
  cmd->add_option("--body", o.body, "the message");
  cmd->add_option("--location", o.location, "where, e.g. \"Psych ward, room 12\"");
  cmd->add_option("--by", o.sender, "who or what raised it");
  cmd->add_option("--type", o.type, "message_queue type at the targets (default: the kind)");
  cmd->add_option("--data", o.data, "JSON handed to the consumers as is");
  cmd->add_option("--expires", o.expires, "lifetime, e.g. 30m or 2h");
  cmd->add_flag("--exercise", o.exercise, "a drill: labelled as such everywhere");
  cmd->add_option("--until", o.until,
                  "with --wait: \"acknowledged\" waits for a person's acknowledgement instead "
                  "(exit 3 when nobody acknowledged it in time)")
      ->check(CLI::IsMember({"acknowledged"}));
  return add_wait_option(cmd, wait);
}

/// --wait's duration: given (30s if bare) or none.
std::optional<std::chrono::milliseconds> wait_of(const CLI::Option* option,
                                                 const std::string& text) {
  if (option->count() == 0) return std::nullopt;
  if (text.empty()) return std::chrono::seconds(30);
  auto d = parse_duration(text);
  if (!d) {
    throw ctl::UsageError("--wait \"" + text +
                          "\": expected a duration such as 30s or 2m (an event id goes before "
                          "--wait)");
  }
  return *d;
}

/// The one document of a run that failed.
void print_failure(int code, const std::string& message, const ctl::Json& state) {
  ctl::Json doc;
  doc["ok"] = false;
  doc["exit_code"] = code;
  doc["error"] = message;
  for (const auto& [key, value] : state.items()) doc[key] = value;
  ctl::print_json(doc);
}

bool wants_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--json") == 0) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // A database host that drops packets would hold a connect for minutes
  // (TCP's retries): a button script waits, and someone presses again.
  ::setenv("PGCONNECT_TIMEOUT", "3", 0);
  CLI::App app{"relayctl: send alerts and look after a relaymesh node"};
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(kExitCodes);
  app.set_version_flag("--version", "relayctl " RELAY_VERSION);
  std::string config_file = "/etc/relaymesh/relayd.toml";
  bool json = false;
  app.add_option("--config", config_file, "relayd configuration file")->capture_default_str();
  app.add_flag("--json", json, "machine-readable output: one JSON document on stdout");

  ctl::SendOptions send;
  std::string wait, targets;
  auto* send_cmd = app.add_subcommand("send", "send an alert (an outbox insert and a kick)");
  send_cmd->add_option("--kind", send.kind, "notification, duress, all-clear or test")
      ->capture_default_str();
  send_cmd->add_option("--priority", send.priority,
                       "duress, emergency, normal or bulk (default by kind)");
  auto* send_target =
      send_cmd->add_option("--target", targets, "all, node ids, group:NAME; comma-separated")
          ->default_str("all");
  auto* send_wait = add_send_options(send_cmd, send, wait);

  auto* duress_cmd =
      app.add_subcommand("duress", "raise a duress alarm (targets from [duress] by default)");
  auto* duress_target =
      duress_cmd->add_option("--target", targets, "override [duress] targets; comma-separated");
  auto* duress_wait = add_send_options(duress_cmd, send, wait);

  std::string cleared;
  auto* clear_cmd = app.add_subcommand("all-clear", "clear an earlier event everywhere it went");
  clear_cmd->add_option("EVENT", cleared, "the event to clear, as ORIGIN:SEQ")->required();
  auto* clear_target =
      clear_cmd->add_option("--target", targets, "targets (default: those of the event)");
  auto* clear_wait = add_send_options(clear_cmd, send, wait);

  std::string acked;
  bool resolved = false;
  auto* ack_cmd = app.add_subcommand(
      "ack", "acknowledge an event as a person: to its origin and targets, at its priority");
  ack_cmd->add_option("EVENT", acked, "the event to acknowledge, as ORIGIN:SEQ")->required();
  ack_cmd->add_option("--by", send.sender, "who acknowledges, e.g. \"guard 3\"")->required();
  ack_cmd->add_flag("--resolved", resolved, "it is resolved (default: responding)");
  ack_cmd->add_option("--note", send.body, "a note for the origin, e.g. \"on my way\"");
  auto* ack_wait = add_wait_option(ack_cmd, wait);

  // The origin revises its own alert: new text while it is open, or
  // "sent in error". Each goes to the alert's targets at its priority.
  std::string revised;
  auto* update_cmd = app.add_subcommand(
      "update", "give one of this node's open alerts new text, everywhere it went");
  update_cmd->add_option("EVENT", revised, "the alert, as ORIGIN:SEQ (ORIGIN is this node)")
      ->required();
  update_cmd
      ->add_option("--body", send.body, "the new text, e.g. \"suspect moved to the car park\"")
      ->required();
  update_cmd->add_option("--title", send.title, "a new title (default: the alert's)");
  update_cmd->add_option("--location", send.location, "a new location (default: the alert's)");
  update_cmd->add_option("--by", send.sender, "who updates it");
  auto* cancel_cmd = app.add_subcommand(
      "cancel", "withdraw one of this node's alerts as sent in error, everywhere it went");
  cancel_cmd->add_option("EVENT", revised, "the alert, as ORIGIN:SEQ (ORIGIN is this node)")
      ->required();
  cancel_cmd->add_option("--note", send.body, "why, e.g. \"pressed by mistake\"");
  cancel_cmd->add_option("--by", send.sender, "who cancels it");
  auto* update_wait = add_wait_option(update_cmd, wait);
  auto* cancel_wait = add_wait_option(cancel_cmd, wait);

  auto* status_cmd = app.add_subcommand(
      "status",
      "verdict, peers, database, what is pending, from relayd's next database check (at most a "
      "few seconds); exit 0 OK, 5 DEGRADED, 6 ALARM");
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
  auto* tail_cmd = app.add_subcommand(
      "tail", "print new events as they arrive (--json: one JSON document per line)");
  auto* migrate_cmd = app.add_subcommand("migrate", "apply the database migrations");
  auto* reload_cmd = app.add_subcommand(
      "reload",
      "make relayd take its configuration and keys again, and say whether it did (exit 2 if it "
      "refused them; for systemctl reload)");
  std::string older_than;
  auto* prune_cmd = app.add_subcommand(
      "prune",
      "prune the event log now, as retention does hourly (dedupe outlives it); own events a "
      "peer has not stored are kept and named, exit 1, unless --force");
  prune_cmd->add_option("--older-than", older_than,
                        "prune what was stored longer ago than this, e.g. 0s (default: [store] "
                        "retention)");
  bool force = false;
  prune_cmd->add_flag("--force", force,
                      "prune own events too that a peer has not stored (else they are kept, "
                      "named, and the exit code is 1)");

  std::string out;
  bool mesh = false;
  auto* keygen_cmd = app.add_subcommand("keygen", "create a node identity key or a mesh key ring");
  keygen_cmd->add_option("--out", out, "file to create (mode 0600; never overwritten)")->required();
  keygen_cmd->add_flag("--mesh", mesh, "create a mesh key ring instead of a node identity key");
  auto* check_cmd = app.add_subcommand(
      "check-config",
      "check a configuration and its key files, and what relayd will meet: the database "
      "(reachable, schema, durability) and the ports it binds");
  bool offline = false;
  check_cmd->add_flag("--offline", offline, "check the files only");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    if (wants_json(argc, argv)) {
      print_failure(ctl::kUsage, e.what(), ctl::Json::object());
      std::cerr << "relayctl: " << e.what() << "\n";
      return ctl::kUsage;
    }
    return app.exit(e) == 0 ? ctl::kOk : ctl::kUsage;
  }

  try {
    if (keygen_cmd->parsed()) return ctl::keygen(out, mesh, json);
    if (check_cmd->parsed()) return ctl::check_config(config_file, offline, json);
    if (reload_cmd->parsed()) return ctl::reload(config_file, json);
    const Config config = load_config(config_file);
    send.json = json;
    auto sending = [&](CLI::Option* target, CLI::Option* wait_option,
                       const std::vector<std::string>& fallback) {
      send.targets = target->count() > 0 ? ctl::split_targets(targets) : fallback;
      send.wait = wait_of(wait_option, wait);
      return ctl::send(config, send);
    };
    if (send_cmd->parsed()) {
      if (send.title.empty())
        throw ctl::UsageError("--title is required: an alert without one shows up blank");
      return sending(send_target, send_wait, {"all"});
    }
    if (duress_cmd->parsed()) {
      send.kind = "duress";
      if (send.title.empty()) send.title = "Duress";
      return sending(duress_target, duress_wait, config.duress.targets);
    }
    if (clear_cmd->parsed()) {
      const ctl::EventId id = ctl::parse_event_id(cleared);
      send.kind = "all-clear";
      send.refs = {id.text()};
      if (send.title.empty()) send.title = "All clear";
      // Checked first, even with --target: an all-clear of nothing is refused.
      const auto original = ctl::all_clear_targets(config, id);
      return sending(clear_target, clear_wait, original);
    }
    if (ack_cmd->parsed()) {
      const ctl::EventId id = ctl::parse_event_id(acked);
      send.kind = "ack";
      send.refs = {id.text()};
      send.ack = resolved ? "resolved" : "responding";
      send.wait = wait_of(ack_wait, wait);
      return ctl::ack(config, send, id);
    }
    if (update_cmd->parsed() || cancel_cmd->parsed()) {
      const bool update = update_cmd->parsed();
      const ctl::EventId id = ctl::parse_event_id(revised);
      send.kind = update ? "update" : "cancel";
      send.refs = {id.text()};
      send.wait = wait_of(update ? update_wait : cancel_wait, wait);
      return ctl::revise(config, send, id);
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
      return ctl::prune(config, *age, force, json);
    }
  } catch (const ConfigError& e) {
    if (json) {
      ctl::Json errors = ctl::Json::array();
      for (const auto& issue : e.issues()) errors.push_back(issue.to_string());
      print_failure(ctl::kUsage, "configuration error", {{"errors", errors}});
    }
    std::cerr << e.what() << "\n";
    return ctl::kUsage;
  } catch (const ctl::UsageError& e) {
    // Only a verb that sends has something to say about what was sent.
    const bool sending = send_cmd->parsed() || duress_cmd->parsed() || clear_cmd->parsed() ||
                         ack_cmd->parsed() || update_cmd->parsed() || cancel_cmd->parsed();
    if (json) {
      print_failure(ctl::kUsage, e.what(),
                    sending ? ctl::Json{{"state", "nothing sent"}} : ctl::Json::object());
    }
    std::cerr << "relayctl: " << e.what() << (sending ? " (nothing was sent)" : "") << "\n";
    return ctl::kUsage;
  } catch (const ctl::Failure& e) {
    if (json) print_failure(e.code, e.what(), e.state);
    std::cerr << "relayctl: " << e.what() << "\n";
    return e.code;
  } catch (const std::exception& e) {
    if (json) print_failure(ctl::kFailure, e.what(), ctl::Json::object());
    std::cerr << "relayctl: " << e.what() << "\n";
    return ctl::kFailure;
  }
  return ctl::kUsage;
}

#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "common/config.h"
#include "relay/relayctl/output.h"
#include "relay/store/answer.h"
#include "relay/store/console.h"

namespace relay::ctl {

// Exit codes of the contract in docs/design.md ("Contracts"); README.md and
// `relayctl --help` list them too.
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsage = 2;
inline constexpr int kWaitTimedOut = 3;
inline constexpr int kNotClaimed = 4;
/// `relayctl status`: the verdict is DEGRADED, or ALARM (OK is kOk; no
/// verdict at all, relayd not answering, is kFailure).
inline constexpr int kDegraded = 5;
inline constexpr int kAlarm = 6;

/// How long a send waits for relayd to claim its row when --wait is not given.
inline constexpr std::chrono::milliseconds kClaimWait{5000};

/// What the sending verbs take from the command line.
struct SendOptions {
  std::string kind = "notification";
  std::string priority;  // empty: by kind
  std::vector<std::string> targets;
  std::string title, body, location, sender, type, data;
  std::string expires;  // a duration, "" for never
  std::vector<std::string> refs;
  std::string ack;    // an acknowledgement's state: "responding" or "resolved"
  std::string until;  // with --wait: "" (every target confirmed) or "acknowledged"
  bool exercise = false;
  std::optional<std::chrono::milliseconds> wait;
  bool json = false;
};

/// An event id, "origin:seq".
struct EventId {
  std::string origin;
  std::int64_t seq = 0;
  std::string text() const { return origin + ":" + std::to_string(seq); }
};
/// Parses "origin:seq" strictly: a valid node id, then 1 to 2^63-1 in
/// decimal digits and nothing else. Throws UsageError saying what is expected.
EventId parse_event_id(const std::string& text);

int keygen(const std::string& out, bool mesh, bool json);
/// Checks a configuration file and its keys, and unless `offline` what
/// relayd will meet: the database (reachable, schema, durability) and the
/// ports it binds (free, or held by this node's own running relayd).
int check_config(const std::string& file, bool offline, bool json);
int migrate(const Config& config, bool json);
int send(const Config& config, SendOptions options);
/// The targets and existence check of an all-clear: the event it clears must
/// be in this node's log (else missing_event); its targets are the default.
std::vector<std::string> all_clear_targets(const Config& config, const EventId& cleared);
/// A person's acknowledgement of `id` (o.ack, o.sender, o.body): through
/// the outbox, or with the database down through relayd's control socket;
/// refused (exit 1, nothing sent) for an event this node does not hold.
int ack(const Config& config, SendOptions o, const EventId& id);
/// The origin's update or cancel (o.kind) of its own alert `id`, through the
/// outbox; refused (exit 1, nothing sent) for an event of another node, one
/// not in the log, or one cancelled or cleared already.
int revise(const Config& config, SendOptions o, const EventId& id);
/// What a sending verb prints for an event relayd took (and, with
/// o.wait, its wait), when it was not sent through send().
int report_sent(const Config& config, const SendOptions& o, const EventId& id, Json extra);
/// The acknowledgements of `id` in this node's log, oldest first.
std::vector<store::Acknowledgement> acknowledgements(pqxx::connection& conn, const EventId& id);
/// As receipts show them: who, where, how, and seconds after the event was raised.
Json acks_json(const std::vector<store::Acknowledgement>& acks, std::int64_t raised_unix_ms);
void print_acks(const std::vector<store::Acknowledgement>& acks, std::int64_t raised_unix_ms);
/// Waits until a person acknowledged `id` (the first one), or nullopt at `deadline`.
std::optional<store::Acknowledgement> wait_for_ack(const Config& config, const EventId& id,
                                                   std::chrono::steady_clock::time_point deadline,
                                                   bool json);
/// send --wait --until acknowledged, once relayd took `id`: exit 0 when a
/// person acknowledged it within the wait (from `start`), 3 when nobody did.
int until_acknowledged(const Config& config, const SendOptions& o, const EventId& id,
                       std::chrono::steady_clock::time_point start);
int status(const Config& config, bool json);
int events(const Config& config, int limit, const std::string& kind, const std::string& origin,
           bool json);
int receipts(const Config& config, const std::string& event, bool json);
int tail(const Config& config, bool json);
/// Prunes the log now, as retention does hourly, with `older_than` instead
/// of [store] retention (0s prunes whatever every peer holds: for tests and
/// for making room; dedupe outlives it). relayd learns of it at once. Own
/// events a configured peer has not stored are kept and named (exit 1)
/// unless `force`.
int prune(const Config& config, std::chrono::milliseconds older_than, bool force, bool json);
/// An event this node's log lacks: exit 1, in the same words for every verb.
Failure missing_event(const EventId& id);
/// "cannot reach the database (DSN): why", on one line (libpq's messages
/// end in a newline).
std::string unreachable(const Config& config, const std::exception& e);

/// Asks relayd to reload through its control socket and reports its answer.
int reload(const std::string& file, bool json);

/// Per target: pending (expired_unseen once the event is `too_old`: past
/// max_age, not a duress), or answered with when and what it did
/// (delivered, late, or withheld and why).
Json receipts_json(const std::vector<std::string>& targets,
                   const std::map<std::string, store::TargetReceipt>& done, bool too_old);

/// Sends one request to relayd's control socket and returns its answer;
/// nullopt (with why) when relayd does not answer within `timeout`;
/// `delivered` then says whether relayd got the request (and may have acted
/// on it) or was never reached.
std::optional<Json> control_request(const Config& config, const Json& request,
                                    std::chrono::milliseconds timeout, std::string* why,
                                    bool* delivered = nullptr);

/// Node ids of the mesh (this node and its peers) that `targets` name.
std::vector<std::string> resolve_targets(const Config& config,
                                         const std::vector<std::string>& targets);
/// Splits "a,b,c" and trims spaces; throws UsageError for an empty item.
std::vector<std::string> split_targets(const std::string& text);

}  // namespace relay::ctl

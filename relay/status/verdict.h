#pragma once

#include <string>
#include <vector>

#include "relay/status/snapshot.h"

namespace relay::status {

/// How the node stands, in one word, with every reason. The rules are
/// listed in docs/status.md and deploy/OPERATOR.md; this is their code.
struct Verdict {
  enum class Level { ok, degraded, alarm };
  Level level = Level::ok;
  std::vector<std::string> reasons;
};

/// "OK", "DEGRADED" or "ALARM".
const char* level_name(Verdict::Level level);

/// A duress waiting in message_queue this long, untaken by any consumer,
/// raises ALARM; any other row, this long, DEGRADED.
inline constexpr std::int64_t kDuressUntakenAlarmMs = 30'000;
inline constexpr std::int64_t kRowUntakenDegradedMs = 10 * 60'000;
/// An outbox row unclaimed this long: DEGRADED (relayd claims within ms).
inline constexpr std::int64_t kOutboxStaleMs = 10'000;

/// Judges a snapshot.
Verdict judge(const Snapshot& s);

/// Why this node cannot do its own job (its database, a store lane, the
/// outbox claim or LISTEN, the core): what /healthz answers 503 with.
/// Empty when it can. Peers' trouble is not here: it is in the verdict.
std::vector<std::string> health_problems(const Snapshot& s);

/// Free space below which the state directory counts as full. Counters and
/// the spool need no new space, so alarms still go out; the captured log and
/// anything else that grows there stop.
inline constexpr std::uint64_t kStateDirFullBytes = 1 << 20;

/// "state directory PATH is full (...)" while it is, or cannot be checked;
/// empty otherwise. DEGRADED, and a warning line on /healthz (which stays
/// 200: the node still does its own job).
std::string state_dir_problem(const Snapshot& s);

/// "12 s", "3 min", "2 h 5 min": an age for people.
std::string age_text(std::int64_t ms);

/// Who has not taken a message_queue row, and what to do about it:
/// "relay-runner group \"sms\" has not finished it (\"popup\" has); check
/// that ..." when groups consume its type, "no consumer has taken it; ..."
/// when none does.
std::string untaken_text(const store::ConsoleView::QueueRow& row);

}  // namespace relay::status
